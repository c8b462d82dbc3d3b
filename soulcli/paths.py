"""Where soul keeps its files: config, data and cache dirs, each movable by an env variable."""

from __future__ import annotations

import os
from pathlib import Path

CONFIG_FILENAME = "config.toml"
LEDGER_FILENAME = "tasks.db"


def config_dir() -> Path:
    """The config directory: $SOUL_CONFIG_DIR, else platformdirs' user config dir."""
    override = os.environ.get("SOUL_CONFIG_DIR")
    if override:
        return Path(override).expanduser()
    import platformdirs

    return Path(platformdirs.user_config_dir("soul", appauthor=False))


def config_path() -> Path:
    return config_dir() / CONFIG_FILENAME


def data_dir() -> Path:
    """The data directory (the task ledger): $SOUL_DATA_DIR, else platformdirs' user data dir."""
    override = os.environ.get("SOUL_DATA_DIR")
    if override:
        return Path(override).expanduser()
    import platformdirs

    return Path(platformdirs.user_data_dir("soul", appauthor=False))


def ledger_path() -> Path:
    return data_dir() / LEDGER_FILENAME


def cache_dir() -> Path:
    """The cache directory (style previews): $SOUL_CACHE_DIR, else platformdirs' user cache dir.

    Everything in it can be fetched again: deleting it loses nothing.
    """
    override = os.environ.get("SOUL_CACHE_DIR")
    if override:
        return Path(override).expanduser()
    import platformdirs

    return Path(platformdirs.user_cache_dir("soul", appauthor=False))
