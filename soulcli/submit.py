"""Submitting with the ledger: the row is written before the POST, the task id right after."""

from __future__ import annotations

from soulcli.client import ApiClient
from soulcli.errors import ExitCode, MaybeChargedError, SoulError, Terminated
from soulcli.ledger import FAILED, OUTCOME_UNKNOWN, Ledger
from soulcli.models import GenerationRequest


def submit_recorded(
    client: ApiClient,
    ledger: Ledger,
    request: GenerationRequest,
    *,
    out_dir: str | None,
    api_host: str,
    batch_id: int | None = None,
    batch_line: int | None = None,
    image_stem: str | None = None,
) -> tuple[int, str]:
    """POST one request, keeping the ledger true whatever happens; returns (local id, task id)."""
    local_id = ledger.add(
        request,
        out_dir=out_dir,
        api_host=api_host,
        batch_id=batch_id,
        batch_line=batch_line,
        image_stem=image_stem,
    )
    try:
        task_id = client.submit(request)
    except MaybeChargedError as exc:
        ledger.set_state(local_id, OUTCOME_UNKNOWN, exc.message)
        exc.hint = f"it is recorded as task {local_id} in `soul history`; " + (exc.hint or "")
        raise
    except SoulError as exc:
        # Refused or never sent: the server took nothing, so nothing was charged.
        ledger.set_state(local_id, FAILED, f"not submitted: {exc.message}")
        raise
    except (KeyboardInterrupt, Terminated) as exc:
        ledger.set_state(
            local_id,
            OUTCOME_UNKNOWN,
            "interrupted while submitting; the request may have been charged",
        )
        code = ExitCode.TERMINATED if isinstance(exc, Terminated) else ExitCode.INTERRUPTED
        raise SoulError(
            "interrupted while submitting; the request may have been charged",
            hint=f"it is recorded as task {local_id} in `soul history`",
            exit_code=code,
        ) from None
    ledger.set_remote_id(local_id, task_id)
    return local_id, task_id
