"""The borrower book against hand-computed values and against an independent computation of the
same positions (the tape's own balances through ``domain/aave_v3.py``'s port, itself proven equal
to the contracts in tests/test_aave_v3_parity.py)."""
from __future__ import annotations

from hypothesis import event, given, settings
from hypothesis import strategies as st

from tapedeck.domain import aave_v3 as m
from tapedeck.domain.aave_book import AaveBook
from tests.test_aave_book_tape import TREASURY, R, Tape, addr, fresh_reserves

WAD = 10**18
ALICE = addr(1, 1)


def book_of(tape: Tape, rules: str = "v3.0") -> AaveBook:
    b = AaveBook(rules)
    for e in tape.events:
        b.apply(e)
    return b


def contract_hf(tape: Tape, user: str) -> m.AccountData:
    """``calculateUserAccountData`` (no e-mode) from the tape's own balances, by the port."""
    positions = []
    for r in tape.reserves:
        c, d = tape.balance(user, r)
        if c or d:
            positions.append(m.Position(price=r.price, decimals=r.decimals, ltv=r.ltv, liquidation_threshold=r.lt,
                                        collateral=c, debt=d, using_as_collateral=c > 0 or (user, r.asset) in tape.coll))
    return m.account_data(positions)


def test_health_factor_by_hand() -> None:
    t = Tape(fresh_reserves())
    weth, usdc = t.reserves[:2]
    t.supply(ALICE, weth, 10 * WAD)
    t.borrow(ALICE, usdc, 15_000 * 10**6)
    acc = book_of(t).account(ALICE, t.now)
    # 10 WETH at $2000 = 20,000e8 base; percentMul(20,000e8, 8250) = 16,500e8; wadDiv(16,500e8, 15,000e8) = 1.1e18
    assert (acc.total_collateral_base, acc.total_debt_base, acc.liquidation_threshold) == (20_000 * 10**8,
                                                                                          15_000 * 10**8, 8250)
    assert acc.health_factor == 11 * 10**17
    t.price(weth, 1800 * 10**8)  # 18,000e8 * 0.825 / 15,000e8 = 0.99
    b = book_of(t)
    assert b.account(ALICE, t.now).health_factor == 99 * 10**16


def test_interest_accrues_like_the_contracts() -> None:
    t = Tape(fresh_reserves())
    weth, usdc = t.reserves[:2]
    t.supply(ALICE, weth, 10 * WAD)
    t.borrow(ALICE, usdc, 12_345_678_901)
    for _ in range(5):
        t.advance(3601)
        t.supply(addr(2, 2), usdc, 10**6)  # an index update in between
    t.advance(86_400 * 30)  # and a month with no event at all
    b = book_of(t)
    assert b.balances(ALICE, usdc.asset, t.now) == t.balance(ALICE, usdc)
    assert b.balances(ALICE, weth.asset, t.now) == t.balance(ALICE, weth)
    exp = contract_hf(t, ALICE)
    acc = b.account(ALICE, t.now)
    assert (acc.total_collateral_base, acc.total_debt_base, acc.health_factor) == (
        exp.total_collateral_base, exp.total_debt_base, exp.health_factor)
    assert t.balance(ALICE, usdc)[1] > 12_345_678_901  # it did accrue


def test_collateral_flag_comes_from_the_events() -> None:
    t = Tape(fresh_reserves())
    weth, usdc = t.reserves[:2]
    t.supply(ALICE, weth, 10 * WAD)
    t.borrow(ALICE, usdc, 1000 * 10**6)
    b = book_of(t)
    assert weth.asset in b.users[ALICE].on
    from tapedeck.domain import events as ev
    b.apply(ev.AaveCollateralToggled(ts=t.now * 10**9, chain="sim", block=9, tx="0x", log_index=1,
                                     reserve=weth.asset, user=ALICE, enabled=False))
    acc = b.account(ALICE, t.now)
    assert acc.total_collateral_base == 0 and acc.health_factor == 0


