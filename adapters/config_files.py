"""Strategy configs on disk: TOML files read into the plain dicts ``build_engine`` takes."""
from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CONFIG = ROOT / "fixtures" / "config" / "default.toml"


class ConfigFileError(ValueError):
    """A config file that is missing or not TOML; the message names the file."""


def load_config(path: str | Path) -> dict[str, Any]:
    p = Path(path)
    try:
        with p.open("rb") as f:
            return tomllib.load(f)
    except FileNotFoundError:
        raise ConfigFileError(f"{p}: config file not found") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigFileError(f"{p}: not valid TOML: {e}") from None
