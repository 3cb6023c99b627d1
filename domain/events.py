"""The event vocabulary of tapedeck.

Every fact the core ever sees or says is one of these immutable, typed structs. Three kinds:

* **inputs** — market data and chain facts (and operator commands) a source produced;
* **decisions** — what the engine concluded, each naming the event that caused it (``cause``);
* **executions** — what a gateway reports back about an intent (acknowledged, filled, failed...).

The envelope (``seq``, ``ts``, ``source``, ``cause``) is on every event. ``seq`` is given by the
recorder when the event is appended, before the engine sees it; ``ts`` is event time in integer
nanoseconds. Type names are stable (the class name, also the JSON tag) and each type carries a
schema version; a stored event is keyed ``Name.vN``. Each type lists its earlier versions in
``PAST`` (their stored fields and the step to the next version); ``domain/codec.py`` reads and
writes them.

Amounts are ints in base units (they may exceed 64 bits: sqrtPriceX96, liquidity), text prices are
``Decimal``. JSON (msgspec) is the wire form because it keeps big ints exact. An event is a JSON
array: its type name, then its fields in order (compact, and a whole segment of mixed types
decodes in one call). Events hold no references that could form cycles, so they are not tracked
by the garbage collector (``gc=False``), which keeps the collector out of replay's hot loop.
"""
from __future__ import annotations

from decimal import Decimal
from typing import Any, Callable, ClassVar, NamedTuple, Union

import msgspec

from tapedeck.domain.decimals import CTX

INPUT = "input"
DECISION = "decision"
EXECUTION = "execution"


class Past(NamedTuple):
    """An earlier schema version of an event type: its fields in stored (array) order, and the step
    that turns a dict of them into the next version's fields. Each type lists its own in ``PAST``."""

    fields: tuple[str, ...]
    upgrade: Callable[[dict[str, Any]], dict[str, Any]]


ENVELOPE = ("seq", "ts", "source", "cause")


def _renamed(**names: str) -> Callable[[dict[str, Any]], dict[str, Any]]:
    return lambda d: {names.get(k, k): v for k, v in d.items()}


def _added(**defaults: Any) -> Callable[[dict[str, Any]], dict[str, Any]]:
    return lambda d: {**d, **defaults}


class Event(msgspec.Struct, frozen=True, kw_only=True, array_like=True, tag=True, gc=False):
    """Envelope shared by all events."""

    KIND: ClassVar[str] = INPUT
    SCHEMA: ClassVar[int] = 1
    PAST: ClassVar[dict[int, Past]] = {}  # version -> how it was stored and how it upgrades

    seq: int = 0  # position in the run's log; 0 until recorded
    ts: int  # event time, integer nanoseconds since the epoch
    source: str = ""  # who produced it: an adapter, a sim venue, an importer, the engine
    cause: int = 0  # seq of the event that caused this one (0: none)


# ----------------------------------------------------------------------------- inputs


class QuoteUpdated(Event, frozen=True, kw_only=True):
    """Top of book of a text venue (CEX, perp), prices and sizes as exact fixed-point integers.

    ``bid`` and ``ask`` count ``10**-price_decimals`` of the quote currency, ``bid_size`` and
    ``ask_size`` count ``10**-size_decimals`` of the base asset: the instrument's tick and lot
    precision, parsed once where the text arrives (``domain.decimals.to_fixed``); ``price(x)`` /
    ``size(x)`` give the Decimal for display. ``venue_ts`` is the venue's own timestamp of the
    quote (ns, 0 when it gives none), which freshness rules use beside the event time.

    Schema 2 renamed v1's ``*_px``/``*_qty``; schema 3 added ``venue_ts``; schema 4 replaced the
    Decimal fields by the integers (a third of replay was parsing them) — older bodies load at the
    precision their own text had, and a price that was not a finite number loads as -1 (the state
    refuses a negative price, as it refused the non-finite one)."""

    SCHEMA: ClassVar[int] = 4
    PAST: ClassVar[dict[int, Past]] = {
        1: Past((*ENVELOPE, "venue", "instrument", "bid_px", "bid_qty", "ask_px", "ask_qty"),
                _renamed(bid_px="bid", bid_qty="bid_size", ask_px="ask", ask_qty="ask_size")),
        2: Past((*ENVELOPE, "venue", "instrument", "bid", "bid_size", "ask", "ask_size"), _added(venue_ts=0)),
        3: Past((*ENVELOPE, "venue", "instrument", "bid", "bid_size", "ask", "ask_size", "venue_ts"),
                lambda d: _quote_to_fixed(d)),
    }
    venue: str
    instrument: str
    bid: int
    bid_size: int
    ask: int
    ask_size: int
    price_decimals: int
    size_decimals: int
    venue_ts: int = 0

    def price(self, value: int) -> Decimal:
        return Decimal(value).scaleb(-self.price_decimals, context=CTX)

    def size(self, value: int) -> Decimal:
        return Decimal(value).scaleb(-self.size_decimals, context=CTX)


def _quote_to_fixed(d: dict[str, Any]) -> dict[str, Any]:
    """A v3 quote's Decimal text at the finest precision either side used; non-finite -> -1."""
    def parsed(*names: str) -> tuple[list[Decimal | None], int]:
        values = [Decimal(str(d[n])) for n in names]
        finite = [v for v in values if v.is_finite()]
        places = max([0, *(-int(v.as_tuple().exponent) for v in finite)])
        return [v if v.is_finite() else None for v in values], places

    (bid, ask), pd = parsed("bid", "ask")
    (bsz, asz), sd = parsed("bid_size", "ask_size")

    def fixed(v: Decimal | None, places: int) -> int:
        return -1 if v is None else int(v.scaleb(places, context=CTX))

    return {**d, "bid": fixed(bid, pd), "ask": fixed(ask, pd), "bid_size": fixed(bsz, sd),
            "ask_size": fixed(asz, sd), "price_decimals": pd, "size_decimals": sd}


class MarkPriceUpdated(Event, frozen=True, kw_only=True):
    """A perp venue's context: its mark price (what positions are valued and liquidated at), its
    index oracle, its book mid, and the current funding rate (Hyperliquid's ``activeAssetCtx``).

    ``mark``, ``oracle`` and ``mid`` count ``10**-price_decimals`` of the quote currency (``mid`` -1
    when the venue gives none); ``funding`` is the rate per funding interval (signed: longs pay when
    positive) counting ``10**-funding_decimals``; ``venue_ts`` the venue's own time (ns, 0 if none).
    ``price(x)`` gives a price as a Decimal. Schema 2 replaced v1's Decimal ``mark``/``oracle`` by
    these integers (v1 bodies load at the precision their own text had) and added the rest."""

    SCHEMA: ClassVar[int] = 2
    PAST: ClassVar[dict[int, Past]] = {
        1: Past((*ENVELOPE, "venue", "instrument", "mark", "oracle"), lambda d: _mark_to_fixed(d)),
    }
    venue: str
    instrument: str
    mark: int
    oracle: int
    price_decimals: int
    mid: int = -1
    funding: int = 0
    funding_decimals: int = 0
    venue_ts: int = 0

    def price(self, value: int) -> Decimal:
        return Decimal(value).scaleb(-self.price_decimals, context=CTX)