def test_emode_threshold_and_price_source() -> None:
    t = Tape(fresh_reserves())
    weth, usdc = t.reserves[:2]
    t.emode_category(1, 9000, 9300, 10200)
    t.supply(ALICE, weth, 10 * WAD)
    t.borrow(ALICE, usdc, 15_000 * 10**6)
    t.emode(ALICE, 1)
    b = book_of(t)
    acc = b.account(ALICE, t.now)  # WETH is in category 1: its LT is the category's 9300
    assert acc.liquidation_threshold == 9300
    assert acc.health_factor == m.wad_div(m.percent_mul(20_000 * 10**8, 9300), 15_000 * 10**8)
    # a price source (v3.0): every asset of the category, and the debt, priced by it
    t.emode_category(2, 9000, 9300, 10200, price_source=usdc.asset)
    t.emode(ALICE, 2)
    b = book_of(t)
    acc = b.account(ALICE, t.now)  # WETH not in category 2: own LT, own price; debt at the source's $1
    assert acc.liquidation_threshold == 8250 and acc.total_debt_base == 15_000 * 10**8


def test_liquidation_amounts_v30_the_reference_example() -> None:
    """PROTOCOLS.md 1.6's example: HF 0.97, 10,000 USDC debt, WETH $2000, bonus 10500, fee 10%:
    5,000 USDC covered, 2.6125 WETH to the liquidator, 0.0125 WETH to the treasury."""
    t = Tape(fresh_reserves())
    weth, usdc = t.reserves[:2]
    t.supply(ALICE, weth, 588 * WAD // 100)
    t.borrow(ALICE, usdc, 10_000 * 10**6)
    b = book_of(t)
    acc = b.account(ALICE, t.now)
    assert 95 * 10**16 < acc.health_factor < WAD
    lq = b.liquidation(ALICE, weth.asset, usdc.asset, 2**256 - 1, acc, t.now)
    assert (lq.max_debt, lq.debt_to_cover, lq.collateral_to_liquidator, lq.protocol_fee, lq.reason) == (
        5_000 * 10**6, 5_000 * 10**6, 26125 * 10**14, 125 * 10**14, "")
    # below HF 0.95 the whole debt
    t.price(weth, 1900 * 10**8)
    b = book_of(t)
    acc = b.account(ALICE, t.now)
    assert acc.health_factor <= 95 * 10**16
    assert b.liquidation(ALICE, weth.asset, usdc.asset, 2**256 - 1, acc, t.now).max_debt == 10_000 * 10**6


def test_liquidation_fold_burns_debt_collateral_and_fee() -> None:
    t = Tape(fresh_reserves())
    weth, usdc = t.reserves[:2]
    t.supply(ALICE, weth, 588 * WAD // 100)
    t.borrow(ALICE, usdc, 10_000 * 10**6)
    t.advance(12)
    t.liquidate(ALICE, weth, usdc, 5_000 * 10**6, 26125 * 10**14, 125 * 10**14)
    b = book_of(t)
    assert b.users[ALICE].coll[weth.asset] == t.coll[(ALICE, weth.asset)]
    assert b.users[ALICE].debt[usdc.asset] == t.debt[(ALICE, usdc.asset)]
    assert b.users[TREASURY].coll[weth.asset] == m.ray_div(125 * 10**14, weth.li)


def _v33_user(t: Tape, coll_wad: int, debt_usdc: int) -> None:
    weth, usdc = t.reserves[:2]
    t.supply(ALICE, weth, coll_wad)
    t.borrow(ALICE, usdc, debt_usdc)


def test_v33_close_factor_rules() -> None:
    t = Tape(fresh_reserves())
    weth, usdc = t.reserves[:2]
    _v33_user(t, 588 * WAD // 100, 10_000 * 10**6)  # HF 0.97, both sides >= $2000: 50% of the total debt
    b = book_of(t, "v3.3")
    acc = b.account(ALICE, t.now)
    assert b.max_debt(ALICE, weth.asset, usdc.asset, acc, t.now) == 5_000 * 10**6
    # a small position (< $2000 of debt): 100% even at HF 0.97
    t2 = Tape(fresh_reserves())
    _v33_user(t2, 588 * WAD // 1000 * 15 // 10, 1_500 * 10**6)
    b2 = book_of(t2, "v3.3")
    acc2 = b2.account(ALICE, t2.now)
    assert 95 * 10**16 < acc2.health_factor < WAD
    assert b2.max_debt(ALICE, weth.asset, usdc.asset, acc2, t2.now) == 1_500 * 10**6
    # and v3.0 would have said 50%
    assert book_of(t2, "v3.0").max_debt(ALICE, weth.asset, usdc.asset, acc2, t2.now) == 750 * 10**6


def test_v33_dust_rule() -> None:
    t = Tape(fresh_reserves())
    weth, usdc = t.reserves[:2]
    _v33_user(t, 588 * WAD // 100, 10_000 * 10**6)
    b = book_of(t, "v3.3")
    acc = b.account(ALICE, t.now)
    ok = b.liquidation(ALICE, weth.asset, usdc.asset, 4_000 * 10**6, acc, t.now)  # leaves $6000 debt, ~$3.5k coll
    assert ok.reason == ""
    t.price(weth, 1800 * 10**8)  # HF 0.873: 100% close factor
    b = book_of(t, "v3.3")
    acc = b.account(ALICE, t.now)
    lq = b.liquidation(ALICE, weth.asset, usdc.asset, 9_500 * 10**6, acc, t.now)  # leaves $500 debt, $612 coll
    assert lq.reason.startswith("dust")
    assert b.liquidation(ALICE, weth.asset, usdc.asset, 2**256 - 1, acc, t.now).reason == ""  # clears the debt
    assert book_of(t, "v3.0").liquidation(ALICE, weth.asset, usdc.asset, 9_500 * 10**6, acc, t.now).reason == ""


def test_v33_deficit_burns_the_rest_of_the_debt() -> None:
    t = Tape(fresh_reserves())
    weth, usdc = t.reserves[:2]
    t.supply(ALICE, weth, WAD)
    t.borrow(ALICE, usdc, 1_000 * 10**6)
    t.borrow(ALICE, t.reserves[3], 500 * WAD)  # DAI debt too
    bal = t.balance(ALICE, weth)[0]
    t.liquidate(ALICE, weth, usdc, 1_000 * 10**6, bal, 0)  # all collateral taken
    assert not any(book_of(t, "v3.3").users[ALICE].debt.values())
    assert book_of(t, "v3.0").users[ALICE].debt[t.reserves[3].asset] > 0


ACTIONS = st.lists(st.tuples(st.sampled_from(["supply", "borrow", "repay", "withdraw", "advance", "price"]),
                             st.integers(0, 3), st.integers(0, 3), st.integers(1, 10**6)), min_size=1, max_size=40)


@settings(max_examples=60, deadline=None)
@given(ACTIONS)
def test_fold_equals_an_independent_count_and_hf_equals_the_port(actions: list[tuple[str, int, int, int]]) -> None:
    t = Tape(fresh_reserves())
    users = [addr(5, i) for i in range(4)]
    for u in users:  # everyone starts with some collateral
        t.supply(u, t.reserves[0], 5 * WAD)
    for kind, ui, ri, x in actions:
        u, r = users[ui], t.reserves[ri]
        c, d = t.balance(u, r)
        if kind == "supply":
            t.supply(u, r, x * 10**(r.decimals - 2) + 1)
        elif kind == "borrow":
            t.borrow(u, r, x * 10**(r.decimals - 4) + 1)
        elif kind == "repay" and d > 1:
            t.repay(u, r, min(d, x * 10**(r.decimals - 4) + 1))
        elif kind == "withdraw" and c > 1:
            t.withdraw(u, r, min(c, x * 10**(r.decimals - 3) + 1))
        elif kind == "advance":
            t.advance(x)
        elif kind == "price":
            t.price(r, max(1, r.price * (500 + x % 1000) // 1000))
        event(kind)
    b = book_of(t)
    for u in users:
        for r in t.reserves:
            assert b.users[u].coll.get(r.asset, 0) == t.coll.get((u, r.asset), 0)
            assert b.users[u].debt.get(r.asset, 0) == t.debt.get((u, r.asset), 0)
        exp = contract_hf(t, u)
        acc = b.account(u, t.now)
        assert (acc.total_collateral_base, acc.total_debt_base, acc.liquidation_threshold, acc.health_factor) == (
            exp.total_collateral_base, exp.total_debt_base, exp.liquidation_threshold, exp.health_factor)
        event("liquidatable" if acc.liquidatable else "healthy")


@settings(max_examples=80, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 3), st.integers(600, 1400)), min_size=1, max_size=12),
       st.lists(st.integers(1, 100), min_size=30, max_size=30))
def test_candidates_never_miss_a_user_pushed_below_one(moves: list[tuple[int, int]], sizes: list[int]) -> None:
    """After any price move, every user whose exact HF is now below 1 is among those ``apply``
    returns (the sorted filter only skips users that cannot have crossed)."""
    t = Tape(fresh_reserves())
    users = [addr(6, i) for i in range(30)]
    for i, u in enumerate(users):
        c, d = t.reserves[i % 4], t.reserves[(i + 1) % 4]
        t.supply(u, c, sizes[i] * 10**c.decimals * 100 // (c.price // 10**8 or 1) // 10)
        t.borrow(u, d, sizes[i] * 10**d.decimals * 7 // (d.price // 10**8 or 1))
    b = book_of(t)
    for u in users:
        b.account(u, t.now)
    n = len(t.events)
    for ri, permille in moves:
        t.price(t.reserves[ri], max(1, t.reserves[ri].price * permille // 1000))
        moved = t.reserves[ri].asset
        for e in t.events[n:]:
            before = {u: b._account(b.users[u], t.now) for u in users}
            returned = set(b.apply(e))
            for u in users:
                truth = b._account(b.users[u], t.now)
                holds = moved in b.users[u].coll or moved in b.users[u].debt
                was = before[u] is not None and before[u].liquidatable
                if truth is not None and truth.liquidatable and (holds or not was):
                    assert u in returned, (u, truth)
                    event("liquidatable holder returned")
                elif u not in returned:
                    event("user skipped by the filter")
                if u in returned:
                    b.account(u, t.now)
        n = len(t.events)


@settings(max_examples=300, deadline=None)
@given(st.integers(1, 10**30), st.integers(1, 10**30), st.integers(0, 10**30), st.integers(1, 10**14),
       st.integers(1, 10**14), st.sampled_from([6, 8, 18]), st.sampled_from([6, 8, 18]), st.integers(10001, 11500),
       st.integers(0, 5000), st.sampled_from([5000, 10000]))
def test_pair_amounts_equal_the_port(debt_bal: int, coll_bal: int, request: int, cp: int, dp: int, cd: int, dd: int,
                                     bonus: int, fee: int, cf: int) -> None:
    """The inline ``Pair.amounts`` equals ``aave_v3.liquidation`` (proven against the bytecode)."""
    from tapedeck.domain.aave_book import Pair
    hf = 96 * 10**16 if cf == 5000 else 90 * 10**16
    inp = m.LiquidationInput(health_factor=hf, user_debt=debt_bal, user_collateral=coll_bal, debt_to_cover=request,
                             collateral_price=cp, debt_price=dp, collateral_decimals=cd, debt_decimals=dd,
                             liquidation_bonus=bonus, protocol_fee=fee)
    exp = m.liquidation(inp)
    got = Pair(coll_bal, debt_bal, cp, dp, bonus, 10**cd, 10**dd, fee, m.percent_mul(debt_bal, cf), False,
               "").amounts(request)
    assert (got.debt_to_cover, got.collateral_to_liquidator, got.protocol_fee, got.max_debt) == (
        exp.debt_to_cover, exp.collateral_to_liquidator, exp.protocol_fee, exp.max_liquidatable_debt)
    event("collateral capped" if exp.collateral_capped else "debt capped")


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.booleans(), st.integers(0, 3000), st.integers(0, 50)), max_size=3000),
       st.floats(0, 3000))
def test_sorted_keys_behaves_like_a_sorted_list(ops: list[tuple[bool, int, int]], limit: float) -> None:
    from tapedeck.domain.aave_book import SortedKeys
    s, ref = SortedKeys(), []
    for add, k, u in ops:
        item = (float(k), f"u{u}")
        if add and item not in ref:
            s.add(item)
            ref.append(item)
        elif not add:
            assert s.remove(item) == (item in ref)
            if item in ref:
                ref.remove(item)
    ref.sort()
    assert [x for b in s.buckets for x in b] == ref and len(s) == len(ref)
    assert s.below(limit) == [a for k, a in ref if k < limit]
    event("split buckets" if len(s.buckets) > 1 else "one bucket")


def test_emode_bonus_and_prices_per_rule_set() -> None:
    t = Tape(fresh_reserves())
    weth, usdc = t.reserves[:2]
    t.emode_category(1, 9000, 9300, 10200, price_source=usdc.asset)
    t.supply(ALICE, weth, 10 * WAD)
    t.supply(ALICE, usdc, 1000 * 10**6)
    t.borrow(ALICE, usdc, 15_000 * 10**6)
    t.emode(ALICE, 1)
    v30, v33 = book_of(t, "v3.0"), book_of(t, "v3.3")
    # v3.0: WETH (category 1) gets the category's bonus and its price source prices both sides
    assert v30.prices(ALICE, weth.asset, usdc.asset) == (1 * 10**8, 1 * 10**8, 10200)
    assert v30.prices(ALICE, usdc.asset, usdc.asset) == (1 * 10**8, 1 * 10**8, 10500)  # USDC not in it
    # v3.3: the bonus still, prices from the oracle (no price source)
    assert v33.prices(ALICE, weth.asset, usdc.asset) == (2000 * 10**8, 1 * 10**8, 10200)
    acc = v33.account(ALICE, t.now)
    assert acc.total_collateral_base == 21_000 * 10**8  # oracle prices in v3.3


def test_a_new_price_feed_moves_the_price_on_its_first_answer() -> None:
    """The sim's oracle moves a price by pointing the reserve at a new aggregator: a re-emitted
    snapshot with the new ``price_feed`` (same rules: nobody re-evaluated yet), then that feed's
    answer (the users it may have pushed below 1)."""
    from msgspec.structs import replace
    from tapedeck.domain import events as ev
    t = Tape(fresh_reserves())
    weth, usdc = t.reserves[:2]
    t.supply(ALICE, weth, 10 * WAD)
    t.borrow(ALICE, usdc, 15_000 * 10**6)
    b = book_of(t)
    b.account(ALICE, t.now)
    snap = next(e for e in t.events if type(e) is ev.AaveReserveConfigured and e.reserve == weth.asset)
    assert b.apply(replace(snap, price_feed="0x" + "f9" * 20, liquidity_index=weth.li,
                           variable_borrow_index=weth.vbi, last_update_timestamp=t.now)) == []
    assert b.reserves[weth.asset].price == 2000 * 10**8  # the old answer until the new feed speaks
    got = b.apply(ev.OracleUpdated(ts=t.now * 10**9, feed="0x" + "f9" * 20, chain="sim", round_id=1,
                                   answer=1800 * 10**8, decimals=8))
    assert got == [ALICE] and b.account(ALICE, t.now).health_factor == 99 * 10**16
    assert b.apply(replace(snap, liquidation_threshold=9000)) == [ALICE]  # a rule change: all its users


@settings(max_examples=120, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 3), st.integers(0, 3), st.integers(1, 400), st.integers(800, 2500),
                          st.booleans(), st.booleans()), min_size=2, max_size=24),
       st.lists(st.tuples(st.integers(0, 3), st.integers(700, 1300)), max_size=4), st.integers(0, 3),
       st.integers(0, 86_400), st.booleans())
def test_evaluate_decides_as_account_user_by_user(positions: list[tuple[int, int, int, int, bool, bool]],
                                                  moves: list[tuple[int, int]], no_price: int, later: int,
                                                  lt_zero: bool) -> None:
    """``evaluate`` (one pass, each reserve's factors read once: ``_plain_account``) returns exactly the
    liquidatable users ``account`` finds one by one, with the same account data to the wei, and leaves
    every user's filter key and ``since`` as ``account`` does; over books with e-mode users (the general
    path), collateral switched off, a reserve at LT 0 and one without a price."""
    import copy
    from tapedeck.domain import events as ev
    t = Tape(fresh_reserves())
    t.emode_category(1, 9000, 9300, 10200)
    users = []
    for i, (ci, di, usd, hf_permille, in_emode, off) in enumerate(positions):
        u, c, d = addr(7, i), t.reserves[ci], t.reserves[di]
        t.supply(u, c, usd * 100 * 10**c.decimals // (c.price // 10**8))
        if c is not d:
            t.borrow(u, d, usd * 100 * c.lt // 10_000 * 1000 // hf_permille * 10**d.decimals // (d.price // 10**8))
        if in_emode:
            t.emode(u, 1)
        if off:  # collateral switched off: its value does not count
            t._log(ev.AaveCollateralToggled, reserve=c.asset, user=u, enabled=False)
        users.append(u)
    for ri, permille in moves:
        t.price(t.reserves[ri], max(1, t.reserves[ri].price * permille // 1000))
    b = book_of(t)
    if lt_zero:  # a reserve that is no collateral at all (LT 0)
        b.reserves[t.reserves[2].asset].lt = 0
    if no_price == 3:  # a reserve whose feed has not answered: its users have no account data
        b.reserves[t.reserves[3].asset].price = None
    now = t.now + later
    ref, single = copy.deepcopy(b), copy.deepcopy(b)
    calls: list[tuple[str, bool]] = []
    factors = b._factors
    b._factors = lambda asset, now_s, coll: calls.append((asset, coll)) or factors(asset, now_s, coll)  # type: ignore
    got = b.evaluate(users, now, seq=7, ts=now * 10**9)
    want = []
    for u in users:
        acc = ref.account(u, now, 7, now * 10**9)
        if acc is not None and acc.liquidatable:
            want.append((u, acc))
        assert (b.users[u].key, b.users[u].since, b.users[u].since_seq) == (
            ref.users[u].key, ref.users[u].since, ref.users[u].since_seq)
    assert got == want
    assert [x for bucket in b._sorted.buckets for x in bucket] == [x for bucket in ref._sorted.buckets for x in bucket]
    one_by_one = [x for u in users for x in single.evaluate([u], now, seq=7, ts=now * 10**9)]  # a user's own event
    assert one_by_one == want and [(single.users[u].key, single.users[u].since) for u in users] == [
        (ref.users[u].key, ref.users[u].since) for u in users]
    plain = [u for u in users if not b.users[u].emode]
    lookups = sum(1 for u in plain for a, s in b.users[u].coll.items() if s and a in b.users[u].on) + \
        sum(1 for u in plain for s in b.users[u].debt.values() if s)
    assert len(calls) == len(set(calls)) <= 8  # a reserve's factors at most once per pass (collateral, debt)
    if lookups > len(calls):
        event("reserve factors reused across users")
    event("liquidatable found" if got else "none liquidatable")
    event("e-mode users (general path)" if len(plain) < len(users) else "no e-mode user")


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["add", "remove", "replace"]), st.integers(0, 3000), st.integers(0, 50),
                          st.integers(-40, 40)), max_size=3000), st.floats(0, 3000))
def test_sorted_keys_replace_is_remove_then_add(ops: list[tuple[str, int, int, int]], limit: float) -> None:
    """``replace`` (in place where the new key keeps the item between its neighbours) leaves the same
    sorted items as ``remove`` then ``add``, and the buckets stay sorted across their edges."""
    from tapedeck.domain.aave_book import SortedKeys
    s, ref = SortedKeys(), []
    in_place = moved = 0
    for op, k, u, dk in ops:
        item = (float(k % 64), f"u{u}")  # dense keys: a re-key often passes a neighbour
        if op == "add" and item not in ref:
            s.add(item)
            ref.append(item)
        elif op == "remove":
            assert s.remove(item) == (item in ref)
            if item in ref:
                ref.remove(item)
        elif op == "replace" and ref:
            old = sorted(ref)[k % len(ref)]
            new = (old[0] + dk / 8, old[1])
            if new in ref:
                continue
            if s.replace(old, new):
                in_place += 1
            else:
                moved += 1
            ref.remove(old)
            ref.append(new)
    ref.sort()
    flat = [x for b in s.buckets for x in b]
    assert flat == ref and len(s) == len(ref) and s.maxes == [b[-1] for b in s.buckets]
    assert s.below(limit / 40) == [a for k, a in ref if k < limit / 40]
    if in_place:
        event("replaced in place")
    if moved:
        event("moved to another place")


def test_a_small_re_key_is_done_in_place_and_a_big_one_moves() -> None:
    from tapedeck.domain.aave_book import SortedKeys
    s = SortedKeys()
    for i in range(2000):
        s.add((float(i), f"u{i:04}"))
    assert len(s.buckets) > 1
    assert s.replace((700.0, "u0700"), (700.25, "u0700"))  # still between its neighbours: in place
    edge = s.buckets[0][-1]  # the last of a bucket: its bucket's max moves with it
    assert s.replace(edge, (edge[0] + 0.5, edge[1])) and s.maxes[0] == (edge[0] + 0.5, edge[1])
    assert not s.replace((5.0, "u0005"), (1500.5, "u0005"))  # past its neighbours: removed and added
    flat = [x for b in s.buckets for x in b]
    assert flat == sorted(flat) and (1500.5, "u0005") in flat and (5.0, "u0005") not in flat and len(flat) == 2000
