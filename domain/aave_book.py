"""The Aave v3 borrower book: every user's positions, folded from the market's events only.

Why: a liquidator must know the moment a position becomes liquidatable, and what liquidating it
pays, without asking the chain. The book keeps what the contracts keep and computes what they
compute, with their rounding (``domain/aave_v3.py``, half-up ``rayMul``/``rayDiv`` as v3.0-v3.4):

* per user and reserve the **scaled** aToken and variable-debt balances: a Supply/Withdraw mints or
  burns ``rayDiv(amount, liquidityIndex)``, a Borrow/Repay ``rayDiv(amount, variableBorrowIndex)``
  (``AToken._mintScaled/_burnScaled``, ``VariableDebtToken``), with the index the contract used:
  the ``ReserveDataUpdated`` of the same transaction comes before the action's own log and carries
  it. ``BalanceTransfer`` (``AaveATokenTransferred``) moves scaled aTokens (liquidations with
  ``receiveAToken``, the protocol fee to the treasury, plain transfers); a ``LiquidationCall``
  burns the debt repaid and, without ``receiveAToken``, the collateral the liquidator took.
* collateral flags only from ``ReserveUsedAsCollateralEnabled/Disabled`` (the contracts emit one
  whenever they flip it, e.g. on a first supply), e-mode from ``UserEModeSet``, reserve parameters
  and e-mode categories from snapshots, indexes and rates from ``ReserveDataUpdated`` (stamped
  with its block's timestamp, ``block_ts``, when the log carries it: ``chain_time_s``), prices from
  the reserve's ``price_feed`` (``OracleUpdated.answer``, what ``AaveOracle`` returns; <= 0: none).
* the health factor as ``GenericLogic.calculateUserAccountData`` (v3.0: e-mode LT/LTV and the
  category's price source; normalized income/debt at the evaluation second).

Which users an event can have pushed below HF 1, without a full scan (``apply`` returns them):
a user's own event names the user. For price and index moves every indebted user is kept in one
list sorted by ``key = hf * drift_at_eval`` (floats: only a filter, every decision is the exact
integer HF). ``drift`` multiplies, per update, ``max(f, 1/f)`` of a price moving by ``f`` and the
growth of a debt index: HF can fall by at most that factor, so a user whose key is above
``drift * (1 + MARGIN)`` cannot have crossed 1 and is not re-evaluated; of the rest only those
holding the updated reserve are (``users_of``). ``MARGIN`` (1e-3) covers the contracts' floors
(an average LT floors by < 1 bps) and interest accrued since the last index update. The periodic
full scan (the strategy's) re-keys everyone and resets ``drift``. Everything iterates insertion-
ordered dicts or sorted lists; float arithmetic is IEEE (correctly rounded), so replays agree.

Rule sets per market: ``"v3.0"`` (close factor 50% of the reserve debt, 100% at HF <= 0.95) and
``"v3.3"`` (aave-v3-origin v3.3.0 LiquidationLogic: 100% unless both the reserve's collateral and
debt are >= 2000e8 base and HF > 0.95, then 50% of the user's *total* debt; the $1000 dust rule;
a liquidation that takes all the user's collateral burns all the user's debt: the deficit).
Stable-rate debt is not modelled (v3.2+ has none; a stable Borrow is counted in ``unsupported``).
"""
from __future__ import annotations

import bisect
from dataclasses import dataclass
from typing import Iterable, NamedTuple, Sequence

from tapedeck.domain import events as ev
from tapedeck.domain.reorg import LaggedReplica
from tapedeck.domain.aave_v3 import (
    CLOSE_FACTOR_HF_THRESHOLD, HEALTH_FACTOR_LIQUIDATION_THRESHOLD, MAX_UINT256, RAY, WAD,
    normalized_debt, normalized_income,
)

NS = 1_000_000_000
HALF_RAY = RAY // 2
RULES = ("v3.0", "v3.3")
MIN_BASE_MAX_CLOSE_FACTOR_THRESHOLD = 2000 * 10**8  # v3.3 LiquidationLogic
MIN_LEFTOVER_BASE = 1000 * 10**8  # v3.3 LiquidationLogic: the dust rule
MARGIN = 1e-3  # the candidate filter's slack (see the module docstring)
_INF = float("inf")
_MISSING = object()  # not looked up yet (evaluate's per-pass memo)
_new_account = _new_pair = _new_liq = tuple.__new__  # NamedTuple(...) without its Python-level __new__


def chain_time_s(e: ev.Event) -> int:
    """The second ``e`` happened at on chain, for interest: an Aave log's ``block_ts`` (its block's
    timestamp, what the contracts accrue to) when known, else its event time (``ts // 1e9``: the
    sim's block time; live, the time it was received; old logs without ``block_ts``)."""
    bt = getattr(e, "block_ts", 0)
    return bt if bt > 0 else e.ts // NS