def _mark_to_fixed(d: dict[str, Any]) -> dict[str, Any]:
    """A v1 mark's Decimal text at the finer precision of its two prices; non-finite -> -1."""
    values = [Decimal(str(d["mark"])), Decimal(str(d["oracle"]))]
    places = max([0, *(-int(v.as_tuple().exponent) for v in values if v.is_finite())])
    mark, oracle = (int(v.scaleb(places, context=CTX)) if v.is_finite() else -1 for v in values)
    return {**d, "mark": mark, "oracle": oracle, "price_decimals": places, "mid": -1, "funding": 0,
            "funding_decimals": 0, "venue_ts": 0}


class BookDepthUpdated(Event, frozen=True, kw_only=True):
    """Levels of a text venue's book (Binance ``depth`` diffs or its REST snapshot, Hyperliquid
    ``l2Book``), as exact fixed-point integers like ``QuoteUpdated``: ``bids`` best first
    (descending price), ``asks`` best first (ascending), each level ``(price, size)``.

    ``snapshot`` True: these levels are the whole book (to the depth given), replacing what was
    known; False: a diff, where each level replaces that price's size and size 0 removes it.
    ``first_update``/``last_update`` are the venue's update ids the message covers (Binance
    ``U``/``u``, ``lastUpdateId`` for a snapshot; 0 when the venue has none), so a gap is seen."""

    venue: str
    instrument: str
    bids: tuple[tuple[int, int], ...]
    asks: tuple[tuple[int, int], ...]
    price_decimals: int
    size_decimals: int
    snapshot: bool
    first_update: int = 0
    last_update: int = 0
    venue_ts: int = 0

    def price(self, value: int) -> Decimal:
        return Decimal(value).scaleb(-self.price_decimals, context=CTX)

    def size(self, value: int) -> Decimal:
        return Decimal(value).scaleb(-self.size_decimals, context=CTX)


class TradePrinted(Event, frozen=True, kw_only=True):
    """A trade on a text venue's public tape (Binance ``trade``, Hyperliquid ``trades``): ``price``
    and ``size`` fixed-point as in ``QuoteUpdated``; ``side`` the taker's side ("buy"/"sell");
    ``trade_id`` the venue's id as text; ``venue_ts`` the venue's trade time (ns)."""

    venue: str
    instrument: str
    price: int
    size: int
    price_decimals: int
    size_decimals: int
    side: str
    trade_id: str = ""
    venue_ts: int = 0

    def price_value(self) -> Decimal:
        return Decimal(self.price).scaleb(-self.price_decimals, context=CTX)

    def size_value(self) -> Decimal:
        return Decimal(self.size).scaleb(-self.size_decimals, context=CTX)


class AccountFillReported(Event, frozen=True, kw_only=True):
    """A fill of our account as the venue reports it on its account stream (Hyperliquid
    ``userFills``; a live gateway's fill feed), ours or not, before any intent is matched to it.

    ``price``/``size`` fixed-point as in ``QuoteUpdated``; ``side`` "buy"/"sell"; ``fee`` counts
    ``10**-fee_decimals`` of ``fee_asset`` (negative: a rebate); ``closed_pnl`` (same units as the
    fee's quote currency, ``10**-fee_decimals``) and ``start_position`` (the signed position before
    this fill, ``10**-size_decimals``) are the venue's own figures; ``client_id`` the id we gave the
    order (Hyperliquid ``cloid``; "" for none). ``snapshot`` True: part of the stream's first message,
    the account's recent history rather than a new fill (Hyperliquid's ``isSnapshot``)."""

    venue: str
    instrument: str
    side: str
    price: int
    size: int
    price_decimals: int
    size_decimals: int
    fee: int
    fee_decimals: int
    fee_asset: str
    closed_pnl: int = 0
    start_position: int = 0
    order_id: str = ""
    client_id: str = ""
    trade_id: str = ""
    snapshot: bool = False
    venue_ts: int = 0


class AccountOrderUpdated(Event, frozen=True, kw_only=True):
    """An order of our account changed status on the venue (Hyperliquid ``orderUpdates``):
    ``status`` the venue's word ("open", "filled", "canceled", "rejected", "marginCanceled"...),
    ``limit_price`` and ``size`` (remaining) / ``orig_size`` fixed-point as in ``QuoteUpdated``."""

    venue: str
    instrument: str
    order_id: str
    client_id: str
    status: str
    side: str
    limit_price: int
    size: int
    orig_size: int
    price_decimals: int
    size_decimals: int
    reduce_only: bool = False
    venue_ts: int = 0


class FundingPaid(Event, frozen=True, kw_only=True):
    """A funding payment on a perp position: ``amount`` counts ``10**-amount_decimals`` of
    ``asset`` (positive: the account received it, negative: it paid), ``size`` the signed position
    it was charged on (``10**-size_decimals``), ``rate`` the funding rate applied
    (``10**-rate_decimals``). From the venue's account stream (Hyperliquid ``userFundings``) or the
    mock perp's funding process.

    Schema 2 added ``snapshot``: True for a payment in the stream's first message (Hyperliquid's
    ``userFundings`` snapshot: the account's funding history, recorded but not a new payment; a
    position does not add it, ``domain/perp_positions.py``). v1 bodies load with ``snapshot=False``."""

    SCHEMA: ClassVar[int] = 2
    PAST: ClassVar[dict[int, Past]] = {
        1: Past((*ENVELOPE, "venue", "instrument", "amount", "amount_decimals", "asset", "size", "size_decimals",
                 "rate", "rate_decimals", "venue_ts"), _added(snapshot=False)),
    }
    venue: str
    instrument: str
    amount: int
    amount_decimals: int
    asset: str
    size: int
    size_decimals: int
    rate: int
    rate_decimals: int
    venue_ts: int = 0
    snapshot: bool = False


class V2ReservesSynced(Event, frozen=True, kw_only=True):
    """Uniswap V2 pair reserves after a block (Sync event or getReserves at block end)."""

    pool: str
    block: int
    reserve0: int
    reserve1: int


class V3Swapped(Event, frozen=True, kw_only=True):
    """Uniswap V3 Swap log; amounts are pool balance deltas, price/liquidity/tick are post-swap."""

    pool: str
    block: int
    tx: str
    log_index: int
    sender: str
    recipient: str
    amount0: int
    amount1: int
    sqrt_price_x96: int
    liquidity: int
    tick: int


class V3Minted(Event, frozen=True, kw_only=True):
    """Uniswap V3 Mint log: liquidity added to [tick_lower, tick_upper)."""

    pool: str
    block: int
    tx: str
    log_index: int
    owner: str
    sender: str
    tick_lower: int
    tick_upper: int
    amount: int
    amount0: int
    amount1: int


class V3Burned(Event, frozen=True, kw_only=True):
    """Uniswap V3 Burn log: liquidity removed from [tick_lower, tick_upper)."""

    pool: str
    block: int
    tx: str
    log_index: int
    owner: str
    tick_lower: int
    tick_upper: int
    amount: int
    amount0: int
    amount1: int


class V3Collected(Event, frozen=True, kw_only=True):
    """Uniswap V3 Collect log: owed tokens withdrawn (no change to price or liquidity)."""

    pool: str
    block: int
    tx: str
    log_index: int
    owner: str
    recipient: str
    tick_lower: int
    tick_upper: int
    amount0: int
    amount1: int


