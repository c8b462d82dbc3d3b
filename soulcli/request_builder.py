"""Turn user input (prompt, style name, ratio, quality alias, seed) into a checked request."""

from __future__ import annotations

from soulcli.constants import DEFAULT_QUALITY as DEFAULT_QUALITY
from soulcli.constants import DEFAULT_RATIO as DEFAULT_RATIO
from soulcli.errors import UsageError
from soulcli.models import GenerationRequest

MAX_PROMPT_CHARS = 10_000


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
    # SystemRandom draws from os.urandom as `secrets` does, without `secrets`' imports
    # (hmac, hashlib and OpenSSL's libcrypto: about 5 ms of every generate).
    from random import SystemRandom

    from soulcli.catalog import DEFAULT_STYLE, resolve_style
    from soulcli.constants import ASPECT_RATIOS, SEED_MAX, SEED_MIN
    from soulcli.models import normalize_quality

    chosen_style = resolve_style(DEFAULT_STYLE if style is None else style)
    ratio = (ar or DEFAULT_RATIO).strip()
    if ratio not in ASPECT_RATIOS:
        raise UsageError(
            f"unknown aspect ratio {ratio!r}", hint="use one of " + ", ".join(ASPECT_RATIOS)
        )
    tier = normalize_quality(quality or DEFAULT_QUALITY)
    if tier is None:
        raise UsageError(f"unknown quality {quality!r}", hint="use 720p or basic, 1080p or high")
    if seed is None:
        seed = SystemRandom().randint(SEED_MIN, SEED_MAX)
    elif not SEED_MIN <= seed <= SEED_MAX:
        raise UsageError(f"seed {seed} is outside {SEED_MIN} to {SEED_MAX}")
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
