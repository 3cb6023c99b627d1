"""The Aave liquidator through the engine, on synthetic tapes: fast path, scan, dedupe, in-flight
correlation, sizing, skips, the circuit breaker, replay determinism. Property tests report what
they exercised (``hypothesis.event``) and assert the named case happened."""
from __future__ import annotations

import heapq
from collections import Counter
from typing import Any, Callable

import msgspec
import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from tapedeck.domain import events as ev
from tapedeck.domain.circuit_breaker import CLOSED, HALF_OPEN, OPEN, CircuitBreaker
from tapedeck.domain.engine import Engine
from tapedeck.domain.ids import AssetPair
from tapedeck.domain.risk import RiskGate, VenueLimits
from tapedeck.domain.strategies.aave_liquidator import AaveLiquidator
from tests.test_aave_book import contract_hf
from tests.test_aave_book_tape import CHAIN, Tape, addr, fresh_reserves

WAD = 10**18
V2 = "0x" + "b2" * 20
NS = 10**9

Respond = Callable[[ev.OrderIntended], list[tuple[int, Callable[[int], ev.Event]]]]


def liquidator(**kw: Any) -> AaveLiquidator:
    t = fresh_reserves()
    weth, usdc = t[0], t[1]
    params: dict[str, Any] = dict(name="liq", chain=CHAIN, pools=[{"pool": V2, "kind": "v2", "token0": weth.asset,
                                                                    "token1": usdc.asset, "fee": 30}],
                                  flash_premium_bps=5, gas_units=600_000, priority_fee_wei=10**9,
                                  native_asset=weth.asset, scan_interval_s=12)
    params.update(kw)
    return AaveLiquidator(**params)


def pool_event(t: Tape, weth_reserve: int = 5_000 * WAD, usdc_reserve: int | None = None) -> None:
    price = t.reserves[0].price  # $ 8 dp per WETH
    usdc_reserve = usdc_reserve if usdc_reserve is not None else weth_reserve * price // 10**8 // 10**12
    t._emit(ev.V2ReservesSynced, pool=V2, block=t.block, reserve0=weth_reserve, reserve1=usdc_reserve)


def run(strategy: AaveLiquidator, events: list[ev.Event], respond: Respond | None = None,
        until: int | None = None) -> list[ev.Event]:
    """Feed ``events`` through an engine, firing the strategy's timers and scheduled outcomes in
    event-time order; everything it saw and decided, numbered, in order."""
    eng = Engine([strategy], RiskGate(VenueLimits(10**30, 10**31)))
    seq = 0
    out: list[ev.Event] = []
    queue: list[tuple[int, int, Any]] = []  # (ts, order, event factory)
    n = 0

    def feed(e: ev.Event) -> None:
        nonlocal seq, n
        seq += 1
        e = msgspec.structs.replace(e, seq=seq)
        out.append(e)
        for d in eng.handle(e):
            seq += 1
            d = msgspec.structs.replace(d, seq=seq)
            eng.decided(d)
            out.append(d)
            if type(d) is ev.TimerRequested:
                n += 1
                heapq.heappush(queue, (d.at_ts, n, lambda ts, d=d: ev.TimerFired(
                    ts=ts, source="timer", cause=d.seq, strategy=d.strategy, key=d.key, requested=d.seq)))
            elif type(d) is ev.OrderIntended and respond is not None:
                for delay, make in respond(d):
                    n += 1
                    heapq.heappush(queue, (d.ts + delay, n, make))

    last = 0
    for e in events:
        while queue and queue[0][0] <= e.ts:
            ts, _, make = heapq.heappop(queue)
            feed(make(ts))
        feed(e)
        last = e.ts
    end = until if until is not None else last
    while queue and queue[0][0] <= end:
        ts, _, make = heapq.heappop(queue)
        feed(make(ts))
    return out


def of(out: list[ev.Event], cls: type) -> list[Any]:
    return [e for e in out if type(e) is cls]


def alice_tape(coll_wad: int = 10 * WAD, debt_usdc: int = 15_000 * 10**6) -> tuple[Tape, str]:
    t = Tape(fresh_reserves())
    weth, usdc = t.reserves[:2]
    pool_event(t)
    t.block_produced()
    alice = addr(1, 1)
    t.supply(alice, weth, coll_wad)
    t.borrow(alice, usdc, debt_usdc)
    return t, alice