class BlockProduced(Event, frozen=True, kw_only=True):
    """A new block on a chain, with the base fee it paid and the one it sets for the next block.
    Schema 2 added the block's ``hash``, ``parent_hash`` and its own timestamp ``block_ts`` (seconds):
    a live chain's new heads are checked for reorgs by parent hash, and the last block fully
    processed (number, hash) is the checkpoint a reconnect backfills from ("" / 0: not known, the
    sim's and older logs')."""

    SCHEMA: ClassVar[int] = 2
    PAST: ClassVar[dict[int, Past]] = {
        1: Past((*ENVELOPE, "chain", "number", "base_fee", "gas_used", "gas_limit", "next_base_fee"),
                _added(hash="", parent_hash="", block_ts=0)),
    }
    chain: str
    number: int
    base_fee: int
    gas_used: int
    gas_limit: int
    next_base_fee: int
    hash: str = ""
    parent_hash: str = ""
    block_ts: int = 0


class OracleUpdated(Event, frozen=True, kw_only=True):
    """A price oracle's new round (Chainlink-style): ``answer`` with ``decimals`` places."""

    feed: str
    chain: str  # "" when the oracle is off-chain (a perp venue's)
    round_id: int
    answer: int
    decimals: int


class AaveLog(Event, frozen=True, kw_only=True):
    """Where an Aave v3 log came from: its chain, block, transaction and position in the block.
    The base of the pool-log events below; never stored on its own."""

    chain: str
    block: int
    tx: str
    log_index: int
    block_ts: int = 0  # the block's timestamp, seconds (0: unknown); schema 2 of each Aave log class added it


_AAVE_LOG_V1 = (*ENVELOPE, "chain", "block", "tx", "log_index")  # what every Aave log's schema 1 stored first


def _aave_v1(*fields: str) -> dict[int, Past]:
    """The ``PAST`` of an Aave log class whose schema 2 added ``block_ts`` (v1 bodies load with 0: unknown)."""
    return {1: Past((*_AAVE_LOG_V1, *fields), _added(block_ts=0))}


class AaveReserveDataUpdated(AaveLog, frozen=True, kw_only=True):
    """Aave v3 ``ReserveDataUpdated``: a reserve's rates and indexes after an action (all ray, 1e27).

    Emitted by ``updateInterestRates`` inside every supply/borrow/repay/withdraw/liquidation/flash
    loan touching the reserve, before the action's own event in the same transaction."""

    SCHEMA: ClassVar[int] = 2
    PAST: ClassVar[dict[int, Past]] = _aave_v1("reserve", "liquidity_rate", "stable_borrow_rate",
                                               "variable_borrow_rate", "liquidity_index", "variable_borrow_index")

    reserve: str
    liquidity_rate: int
    stable_borrow_rate: int
    variable_borrow_rate: int
    liquidity_index: int
    variable_borrow_index: int


class AaveSupplied(AaveLog, frozen=True, kw_only=True):
    """Aave v3 ``Supply``: ``amount`` of ``reserve`` (underlying units) credited to ``on_behalf_of``."""

    SCHEMA: ClassVar[int] = 2
    PAST: ClassVar[dict[int, Past]] = _aave_v1("reserve", "user", "on_behalf_of", "amount", "referral")

    reserve: str
    user: str
    on_behalf_of: str
    amount: int
    referral: int


class AaveWithdrawn(AaveLog, frozen=True, kw_only=True):
    """Aave v3 ``Withdraw``: ``user`` redeemed ``amount`` of ``reserve`` (underlying units) to ``to``."""

    SCHEMA: ClassVar[int] = 2
    PAST: ClassVar[dict[int, Past]] = _aave_v1("reserve", "user", "to", "amount")

    reserve: str
    user: str
    to: str
    amount: int


class AaveBorrowed(AaveLog, frozen=True, kw_only=True):
    """Aave v3 ``Borrow``: ``on_behalf_of`` owes ``amount`` more of ``reserve``; ``rate_mode`` 1 stable, 2 variable."""

    SCHEMA: ClassVar[int] = 2
    PAST: ClassVar[dict[int, Past]] = _aave_v1("reserve", "user", "on_behalf_of", "amount", "rate_mode",
                                               "borrow_rate", "referral")

    reserve: str
    user: str
    on_behalf_of: str
    amount: int
    rate_mode: int
    borrow_rate: int
    referral: int


class AaveRepaid(AaveLog, frozen=True, kw_only=True):
    """Aave v3 ``Repay``: ``repayer`` paid back ``amount`` of ``user``'s ``reserve`` debt (with aTokens if ``use_atokens``)."""

    SCHEMA: ClassVar[int] = 2
    PAST: ClassVar[dict[int, Past]] = _aave_v1("reserve", "user", "repayer", "amount", "use_atokens")

    reserve: str
    user: str
    repayer: str
    amount: int
    use_atokens: bool


class AaveCollateralToggled(AaveLog, frozen=True, kw_only=True):
    """Aave v3 ``ReserveUsedAsCollateralEnabled`` (``enabled``) / ``...Disabled`` for ``user``'s ``reserve``."""

    SCHEMA: ClassVar[int] = 2
    PAST: ClassVar[dict[int, Past]] = _aave_v1("reserve", "user", "enabled")

    reserve: str
    user: str
    enabled: bool


class AaveFlashLoaned(AaveLog, frozen=True, kw_only=True):
    """Aave v3 ``FlashLoan``: ``premium`` (underlying units) accrues to the reserve's suppliers."""

    SCHEMA: ClassVar[int] = 2
    PAST: ClassVar[dict[int, Past]] = _aave_v1("target", "initiator", "asset", "amount", "rate_mode", "premium",
                                               "referral")

    target: str
    initiator: str
    asset: str
    amount: int
    rate_mode: int
    premium: int
    referral: int


class AaveEModeSet(AaveLog, frozen=True, kw_only=True):
    """Aave v3 ``UserEModeSet``: ``user`` now in e-mode ``category`` (0: none)."""

    SCHEMA: ClassVar[int] = 2
    PAST: ClassVar[dict[int, Past]] = _aave_v1("user", "category")

    user: str
    category: int


class AaveReserveConfigured(Event, frozen=True, kw_only=True):
    """One reserve of an Aave v3 market as a snapshot gives it (``getReserveData`` + its decoded
    configuration bitmap): what the borrower book needs that no per-action log carries.

    ``reserve_id`` is the reserve's bit position in user configuration bitmaps; percentages in bps
    (``liquidation_bonus`` is 10000 + bonus, as the contracts store it); ``a_token`` and
    ``variable_debt_token`` say whose transfers move balances."""

    chain: str
    pool: str
    block: int
    reserve: str
    reserve_id: int
    decimals: int
    ltv: int
    liquidation_threshold: int
    liquidation_bonus: int
    reserve_factor: int
    liquidation_protocol_fee: int
    emode_category: int
    active: bool
    frozen_reserve: bool
    borrowing_enabled: bool
    a_token: str
    variable_debt_token: str
    price_feed: str  # the aggregator the market's oracle reads for this reserve (``OracleUpdated.feed``)
    liquidity_index: int
    variable_borrow_index: int
    liquidity_rate: int
    variable_borrow_rate: int
    last_update_timestamp: int


class AaveEModeConfigured(Event, frozen=True, kw_only=True):
    """An Aave v3 e-mode category (``getEModeCategoryData``): its LTV, threshold and bonus in bps,
    and the price source that overrides the reserves' own oracles when set (zero address: none)."""

    chain: str
    pool: str
    block: int
    category: int
    ltv: int
    liquidation_threshold: int
    liquidation_bonus: int
    price_source: str
    label: str


class AaveATokenTransferred(AaveLog, frozen=True, kw_only=True):
    """An aToken's ``BalanceTransfer``: ``scaled_amount`` of ``reserve``'s collateral moved between users
    at liquidity ``index`` (the aToken emits the scaled value)."""

    SCHEMA: ClassVar[int] = 2
    PAST: ClassVar[dict[int, Past]] = _aave_v1("reserve", "sender", "recipient", "scaled_amount", "index")

    reserve: str
    sender: str
    recipient: str
    scaled_amount: int
    index: int


