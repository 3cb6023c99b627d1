"""tapedeck: record, replay, simulate and run on-chain trading bots on one deterministic core.

Installed as the ``tapedeck`` package (``tapedeck.domain``, ``tapedeck.runtime``, ...): the
repository keeps the design card's top-level folders and pyproject maps them under this name, so
a user's own ``cli.py`` or ``domain/`` never collides with ours.
"""
from importlib.metadata import PackageNotFoundError, version

try:  # the installed distribution's version (pyproject's), which every run's manifest records
    __version__ = version("tapedeck")
except PackageNotFoundError:  # a checkout that was never installed
    __version__ = "0+unknown"