def fail_after(delay_ns: int) -> Respond:
    def respond(d: ev.OrderIntended) -> list[tuple[int, Callable[[int], ev.Event]]]:
        return [(delay_ns, lambda ts: ev.OrderFailed(ts=ts, source="gw", intent=d.seq, venue=d.venue,
                                                     reason="reverted: 45"))]
    return respond


def fill_after(delay_ns: int) -> Respond:
    def respond(d: ev.OrderIntended) -> list[tuple[int, Callable[[int], ev.Event]]]:
        return [(delay_ns, lambda ts: ev.OrderFilled(ts=ts, source="gw", intent=d.seq, venue=d.venue, amount=1,
                                                     notional=1, fee=1, fee_asset="ETH"))]
    return respond


# ----------------------------------------------------------------------------- fast path, intent format


def test_fast_path_intends_in_the_handling_of_the_price_update() -> None:
    t, alice = alice_tape()
    weth, usdc = t.reserves[:2]
    t.advance(1)
    t.price(weth, 1800 * 10**8)  # HF 1.1 -> 0.99
    pool_event(t)
    out = run(liquidator(), t.events)
    opp, = of(out, ev.LiquidationOpportunity)
    intent, = of(out, ev.OrderIntended)
    oracle = of(out, ev.OracleUpdated)[-1]
    assert opp.cause == intent.cause == oracle.seq  # the same handling
    assert (opp.path, opp.latency_ns, opp.detected_cause, opp.rules) == ("fast", 0, oracle.seq, "v3.0")
    assert opp.health_factor == contract_hf(t, alice).health_factor < 99 * 10**16  # 0.99 less a second's interest
    debt = t.balance(alice, usdc)[1]
    assert (intent.side, intent.target, intent.venue, intent.private) == ("liquidate", alice, f"aave-v3:{CHAIN}", True)
    assert AssetPair.parse(intent.instrument) == AssetPair.of(weth.asset, usdc.asset)
    assert intent.amount == opp.debt_to_cover == (debt * 5000 + 5000) // 10_000  # 50% close factor at HF 0.99
    assert intent.route == (V2,) and intent.profit_asset == usdc.asset
    assert intent.min_profit == opp.gas_cost > 0 and intent.max_priority_fee == 10**9
    # the numbers add up, and are the contract math: 7500 USDC at $1800 * 1.05, 10% of the bonus to the treasury
    assert opp.expected_profit == opp.proceeds - opp.debt_to_cover - opp.flash_premium - opp.gas_cost
    assert opp.flash_premium == (opp.debt_to_cover * 5 + 5000) // 10_000
    seized = (opp.debt_to_cover * 10**8 * 10**18 // (1800 * 10**8 * 10**6) * 10500 + 5000) // 10_000
    assert opp.protocol_fee + opp.collateral_to_liquidator == seized


def test_a_profit_share_bid_tips_that_share_of_the_profit_before_the_tip_per_gas() -> None:
    t, alice = alice_tape()
    weth = t.reserves[0]
    t.advance(1)
    t.price(weth, 1800 * 10**8)
    pool_event(t)
    fixed, = of(run(liquidator(), t.events), ev.LiquidationOpportunity)
    out = run(liquidator(bid_profit_share_bps=9000), t.events)
    opp, = of(out, ev.LiquidationOpportunity)
    intent, = of(out, ev.OrderIntended)
    assert (opp.debt_to_cover, opp.proceeds) == (fixed.debt_to_cover, fixed.proceeds)  # the same size
    # the tape's block: next base fee 1 gwei; wei -> USDC (6 dp, $1 = 1e8) at WETH's $1800
    to_usdc = (1800 * 10**8 * 10**6, 10**8 * 10**18)
    before_tip = opp.proceeds - opp.debt_to_cover - opp.flash_premium - -(-600_000 * 10**9 * to_usdc[0] // to_usdc[1])
    budget_wei = before_tip * 9000 // 10_000 * to_usdc[1] // to_usdc[0]
    assert intent.max_priority_fee == budget_wei // 600_000 > 10**9  # above the 1 gwei floor
    assert opp.gas_cost == -(-600_000 * (10**9 + intent.max_priority_fee) * to_usdc[0] // to_usdc[1])
    assert opp.expected_profit == opp.proceeds - opp.debt_to_cover - opp.flash_premium - opp.gas_cost
    assert before_tip // 10 <= opp.expected_profit <= before_tip // 10 + before_tip // 10**6  # 10% is left
    assert intent.min_profit == opp.gas_cost  # the executor must still pay for the gas it bid
    with pytest.raises(ValueError, match="bid_profit_share_bps"):
        liquidator(bid_profit_share_bps=10_000)


def test_healthy_users_and_small_profits_make_no_intent() -> None:
    t, alice = alice_tape()
    t.advance(1)
    t.price(t.reserves[0], 1900 * 10**8)  # HF 1.045: nothing
    out = run(liquidator(), t.events)
    assert not of(out, ev.OrderIntended) and not of(out, ev.LiquidationSkipped)
    t.price(t.reserves[0], 1800 * 10**8)
    out = run(liquidator(min_profit_base=10**6 * 10**8), t.events)  # wants $1M
    skip, = of(out, ev.LiquidationSkipped)
    assert (skip.reason, skip.user, skip.path) == ("below min profit", alice, "fast") and skip.expected_profit > 0
    assert not of(out, ev.OrderIntended)
    out = run(liquidator(pools=[]), t.events)
    assert [s.reason for s in of(out, ev.LiquidationSkipped)] == ["no route"]


def test_scan_alone_liquidates_with_the_fast_path_off() -> None:
    t, alice = alice_tape()
    t.advance(1)
    t.price(t.reserves[0], 1800 * 10**8)
    for _ in range(20):  # blocks go by
        t.advance(1)
        t.block_produced()
    out = run(liquidator(fast_path=False), t.events)
    opp, = of(out, ev.LiquidationOpportunity)
    intent, = of(out, ev.OrderIntended)
    oracle = of(out, ev.OracleUpdated)[-1]
    assert opp.path == "scan" and intent.target == alice
    assert opp.detected_cause == oracle.seq and opp.latency_ns == opp.ts - oracle.ts > 0
    fast = run(liquidator(), t.events)
    assert [o.path for o in of(fast, ev.LiquidationOpportunity)] == ["fast"]


def test_interest_alone_is_found_by_the_scan() -> None:
    t, alice = alice_tape(debt_usdc=16_490 * 10**6)  # HF 1.0006
    weth, usdc = t.reserves[:2]
    usdc.vbr = 10**27  # 100% a year
    t.advance(1)
    t.supply(addr(2, 2), usdc, 10**6)  # rates in the log now 100%
    for _ in range(40):
        t.advance(3600)
        t.block_produced()
    pool_event(t)
    out = run(liquidator(), t.events)
    opps = of(out, ev.LiquidationOpportunity)
    assert [o.path for o in opps] == ["scan"] and opps[0].user == alice


# ----------------------------------------------------------------------------- properties


def _random_market(data: st.DataObject, n_users: int) -> tuple[Tape, list[str]]:
    t = Tape(fresh_reserves())
    weth, usdc = t.reserves[:2]
    pool_event(t)
    t.block_produced()
    users = [addr(7, i) for i in range(n_users)]
    for u in users:
        coll = data.draw(st.integers(1, 50)) * WAD // 10
        hf_pct = data.draw(st.integers(101, 160))  # HF 1.01..1.6 at the start
        debt = coll * 2000 * 8250 // 10_000 * 100 // hf_pct // 10**12
        t.supply(u, weth, coll)
        t.borrow(u, usdc, max(debt, 1))
    return t, users


def _moves(t: Tape, data: st.DataObject, n: int) -> None:
    weth = t.reserves[0]
    for _ in range(n):
        t.advance(data.draw(st.integers(0, 3)))
        t.price(weth, max(10**8, weth.price * data.draw(st.integers(900, 1080)) // 1000))
        pool_event(t)


@settings(max_examples=40, deadline=None)
@given(st.data())
def test_no_intent_for_hf_at_or_above_one(data: st.DataObject) -> None:
    t, users = _random_market(data, 6)
    _moves(t, data, data.draw(st.integers(1, 8)))
    fast = data.draw(st.booleans())
    out = run(liquidator(fast_path=fast, dedupe_s=0), t.events, respond=fail_after(1))
    # the user's HF just after the causing event, by an independent fold of the inputs up to it
    intents = of(out, ev.OrderIntended)
    pos = {e.seq: i for i, e in enumerate(out)}
    for d in intents:
        upto = [e for e in out[:pos[d.cause] + 1] if e.KIND == ev.INPUT]
        hf = _hf_at(t, upto, d.target, d.ts // NS)
        assert hf < WAD, (d, hf)
        event("intent for a user below 1")
    for u in users:
        if not any(d.target == u for d in intents):
            event("some user never intended")
    event(f"path {'fast' if fast else 'scan'}")


def _hf_at(t: Tape, upto: list[ev.Event], user: str, now: int) -> int:
    """The user's HF at ``now`` after the events ``upto``, by an independent fold (the tape's
    scaled balances at that point, priced by the port)."""
    from tapedeck.domain import aave_v3 as m
    coll: dict[str, int] = {}
    debt: dict[str, int] = {}
    idx: dict[str, ev.AaveReserveDataUpdated | ev.AaveReserveConfigured] = {}
    last: dict[str, int] = {}
    price: dict[str, int] = {}
    feeds = {r.feed: r.asset for r in t.reserves}
    for e in upto:
        if type(e) in (ev.AaveReserveDataUpdated, ev.AaveReserveConfigured):
            idx[e.reserve] = e  # type: ignore[attr-defined]
            last[e.reserve] = e.ts // NS if type(e) is ev.AaveReserveDataUpdated else e.last_update_timestamp  # type: ignore[attr-defined]
        elif type(e) is ev.OracleUpdated:
            price[feeds[e.feed]] = e.answer
        elif type(e) is ev.AaveSupplied and e.on_behalf_of == user:
            coll[e.reserve] = coll.get(e.reserve, 0) + m.ray_div(e.amount, idx[e.reserve].liquidity_index)
        elif type(e) is ev.AaveBorrowed and e.on_behalf_of == user:
            debt[e.reserve] = debt.get(e.reserve, 0) + m.ray_div(e.amount, idx[e.reserve].variable_borrow_index)
    positions = []
    for r in t.reserves:
        if r.asset not in coll and r.asset not in debt:
            continue
        i = idx[r.asset]
        inc = m.normalized_income(i.liquidity_index, i.liquidity_rate, last[r.asset], now)
        dbt = m.normalized_debt(i.variable_borrow_index, i.variable_borrow_rate, last[r.asset], now)
        positions.append(m.Position(price=price[r.asset], decimals=r.decimals, ltv=r.ltv, liquidation_threshold=r.lt,
                                    collateral=m.ray_mul(coll.get(r.asset, 0), inc),
                                    debt=m.ray_mul(debt.get(r.asset, 0), dbt)))
    return m.account_data(positions).health_factor


@settings(max_examples=40, deadline=None)
@given(st.data())
def test_dedupe_never_sends_twice_within_the_window(data: st.DataObject) -> None:
    t, users = _random_market(data, 4)
    _moves(t, data, 12)
    window = data.draw(st.sampled_from([1, 2, 5]))
    out = run(liquidator(dedupe_s=window), t.events, respond=fail_after(data.draw(st.integers(1, 3 * NS))))
    last: dict[str, int] = {}
    repeats = 0
    for d in of(out, ev.OrderIntended):
        if d.target in last:
            assert d.ts - last[d.target] >= window * NS
            repeats += 1
        last[d.target] = d.ts
    event("a user intended again after its window" if repeats else "no repeat")


@settings(max_examples=40, deadline=None)
@given(st.data())
def test_an_in_flight_liquidation_is_never_duplicated(data: st.DataObject) -> None:
    t, users = _random_market(data, 4)
    _moves(t, data, 12)
    delay = data.draw(st.sampled_from([None, 5 * NS, 30 * NS]))  # None: never an outcome
    respond = None if delay is None else data.draw(st.sampled_from([fail_after, fill_after]))(delay)
    out = run(liquidator(dedupe_s=0), t.events, respond=respond)
    open_: dict[str, int] = {}  # user -> intent seq in flight
    target = {}
    for e in out:
        if type(e) is ev.OrderIntended:
            assert e.target not in open_, "a second intent while one is in flight"
            open_[e.target] = e.seq
            target[e.seq] = e.target
        elif type(e) in (ev.OrderFailed, ev.OrderFilled):
            open_.pop(target[e.intent], None)
            event("an outcome released a user")
    blocked = out and any(True for _ in ())
    del blocked
    n = len(of(out, ev.OrderIntended))
    event("several intents" if n > 1 else "one intent" if n else "no intent")


EVENTS = st.lists(st.sampled_from(["fail", "success", "timer", "send", "stale-timer"]), min_size=1, max_size=60)


@settings(max_examples=300, deadline=None)
@given(EVENTS, st.integers(1, 4))
def test_circuit_breaker_state_machine_under_any_interleaving(steps: list[str], threshold: int) -> None:
    """The breaker against a reference model of its rules, for any order of outcomes and timers."""
    b = CircuitBreaker(threshold, 10)
    state, fails, probe, gen = CLOSED, 0, "", 0
    sent: list[str] = []
    for i, step in enumerate(steps):
        cid = f"c{i}"
        if step == "send":
            allowed = state == CLOSED or (state == HALF_OPEN and not probe)
            assert b.allows() == allowed
            if allowed:
                b.sent(cid)
                sent.append(cid)
                if state == HALF_OPEN:
                    probe = cid
            continue
        if step in ("fail", "success"):
            who = sent[-1] if sent else "x"
            if step == "fail":
                b.failure(who, i)
                if state == CLOSED:
                    fails += 1
                    if fails >= threshold:
                        state, gen, probe = OPEN, gen + 1, ""
                elif state == HALF_OPEN and who == probe:
                    state, gen, probe = OPEN, gen + 1, ""
            else:
                b.success(who)
                if state == HALF_OPEN and who == probe:
                    state, fails, probe = CLOSED, 0, ""
                elif state == CLOSED:
                    fails = 0
        elif step == "timer":
            b.timer(gen)
            if state == OPEN:
                state, probe = HALF_OPEN, ""
        else:  # a timer of an older opening
            b.timer(gen - 1)
        assert (b.state, b.probe) == (state, probe)
        if state == CLOSED:
            assert b.failures == fails
        event(f"state {state}")


def test_breaker_through_the_strategy_opens_probes_and_closes() -> None:
    t, users = alice_tape()
    weth = t.reserves[0]
    others = [addr(8, i) for i in range(6)]
    for u in others:
        t.supply(u, weth, 10 * WAD)
        t.borrow(u, t.reserves[1], 15_000 * 10**6)
    t.advance(1)
    t.price(weth, 1800 * 10**8)  # all 7 liquidatable at once
    for _ in range(90):
        t.advance(1)
        t.price(weth, 1800 * 10**8 - _ % 2)  # keep touching them
        pool_event(t)
    fails = Counter[str]()

    def respond(d: ev.OrderIntended) -> list[tuple[int, Callable[[int], ev.Event]]]:
        # everything fails for the first 40 s, then succeeds
        if d.ts < t.t0 * NS + 40 * NS:
            fails["f"] += 1
            return fail_after(NS // 2)(d)
        return fill_after(NS // 2)(d)

    out = run(liquidator(breaker_failures=3, breaker_timeout_s=10, dedupe_s=1), t.events, respond=respond)
    changes = [(c.state, c.reason) for c in of(out, ev.CircuitBreakerChanged)]
    assert changes[0][0] == OPEN
    assert (HALF_OPEN, "timeout") in changes and changes[-1][0] == CLOSED
    opened = next(c for c in of(out, ev.CircuitBreakerChanged) if c.state == OPEN)
    half = next(c for c in of(out, ev.CircuitBreakerChanged) if c.state == HALF_OPEN)
    assert half.ts - opened.ts >= 10 * NS
    assert not [d for d in of(out, ev.OrderIntended) if opened.ts < d.ts < half.ts]  # nothing while open
    assert any(s.reason == "breaker open" for s in of(out, ev.LiquidationSkipped))


# ----------------------------------------------------------------------------- sizing, replay


def test_a_shallow_pool_sizes_below_the_cap_and_no_grid_size_beats_it() -> None:
    t, alice = alice_tape(coll_wad=100 * WAD, debt_usdc=150_000 * 10**6)
    t.advance(1)
    pool_event(t, weth_reserve=60 * WAD, usdc_reserve=60 * 1800 * 10**6)  # thin: 60 WETH
    t.price(t.reserves[0], 1800 * 10**8)
    strat = liquidator()
    out = run(strat, t.events)
    opp, = of(out, ev.LiquidationOpportunity)
    assert opp.debt_to_cover < 75_000 * 10**6  # below the 50% cap: price impact
    acc = strat.book.account(alice, t.now)
    best = opp.expected_profit
    for k in range(1, 51):
        x = 75_000 * 10**6 * k // 50
        lq = strat.book.liquidation(alice, t.reserves[0].asset, t.reserves[1].asset, x, acc, t.now)
        r0, r1 = 60 * WAD, 60 * 1800 * 10**6
        got = lq.collateral_to_liquidator * 9970 * r1 // (r0 * 10_000 + lq.collateral_to_liquidator * 9970)
        profit = got - lq.debt_to_cover - (lq.debt_to_cover * 5 + 5000) // 10_000 - opp.gas_cost
        assert profit <= best


def test_replay_gives_identical_decisions() -> None:
    import random
    rng = random.Random(7)
    t = Tape(fresh_reserves())
    weth, usdc, wbtc, dai = t.reserves
    pool_event(t)
    users = [addr(9, i) for i in range(40)]
    for i, u in enumerate(users):
        c, d = (weth, wbtc)[i % 2], (usdc, dai)[i % 2]
        usd = rng.randint(1, 20) * 2000
        t.supply(u, c, usd * 10**c.decimals // (c.price // 10**8))
        t.borrow(u, d, usd * c.lt // 10_000 * 100 // rng.randint(101, 115) * 10**d.decimals)
    for _ in range(60):
        t.advance(rng.randint(0, 4))
        r = rng.choice([weth, wbtc])
        t.price(r, r.price * rng.randint(960, 1030) // 1000)
        pool_event(t)
        t.block_produced()
    pools = [{"pool": V2, "kind": "v2", "token0": weth.asset, "token1": usdc.asset, "fee": 30}]

    def once() -> list[bytes]:
        out = run(liquidator(pools=pools), t.events, respond=fail_after(2 * NS))
        return [msgspec.json.encode(e) for e in out]

    a, b = once(), once()
    assert a == b
    kinds = Counter(msgspec.json.decode(x)[0] for x in a)
    a = [x for x in a if not x.startswith(b'["V2') and not x.startswith(b'["Aave')]
    assert kinds["OrderIntended"] > 0 and kinds["LiquidationSkipped"] > 0  # it decided things worth comparing


def test_v33_sizes_below_a_cap_that_would_leave_dust() -> None:
    """v3.3: 50% of the total debt would leave < $1000 of the collateral; the strategy asks for the
    largest amount that does not (the pool would revert MUST_NOT_LEAVE_DUST at the cap)."""
    t = Tape(fresh_reserves())
    weth, usdc = t.reserves[:2]
    pool_event(t)
    t.block_produced()
    alice = addr(1, 1)
    t.supply(alice, weth, 14667 * WAD // 10_000)  # $2933 at $2000
    t.supply(alice, usdc, 2_500 * 10**6)
    t.borrow(alice, usdc, 4_000 * 10**6)
    t.advance(1)
    t.price(weth, 1500 * 10**8)  # WETH $2200: HF 0.985, both reserves >= $2000: 50% of the total debt
    pool_event(t)
    strat = liquidator(rules="v3.3")
    out = run(strat, t.events)
    opp, = of(out, ev.LiquidationOpportunity)
    acc = strat.book.account(alice, t.now)
    pair = strat.book.pair(alice, opp.collateral_asset, opp.debt_asset, acc, t.now)
    assert pair.amounts(2**256 - 1).reason.startswith("dust")
    assert opp.debt_to_cover < pair.cap and pair.amounts(opp.debt_to_cover).reason == ""
    assert pair.amounts(opp.debt_to_cover + 1).reason.startswith("dust") or opp.debt_to_cover + 1 > pair.cap
    assert opp.rules == "v3.3"