class AaveLiquidationObserved(Event, frozen=True, kw_only=True):
    """An Aave v3 ``LiquidationCall`` log: somebody liquidated ``user`` (collateral excludes the protocol fee).
    Schema 2 added the log's ``tx`` and ``log_index`` (v1 bodies load with ``""`` and ``-1``), schema 3
    ``block_ts`` as every Aave log (v2 bodies load with 0: unknown)."""

    SCHEMA: ClassVar[int] = 3
    PAST: ClassVar[dict[int, Past]] = {
        1: Past((*ENVELOPE, "chain", "block", "collateral_asset", "debt_asset", "user", "debt_to_cover",
                 "liquidated_collateral", "liquidator", "receive_atoken"), _added(tx="", log_index=-1)),
        2: Past((*_AAVE_LOG_V1, "collateral_asset", "debt_asset", "user", "debt_to_cover", "liquidated_collateral",
                 "liquidator", "receive_atoken"), _added(block_ts=0)),
    }
    chain: str
    block: int
    tx: str
    log_index: int
    block_ts: int = 0  # the block's timestamp, seconds (0: unknown); schema 3 added it
    collateral_asset: str
    debt_asset: str
    user: str
    debt_to_cover: int
    liquidated_collateral: int
    liquidator: str
    receive_atoken: bool


class AaveAccountObserved(Event, frozen=True, kw_only=True):
    """A borrower's ``Pool.getUserAccountData(user)`` after ``block``: what a polling liquidation bot
    sees. The sim computes it from a fold of the market's own log events (``sim/aave_fold.py``, checked
    against the contract) for borrowers near the line; the shipped liquidator folds the logs itself.

    Base-currency amounts (USD, 8 dp), threshold in bps, health factor in wad (1e18 = 1.0)."""

    chain: str
    block: int
    user: str
    total_collateral_base: int
    total_debt_base: int
    liquidation_threshold: int
    health_factor: int


class InputRejected(Event, frozen=True, kw_only=True):
    """A source message that could not be turned into an input; kept so nothing is lost silently."""

    origin: str  # e.g. "uniswap-v3-logs:file.csv:row 17"
    reason: str
    raw: str


class KillSwitchSet(Event, frozen=True, kw_only=True):
    """Operator command: engage or release the kill switch (state, so replay sees it)."""

    engaged: bool
    reason: str = ""


class TimerFired(Event, frozen=True, kw_only=True):
    """A timer a strategy asked for (``TimerRequested``), fired by the runner at the requested event
    time (the core has no clock of its own). ``requested`` is the seq of the request. Schema 2
    replaced v1's bare ``name`` with the requesting ``strategy``, its ``key`` and ``requested``."""

    SCHEMA: ClassVar[int] = 2
    PAST: ClassVar[dict[int, Past]] = {
        1: Past((*ENVELOPE, "name"),
                lambda d: {**{k: v for k, v in d.items() if k != "name"}, "strategy": "", "key": d["name"],
                           "requested": 0}),
    }
    strategy: str
    key: str
    requested: int = 0


class SourceStale(Event, frozen=True, kw_only=True):
    """A source disconnected or saw a gap: every venue/pool it names is stale from this event on,
    until its next update. ``reason`` says what happened (disconnect, gap, timeout...)."""

    venues: tuple[str, ...]
    reason: str


# ----------------------------------------------------------------------------- inputs: live sources
# Issue 13 (live runner). A live adapter says when its connection changed (the runner's health and
# metrics read these from the log, and a run's reader can see every gap), and a chain adapter turns
# every log a reorg removed into a retraction the state folds back.


class SourceConnectionChanged(Event, frozen=True, kw_only=True):
    """A live adapter's connection: ``state`` is "connected", "disconnected", "resubscribed" or
    "backfilled" (``detail`` says what: the error, the blocks refilled...), ``attempt`` the reconnect
    attempt it was (0: the first connect). ``name`` is the adapter's configured name; never a URL
    with credentials in it."""

    name: str
    state: str
    detail: str = ""
    attempt: int = 0


class LogRetracted(Event, frozen=True, kw_only=True):
    """A chain log the engine already saw is no longer canonical (a reorg): the log at ``log_index``
    of block ``block`` (hash ``block_hash``), from transaction ``tx``. ``reason`` is "removed" (the
    node flagged it ``removed: true``) or "reorg" (a new head's parent hash did not match). The state
    folds every effect of that log back."""

    chain: str
    block: int
    block_hash: str
    tx: str
    log_index: int
    reason: str


# ----------------------------------------------------------------------------- inputs: Solana pools
# Issue 10 (solana helper): Raydium AMM v4 and Orca Whirlpool state decoded from raw account bytes
# (``adapters/solana_accounts.py``), folded by ``domain/raydium_amm.py`` / ``domain/whirlpool.py``.
# Account keys are base58 text; amounts, prices (Q64.64) and liquidity are ints.


class SolanaAccountUpdated(Event, frozen=True, kw_only=True):
    """A Solana account's raw contents as a node reported them (``accountNotification``,
    ``programNotification``, ``getAccountInfo``): ``data`` is base64 text of the account bytes,
    ``owner`` the owning program, ``slot`` the notification's context slot. The decoder turns it
    into one of the typed events below, or an ``InputRejected``."""

    pubkey: str
    owner: str
    slot: int
    lamports: int
    data: str


class RaydiumPoolSynced(Event, frozen=True, kw_only=True):
    """A Raydium AMM v4 pool account (752 bytes): what a swap reads of it. Reserves are not in it:
    they are its vaults' balances (``SplTokenAccountSynced``) less ``need_take_pnl_coin/pc``.
    Coin is the base token, pc the quote token; fees are numerator/denominator pairs."""

    pool: str
    slot: int
    status: int
    coin_decimals: int
    pc_decimals: int
    trade_fee_numerator: int
    trade_fee_denominator: int
    swap_fee_numerator: int
    swap_fee_denominator: int
    need_take_pnl_coin: int
    need_take_pnl_pc: int
    pool_open_time: int
    coin_vault: str
    pc_vault: str
    coin_mint: str
    pc_mint: str
    lp_mint: str
    open_orders: str
    market: str
    lp_amount: int


class SplTokenAccountSynced(Event, frozen=True, kw_only=True):
    """An SPL token account (165 bytes; Token-2022 accounts may be longer): its mint, owner
    (authority) and balance in base units. A Raydium vault's balance arrives this way."""

    account: str
    slot: int
    mint: str
    owner: str
    amount: int


class WhirlpoolSynced(Event, frozen=True, kw_only=True):
    """An Orca Whirlpool account (653 bytes): price (``sqrt_price`` Q64.64 of B per A), in-range
    ``liquidity``, ``tick_current_index``, ``tick_spacing``, ``fee_rate`` (hundredths of a bp),
    ``protocol_fee_rate`` (bp of the fee), ``fee_tier_index`` (differs from the tick spacing on an
    adaptive-fee pool), mints and vaults of A and B, global fee growths (Q64.64)."""

    pool: str
    slot: int
    whirlpools_config: str
    tick_spacing: int
    fee_tier_index: int
    fee_rate: int
    protocol_fee_rate: int
    liquidity: int
    sqrt_price: int
    tick_current_index: int
    mint_a: str
    vault_a: str
    mint_b: str
    vault_b: str
    fee_growth_global_a: int = 0
    fee_growth_global_b: int = 0