class Reserve:
    """One reserve: its snapshot configuration, the last indexes/rates and the oracle price."""

    __slots__ = ("asset", "id", "decimals", "unit", "ltv", "lt", "bonus", "fee", "emode", "a_token", "v_token",
                 "feed", "li", "vbi", "lr", "vbr", "last", "price", "price_ts", "active", "_inc", "_dbt")

    def __init__(self, e: ev.AaveReserveConfigured) -> None:
        self.asset = e.reserve
        self.price: int | None = None
        self.price_ts = -1
        self.configure(e)

    def configure(self, e: ev.AaveReserveConfigured) -> None:
        self.id, self.decimals, self.unit = e.reserve_id, e.decimals, 10**e.decimals
        self.ltv, self.lt, self.bonus, self.fee = e.ltv, e.liquidation_threshold, e.liquidation_bonus, \
            e.liquidation_protocol_fee
        self.emode, self.a_token, self.v_token, self.feed = e.emode_category, e.a_token, e.variable_debt_token, \
            e.price_feed
        self.active = e.active
        self.li, self.vbi, self.lr, self.vbr = e.liquidity_index, e.variable_borrow_index, e.liquidity_rate, \
            e.variable_borrow_rate
        self.last = e.last_update_timestamp
        self._inc = self._dbt = (-1, 0)

    def update(self, e: ev.AaveReserveDataUpdated, now_s: int) -> None:
        self.li, self.vbi, self.lr, self.vbr = e.liquidity_index, e.variable_borrow_index, e.liquidity_rate, \
            e.variable_borrow_rate
        self.last = max(self.last, now_s)
        self._inc = self._dbt = (-1, 0)

    def income(self, now_s: int) -> int:
        """``getReserveNormalizedIncome`` at ``now_s`` (memoized per second)."""
        t, v = self._inc
        if t != now_s:
            v = normalized_income(self.li, self.lr, self.last, max(now_s, self.last))
            self._inc = (now_s, v)
        return v

    def debt_index(self, now_s: int) -> int:
        """``getReserveNormalizedVariableDebt`` at ``now_s`` (memoized per second)."""
        t, v = self._dbt
        if t != now_s:
            v = normalized_debt(self.vbi, self.vbr, self.last, max(now_s, self.last))
            self._dbt = (now_s, v)
        return v


@dataclass(frozen=True, slots=True)
class EMode:
    category: int
    ltv: int
    lt: int
    bonus: int
    price_source: str  # "" or the zero address: none


class User:
    """One user's stored state: scaled balances by reserve asset, collateral flags, e-mode."""

    __slots__ = ("address", "coll", "debt", "on", "emode", "key", "since", "since_seq")

    def __init__(self, address: str) -> None:
        self.address = address
        self.coll: dict[str, int] = {}  # reserve -> scaled aToken balance
        self.debt: dict[str, int] = {}  # reserve -> scaled variable debt
        self.on: dict[str, None] = {}  # reserves enabled as collateral
        self.emode = 0
        self.key = _INF  # hf * drift at its last evaluation (the sorted filter); inf: no debt
        self.since = -1  # event time it was first seen liquidatable (continuously since), -1: not
        self.since_seq = 0  # seq of that event


class Account(NamedTuple):
    """``calculateUserAccountData`` of one user at ``now_s`` (base currency, bps, wad). A tuple:
    one is made per evaluation, on the hot path."""

    total_collateral_base: int
    total_debt_base: int
    liquidation_threshold: int
    ltv: int
    health_factor: int

    @property
    def liquidatable(self) -> bool:
        return self.health_factor < HEALTH_FACTOR_LIQUIDATION_THRESHOLD and self.total_debt_base > 0


class Liquidation(NamedTuple):
    """What ``liquidationCall(collateral, debt, user, debt_to_cover, false)`` would do now.
    ``reason`` is "" when it goes through, else why it would revert (e.g. the v3.3 dust rule)."""

    debt_to_cover: int  # actually repaid (the LiquidationCall's debtToCover)
    collateral_to_liquidator: int  # the LiquidationCall's liquidatedCollateralAmount
    protocol_fee: int  # aTokens to the treasury
    max_debt: int  # the close factor's cap for this reserve
    reason: str = ""


