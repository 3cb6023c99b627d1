"""tapedeck: record, replay, simulate and run on-chain trading bots on one deterministic core.

Installed as the ``tapedeck`` package (``tapedeck.domain``, ``tapedeck.runtime``, ...): the
repository keeps the design card's top-level folders and pyproject maps them under this name, so
a user's own ``cli.py`` or ``domain/`` never collides with ours.
"""
__version__ = "0.1.0"