class WhirlpoolTickArraySynced(Event, frozen=True, kw_only=True):
    """An Orca fixed tick array account (88 ticks from ``start_tick_index``, one per tick spacing):
    its initialized ticks as ``(offset, liquidity_net)``, offset 0..87 ascending (an initialized
    tick with a zero net still ends a swap step, so it is listed). Fee and reward growths outside
    each tick are not carried: a swap's amounts do not depend on them."""

    account: str
    slot: int
    pool: str
    start_tick_index: int
    ticks: tuple[tuple[int, int], ...]


# ----------------------------------------------------------------------------- decisions


class OpportunityDetected(Event, frozen=True, kw_only=True):
    """A strategy saw a profitable trade. Amounts in base units of ``token_in``/``profit_token``.
    Schema 2 added ``key``: the identity of the gap it exploits (the venues and the state versions
    that priced it), so a re-detection of the same unmoved gap has the same key and is not new
    profit."""

    KIND: ClassVar[str] = DECISION
    SCHEMA: ClassVar[int] = 2
    PAST: ClassVar[dict[int, Past]] = {
        1: Past((*ENVELOPE, "strategy", "kind", "buy_venue", "sell_venue", "amount_in", "amount_out",
                 "gross_profit", "gas_cost", "net_profit", "profit_token"), _added(key="")),
    }
    strategy: str
    kind: str  # "cross-pool-arb", "spread"...
    buy_venue: str
    sell_venue: str
    amount_in: int
    amount_out: int
    gross_profit: int
    gas_cost: int
    net_profit: int
    profit_token: str
    key: str = ""


class OpportunitySuppressed(Event, frozen=True, kw_only=True):
    """A strategy found a gap but would not act on it or report it, because the state that priced
    it is too old or marked stale (``ids``: the venues/pools at fault; ``age_ns``: the oldest of
    their ages, -1 if one is marked stale or unseen). ``key`` is the gap's identity as in
    ``OpportunityDetected``; ``net_profit`` what it would have reported. Summaries count these."""

    KIND: ClassVar[str] = DECISION
    strategy: str
    kind: str
    key: str
    reason: str
    ids: tuple[str, ...]
    age_ns: int
    net_profit: int
    profit_token: str


class OrderIntended(Event, frozen=True, kw_only=True):
    """An intent that passed the risk gate and goes to the venue's gateway.

    Schema 2 added ``target`` (whom an on-chain action is about: the borrower of a liquidation)
    and ``max_priority_fee`` (the tip bid per gas, wei, for chain venues; 0 elsewhere). Schema 3
    added ``client_id``: chosen by the strategy, unique within it, so the verdict and every
    execution event for the intent are routed back to it. Schema 4 added what an executor
    contract needs to act atomically: ``route`` (the pools, lowercase addresses, it swaps through in
    order), ``min_profit`` (it reverts below this, in base units of ``profit_asset``, a token
    address) and ``private`` (send as a bundle to a builder, not to the public mempool). Schema 5
    added what an order on a book venue needs beyond a market order: ``limit_price`` (counting
    ``10**-price_decimals`` of the quote currency; 0 = no limit, a market order), ``tif`` (time in
    force: "ioc", "gtc", "alo" post-only; "" = the venue's default, IOC) and ``reduce_only`` (may
    only shrink a perp position: an exit)."""

    KIND: ClassVar[str] = DECISION
    SCHEMA: ClassVar[int] = 5
    PAST: ClassVar[dict[int, Past]] = {
        1: Past((*ENVELOPE, "strategy", "venue", "instrument", "side", "amount", "notional"),
                _added(target="", max_priority_fee=0)),
        2: Past((*ENVELOPE, "strategy", "venue", "instrument", "side", "amount", "notional", "target",
                 "max_priority_fee"), _added(client_id="")),
        3: Past((*ENVELOPE, "strategy", "venue", "instrument", "side", "amount", "notional", "target",
                 "max_priority_fee", "client_id"), _added(route=(), min_profit=0, profit_asset="", private=False)),
        4: Past((*ENVELOPE, "strategy", "venue", "instrument", "side", "amount", "notional", "target",
                 "max_priority_fee", "client_id", "route", "min_profit", "profit_asset", "private"),
                _added(limit_price=0, price_decimals=0, tif="", reduce_only=False)),
    }
    strategy: str
    venue: str
    instrument: str
    side: str  # "buy" | "sell" | "liquidate"
    amount: int
    notional: int  # in the risk currency's base units (USDC 6 dp)
    target: str = ""
    max_priority_fee: int = 0
    client_id: str = ""
    route: tuple[str, ...] = ()
    min_profit: int = 0
    profit_asset: str = ""
    private: bool = False
    limit_price: int = 0
    price_decimals: int = 0
    tif: str = ""
    reduce_only: bool = False


class IntentRejected(Event, frozen=True, kw_only=True):
    """An intent the risk gate refused, with the rule that refused it. Schema 2 added ``client_id``."""

    KIND: ClassVar[str] = DECISION
    SCHEMA: ClassVar[int] = 2
    PAST: ClassVar[dict[int, Past]] = {
        1: Past((*ENVELOPE, "strategy", "venue", "notional", "reason"), _added(client_id="")),
    }
    strategy: str
    venue: str
    notional: int
    reason: str
    client_id: str = ""


class TimerRequested(Event, frozen=True, kw_only=True):
    """A strategy asks for time: the runner produces ``TimerFired(strategy, key)`` at ``at_ts``."""

    KIND: ClassVar[str] = DECISION
    strategy: str
    key: str
    at_ts: int


class StrategyFailed(Event, frozen=True, kw_only=True):
    """A strategy raised while handling event ``cause``; the run goes on. ``suspended``: the
    config's rule took the strategy out of the run from here on."""

    KIND: ClassVar[str] = DECISION
    strategy: str
    error: str  # the exception's type name
    message: str
    suspended: bool = False


# ----------------------------------------------------------------------------- decisions: Aave liquidation
# Why a section of its own: the liquidator (domain/strategies/aave_liquidator.py) says what it found,
# which path found it and how fast, what it skipped and why, and when its circuit breaker moved, so
# that summaries and replays can count opportunities per path, latency and skip reasons.


class LiquidationOpportunity(Event, frozen=True, kw_only=True):
    """A liquidatable Aave position the strategy sized and intends to liquidate (``client_id``).

    ``path`` "fast" (the event that touched the user or a price) or "scan" (the periodic full
    scan); ``latency_ns`` is event time from ``detected_cause`` (the seq of the event after which
    the user was first seen liquidatable, continuously since) to this decision. Amounts: debt
    asset base units for ``debt_to_cover`` (what liquidationCall will repay), ``proceeds`` (what
    selling the collateral through ``route`` returns), ``flash_premium``, ``gas_cost`` and
    ``expected_profit`` (= proceeds - debt_to_cover - flash_premium - gas_cost); collateral asset
    base units for ``collateral_to_liquidator`` and ``protocol_fee``. ``health_factor`` wad.
    ``rules`` the market's rule set ("v3.0"/"v3.3")."""

    KIND: ClassVar[str] = DECISION
    strategy: str
    user: str
    collateral_asset: str
    debt_asset: str
    debt_to_cover: int
    collateral_to_liquidator: int
    protocol_fee: int
    proceeds: int
    flash_premium: int
    gas_cost: int
    expected_profit: int
    health_factor: int
    path: str
    latency_ns: int
    detected_cause: int
    route: tuple[str, ...]
    client_id: str
    rules: str


