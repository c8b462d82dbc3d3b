"""`soul generate`: submit one prompt, wait for it, save the 4 images."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from soulcli.errors import ExitCode, UsageError
from soulcli.options import (
    EnhanceOption,
    JsonFlag,
    NegativeOption,
    OutDir,
    QualityOption,
    RatioOption,
    SeedOption,
    StyleOption,
    TimeoutOption,
)

if TYPE_CHECKING:
    from soulcli.models import GenerationRequest

MAX_PROMPT_CHARS = 10_000
DEFAULT_RATIO = "1:1"
DEFAULT_QUALITY = "720p"


def generate(
    prompt: Annotated[
        str | None,
        typer.Argument(help="What to draw; `-` reads it from stdin.", show_default=False),
    ] = None,
    style: StyleOption = None,
    ar: RatioOption = None,
    quality: QualityOption = None,
    seed: SeedOption = None,
    negative: NegativeOption = None,
    enhance: EnhanceOption = None,
    out: OutDir = None,
    json_: JsonFlag = False,
    no_wait: Annotated[
        bool, typer.Option("--no-wait", help="Print the task id and exit without waiting.")
    ] = False,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Print the request body and price; send nothing.")
    ] = False,
    timeout: TimeoutOption = None,
) -> None:
    """Generate 4 images from a prompt and save them.

    Example: soul generate "a dog in the rain" --style Tokyo --ar 16:9
    """
    from soulcli import ui
    from soulcli.config import check_base_url, effective_settings
    from soulcli.models import format_ptc

    text = read_prompt(prompt)
    settings = effective_settings()
    request = build_request(
        text,
        style=style if style is not None else settings.style,
        ar=ar if ar is not None else settings.aspect_ratio,
        quality=quality if quality is not None else settings.quality,
        seed=seed,
        negative=negative,
        enhance=enhance,
    )
    price = format_ptc(request.price)
    described = describe(request)
    if dry_run:
        url = check_base_url(settings.base_url) + "/higgsfield/text2image_soul"
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

    from soulcli.commands.common import open_client, report, wait_and_save
    from soulcli.downloads import prepare_out_dir

    out_dir = Path(out or settings.out_dir or ".").expanduser()
    client = open_client(settings)
    if not no_wait:
        # Find an unwritable directory before paying, not after.
        out_dir = prepare_out_dir(out_dir)
    with client:
        ui.say(f"soul: submitting {described} · seed {request.seed} · {price} PTC")
        task_id = client.submit(request)
        ui.say(f"soul: task {task_id} submitted")
        if no_wait:
            if json_:
                ui.emit_json({"task_id": task_id, "status": "submitted", **request_json(request)})
            else:
                ui.emit(task_id)
            return
        outcome = wait_and_save(
            client, task_id, out_dir=out_dir, timeout=timeout or _default_timeout(), price=price
        )
    code = report(outcome, as_json=json_, extra=request_json(request))
    if code != ExitCode.OK:
        raise typer.Exit(int(code))


def _default_timeout() -> float:
    from soulcli.waiting import DEFAULT_WAIT_TIMEOUT

    return DEFAULT_WAIT_TIMEOUT


def read_prompt(prompt: str | None) -> str:
    """The prompt from the argument or stdin (`-`), checked before anything is sent."""
    if prompt is None:
        raise UsageError("a prompt is required", hint='e.g. soul generate "a dog"; `-` reads stdin')
    if prompt == "-":
        data = sys.stdin.buffer.read()
        try:
            prompt = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise UsageError("the prompt on stdin is not valid UTF-8") from exc
    return check_prompt(prompt)


def check_prompt(prompt: str, where: str = "the prompt") -> str:
    """Strip a prompt and refuse one that is empty, too long, or not clean text."""
    try:
        prompt.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise UsageError(f"{where} is not valid UTF-8") from exc
    text = prompt.strip()
    if not text:
        raise UsageError(f"{where} is empty")
    if len(text) > MAX_PROMPT_CHARS:
        raise UsageError(f"{where} has {len(text)} characters; the limit is {MAX_PROMPT_CHARS}")
    if any(ord(c) < 0x20 and c not in "\t\n\r" for c in text):
        raise UsageError(f"{where} contains control characters (such as NUL)")
    return text


def build_request(
    prompt: str,
    *,
    style: str | None,
    ar: str | None,
    quality: str | None,
    seed: int | None,
    negative: str | None,
    enhance: bool | None,
) -> GenerationRequest:
    """Resolve every option (style name, quality alias, random seed) into a GenerationRequest."""
    import secrets

    from soulcli.catalog import DEFAULT_STYLE, resolve_style
    from soulcli.models import (
        ASPECT_RATIOS,
        SEED_MAX,
        SEED_MIN,
        GenerationRequest,
        normalize_quality,
    )

    chosen_style = resolve_style(DEFAULT_STYLE if style is None else style)
    ratio = (ar or DEFAULT_RATIO).strip()
    if ratio not in ASPECT_RATIOS:
        raise UsageError(
            f"unknown aspect ratio {ratio!r}", hint="use one of " + ", ".join(ASPECT_RATIOS)
        )
    tier = normalize_quality(quality or DEFAULT_QUALITY)
    if tier is None:
        raise UsageError(f"unknown quality {quality!r}", hint="use 720p (basic) or 1080p (high)")
    if seed is None:
        seed = SEED_MIN + secrets.randbelow(SEED_MAX - SEED_MIN + 1)
    elif not SEED_MIN <= seed <= SEED_MAX:
        raise UsageError(f"seed {seed} is outside {SEED_MIN}..{SEED_MAX}")
    negative_text = (
        check_prompt(negative, "the negative prompt") if negative and negative.strip() else ""
    )
    return GenerationRequest(
        prompt=prompt,
        style_id=chosen_style.id,
        style_name=chosen_style.name,
        aspect_ratio=ratio,
        quality=tier,
        seed=seed,
        negative_prompt=negative_text,
        enhance_prompt=bool(enhance),
    )


def describe(request: GenerationRequest) -> str:
    return f"{request.style_name} · {request.aspect_ratio} · {request.quality}"


def request_json(request: GenerationRequest) -> dict[str, Any]:
    """The request fields as they appear in --json output."""
    return {
        "prompt": request.prompt,
        "negative_prompt": request.negative_prompt,
        "style": {"id": request.style_id, "name": request.style_name},
        "aspect_ratio": request.aspect_ratio,
        "quality": request.quality,
        "seed": request.seed,
        "enhance_prompt": request.enhance_prompt,
        "cost_ptc": float(request.price),
    }
