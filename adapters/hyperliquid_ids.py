"""Hyperliquid coin names and asset ids, from the venue's own meta descriptions (no network).

Coin names (what the WebSocket channels and the info endpoint call a market):

* main perps: the name in ``meta.universe`` (``BTC``, ``kPEPE``);
* HIP-3 builder-deployed perps: always ``{dex}:{coin}`` (``xyz:NVDA``, testnet ``test:ABC``);
* spot: ``PURR/USDC`` (canonical pairs) or ``@{spot index}`` (``@107`` is HYPE/USDC on mainnet);
* outcomes: ``#{10 * outcome + side}``.

Asset ids (what an order or cancel action names, docs ``asset-ids.md``): a main perp is its index
in ``meta.universe``; spot is ``10000 + spotMeta.universe[i].index``; a HIP-3 perp is
``100000 + perp_dex_index * 10000 + index_in_that_dex's_meta`` where ``perp_dex_index`` is the
dex's position in the ``perpDexs`` list (position 0 is ``null``: the main dex); an outcome is
``100000000 + encoding``.

:class:`AssetDirectory` is built from those info shapes passed in as data (``meta``, ``spotMeta``,
``perpDexs`` and one ``meta`` per HIP-3 dex) and answers coin -> asset id / size decimals and back;
an unknown coin or id is an :class:`UnknownAsset` naming it and what the directory knows.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Iterable, Mapping

SPOT_OFFSET = 10_000
HIP3_OFFSET = 100_000
HIP3_DEX_STRIDE = 10_000
OUTCOME_OFFSET = 100_000_000
MAIN_DEX = ""

PERP, HIP3, SPOT, OUTCOME = "perp", "hip3", "spot", "outcome"

_SYMBOL = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,31}")
_DEX = re.compile(r"[a-z0-9][a-z0-9_\-]{0,15}")
_SPOT_INDEX = re.compile(r"@(0|[1-9][0-9]{0,5})")
_OUTCOME = re.compile(r"#(0|[1-9][0-9]{0,8})")


class CoinError(ValueError):
    """A coin name that is none of Hyperliquid's forms; the message names it."""


class UnknownAsset(KeyError):
    """A coin or asset id the directory's meta does not list."""

    def __str__(self) -> str:  # KeyError would quote the whole message
        return str(self.args[0]) if self.args else ""


@dataclass(frozen=True, slots=True)
class Coin:
    """A parsed coin name. ``kind``: perp, hip3, spot or outcome; ``dex`` the HIP-3 dex ("" for the
    main dex and for spot); ``symbol`` the coin within it (``NVDA``), the spot pair (``PURR/USDC``),
    or the index / encoding as text for ``@107`` / ``#10``."""

    kind: str
    dex: str
    symbol: str

    @property
    def name(self) -> str:
        return format_coin(self)

    def __str__(self) -> str:
        return self.name


def format_coin(coin: Coin) -> str:
    """The wire name of a coin: ``xyz:NVDA``, ``BTC``, ``@107``, ``PURR/USDC``, ``#10``."""
    if coin.kind == HIP3:
        return f"{coin.dex}:{coin.symbol}"
    if coin.kind == SPOT and coin.symbol.isdigit():
        return f"@{coin.symbol}"
    if coin.kind == OUTCOME:
        return f"#{coin.symbol}"
    return coin.symbol


def hip3(dex: str, symbol: str) -> Coin:
    """The HIP-3 coin ``dex:symbol``, both parts checked."""
    return parse_coin(f"{dex}:{symbol}")


def parse_coin(text: Any) -> Coin:
    """A coin name -> :class:`Coin`, or :class:`CoinError` saying which rule it breaks."""
    if not isinstance(text, str):
        raise CoinError(f"coin must be a string, got {type(text).__name__}")
    if not text or len(text) > 64:
        raise CoinError(f"coin {text[:80]!r} is empty or longer than 64 characters")
    if text.startswith("@"):
        if not _SPOT_INDEX.fullmatch(text):
            raise CoinError(f"spot coin {text!r} is not @<index>")
        return Coin(SPOT, MAIN_DEX, text[1:])
    if text.startswith("#"):
        if not _OUTCOME.fullmatch(text):
            raise CoinError(f"outcome coin {text!r} is not #<10*outcome+side>")
        return Coin(OUTCOME, MAIN_DEX, text[1:])
    if ":" in text:
        dex, _, symbol = text.partition(":")
        if not _DEX.fullmatch(dex):
            raise CoinError(f"HIP-3 coin {text!r}: dex {dex!r} is not a lowercase dex name")
        if not _SYMBOL.fullmatch(symbol):
            raise CoinError(f"HIP-3 coin {text!r}: coin {symbol!r} is not a coin symbol")
        return Coin(HIP3, dex, symbol)
    if "/" in text:
        base, _, quote = text.partition("/")
        if not (_SYMBOL.fullmatch(base) and _SYMBOL.fullmatch(quote)):
            raise CoinError(f"spot pair {text!r} is not BASE/QUOTE")
        return Coin(SPOT, MAIN_DEX, text)
    if not _SYMBOL.fullmatch(text):
        raise CoinError(f"coin {text[:80]!r} is not a coin symbol (letters, digits, '_', '.', '-')")
    return Coin(PERP, MAIN_DEX, text)