class LiquidationSkipped(Event, frozen=True, kw_only=True):
    """A liquidatable user the strategy did not act on, and why (``reason``: "below min profit",
    "no route", "dust", "no price", "stale price", "stale route", "breaker open", ...). Recorded
    once per user and reason within the dedupe window. ``expected_profit`` is the best it found
    (debt asset units, 0 if none), ``path`` as in ``LiquidationOpportunity``."""

    KIND: ClassVar[str] = DECISION
    strategy: str
    user: str
    reason: str
    health_factor: int
    expected_profit: int
    debt_asset: str
    path: str


class CircuitBreakerChanged(Event, frozen=True, kw_only=True):
    """The strategy's circuit breaker moved to ``state`` ("open", "half_open", "closed") after
    ``failures`` consecutive failures (``reason``: the outcome that moved it)."""

    KIND: ClassVar[str] = DECISION
    strategy: str
    state: str
    failures: int
    reason: str



# ----------------------------------------------------------------------------- decisions: perp oracle lag
# Why a section of its own: the perp oracle-lag strategy (domain/strategies/perp_oracle_lag.py) says
# for every entry what deviation of the book from the oracle it took, and for every exit which path
# decided it (the update itself or the backup timer), why (regressed, stop, time) and how long after
# the exit first qualified, so summaries and replays can count exits by path and their latency.


class PerpEntryDecided(Event, frozen=True, kw_only=True):
    """The strategy takes stranded liquidity: an IOC ``side`` order for ``size`` (the intent's base
    units, ``10**-size_decimals`` of the base asset) at ``limit_price`` (the stranded best price,
    ``10**-price_decimals``), which deviates from the ``oracle`` (``10**-oracle_decimals``) by
    ``deviation_ppm`` (parts per million of the oracle, positive: the book is on our side of it);
    ``available`` is the size shown at that price (same units as ``size``). The intent follows with
    ``client_id``."""

    KIND: ClassVar[str] = DECISION
    strategy: str
    venue: str
    instrument: str
    side: str
    size: int
    size_decimals: int
    limit_price: int
    price_decimals: int
    oracle: int
    oracle_decimals: int
    deviation_ppm: int
    available: int
    client_id: str


class PerpExitDecided(Event, frozen=True, kw_only=True):
    """The strategy flattens a position: a reduce-only IOC ``side`` order for the whole ``position``
    (signed, ``10**-size_decimals``), limit ``limit_price`` (``10**-price_decimals``).

    ``path`` "update" (decided in the handling of the book or context update itself) or "timer"
    (the backup check); ``reason`` "regressed" (the book came back to within the exit edge of the
    oracle), "stop" (an adverse move of ``stop_bps`` from the entry) or "time" (held ``max_hold_s``);
    ``latency_ns`` is event time from ``qualified_cause`` (the seq of the update at which the exit
    first qualified, or of the event after which the hold time ran out) to this decision (0: decided
    on that very update); ``deviation_ppm`` the book's remaining deviation from the oracle as at entry
    (ppm of the oracle; 0 when the oracle is unknown), ``entry_price`` the position's average entry,
    ``held_ns`` how long it was open."""

    KIND: ClassVar[str] = DECISION
    strategy: str
    venue: str
    instrument: str
    side: str
    position: int
    size_decimals: int
    limit_price: int
    price_decimals: int
    entry_price: int
    path: str
    reason: str
    deviation_ppm: int
    latency_ns: int
    qualified_cause: int
    held_ns: int
    client_id: str


# ----------------------------------------------------------------------------- executions


class OrderAcknowledged(Event, frozen=True, kw_only=True):
    KIND: ClassVar[str] = EXECUTION
    intent: int  # seq of the OrderIntended
    venue: str
    order_id: str


class OrderFilled(Event, frozen=True, kw_only=True):
    """A fill: ``amount`` received (base units of what the order buys: the base asset, or the
    collateral a liquidation seizes), ``notional`` paid (risk currency base units), ``fee`` in
    ``fee_asset`` base units (gas is wei of ETH). Schema 2 added ``fee_asset`` and ``final``: only
    the final fill of an intent releases its risk (partial fills come before it)."""

    KIND: ClassVar[str] = EXECUTION
    SCHEMA: ClassVar[int] = 2
    PAST: ClassVar[dict[int, Past]] = {
        1: Past((*ENVELOPE, "intent", "venue", "amount", "notional", "fee"), _added(fee_asset="", final=True)),
    }
    intent: int
    venue: str
    amount: int
    notional: int
    fee: int
    fee_asset: str = ""
    final: bool = True


class TransactionSubmitted(Event, frozen=True, kw_only=True):
    """A gateway signed and sent a transaction for an intent (``tx`` identifies it until mined)."""

    KIND: ClassVar[str] = EXECUTION
    intent: int
    chain: str
    tx: str
    sender: str
    nonce: int
    gas: int
    max_fee: int
    max_priority_fee: int


class TransactionIncluded(Event, frozen=True, kw_only=True):
    """The transaction is in ``block`` at ``index``; ``status`` "success" or "reverted" (with ``reason``).
    ``gas_price`` is what each unit of gas cost (base fee + effective tip)."""

    KIND: ClassVar[str] = EXECUTION
    intent: int
    chain: str
    tx: str
    block: int
    index: int
    status: str
    gas_used: int
    gas_price: int
    reason: str = ""


class TransactionDropped(Event, frozen=True, kw_only=True):
    """The transaction left the mempool without being mined (replaced, expired, invalid...)."""

    KIND: ClassVar[str] = EXECUTION
    intent: int
    chain: str
    tx: str
    reason: str


class InventoryChanged(Event, frozen=True, kw_only=True):
    """What an intent left in the strategy's balances beyond its fills: ``delta`` base units of
    ``asset`` (negative: spent). A non-atomic arbitrage whose first leg went through and whose
    second did not reports the USDC it paid and the WETH it holds, then its ``OrderFailed``; outcomes
    mark the leftover to a named price instead of booking nothing."""

    KIND: ClassVar[str] = EXECUTION
    intent: int
    venue: str
    strategy: str
    asset: str  # token symbol ("USDC", "WETH")
    delta: int
    reason: str = ""


class OrderFailed(Event, frozen=True, kw_only=True):
    """Rejected by the venue, reverted on chain, or dropped; ``reason`` says which."""

    KIND: ClassVar[str] = EXECUTION
    intent: int
    venue: str
    reason: str



# ----------------------------------------------------------------------------- decisions: order slicing
# Why a section of its own: a strategy that hands a large order to a slicer (domain/slicing.py: TWAP,
# VWAP by participation, iceberg) says when it started the parent, each child it scheduled or could
# not, how each child ended and what the parent stood at then, and how the parent finished (filled
# against scheduled, average price, lateness and slippage against the arrival price), so summaries
# (runtime/slicing_report.py) and replays can see what the slicer did without re-deriving it.


class ParentOrderStarted(Event, frozen=True, kw_only=True):
    """A parent order handed to a slicer: ``quantity`` base units of ``instrument`` to ``side`` on
    ``venue`` from ``start_ts`` to ``deadline_ts`` (0: none, an iceberg's) by ``algo`` ("twap",
    "vwap", "iceberg") with its parameters in ``params`` (text, for people). ``limit_price`` counts
    ``10**-price_decimals`` of the quote currency (0: market children); ``tif`` the children's."""

    KIND: ClassVar[str] = DECISION
    strategy: str
    parent_id: str
    algo: str
    venue: str
    instrument: str
    side: str
    quantity: int
    start_ts: int
    deadline_ts: int
    limit_price: int
    price_decimals: int
    tif: str
    reduce_only: bool
    params: str


