"""`soul generate`: submit one prompt, wait for it, save the 4 images."""

from __future__ import annotations

import sys
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from soulcli.commands import new_app
from soulcli.errors import ExitCode, SoulError, UsageError
from soulcli.models import SUBMIT_PATH
from soulcli.options import (
    EnhanceOption,
    JsonFlag,
    NegativeOption,
    OutDir,
    QualityOption,
    RatioOption,
    SeedOption,
    ShowOption,
    StyleOption,
    TimeoutOption,
    YesOption,
)
from soulcli.request_builder import build_request, check_prompt

if TYPE_CHECKING:
    from soulcli.models import GenerationRequest


def generate(
    prompt: Annotated[
        str | None,
        typer.Argument(
            help="What to draw. `-`, or no PROMPT with stdin piped, reads it from stdin.",
            show_default=False,
        ),
    ] = None,
    style: StyleOption = None,
    ar: RatioOption = None,
    quality: QualityOption = None,
    seed: SeedOption = None,
    negative: NegativeOption = None,
    enhance: EnhanceOption = None,
    out: OutDir = None,
    name: Annotated[
        str | None,
        typer.Option(
            "--name",
            metavar="STEM",
            help="Save the images as STEM_1.png ... STEM_4.png instead of TASKID_1.png ...",
        ),
    ] = None,
    json_: JsonFlag = False,
    no_wait: Annotated[
        bool, typer.Option("--no-wait", help="Print the task id and exit without waiting.")
    ] = False,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Print the request body and price; send nothing.")
    ] = False,
    timeout: TimeoutOption = None,
    like: Annotated[
        str | None,
        typer.Option(
            "--like",
            metavar="PATH|TASK",
            help="Repeat a past request: an image, its "
            ".json sidecar, or a task id from `soul history`; options override it.",
        ),
    ] = None,
    yes: YesOption = False,
    show: ShowOption = None,
) -> None:
    """Generate 4 images from a prompt and save them.

    \b
    Examples:
      soul generate "a dog in the rain" --style Tokyo --ar 16:9
      soul generate "a dog" --name dog --out pics
      echo "a cat on a piano" | soul generate --quality 1080p
    """
    from soulcli import signals, ui
    from soulcli.config import check_base_url, effective_settings, require_api_key
    from soulcli.models import format_ptc

    if name is not None:
        from soulcli.batchfile import check_image_stem

        check_image_stem(name, what="--name")
    base = load_like(like) if like else {}
    if prompt is None and base:
        text = check_prompt(str(base.get("prompt", "")), "the stored prompt")
    else:
        text = read_prompt(prompt)
    settings = effective_settings()
    request = build_request(
        text,
        style=_first(style, _style_of(base), settings.style),
        ar=_first(ar, base.get("aspect_ratio"), settings.aspect_ratio),
        quality=_first(quality, base.get("quality"), settings.quality),
        seed=_first(seed, base.get("seed")),
        negative=_first(negative, base.get("negative_prompt")),
        enhance=_first(enhance, base.get("enhance_prompt")),
    )
    price = format_ptc(request.price)
    if dry_run:
        url = check_base_url(settings.base_url) + SUBMIT_PATH
        if json_:
            ui.emit_json(
                {
                    "method": "POST",
                    "url": url,
                    "body": request.body(),
                    "cost_ptc": float(request.price),
                }
            )
        else:
            import json

            ui.say(f"POST {url} (dry run: nothing sent) · price {price} PTC for 4 images")
            ui.emit(json.dumps(request.body(), ensure_ascii=False, indent=2))
        return

    from soulcli.follow import open_client, request_json
    from soulcli.ledger import Ledger
    from soulcli.outdir import prepare_before_sending, refuse_a_file
    from soulcli.submit import submit_recorded

    out_dir = Path(out or settings.out_dir or ".").expanduser()
    require_api_key(settings)  # the cheap checks first: key, base URL, output dir, price
    api_host = check_base_url(settings.base_url)
    refuse_a_file(out_dir)
    # Say what is about to be sent before asking whether to send it.
    ui.say(f"soul: submitting {describe(request)} · seed {request.seed} · {price} PTC")
    confirm_price(request.price, settings.confirm_above, yes=yes)
    # Find an unwritable directory before paying, not after (and after the question,
    # so that a "no" leaves no empty directory behind).
    out_dir = out_dir.resolve() if no_wait else prepare_before_sending(out_dir)
    with open_client(settings) as client, Ledger.open() as ledger:
        local_id, task_id = submit_recorded(
            client,
            ledger,
            request,
            out_dir=str(out_dir),
            api_host=api_host,
            image_stem=name,
        )
        # The task exists: a stop from here on names it and says how to resume.
        with signals.naming_task(task_id, out_dir):
            ui.say(f"soul: task {task_id} submitted")
            if no_wait:
                from soulcli.errors import resume_command

                if json_:
                    ui.emit_json(
                        {"task_id": task_id, "status": "submitted", **request_json(request)}
                    )
                else:
                    ui.emit(task_id)
                ui.say(
                    "soul: not waiting; get the images later with: "
                    + resume_command(task_id, out_dir)
                )
                return
            from soulcli.commands.common import SpinnerWatcher, report
            from soulcli.follow import FollowOptions, Tracked, follow_task

            outcome = follow_task(
                client,
                task_id,
                out_dir=out_dir,
                timeout=timeout or _default_timeout(),
                price=price,
                tracked=Tracked(ledger, local_id, request),
                options=FollowOptions(watcher=SpinnerWatcher(), just_submitted=True, stem=name),
            )
            code = report(
                outcome,
                as_json=json_,
                extra=request_json(request),
                show=settings.show if show is None else show,
            )
    if code != ExitCode.OK:
        raise typer.Exit(int(code))