def _field(obj: Any, key: str, where: str, kind: type | tuple[type, ...]) -> Any:
    if not isinstance(obj, Mapping) or key not in obj:
        raise ValueError(f"{where}: missing {key!r}")
    value = obj[key]
    if not isinstance(value, kind) or isinstance(value, bool) and kind is not bool:
        raise ValueError(f"{where}.{key} is {type(value).__name__}, expected "
                         f"{'/'.join(k.__name__ for k in (kind if isinstance(kind, tuple) else (kind,)))}")
    return value


@dataclass(frozen=True, slots=True)
class Asset:
    coin: str
    asset_id: int
    sz_decimals: int
    kind: str


class AssetDirectory:
    """Coins <-> asset ids and size decimals, from the info endpoint's descriptions given as data:

    * ``meta``: ``{"universe": [{"name": "BTC", "szDecimals": 5, ...}, ...]}`` (main perps);
    * ``spot_meta``: ``{"universe": [{"name": "PURR/USDC", "tokens": [1, 0], "index": 0}, ...],
      "tokens": [{"name": "USDC", "szDecimals": 8, "index": 0, ...}, ...]}``;
    * ``perp_dexs``: ``[null, {"name": "xyz", ...}, ...]`` and ``dex_metas``: ``{"xyz": meta}``,
      each a ``meta`` of that dex (its names ``xyz:NVDA``; a bare ``NVDA`` is taken as ``xyz:NVDA``).

    A spot pair is also known by its token names (``HYPE/USDC`` for ``@107``), as the SDK does."""

    def __init__(self, meta: Mapping[str, Any] | None = None, spot_meta: Mapping[str, Any] | None = None,
                 perp_dexs: Iterable[Any] | None = None, dex_metas: Mapping[str, Mapping[str, Any]] | None = None):
        self._by_coin: dict[str, Asset] = {}
        self._by_id: dict[int, Asset] = {}
        if meta is not None:
            self._add_perps(meta, MAIN_DEX, 0, "meta")
        if spot_meta is not None:
            self._add_spot(spot_meta)
        dex_index: dict[str, int] = {}
        for i, d in enumerate(list(perp_dexs or [])):
            if i == 0:
                if d is not None:
                    raise ValueError("perpDexs[0] must be null (the main dex)")
                continue
            name = _field(d, "name", f"perpDexs[{i}]", str)
            if not _DEX.fullmatch(name):
                raise ValueError(f"perpDexs[{i}].name {name!r} is not a dex name")
            if name in dex_index:
                raise ValueError(f"perpDexs lists dex {name!r} twice")
            dex_index[name] = i
        for dex, dmeta in (dex_metas or {}).items():
            if dex not in dex_index:
                raise ValueError(f"meta given for dex {dex!r}, which perpDexs does not list "
                                 f"(known: {', '.join(dex_index) or 'none'})")
            self._add_perps(dmeta, dex, HIP3_OFFSET + dex_index[dex] * HIP3_DEX_STRIDE, f"meta[{dex}]")
        self.dex_index = dex_index

    def _put(self, asset: Asset, *aliases: str) -> None:
        for name in (asset.coin, *aliases):
            if name in self._by_coin and self._by_coin[name].asset_id != asset.asset_id:
                raise ValueError(f"coin {name!r} is listed twice (assets {self._by_coin[name].asset_id} and "
                                 f"{asset.asset_id})")
            self._by_coin.setdefault(name, asset)
        self._by_id[asset.asset_id] = asset

    def _add_perps(self, meta: Mapping[str, Any], dex: str, offset: int, where: str) -> None:
        universe = _field(meta, "universe", where, list)
        if len(universe) > HIP3_DEX_STRIDE:
            raise ValueError(f"{where}.universe has {len(universe)} coins; asset ids allow {HIP3_DEX_STRIDE}")
        for i, info in enumerate(universe):
            at = f"{where}.universe[{i}]"
            name = _field(info, "name", at, str)
            sz = _field(info, "szDecimals", at, int)
            if dex:
                if ":" not in name:
                    name = f"{dex}:{name}"
                coin = parse_coin(name)
                if coin.kind != HIP3 or coin.dex != dex:
                    raise ValueError(f"{at}.name {name!r} is not a coin of dex {dex!r}")
            elif parse_coin(name).kind != PERP:
                raise ValueError(f"{at}.name {name!r} is not a main-dex perp name")
            self._put(Asset(name, offset + i, sz, HIP3 if dex else PERP))

    def _add_spot(self, spot_meta: Mapping[str, Any]) -> None:
        tokens = {}
        for j, t in enumerate(_field(spot_meta, "tokens", "spotMeta", list)):
            at = f"spotMeta.tokens[{j}]"
            tokens[_field(t, "index", at, int)] = (_field(t, "name", at, str), _field(t, "szDecimals", at, int))
        for i, info in enumerate(_field(spot_meta, "universe", "spotMeta", list)):
            at = f"spotMeta.universe[{i}]"
            name = _field(info, "name", at, str)
            index = _field(info, "index", at, int)
            pair = _field(info, "tokens", at, list)
            if not 0 <= index < HIP3_OFFSET - SPOT_OFFSET:
                raise ValueError(f"{at}.index {index} is outside 0..{HIP3_OFFSET - SPOT_OFFSET - 1}")
            if len(pair) != 2 or any(t not in tokens for t in pair):
                raise ValueError(f"{at}.tokens {pair!r} are not two tokens of spotMeta.tokens")
            parse_coin(name)
            (base, sz), (quote, _) = tokens[pair[0]], tokens[pair[1]]
            self._put(Asset(name, SPOT_OFFSET + index, sz, SPOT), f"{base}/{quote}")

    # ------------------------------------------------------------------ queries

    def asset(self, coin: str) -> Asset:
        a = self._by_coin.get(coin)
        if a is None:
            parsed = parse_coin(coin)  # a malformed name says so first
            if parsed.kind == OUTCOME:
                return Asset(coin, OUTCOME_OFFSET + int(parsed.symbol), 0, OUTCOME)
            where = {PERP: "meta", SPOT: "spotMeta", HIP3: f"the meta of dex {parsed.dex!r}"}[parsed.kind]
            if parsed.kind == HIP3 and parsed.dex not in self.dex_index:
                where = f"perpDexs (dex {parsed.dex!r} unknown; known: {', '.join(self.dex_index) or 'none'})"
            raise UnknownAsset(f"unknown coin {coin!r}: not in {where}")
        return a

    def asset_id(self, coin: str) -> int:
        return self.asset(coin).asset_id

    def sz_decimals(self, coin: str) -> int:
        return self.asset(coin).sz_decimals

    def coin(self, asset_id: int) -> str:
        a = self._by_id.get(asset_id)
        if a is None:
            if asset_id >= OUTCOME_OFFSET:
                return f"#{asset_id - OUTCOME_OFFSET}"
            raise UnknownAsset(f"unknown asset id {asset_id} ({describe_asset_id(asset_id)})")
        return a.coin

    def __len__(self) -> int:
        return len(self._by_id)

    def __repr__(self) -> str:
        return f"AssetDirectory({len(self)} assets, dexs {sorted(self.dex_index)})"


def describe_asset_id(asset_id: int) -> str:
    """What range an asset id is in: "perp index 3", "spot index 107", "HIP-3 dex 1 index 0", ..."""
    if isinstance(asset_id, bool) or not isinstance(asset_id, int) or asset_id < 0:
        return "not an asset id"
    if asset_id >= OUTCOME_OFFSET:
        return f"outcome encoding {asset_id - OUTCOME_OFFSET}"
    if asset_id >= HIP3_OFFSET:
        dex, index = divmod(asset_id - HIP3_OFFSET, HIP3_DEX_STRIDE)
        return f"HIP-3 dex {dex} index {index}"
    if asset_id >= SPOT_OFFSET:
        return f"spot index {asset_id - SPOT_OFFSET}"
    return f"perp index {asset_id}"
