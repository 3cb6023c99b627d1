"""Strategy configs on disk: TOML files read into the plain dicts ``build_engine`` takes."""
from __future__ import annotations

import os
import tomllib
from importlib.resources import files
from pathlib import Path
from typing import Any

# The fixtures a run needs (default configs, scenarios, the sample recordings) are package data of
# ``tapedeck`` (pyproject maps ``tapedeck.fixtures`` to ``fixtures/``), so they are found the same
# way in a checkout, an editable install and an installed wheel.
ROOT = Path(os.fspath(files("tapedeck")))  # the package's directory (a checkout's root, or site-packages/tapedeck)
FIXTURES = ROOT / "fixtures"
DEFAULT_CONFIG = FIXTURES / "config" / "default.toml"
SIM_DEFAULT_CONFIG = FIXTURES / "config" / "sim-default.toml"


class ConfigFileError(ValueError):
    """A config file that is missing or not TOML; the message names the file."""


def read_toml(path: str | Path, what: str, error: type[ValueError] = ConfigFileError) -> dict[str, Any]:
    """A TOML file as a dict, or ``error`` in one line naming the file and what is wrong with it
    (``what`` names the kind of file: "config", "registry"...)."""
    p = Path(path)
    try:
        with p.open("rb") as f:
            return tomllib.load(f)
    except FileNotFoundError:
        raise error(f"{p}: {what} file not found") from None
    except IsADirectoryError:
        raise error(f"{p}: is a directory, not a {what} file") from None
    except PermissionError:
        raise error(f"{p}: {what} file not readable (permission denied)") from None
    except OSError as e:
        raise error(f"{p}: cannot read the {what} file: {e.strerror or e}") from None
    except UnicodeDecodeError as e:
        raise error(f"{p}: not valid TOML: not UTF-8 text ({e.reason} at byte {e.start})") from None
    except tomllib.TOMLDecodeError as e:
        raise error(f"{p}: not valid TOML: {e}") from None


def load_config(path: str | Path) -> dict[str, Any]:
    return read_toml(path, "config")
