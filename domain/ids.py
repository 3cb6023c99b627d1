"""Typed identifiers: a chain, an on-chain address, a pool, an asset.

Small immutable values that validate on construction, so an id that exists is well formed: code
that holds a :class:`PoolId` never re-parses a string or guesses a chain. Addresses are kept
lowercase (the form events carry); :meth:`Address.parse` accepts any case.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

_ADDRESS = re.compile(r"0x[0-9a-fA-F]{40}")
_CHAIN = re.compile(r"[a-z][a-z0-9-]{0,31}")


class IdError(ValueError):
    """A malformed identifier; the message quotes it."""


@dataclass(frozen=True, slots=True, order=True)
class ChainId:
    """A chain by its short lowercase name (``ethereum``, ``polygon``), as the registry names it."""

    name: str

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not _CHAIN.fullmatch(self.name):
            raise IdError(f"chain {self.name!r} is not a lowercase name (letters, digits, '-')")

    def __str__(self) -> str:
        return self.name


@dataclass(frozen=True, slots=True, order=True)
class Address:
    """A 20-byte EVM address, lowercase ``0x`` + 40 hex digits."""

    value: str

    def __post_init__(self) -> None:
        if not isinstance(self.value, str) or not _ADDRESS.fullmatch(self.value) or self.value != self.value.lower():
            raise IdError(f"{self.value!r} is not a lowercase 0x-prefixed 20-byte address")

    @classmethod
    def parse(cls, text: str) -> "Address":
        """Any-case text (checksummed or not) -> the lowercase address; ``IdError`` if it is not one."""
        t = text.strip() if isinstance(text, str) else text
        if not isinstance(t, str) or not _ADDRESS.fullmatch(t):
            raise IdError(f"{text!r} is not an address (0x + 40 hex digits)")
        return cls(t.lower())

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True, slots=True, order=True)
class PoolId:
    """A pool: its chain and contract address (``ethereum:0x88e6...``)."""

    chain: ChainId
    address: Address

    @classmethod
    def of(cls, chain: str, address: str) -> "PoolId":
        return cls(ChainId(chain), Address.parse(address))

    def __str__(self) -> str:
        return f"{self.chain}:{self.address}"


@dataclass(frozen=True, slots=True, order=True)
class AssetId:
    """A token: its chain and contract address; ``symbol`` and ``decimals`` say how to show amounts."""

    chain: ChainId
    address: Address
    symbol: str
    decimals: int

    def __post_init__(self) -> None:
        if not isinstance(self.decimals, int) or isinstance(self.decimals, bool) or not 0 <= self.decimals <= 77:
            raise IdError(f"decimals {self.decimals!r} of {self.symbol} is not an integer in 0..77")
        if not isinstance(self.symbol, str) or not 0 < len(self.symbol) <= 32:
            raise IdError(f"symbol {self.symbol!r} is not 1..32 characters")

    def __str__(self) -> str:
        return f"{self.symbol}@{self.chain}:{self.address}"


@dataclass(frozen=True, slots=True, order=True)
class AssetPair:
    """The (collateral, debt) pair of an Aave liquidation, written ``"<collateral>/<debt>"``: the
    instrument of a liquidation intent. One helper formats and parses it, so the strategy, the
    gateways and the summaries agree on which side is which."""

    collateral: Address
    debt: Address

    @classmethod
    def of(cls, collateral: str, debt: str) -> "AssetPair":
        return cls(Address.parse(collateral), Address.parse(debt))

    @classmethod
    def parse(cls, text: str) -> "AssetPair":
        """``"<collateral>/<debt>"`` (any case) -> the pair; ``IdError`` if it is not two addresses."""
        if not isinstance(text, str) or text.count("/") != 1:
            raise IdError(f"{text!r} is not \"<collateral address>/<debt address>\"")
        c, d = text.split("/")
        return cls.of(c, d)

    def __str__(self) -> str:
        return f"{self.collateral}/{self.debt}"