class SliceScheduled(Event, frozen=True, kw_only=True):
    """The slicer sends child ``child`` (1, 2, ...; its intent's ``client_id``) of ``amount`` base
    units. ``reason``: "schedule" (on time), "catch-up" (behind: earlier children missed),
    "participation" (VWAP), "replenish" (iceberg), "deadline" (the final catch-up). ``scheduled``
    is what the schedule called for by now, ``filled`` what the parent had filled before it."""

    KIND: ClassVar[str] = DECISION
    strategy: str
    parent_id: str
    client_id: str
    child: int
    amount: int
    reason: str
    scheduled: int
    filled: int
    remaining: int


class SliceSkipped(Event, frozen=True, kw_only=True):
    """A slice was due but no child was sent: ``reason`` "no price" / "stale price" (nothing to size
    its risk notional on) or "below min child" (VWAP: too little volume yet). Recorded once per
    reason until a child is sent again."""

    KIND: ClassVar[str] = DECISION
    strategy: str
    parent_id: str
    reason: str
    scheduled: int
    filled: int


class ParentOrderProgress(Event, frozen=True, kw_only=True):
    """A child ended: ``outcome`` "filled", "partial" (final with less than asked), "unfilled",
    "failed" (the venue's ``OrderFailed``), "rejected" (the risk gate) or "canceled" (the venue's
    ``OrderCanceled`` of a child the slicer cancelled; ``reason`` "deadline", "stopped" or "stale"),
    ``reason`` its words.
    ``filled``/``remaining`` are the parent's after it (base units), ``scheduled`` what the schedule
    called for by now, ``behind`` = max(0, scheduled - filled)."""

    KIND: ClassVar[str] = DECISION
    strategy: str
    parent_id: str
    client_id: str
    outcome: str
    reason: str
    child_amount: int
    child_filled: int
    filled: int
    remaining: int
    scheduled: int
    behind: int


class ParentOrderFinished(Event, frozen=True, kw_only=True):
    """The parent is done: ``status`` "filled" (what is left, if anything, is below one lot: fills
    that were not whole lots), "expired" (deadline passed with ``remaining`` left),
    "failed" (too many children failed in a row) or "stopped" (the strategy stopped it: no child
    after that, the one out cancelled). ``filled_notional`` and ``fees`` (in
    ``fee_asset``) summed from the fills; ``average_price`` = filled_notional / filled at
    ``price_decimals`` (-1 when nothing filled); ``arrival_price`` the venue's mid when it started
    (-1: none) and ``slippage_bps`` the average price against it, positive = worse for the side;
    ``scheduled`` what the schedule called for by the finish; ``late_ns`` the finish's event time
    past the deadline (negative: early; 0 without a deadline)."""

    KIND: ClassVar[str] = DECISION
    strategy: str
    parent_id: str
    algo: str
    status: str
    quantity: int
    filled: int
    remaining: int
    scheduled: int
    filled_notional: int
    fees: int
    fee_asset: str
    average_price: int
    price_decimals: int
    arrival_price: int
    slippage_bps: int
    children: int
    failed_children: int
    late_ns: int
# ----------------------------------------------------------------------------- cex-dex arbitrage
# Issue 10 item 4 (cex-dex helper): the decisions of ``domain/strategies/cex_dex_arb.py``, a
# CEX-DEX arbitrage with leg risk. Its own types so that summaries and replays can count
# opportunities, legs and unwinds per attempt (correlated by ``attempt`` and the legs' client ids).


class CexDexOpportunity(Event, frozen=True, kw_only=True):
    """A gap between a book venue's top of book and a pool the strategy sized and acts on.

    ``direction`` "cex->dex" (buy the base on the book at its ask, sell it on the pool) or
    "dex->cex" (buy it on the pool, sell it on the book at its bid). ``base_amount``: base units
    (``cex_base`` on the book, ``dex_base`` on the pool: both the same asset, e.g. ETH and WETH);
    ``cex_quote``/``dex_quote``: quote units (``quote_asset``) the book and the pool pay or cost
    by their exact math at that size; ``cex_fee`` (quote units, the book's taker fee) and
    ``gas_cost`` (quote units, at the block's next base fee plus the tip, valued at the book's
    mid); ``expected_profit`` = proceeds - cost - fee - gas, in ``quote_asset``. ``dex_min_out``:
    the least the swap may return or it reverts. ``cex_client_id``/``dex_client_id`` name its legs;
    ``key`` the gap's identity (both states that priced it)."""

    KIND: ClassVar[str] = DECISION
    strategy: str
    attempt: int
    direction: str
    cex_venue: str
    cex_instrument: str
    cex_base: str
    pool: str
    dex_venue: str
    dex_base: str
    quote_asset: str
    base_amount: int
    cex_quote: int
    dex_quote: int
    cex_fee: int
    gas_cost: int
    expected_profit: int
    dex_min_out: int
    leg_order: str
    cex_client_id: str
    dex_client_id: str
    key: str


class CexDexUnwind(Event, frozen=True, kw_only=True):
    """What the strategy does about an attempt's legs not matching (a leg failed or filled
    partially): ``exposure`` the net base units its legs and earlier unwinds left (positive:
    long), ``action`` "cex" (trade it back on the book, IOC), "pool" (swap it back), or "hold"
    (keep it as inventory: ``reason`` says why, e.g. the cheapest unwind would cost more than
    ``max_cost``). ``amount`` base units traded back (0 for hold), ``expected_cost`` quote units
    against the book's mid (-1: no venue could price it), ``client_id`` the unwind order's
    ("" for hold), ``round`` counts the attempt's unwinds from 1."""

    KIND: ClassVar[str] = DECISION
    strategy: str
    attempt: int
    round: int
    exposure: int
    action: str
    venue: str
    side: str
    amount: int
    expected_cost: int
    max_cost: int
    client_id: str
    reason: str


# ----------------------------------------------------------------------------- registry

# ----------------------------------------------------------------------------- arb-onchain (issue 10)
# A V3 pool read whole (slot0, liquidity, every initialized tick), so the domain can swap across
# ticks exactly from the first event: Mint/Burn logs only say what changed since.


class V3PoolSnapshot(Event, frozen=True, kw_only=True):
    """A Uniswap V3 pool's whole state as read at ``block``: ``sqrt_price_x96``, ``tick``, in-range
    ``liquidity``, its ``tick_spacing`` and every initialized tick as ``(tick, liquidity_gross,
    liquidity_net)`` in tick order (empty for a pool just initialized)."""

    pool: str
    block: int
    sqrt_price_x96: int
    tick: int
    liquidity: int
    tick_spacing: int
    ticks: tuple[tuple[int, int, int], ...] = ()


# ----------------------------------------------------------------------------- inputs: live EVM reorgs
# Issue 13 (live-evm helper): a live chain adapter says how deep a reorg it folds back, so the state
# journals what that chain's logs touch (``domain/reorg.py``) only in live runs, not in sim or replay
# of a sim log.


class ReorgWindowSet(Event, frozen=True, kw_only=True):
    """The live adapter of ``chain`` follows it with reorgs up to ``depth`` blocks: the state keeps,
    for that many blocks, what each block's logs changed, so a ``LogRetracted`` folds it back.
    ``pools`` are the Uniswap pools it follows (their events name no chain). 0: no journal."""

    chain: str
    depth: int
    pools: tuple[str, ...] = ()