class SortedKeys:
    """(key, user) pairs kept sorted in buckets of at most ``LOAD`` (a plain list would move up to
    10,000 pointers on every re-key; here one bucket's worth). ``below(limit)`` yields, in order,
    those with a key below ``limit``."""

    LOAD = 256
    __slots__ = ("buckets", "maxes", "n")

    def __init__(self) -> None:
        self.buckets: list[list[tuple[float, str]]] = []
        self.maxes: list[tuple[float, str]] = []  # last item of each bucket
        self.n = 0

    def __len__(self) -> int:
        return self.n

    def add(self, item: tuple[float, str]) -> None:
        self.n += 1
        if not self.buckets:
            self.buckets.append([item])
            self.maxes.append(item)
            return
        i = bisect.bisect_left(self.maxes, item)
        if i == len(self.buckets):
            i -= 1
            self.buckets[i].append(item)
            self.maxes[i] = item
        else:
            bisect.insort(self.buckets[i], item)
        b = self.buckets[i]
        if len(b) > 2 * self.LOAD:  # split
            half = b[self.LOAD:]
            del b[self.LOAD:]
            self.buckets.insert(i + 1, half)
            self.maxes[i] = b[-1]
            self.maxes.insert(i + 1, half[-1])

    def remove(self, item: tuple[float, str]) -> bool:
        i = bisect.bisect_left(self.maxes, item)
        if i == len(self.buckets):
            return False
        b = self.buckets[i]
        j = bisect.bisect_left(b, item)
        if j == len(b) or b[j] != item:
            return False
        del b[j]
        self.n -= 1
        if not b:
            del self.buckets[i], self.maxes[i]
        elif j == len(b):
            self.maxes[i] = b[-1]
        return True

    def replace(self, old: tuple[float, str], new: tuple[float, str]) -> bool:
        """``remove(old)`` then ``add(new)``, the same sorted items; in place when ``new`` still sorts
        between ``old``'s neighbours (a user re-keyed after a price move its drift accounts for: the
        usual case), so one bucket search instead of four. True if it was done in place."""
        i = bisect.bisect_left(self.maxes, old)
        buckets = self.buckets
        if i < len(buckets):
            b = buckets[i]
            j = bisect.bisect_left(b, old)
            last = len(b) - 1
            if j <= last and b[j] == old:
                before = b[j - 1] if j else (buckets[i - 1][-1] if i else None)
                after = b[j + 1] if j < last else (buckets[i + 1][0] if i + 1 < len(buckets) else None)
                if (before is None or before < new) and (after is None or new < after):
                    b[j] = new
                    if j == last:
                        self.maxes[i] = new
                    return True
        self.remove(old)
        self.add(new)
        return False

    def below(self, limit: float) -> list[str]:
        out: list[str] = []
        for b in self.buckets:
            if b[0][0] >= limit:
                break
            if b[-1][0] < limit:
                out.extend(a for _, a in b)
            else:
                out.extend(a for k, a in b if k < limit)
                break
        return out