def _first(*values: Any) -> Any:
    """The first value that is not None: command line, then --like, then config."""
    return next((v for v in values if v is not None), None)


def _style_of(base: dict[str, Any]) -> str | None:
    style = base.get("style")
    if isinstance(style, dict) and isinstance(style.get("id"), str):
        return str(style["id"])
    return None


def load_like(like: str) -> dict[str, Any]:
    """The stored request behind --like: a sidecar (or its image), else a ledger task."""
    candidate = Path(like).expanduser()
    if candidate.exists():
        from soulcli.sidecar import read_sidecar

        return read_sidecar(candidate)
    from soulcli.ledger import Ledger
    from soulcli.sidecar import request_fields

    with Ledger.open() as ledger:
        record = ledger.get(like)
    if record is None:
        raise UsageError(f"--like {like!r} is neither a file nor a task in `soul history`")
    return request_fields(record.request())


def confirm_price(
    price: Decimal, limit: Decimal | None, *, yes: bool, limit_name: str = "confirm_above"
) -> None:
    """Ask before spending more than `limit`; refuse without a terminal unless --yes.

    `limit_name` says where the limit comes from: `confirm_above`, or a command's own
    default (a sweep asks above 1 PTC).
    """
    if limit is None or price <= limit or yes:
        return
    from soulcli.models import format_ptc

    if limit_name == "confirm_above":
        above = f"above confirm_above ({format_ptc(limit)} PTC)"
    else:
        above = f"above {limit_name}"
    what = f"this costs {format_ptc(price)} PTC, {above}"
    if not (sys.stdin.isatty() and sys.stderr.isatty()):
        raise SoulError(
            f"{what}; not confirmed", hint="add --yes to go ahead", exit_code=ExitCode.DECLINED
        )
    import click

    if not click.confirm(f"soul: {what}. Go ahead?", default=False, err=True):
        raise SoulError("not confirmed; nothing was sent", exit_code=ExitCode.DECLINED)


def _default_timeout() -> float:
    from soulcli.waiting import DEFAULT_WAIT_TIMEOUT

    return DEFAULT_WAIT_TIMEOUT


def read_prompt(prompt: str | None) -> str:
    """The prompt from the argument, or from stdin (`-`, or no argument and stdin piped)."""
    # No stdin at all (`soul generate <&-`) is like a terminal: nothing to read.
    if prompt is None and (sys.stdin is None or sys.stdin.isatty()):
        raise UsageError(
            "a prompt is required",
            hint='e.g. soul generate "a dog", or pipe one in: echo "a dog" | soul generate',
        )
    if prompt is None or prompt == "-":
        if sys.stdin is None:
            raise UsageError("stdin is closed: there is no prompt to read from it")
        data = sys.stdin.buffer.read()
        try:
            prompt = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise UsageError("the prompt on stdin is not valid UTF-8") from exc
        return check_prompt(prompt, "the prompt on stdin")
    return check_prompt(prompt)


def describe(request: GenerationRequest) -> str:
    return f"{request.style_name} · {request.aspect_ratio} · {request.quality}"


app = new_app()
app.command()(generate)
