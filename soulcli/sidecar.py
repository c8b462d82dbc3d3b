"""Metadata files next to saved images (NAME.json), so a picture can be reproduced later."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from soulcli import __version__
from soulcli.atomicfile import write_atomically
from soulcli.errors import UsageError
from soulcli.models import GenerationRequest


def sidecar_path(image: Path) -> Path:
    return image.with_suffix(".json")


def request_fields(request: GenerationRequest) -> dict[str, Any]:
    """The request as soul shows it in JSON output, sidecars and history."""
    return {
        "prompt": request.prompt,
        "negative_prompt": request.negative_prompt,
        "style": {"id": request.style_id, "name": request.style_name},
        "aspect_ratio": request.aspect_ratio,
        "quality": request.quality,
        "seed": request.seed,
        "enhance_prompt": request.enhance_prompt,
    }


def write_sidecar(
    image: Path, *, task_id: str, index: int, source_url: str, request: GenerationRequest | None
) -> Path:
    """Write NAME.json beside the image atomically (temp file, fsync, rename)."""
    payload: dict[str, Any] = {
        "soul_version": __version__,
        "task_id": task_id,
        "index": index,
        "source_url": source_url,
        "image": image.name,
    }
    if request is not None:
        payload.update(request_fields(request))
    target = sidecar_path(image)
    # Named like the image's own temp files, so a run after a kill -9 removes it too.
    tmp = image.with_name(f".{image.stem}.{os.getpid()}.sidecar.part")
    data = (json.dumps(payload, ensure_ascii=False, indent=2) + "\n").encode("utf-8")
    write_atomically(target, data, part=tmp)
    return target


def read_sidecar(path: Path) -> dict[str, Any]:
    """The metadata for an image (or its sidecar); UsageError if there is none to read."""
    candidates = [path] if path.suffix == ".json" else [sidecar_path(path), Path(f"{path}.json")]
    for candidate in candidates:
        if candidate.is_file():
            try:
                data = json.loads(candidate.read_text(encoding="utf-8"))
            except (OSError, UnicodeDecodeError, ValueError) as exc:
                raise UsageError(f"cannot read {candidate}: {exc}") from exc
            if not isinstance(data, dict) or not isinstance(data.get("prompt"), str):
                raise UsageError(f"{candidate} holds no soul request to repeat")
            return data
    raise UsageError(f"no metadata file next to {path} (expected {candidates[0].name})")