# ----------------------------------------------------------------------------- executions: live transactions
# Issue 13 (live-tx helper). A live EVM gateway (``live/evm_gateway.py``) keeps its nonce manager's
# state in the run's log (``live/nonces.py``), so a crash loses nothing it did: every transaction it
# signed is recorded with its raw bytes and nonce and flushed before it leaves the process, then
# what became of it (broadcast, seen pending, replaced on purpose) and, after every (re)start, how
# the log was reconciled with the chain's own nonce. Inclusion, reverts and drops stay the shared
# ``TransactionIncluded`` (status "success" | "reverted", with the reason) and ``TransactionDropped``.


class TransactionSigned(Event, frozen=True, kw_only=True):
    """A transaction signed for ``intent`` (hash ``tx``) from ``sender`` at ``nonce``, with its fees
    and gas limit; ``raw`` is the signed transaction ("0x" hex, public once sent: the same bytes are
    what a restart rebroadcasts). ``route`` is "public" (``eth_sendRawTransaction``) or "bundle" (a
    relay; ``target_block`` the last block its bundle is offered for, so a restart knows when it can
    no longer land); ``replaces`` the hash of the transaction at the same nonce it replaces on purpose."""

    KIND: ClassVar[str] = EXECUTION
    intent: int
    chain: str
    tx: str
    sender: str
    nonce: int
    gas: int
    max_fee: int
    max_priority_fee: int
    raw: str
    route: str = "public"
    target_block: int = 0
    replaces: str = ""


class TransactionBroadcast(Event, frozen=True, kw_only=True):
    """The signed bytes of ``tx`` were handed to ``via`` ("public" or "bundle:<relay name>") and it
    accepted them (a bundle: for ``target_block``; ``detail``: the relay's bundle hash, or "already
    known" for a rebroadcast). ``attempt`` counts rebroadcasts of the same bytes (0: the first)."""

    KIND: ClassVar[str] = EXECUTION
    intent: int
    chain: str
    tx: str
    via: str
    attempt: int = 0
    target_block: int = 0
    detail: str = ""


class TransactionPending(Event, frozen=True, kw_only=True):
    """The node holds ``tx`` in its mempool (known, not yet in a block)."""

    KIND: ClassVar[str] = EXECUTION
    intent: int
    chain: str
    tx: str


class TransactionReplaced(Event, frozen=True, kw_only=True):
    """``tx`` at ``nonce`` will not be mined: transaction ``by`` took its nonce (a replacement the
    gateway signed on purpose, or, with ``by`` "", another transaction of the sender's found on
    chain at reconciliation). ``reason`` says which."""

    KIND: ClassVar[str] = EXECUTION
    intent: int
    chain: str
    tx: str
    nonce: int
    by: str
    reason: str


class NonceReconciled(Event, frozen=True, kw_only=True):
    """The nonce manager of ``sender`` on ``chain`` checked its log against the chain and may send:
    the chain's ``eth_getTransactionCount`` at "latest" (``chain_latest``) and "pending"
    (``chain_pending``), the nonce it will use next (``next_nonce``), the hashes it still follows
    (``open``: signed, not yet mined) and those it rebroadcast from their recorded bytes
    (``rebroadcast``). ``detail`` says what else it found."""

    KIND: ClassVar[str] = EXECUTION
    chain: str
    sender: str
    chain_latest: int
    chain_pending: int
    next_nonce: int
    open: tuple[str, ...] = ()
    rebroadcast: tuple[str, ...] = ()
    detail: str = ""


# ----------------------------------------------------------------------------- executions: cancels (issue 11)
# Why a section of its own: a strategy cancels a resting order of its own (an iceberg's GTC child, a
# stale limit) with a cancel ``Intent`` (``side="cancel"``, ``target`` = the order's client id); the
# venue's answer is one event that ends both the order and the cancel, so the engine drops both from
# in flight and frees the order's outstanding notional. A cancel of an order that is not resting is an
# ``OrderFailed`` of the cancel intent ("cancel: no resting order <id>").


class OrderCanceled(Event, frozen=True, kw_only=True):
    """A resting order was canceled: ``intent``/``client_id`` the canceled order's (terminal for it),
    ``cancel_intent``/``cancel_id`` the cancel's (terminal for that too), ``remaining`` the unfilled
    amount released (base units, as the order's ``amount``). A cancel that came too late (the order
    was filled first) is not this but the cancel's ``OrderFailed``."""

    KIND: ClassVar[str] = EXECUTION
    intent: int  # seq of the canceled order's OrderIntended
    venue: str
    strategy: str
    instrument: str
    client_id: str
    cancel_id: str
    remaining: int
    cancel_intent: int = 0  # seq of the cancel's OrderIntended (0: the venue canceled it on its own)


EVENT_TYPES: tuple[type[Event], ...] = (
    QuoteUpdated,
    MarkPriceUpdated,
    BookDepthUpdated,
    TradePrinted,
    AccountFillReported,
    AccountOrderUpdated,
    FundingPaid,
    V2ReservesSynced,
    V3Swapped,
    V3Minted,
    V3Burned,
    V3Collected,
    BlockProduced,
    OracleUpdated,
    AaveReserveDataUpdated,
    AaveSupplied,
    AaveWithdrawn,
    AaveBorrowed,
    AaveRepaid,
    AaveCollateralToggled,
    AaveFlashLoaned,
    AaveEModeSet,
    AaveReserveConfigured,
    AaveEModeConfigured,
    AaveATokenTransferred,
    AaveLiquidationObserved,
    AaveAccountObserved,
    InputRejected,
    KillSwitchSet,
    TimerFired,
    SourceStale,
    OpportunityDetected,
    OpportunitySuppressed,
    OrderIntended,
    IntentRejected,
    TimerRequested,
    StrategyFailed,
    OrderAcknowledged,
    OrderFilled,
    OrderFailed,
    InventoryChanged,
    TransactionSubmitted,
    TransactionIncluded,
    TransactionDropped,
    LiquidationOpportunity,
    LiquidationSkipped,
    CircuitBreakerChanged,
    # Solana pools (issue 10, solana helper)
    SolanaAccountUpdated,
    RaydiumPoolSynced,
    SplTokenAccountSynced,
    WhirlpoolSynced,
    WhirlpoolTickArraySynced,
    # order slicing (domain/slicing.py)
    ParentOrderStarted,
    SliceScheduled,
    SliceSkipped,
    ParentOrderProgress,
    ParentOrderFinished,
    # cex-dex arbitrage (issue 10 item 4)
    CexDexOpportunity,
    CexDexUnwind,
    # arb-onchain (issue 10)
    V3PoolSnapshot,
    # perp oracle lag (domain/strategies/perp_oracle_lag.py)
    PerpEntryDecided,
    PerpExitDecided,
    # live sources (issue 13)
    SourceConnectionChanged,
    LogRetracted,
    # live EVM reorgs (issue 13, live-evm helper)
    ReorgWindowSet,
    # live transactions (issue 13, live-tx helper)
    TransactionSigned,
    TransactionBroadcast,
    TransactionPending,
    TransactionReplaced,
    NonceReconciled,
    # cancels (issue 11, perp-sim helper)
    OrderCanceled,
)
BY_NAME: dict[str, type[Event]] = {t.__name__: t for t in EVENT_TYPES}
AnyEvent = Union[EVENT_TYPES]  # type: ignore[valid-type]


def with_seq(event: Event, seq: int) -> Event:
    """The same event with its log position filled in (events are immutable)."""
    return msgspec.structs.replace(event, seq=seq)