class AaveBook:
    """The borrower book of one market. ``apply(event)`` folds an event and returns the users whose
    health factor it may have pushed below 1 (see the module docstring); ``account(user, now_s)``
    evaluates one exactly (and re-keys it)."""

    def __init__(self, rules: str = "v3.0", chain: str = "") -> None:
        if rules not in RULES:
            raise ValueError(f"rules must be one of {', '.join(RULES)}, got {rules!r}")
        self.rules, self.chain = rules, chain
        self.reserves: dict[str, Reserve] = {}
        self.by_token: dict[str, Reserve] = {}  # aToken address -> reserve
        self.feeds: dict[str, list[Reserve]] = {}  # price feed -> reserves it prices
        self.feed_price: dict[str, int] = {}  # feed -> last positive answer (e-mode price sources)
        self.emodes: dict[int, EMode] = {}
        self.users: dict[str, User] = {}
        self.users_of: dict[str, dict[str, None]] = {}  # reserve -> users with a balance or debt in it
        self.drift = 1.0
        self._sorted = SortedKeys()  # (key, user) of every user with debt
        self.unsupported = 0  # events it cannot fold exactly (stable-rate borrows)
        self.unknown = 0  # events about a reserve it has no snapshot of
        self.window: LaggedReplica[AaveBook] | None = None  # a live chain's reorg window (on_reorg)
        self._refolding = False
        self._quiet = False  # a replica (domain/reorg.py): folds, names no candidates (nobody evaluates them)

    # ------------------------------------------------------------------ folding

    def apply(self, e: ev.Event) -> list[str]:
        """Fold ``e``; the users to re-evaluate (exact membership, deterministic order)."""
        if self.window is not None and not self._refolding:
            self.window.record(e)
        t = type(e)
        if t is ev.AaveReserveDataUpdated:
            r = self.reserves.get(e.reserve)
            if r is None:
                self.unknown += 1
                return []
            old = r.vbi
            r.update(e, chain_time_s(e))
            if e.variable_borrow_index > old > 0:
                self.drift *= e.variable_borrow_index / old
            return self._candidates((r.asset,))
        if t is ev.OracleUpdated:
            return self._price(e)
        if t is ev.AaveSupplied:
            return self._mint_coll(e.reserve, e.on_behalf_of, e.amount)
        if t is ev.AaveWithdrawn:
            return self._burn_coll(e.reserve, e.user, e.amount)
        if t is ev.AaveBorrowed:
            if e.rate_mode != 2:
                self.unsupported += 1
                return []
            r = self.reserves.get(e.reserve)
            if r is None:
                self.unknown += 1
                return []
            u = self._user(e.on_behalf_of)
            _add(u.debt, r.asset, _ray_div(e.amount, r.vbi))
            self._uses(u, r.asset)
            self._rekey(u)
            return [u.address]
        if t is ev.AaveRepaid:
            r = self.reserves.get(e.reserve)
            if r is None:
                self.unknown += 1
                return []
            u = self._user(e.user)
            _sub(u.debt, r.asset, _ray_div(e.amount, r.vbi))
            if e.use_atokens:
                self._burn_coll(e.reserve, e.repayer, e.amount)
            self._rekey(u)
            return [u.address] if u.address == e.repayer or not e.use_atokens else [u.address, e.repayer]
        if t is ev.AaveCollateralToggled:
            u = self._user(e.user)
            if e.enabled:
                u.on[e.reserve] = None
            else:
                u.on.pop(e.reserve, None)
            self._rekey(u)
            return [u.address]
        if t is ev.AaveEModeSet:
            u = self._user(e.user)
            u.emode = e.category
            self._rekey(u)
            return [u.address]
        if t is ev.AaveATokenTransferred:
            r = self.reserves.get(e.reserve) or self.by_token.get(e.reserve)
            if r is None:
                self.unknown += 1
                return []
            a, b = self._user(e.sender), self._user(e.recipient)
            _sub(a.coll, r.asset, e.scaled_amount)
            _add(b.coll, r.asset, e.scaled_amount)
            self._uses(b, r.asset)
            self._rekey(a), self._rekey(b)
            return [a.address, b.address] if a is not b else [a.address]
        if t is ev.AaveLiquidationObserved:
            return self._liquidated(e)
        if t is ev.AaveReserveConfigured:
            return self._configure(e)
        if t is ev.AaveEModeConfigured:
            src = e.price_source if e.price_source and int(e.price_source, 16) != 0 else ""
            self.emodes[e.category] = EMode(e.category, e.ltv, e.liquidation_threshold, e.liquidation_bonus, src)
            return [a for a, u in self.users.items() if u.emode == e.category]
        return []

    def on_reorg(self, e: ev.Event) -> None:
        """The book's chain's ``ReorgWindowSet`` (keep a replica ``depth`` blocks behind),
        ``BlockProduced`` (the events since the last one are that block's) and ``LogRetracted``
        (back to the replica plus the kept blocks before the retracted one): ``domain/reorg.py``.
        After a fold-back every indebted user is a candidate again (keys from ``apply``, not evaluated)."""
        if getattr(e, "chain", None) != self.chain:
            return
        t = type(e)
        if t is ev.ReorgWindowSet:
            if self.window is not None and self.window.depth == e.depth:  # type: ignore[attr-defined]
                return  # the same window again (a resumed run's adapter): keep what it holds
            self.window = None
            if e.depth > 0:  # type: ignore[attr-defined]
                self.window = LaggedReplica(self, e.depth, AaveBook.apply)  # type: ignore[attr-defined]
                self.window.replica._quiet = True
        elif self.window is None:
            return
        elif t is ev.BlockProduced:
            self.window.close(e.number)  # type: ignore[attr-defined]
        elif t is ev.LogRetracted:
            back = self.window.rewind(e.block)  # type: ignore[attr-defined]
            if back is None:
                return
            fresh, events = back
            window = self.window
            self.__dict__.update(fresh.__dict__)
            self.window, self._refolding, self._quiet = window, True, False
            try:
                for x in events:
                    self.apply(x)
            finally:
                self._refolding = False

    def _configure(self, e: ev.AaveReserveConfigured) -> list[str]:
        r = self.reserves.get(e.reserve)
        if r is None:
            r = self.reserves[e.reserve] = Reserve(e)
            self.users_of.setdefault(r.asset, {})
        else:
            old_feed, old_params, old_vbi = r.feed, _params(r), r.vbi
            if old_feed != e.price_feed and r in self.feeds.get(old_feed, []):
                self.feeds[old_feed].remove(r)
            r.configure(e)
            self._feed(r)
            if _params(r) == old_params:  # a new price feed (the sim's oracle moves so), same rules:
                if e.variable_borrow_index > old_vbi > 0:  # its OracleUpdated re-evaluates
                    self.drift *= e.variable_borrow_index / old_vbi
                    return self._candidates((r.asset,))
                return []
            return list(self.users_of[r.asset])
        self._feed(r)
        return list(self.users_of[r.asset])

    def _feed(self, r: Reserve) -> None:
        self.by_token[r.a_token] = r
        feed = self.feeds.setdefault(r.feed, [])
        if r not in feed:
            feed.append(r)
        if r.feed in self.feed_price:
            r.price = self.feed_price[r.feed]

    def _price(self, e: ev.OracleUpdated) -> list[str]:
        price = e.answer if e.answer > 0 else None
        if price is None:
            self.feed_price.pop(e.feed, None)
        else:
            self.feed_price[e.feed] = price
        touched: list[str] = []
        everyone: list[str] = []
        for r in self.feeds.get(e.feed, ()):
            old = r.price
            r.price, r.price_ts = price, e.ts
            if old and price:
                f = price / old
                self.drift *= f if f >= 1 else 1 / f
                touched.append(r.asset)
            elif old != price:  # a price appeared or vanished: everyone of the reserve may have moved
                everyone.extend(a for a in self.users_of.get(r.asset, ()) if a not in everyone)
        if everyone:
            return everyone
        if not touched and self.emodes:  # an e-mode price source (priced by its own feed)
            return [a for a, u in self.users.items() if u.emode and self._emode_source(u.emode) == e.feed]
        return self._candidates(touched)

    def _candidates(self, assets: Iterable[str]) -> list[str]:
        """Indebted users of ``assets`` whose key says they may be below HF 1 now."""
        if self._quiet:
            return []
        assets = [a for a in assets if self.users_of.get(a)]
        if not assets:
            return []
        near = self._sorted.below(self.drift * (1 + MARGIN))
        if not near:
            return []
        if len(assets) == 1:
            of = self.users_of[assets[0]]
            return [a for a in near if a in of]
        ofs = [self.users_of[a] for a in assets]
        return [a for a in near if any(a in of for of in ofs)]

    def _user(self, address: str) -> User:
        u = self.users.get(address)
        if u is None:
            u = self.users[address] = User(address)
        return u

    def _uses(self, u: User, asset: str) -> None:
        self.users_of[asset][u.address] = None

    def _mint_coll(self, reserve: str, user: str, amount: int) -> list[str]:
        r = self.reserves.get(reserve)
        if r is None:
            self.unknown += 1
            return []
        u = self._user(user)
        _add(u.coll, r.asset, _ray_div(amount, r.li))
        self._uses(u, r.asset)
        self._rekey(u)
        return [u.address]

    def _burn_coll(self, reserve: str, user: str, amount: int) -> list[str]:
        r = self.reserves.get(reserve)
        if r is None:
            self.unknown += 1
            return []
        u = self._user(user)
        _sub(u.coll, r.asset, _ray_div(amount, r.li))
        self._rekey(u)
        return [u.address]

    def _liquidated(self, e: ev.AaveLiquidationObserved) -> list[str]:
        d, c = self.reserves.get(e.debt_asset), self.reserves.get(e.collateral_asset)
        if d is None or c is None:
            self.unknown += 1
            return []
        u = self._user(e.user)
        _sub(u.debt, d.asset, _ray_div(e.debt_to_cover, d.vbi))
        if not e.receive_atoken:  # burned; with receiveAToken a BalanceTransfer moved it
            _sub(u.coll, c.asset, _ray_div(e.liquidated_collateral, c.li))
        if self.rules == "v3.3" and not any(self.reserves[a].lt and u.coll.get(a) for a in u.on if a in self.reserves):
            u.debt.clear()  # no collateral left: the rest of the debt is burned as deficit
        self._rekey(u)
        return [u.address]

    # ------------------------------------------------------------------ evaluating

    def account(self, address: str, now_s: int, seq: int = 0, ts: int = -1) -> Account | None:
        """The user's account data at ``now_s`` (None: a reserve it uses has no price yet). Re-keys
        the user in the filter and tracks since when it has been liquidatable (``ts``/``seq``: the
        event being handled; -1 leaves that alone)."""
        u = self.users.get(address)
        if u is None:
            return None
        acc = self._account(u, now_s)
        self._rekey(u, acc)
        if ts >= 0 and acc is not None:
            if acc.liquidatable:
                if u.since < 0:
                    u.since, u.since_seq = ts, seq
            else:
                u.since = -1
        return acc

    def evaluate(self, addresses: Sequence[str], now_s: int, seq: int = 0,
                 ts: int = -1) -> list[tuple[str, Account]]:
        """``account`` of each of ``addresses`` (re-keyed, ``since`` tracked), in one pass: the
        liquidatable ones, in order. What the formula reads of a reserve (normalized income and
        debt at ``now_s``, price, unit, LT, LTV) is read once per call, not once per user
        (``_factors``); a user in an e-mode category is evaluated by ``_account`` itself. The result
        is ``_account``'s to the wei (tests/test_aave_book.py's property test). One user (a user's own
        event) goes through ``account``: nothing to share, and no memo to set up."""
        if len(addresses) == 1:
            a = addresses[0]
            one = self.account(a, now_s, seq, ts)
            return [(a, one)] if one is not None and one.liquidatable else []
        users, coll_f, debt_f = self.users, {}, {}
        out: list[tuple[str, Account]] = []
        for a in addresses:
            u = users.get(a)
            if u is None:
                continue
            if u.emode:
                acc = self._account(u, now_s)
            else:
                acc = self._plain_account(u, now_s, coll_f, debt_f)
            self._rekey(u, acc)
            if acc is None:
                continue
            if acc[4] < WAD and acc[1] > 0:  # liquidatable
                if ts >= 0 and u.since < 0:
                    u.since, u.since_seq = ts, seq
                out.append((a, acc))
            elif ts >= 0:
                u.since = -1
        return out

    def _plain_account(self, u: User, now_s: int, coll_f: dict[str, tuple[int, ...] | None],
                       debt_f: dict[str, tuple[int, ...] | None]) -> Account | None:
        """``_account`` of a user in no e-mode category, with the reserves' factors memoized in
        ``coll_f``/``debt_f`` (one evaluation pass: see ``evaluate``)."""
        tc = td = wltv = wlt = 0
        on = u.on
        for asset, scaled in u.coll.items():
            if not scaled or asset not in on:
                continue
            f = coll_f.get(asset, _MISSING)
            if f is _MISSING:
                f = coll_f[asset] = self._factors(asset, now_s, True)
            if f is None:  # LT 0: not collateral
                continue
            inc, price, unit, ltv, lt = f
            if price is None:
                return None
            v = (scaled * inc + HALF_RAY) // RAY * price // unit
            tc += v
            wltv += v * ltv
            wlt += v * lt
        for asset, scaled in u.debt.items():
            if not scaled:
                continue
            f = debt_f.get(asset, _MISSING)
            if f is _MISSING:
                f = debt_f[asset] = self._factors(asset, now_s, False)
            dbt, price, unit = f  # type: ignore[misc]
            if price is None:
                return None
            td += (scaled * dbt + HALF_RAY) // RAY * price // unit
        return _health(tc, td, wltv, wlt)

    def _factors(self, asset: str, now_s: int, collateral: bool) -> tuple[int, ...] | None:
        """What ``_account`` reads of one reserve for a user outside e-mode: (income, price, unit,
        LTV, LT) of a collateral (None when its LT is 0), (debt index, price, unit) of a debt."""
        r = self.reserves[asset]
        if collateral:
            return (r.income(now_s), r.price, r.unit, r.ltv, r.lt) if r.lt else None  # type: ignore[return-value]
        return (r.debt_index(now_s), r.price, r.unit)  # type: ignore[return-value]

    def _account(self, u: User, now_s: int) -> Account | None:
        em = self.emodes.get(u.emode) if u.emode else None
        em_price = self._emode_price(em) if em is not None and self.rules == "v3.0" else None
        tc = td = wltv = wlt = 0
        for asset, scaled in u.coll.items():
            if not scaled or asset not in u.on:
                continue
            r = self.reserves[asset]
            if r.lt == 0:
                continue
            in_em = em is not None and r.emode == u.emode
            price = em_price if in_em and em_price else r.price
            if price is None:
                return None
            v = (scaled * r.income(now_s) + HALF_RAY) // RAY * price // r.unit
            tc += v
            ltv = em.ltv if in_em else r.ltv  # type: ignore[union-attr]
            wltv += v * ltv
            wlt += v * (em.lt if in_em else r.lt)  # type: ignore[union-attr]
        for asset, scaled in u.debt.items():
            if not scaled:
                continue
            r = self.reserves[asset]
            price = em_price if em is not None and em_price and r.emode == u.emode else r.price
            if price is None:
                return None
            td += (scaled * r.debt_index(now_s) + HALF_RAY) // RAY * price // r.unit
        return _health(tc, td, wltv, wlt)

    def _emode_price(self, em: EMode) -> int | None:
        if not em.price_source:
            return None
        r = self.reserves.get(em.price_source)  # a reserve asset as the source, or a feed of its own
        return r.price if r is not None else self.feed_price.get(em.price_source)

    def _emode_source(self, category: int) -> str:
        em = self.emodes.get(category)
        return em.price_source if em is not None else ""

    def _rekey(self, u: User, acc: Account | None = None) -> None:
        if acc is None:
            key = 0.0 if any(u.debt.values()) else _INF  # unknown: a candidate until evaluated
        elif acc.total_debt_base == 0:
            key = _INF
        else:
            key = acc.health_factor / WAD * self.drift
        if key == u.key:
            return
        s = self._sorted
        if u.key != _INF:
            if key != _INF:
                s.replace((u.key, u.address), (key, u.address))
                u.key = key
                return
            s.remove((u.key, u.address))
        u.key = key
        if key != _INF:
            s.add((key, u.address))

    def rescan(self, now_s: int, ts: int = -1, seq: int = 0) -> list[tuple[str, Account]]:
        """Evaluate every indebted user (sorted by address), re-key all, reset the drift: the full
        scan. Returns the liquidatable ones."""
        self.drift = 1.0
        return self.evaluate(sorted(a for a, u in self.users.items() if any(u.debt.values()) or u.key != _INF),
                             now_s, seq, ts)

    # ------------------------------------------------------------------ liquidation amounts

    def balances(self, address: str, asset: str, now_s: int) -> tuple[int, int]:
        """(aToken balance, variable debt) of the user in ``asset`` at ``now_s``."""
        u, r = self.users[address], self.reserves[asset]
        c, d = u.coll.get(asset, 0), u.debt.get(asset, 0)
        return ((c * r.income(now_s) + HALF_RAY) // RAY if c else 0,
                (d * r.debt_index(now_s) + HALF_RAY) // RAY if d else 0)

    def prices(self, address: str, collateral: str, debt: str) -> tuple[int | None, int | None, int]:
        """(collateral price, debt price, liquidation bonus) as ``_getConfigurationData`` sees them:
        v3.0 uses the e-mode category's bonus for a collateral in the user's category and its price
        source for both assets when set; v3.3 the e-mode bonus and oracle prices."""
        u, c, d = self.users[address], self.reserves[collateral], self.reserves[debt]
        cp, dp, bonus = c.price, d.price, c.bonus
        em = self.emodes.get(u.emode) if u.emode else None
        if em is not None:
            src = self._emode_price(em) if self.rules == "v3.0" else None
            if c.emode == u.emode:
                bonus = em.bonus
                if src:
                    cp = src
            if src:
                dp = src
        return cp, dp, bonus

    def max_debt(self, address: str, collateral: str, debt: str, acc: Account, now_s: int,
                 balances: tuple[int, int] | None = None) -> int:
        """The close factor's cap on the debt repaid in ``debt`` (``_calculateDebt``); ``balances``:
        the user's (collateral, debt) balances of the pair when the caller has them."""
        coll_bal, debt_bal = balances or (self.balances(address, collateral, now_s)[0],
                                          self.balances(address, debt, now_s)[1])
        if self.rules == "v3.0":
            cf = 5_000 if acc.health_factor > CLOSE_FACTOR_HF_THRESHOLD else 10_000
            return (debt_bal * cf + 5000) // 10_000
        cp, dp, _ = self.prices(address, collateral, debt)
        c, d = self.reserves[collateral], self.reserves[debt]
        if cp is None or dp is None:
            return 0
        debt_base = debt_bal * dp // d.unit
        coll_base = coll_bal * cp // c.unit
        if coll_base >= MIN_BASE_MAX_CLOSE_FACTOR_THRESHOLD and debt_base >= MIN_BASE_MAX_CLOSE_FACTOR_THRESHOLD \
                and acc.health_factor > CLOSE_FACTOR_HF_THRESHOLD:
            half_total = (acc.total_debt_base * 5_000 + 5000) // 10_000
            if debt_base > half_total:
                return half_total * d.unit // dp
        return debt_bal

    def pair(self, address: str, collateral: str, debt: str, acc: Account, now_s: int) -> Pair:
        """Everything ``liquidationCall(collateral, debt, user, ...)`` reads now, once per pair:
        balances, prices, bonus, the close factor's cap, or why any request would revert."""
        u, c, d = self.users[address], self.reserves[collateral], self.reserves[debt]
        sc, sd = u.coll.get(collateral, 0), u.debt.get(debt, 0)
        coll_bal = (sc * c.income(now_s) + HALF_RAY) // RAY if sc else 0
        debt_bal = (sd * d.debt_index(now_s) + HALF_RAY) // RAY if sd else 0
        if self.rules == "v3.0":  # max_debt's v3.0 rule, inline (once per liquidatable user)
            cap = (debt_bal * (5_000 if acc.health_factor > CLOSE_FACTOR_HF_THRESHOLD else 10_000) + 5000) // 10_000
        else:
            cap = self.max_debt(address, collateral, debt, acc, now_s, (coll_bal, debt_bal))
        if u.emode:
            cp, dp, bonus = self.prices(address, collateral, debt)
        else:  # prices() without e-mode
            cp, dp, bonus = c.price, d.price, c.bonus
        reason = ""
        if acc.health_factor >= HEALTH_FACTOR_LIQUIDATION_THRESHOLD or acc.total_debt_base <= 0:  # not liquidatable
            reason = "health factor not below 1"
        elif c.lt == 0 or collateral not in u.on or coll_bal == 0:
            reason = "collateral not enabled"
        elif debt_bal == 0:
            reason = "no debt in that asset"
        elif not cp or not dp or not bonus:
            reason = "no price"
        return _new_pair(Pair, (coll_bal, debt_bal, cp or 0, dp or 0, bonus, c.unit, d.unit, c.fee, cap,
                                self.rules == "v3.3", reason))

    def liquidation(self, address: str, collateral: str, debt: str, debt_to_cover: int, acc: Account,
                    now_s: int) -> Liquidation:
        """The amounts of ``liquidationCall`` for this request under the market's rules, or why it
        would revert (``reason``): not liquidatable, collateral not enabled, no debt, dust (v3.3)."""
        return self.pair(address, collateral, debt, acc, now_s).amounts(debt_to_cover)


class Pair(NamedTuple):
    """A (collateral, debt) pair of one user as ``liquidationCall`` reads it; ``amounts(x)`` is
    ``_calculateAvailableCollateralToLiquidate`` for request ``x`` (the same integer formulas as
    ``aave_v3._collateral_to_liquidate``, inline: it runs per candidate size) plus v3.3's dust rule.
    A tuple: one is made per liquidatable user, on the hot path."""

    coll_bal: int
    debt_bal: int
    cp: int
    dp: int
    bonus: int
    c_unit: int
    d_unit: int
    fee: int
    cap: int
    v33: bool
    reason: str

    def amounts(self, debt_to_cover: int) -> Liquidation:
        coll_bal, debt_bal, cp, dp, bonus, cu, du, fee_bps, cap, v33, reason = self
        if reason:
            return _new_liq(Liquidation, (0, 0, 0, cap, reason))
        actual = debt_to_cover if debt_to_cover < cap else cap
        base = dp * actual * cu // (cp * du)
        amount = (base * bonus + 5000) // 10_000
        if amount > coll_bal:
            amount = coll_bal
            repaid = ((cp * amount * du // (dp * cu)) * 10_000 + bonus // 2) // bonus
        else:
            repaid = actual
        fee = 0
        if fee_bps:
            fee = ((amount - (amount * 10_000 + bonus // 2) // bonus) * fee_bps + 5000) // 10_000
            amount -= fee
        if v33 and repaid < debt_bal and amount + fee < coll_bal:
            if (debt_bal - repaid) * dp // du < MIN_LEFTOVER_BASE or \
                    (coll_bal - amount - fee) * cp // cu < MIN_LEFTOVER_BASE:
                return _new_liq(Liquidation, (repaid, amount, fee, cap, "dust: must not leave less than 1000e8 base"))
        return _new_liq(Liquidation, (repaid, amount, fee, cap, ""))


def _health(tc: int, td: int, wltv: int, wlt: int) -> Account:
    """``calculateUserAccountData``'s averages and health factor from its sums (base currency; the
    value-weighted LTV and LT sums): what ``_account`` and ``_plain_account`` share."""
    avg_lt = wlt // tc if tc else 0
    avg_ltv = wltv // tc if tc else 0
    if td == 0:
        hf = MAX_UINT256
    else:
        hf = (((tc * avg_lt + 5000) // 10_000) * WAD + td // 2) // td
    return _new_account(Account, (tc, td, avg_lt, avg_ltv, hf))


def _params(r: Reserve) -> tuple[int, ...]:
    """What the risk math reads of a reserve's configuration (a change re-evaluates its users)."""
    return (r.id, r.decimals, r.ltv, r.lt, r.bonus, r.fee, r.emode, int(r.active))


def _ray_div(a: int, b: int) -> int:
    return (a * RAY + b // 2) // b


def _add(d: dict[str, int], k: str, v: int) -> None:
    d[k] = d.get(k, 0) + v


def _sub(d: dict[str, int], k: str, v: int) -> None:
    """The contract would revert rather than go below 0; a log that says it did not means the
    book's index was off by a wei of rounding, so clamp."""
    left = d.get(k, 0) - v
    d[k] = left if left > 0 else 0
