"""soul: Higgsfield Soul text-to-image from the command line, and as a Python library.

    from soulcli import Soul

    soul = Soul()  # key and base URL as the CLI finds them, or Soul(api_key=...)
    result = soul.generate("a dog in the rain", style="Tokyo", ar="16:9", out="pics")
    print(result.images)  # four pathlib.Path

The names below load on first use: the CLI's start-up imports none of them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from soulcli.catalog import Style
    from soulcli.errors import (
        AuthError,
        BalanceError,
        ConfigError,
        DownloadError,
        MaybeChargedError,
        RejectedError,
        ServerError,
        SoulError,
        TaskNotFoundError,
        TaskStoppedError,
        TaskUnrecordedError,
        UnreachableError,
        UsageError,
    )
    from soulcli.follow import Watcher
    from soulcli.ledger import TaskRecord
    from soulcli.library import MissingImage, Result, Soul, Task
    from soulcli.models import GenerationRequest

__all__ = [
    "AuthError",
    "BalanceError",
    "ConfigError",
    "DownloadError",
    "GenerationRequest",
    "MaybeChargedError",
    "MissingImage",
    "RejectedError",
    "Result",
    "ServerError",
    "Soul",
    "SoulError",
    "Style",
    "Task",
    "TaskNotFoundError",
    "TaskRecord",
    "TaskStoppedError",
    "TaskUnrecordedError",
    "UnreachableError",
    "UsageError",
    "Watcher",
    "__version__",
]

# Where each public name lives (the rest are errors).
_HOMES = {
    "Soul": "soulcli.library",
    "Result": "soulcli.library",
    "Task": "soulcli.library",
    "MissingImage": "soulcli.library",
    "Watcher": "soulcli.follow",
    "Style": "soulcli.catalog",
    "TaskRecord": "soulcli.ledger",
    "GenerationRequest": "soulcli.models",
}


def __getattr__(name: str) -> Any:
    if name not in __all__:
        raise AttributeError(f"module 'soulcli' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(_HOMES.get(name, "soulcli.errors")), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
