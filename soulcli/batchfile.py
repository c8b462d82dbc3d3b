"""Read a batch file (plain prompts or JSON Lines) and check every line before anything is sent."""

from __future__ import annotations

import hashlib
import json
import re
from collections import Counter
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from soulcli.errors import UsageError
from soulcli.models import GenerationRequest
from soulcli.request_builder import build_request, check_prompt

# JSON Lines keys, with the names soul's own JSON output uses accepted as aliases.
KEY_ALIASES = {
    "prompt": "prompt",
    "style": "style",
    "ar": "ar",
    "aspect_ratio": "ar",
    "quality": "quality",
    "seed": "seed",
    "negative": "negative",
    "negative_prompt": "negative",
    "enhance": "enhance",
    "enhance_prompt": "enhance",
    "out": "out",
    "name": "name",
}
KEY_TYPES: dict[str, type] = {
    "prompt": str,
    "style": str,
    "ar": str,
    "quality": str,
    "seed": int,
    "negative": str,
    "enhance": bool,
    "out": str,
    "name": str,
}
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")


@dataclass(frozen=True)
class BatchDefaults:
    """Command-line options: the defaults for every line."""

    style: str | None = None
    ar: str | None = None
    quality: str | None = None
    seed: int | None = None
    negative: str | None = None
    enhance: bool | None = None
    out: str | None = None


@dataclass(frozen=True)
class BatchLine:
    number: int  # counted from 1, as an editor shows it
    request: GenerationRequest
    out: str | None  # directory for this line's images, if the line names one
    name: str | None  # file stem for this line's images, if the line names one
    seed_given: bool = False  # the line or the command line chose the seed
    key: str = ""  # identity in the ledger: the resolved request, and which repeat of it

    def identity(self) -> str:
        """What makes two lines the same request: everything sent and where it is saved,
        but not a seed soul picked at random (a re-run keeps the first one)."""
        request = self.request
        material = {
            "prompt": request.prompt,
            "style_id": request.style_id,
            "aspect_ratio": request.aspect_ratio,
            "quality": request.quality,
            "negative_prompt": request.negative_prompt,
            "enhance_prompt": request.enhance_prompt,
            "seed": request.seed if self.seed_given else None,
            "name": self.name,
            "out": str(Path(self.out or ".").expanduser().resolve()),
        }
        text = json.dumps(material, sort_keys=True, ensure_ascii=False)
        return hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]


class BatchFileError(UsageError):
    """Some lines are bad; `problems` has one message per bad line."""

    def __init__(self, source: str, problems: list[str]) -> None:
        count = len(problems)
        super().__init__(
            f"{count} bad line{'s' if count != 1 else ''} in {source}; nothing was sent"
        )
        self.problems = problems


def batch_key(text: str, defaults: BatchDefaults) -> str:
    """Identifies a batch: the same file with the same options is the same batch."""
    material = json.dumps({"text": text, "defaults": asdict(defaults)}, sort_keys=True)
    return hashlib.sha256(material.encode("utf-8")).hexdigest()


def decode_batch(data: bytes, source: str) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise UsageError(f"{source}:{line}: not valid UTF-8") from exc


def parse_batch(text: str, defaults: BatchDefaults, *, source: str) -> list[BatchLine]:
    """Every line as a checked request; BatchFileError lists all bad lines at once."""
    rows = [(n, line.strip()) for n, line in enumerate(text.splitlines(), start=1)]
    rows = [(n, line) for n, line in rows if line and not line.startswith("#")]
    if not rows:
        raise UsageError(f"{source} has no prompts (blank lines and # comments are skipped)")
    json_lines = rows[0][1].startswith("{")
    lines: list[BatchLine] = []
    problems: list[str] = []
    for number, raw in rows:
        try:
            fields = _json_fields(raw) if json_lines else {"prompt": raw}
            lines.append(_line(number, fields, defaults))
        except UsageError as exc:
            problems.append(
                f"{source}:{number}: {exc.message}" + (f" ({exc.hint})" if exc.hint else "")
            )
    if problems:
        raise BatchFileError(source, problems)
    return with_keys(lines)


def with_keys(lines: list[BatchLine]) -> list[BatchLine]:
    """Give each line its ledger key: its identity and which repeat of it in the file it is,
    so a file holding the same prompt twice means two requests."""
    seen: Counter[str] = Counter()
    keyed = []
    for line in lines:
        identity = line.identity()
        seen[identity] += 1
        keyed.append(replace(line, key=f"{identity}:{seen[identity]}"))
    return keyed


def _json_fields(raw: str) -> dict[str, Any]:
    try:
        value = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise UsageError(f"not valid JSON: {exc.msg} at column {exc.colno}") from exc
    except (ValueError, RecursionError) as exc:
        raise UsageError("not valid JSON") from exc
    if not isinstance(value, dict):
        raise UsageError('each JSON line must be an object with a "prompt"')
    fields: dict[str, Any] = {}
    for key, item in value.items():
        name = KEY_ALIASES.get(key)
        if name is None:
            known = ", ".join(sorted(set(KEY_ALIASES.values())))
            raise UsageError(f"unknown key {key!r} (known: {known})")
        kind = KEY_TYPES[name]
        if not isinstance(item, kind) or (kind is int and isinstance(item, bool)):
            raise UsageError(f"{key!r} must be a {'number' if kind is int else kind.__name__}")
        fields[name] = item
    if "prompt" not in fields:
        raise UsageError('the line has no "prompt"')
    return fields


def _line(number: int, fields: dict[str, Any], defaults: BatchDefaults) -> BatchLine:
    prompt = check_prompt(fields["prompt"])
    request = build_request(
        prompt,
        style=fields.get("style", defaults.style),
        ar=fields.get("ar", defaults.ar),
        quality=fields.get("quality", defaults.quality),
        seed=fields.get("seed", defaults.seed),
        negative=fields.get("negative", defaults.negative),
        enhance=fields.get("enhance", defaults.enhance),
    )
    name = fields.get("name")
    if name is not None:
        check_image_stem(name, what="name")
    out = fields.get("out", defaults.out)
    if out is not None and not str(out).strip():
        raise UsageError("out must not be empty")
    seed_given = fields.get("seed", defaults.seed) is not None
    return BatchLine(
        number, request, str(Path(out).expanduser()) if out else None, name, seed_given
    )


def check_image_stem(name: str, *, what: str) -> str:
    """A file stem for a task's images (`STEM_1.png`): a plain name, never a path."""
    if not _NAME.match(name) or ".." in name:
        raise UsageError(f"{what} {name!r} must be a plain file name (letters, digits, . _ -)")
    return name
