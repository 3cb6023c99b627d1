"""Hyperliquid's price rule (``domain.hl_price``): at most 5 significant figures, at most
``6 - szDecimals`` decimals (perp) or ``8 - szDecimals`` (spot), integers always valid; one
function the strategy rounds its limits with and the signer and the gateway check orders with.

The oracle here is written from the rule's text (PROTOCOLS.md section 6; the docs'
``tick-and-lot-size.md``) on the price's decimal string, not from the module's step arithmetic;
rounding is checked against a brute-force scan for the nearest valid price."""
from __future__ import annotations

import asyncio
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from tapedeck.adapters import hyperliquid_signing as hs
from tapedeck.domain import events as ev
from tapedeck.domain import hl_price
from tapedeck.domain.hl_price import PriceRuleError, check_price, price_problem, round_price


def valid_by_text(price: int, price_decimals: int, sz_decimals: int, spot: bool) -> bool:
    """The rule read off the price's decimal text."""
    text = format(Decimal(price).scaleb(-price_decimals).normalize(), "f")
    whole, _, frac = text.partition(".")
    if not frac:
        return True  # an integer price is always valid
    figures = len((whole + frac).lstrip("0"))
    return figures <= 5 and len(frac) <= (8 if spot else 6) - sz_decimals


def test_the_rule_on_the_docs_examples() -> None:
    # perps, szDecimals 0 (6 decimals): 1234.5 yes, 1234.56 no; 0.001234 yes, 0.0012345 no
    assert price_problem(12345, 1, 0) == ""
    assert "significant figures" in price_problem(123456, 2, 0)
    assert price_problem(1234, 6, 0) == ""
    assert "7 decimals, more than the 6" in price_problem(12345, 7, 0)  # 5 figures, but 7 decimals
    # integers always: 123456 (6 figures) passes, at any precision it is written with
    assert price_problem(123456, 0, 5) == "" and price_problem(12345600, 2, 5) == ""
    # the decimals cap: szDecimals 2 leaves a perp 4 decimals (0.0012 yes, 0.00123 no), spot 6
    assert price_problem(12, 4, 2) == ""
    assert "4 decimals" in price_problem(123, 5, 2) and "6 - szDecimals 2" in price_problem(123, 5, 2)
    assert price_problem(123, 5, 2, spot=True) == ""
    with pytest.raises(PriceRuleError, match="significant figures"):
        check_price(30_000_123, 4, 4)  # 3000.0123
    with pytest.raises(PriceRuleError, match="> 0"):
        check_price(0, 4, 4)
    with pytest.raises(PriceRuleError, match="szDecimals"):
        check_price(1, 0, -1)


@settings(max_examples=300, deadline=None)
@given(price=st.integers(1, 10**8), pd=st.integers(0, 8), szd=st.integers(0, 6), spot=st.booleans())
def test_rounding_gives_the_nearest_valid_price_on_each_side(price: int, pd: int, szd: int, spot: bool) -> None:
    valid = valid_by_text(price, pd, szd, spot)
    assert (price_problem(price, pd, szd, spot) == "") == valid
    up, down = round_price(price, pd, szd, up=True, spot=spot), round_price(price, pd, szd, up=False, spot=spot)
    assert valid_by_text(up, pd, szd, spot) and valid_by_text(down, pd, szd, spot)
    assert down <= price <= up
    if valid:
        assert up == down == price
        event("valid already")
        return
    # nothing valid strictly between: brute force over every fixed-point value in between (where
    # that is short; else the values next to each end and a spread of 200 between)
    if up - down <= 2_000:
        between = range(down + 1, up)
        event("brute force over every value between")
    else:
        between = [down + 1, up - 1, *range(down + 1, up, (up - down) // 200)]
    assert not any(valid_by_text(x, pd, szd, spot) for x in between)
    if len(str(up)) > len(str(price)):
        event("rounding up carried into the next power of ten")
    frac_cap = (8 if spot else 6) - szd
    five_figures = 10 ** max(0, len(str(price)) - 5)
    event("the decimals cap decided the step" if 10 ** max(0, pd - frac_cap) > five_figures
          else "five significant figures decided the step")
    # the Decimal form (the adapters') agrees with the fixed-point one
    d = Decimal(price).scaleb(-pd)
    assert hl_price.round_decimal_price(d, szd, up=True, spot=spot) == Decimal(up).scaleb(-pd)
    assert hl_price.round_decimal_price(d, szd, up=False, spot=spot) == Decimal(down).scaleb(-pd)
    assert hl_price.decimal_price_problem(d, szd, spot) == price_problem(price, pd, szd, spot)


def test_the_refusal_names_the_whole_price_whatever_the_callers_decimal_precision() -> None:
    import decimal

    with decimal.localcontext() as ctx:
        ctx.prec = 4  # a caller's own setting must not round the price the message names
        assert price_problem(29_848_771, 4, 2).startswith("price 2984.8771 has 8 significant figures")
        assert price_problem(3_000_123, 3, 0).startswith("price 3000.123 has 7 significant figures")


def test_the_signer_refuses_what_the_rule_refuses() -> None:
    hs.check_tick("3000.1", "1", 4)
    with pytest.raises(hs.ActionError, match="significant figures"):
        hs.check_tick("3000.12", "1", 4)
    with pytest.raises(hs.ActionError, match="decimals"):
        hs.check_tick("0.00123", "1", 2)


# ----------------------------------------------------------------------------- the strategy's limits

V, I = "hyperliquid", "ETH"
T0 = 1_700_000_000 * 10**9


def _rig(**cfg: Any) -> Any:
    from tapedeck.domain.engine import Engine
    from tapedeck.domain.risk import RiskGate, VenueLimits
    from tapedeck.domain.strategies.perp_oracle_lag import PerpOracleLag

    s = PerpOracleLag(name="lag", entry_edge_bps=50, exit_edge_bps=10, stop_bps=5000, order_size="1",
                      max_position="1", min_size="0.1", reentry_s=0, **cfg)
    return s, Engine([s], RiskGate(VenueLimits(10**15, 10**18)))


def _run(engine: Any, events: list[ev.Event]) -> list[ev.Event]:
    out, seq = [], 0
    for e in events:
        seq += 1
        for d in engine.handle(ev.with_seq(e, seq)):
            seq += 1
            d = ev.with_seq(d, seq)
            engine.decided(d)
            out.append(d)
            if type(d) is ev.OrderIntended:  # filled at once, at the limit
                seq += 1
                engine.handle(ev.OrderFilled(ts=d.ts, seq=seq, source="t", intent=d.seq, venue=V, amount=d.amount,
                                             notional=d.notional, fee=0, fee_asset="USDC"))
    return out


def _book(ts: int, bid: int, ask: int) -> ev.QuoteUpdated:  # 4 dp: finer than the rule allows at 3000
    return ev.QuoteUpdated(ts=ts, source="t", venue=V, instrument=I, bid=bid, bid_size=10**5, ask=ask,
                           ask_size=10**5, price_decimals=4, size_decimals=4, venue_ts=ts)


@pytest.mark.parametrize("rule", ["hyperliquid", "none"])
def test_the_strategys_limits_follow_the_rule_toward_the_book(rule: str) -> None:
    s, engine = _rig(price_rule=rule, sz_decimals={I: 4})
    oracle = ev.MarkPriceUpdated(ts=T0, source="t", venue=V, instrument=I, mark=30_000_000, oracle=30_000_000,
                                 price_decimals=4, venue_ts=T0)
    ask = 29_001_234  # 2900.1234, stranded 3.3% under the oracle: a buy
    bid = 29_998_765  # 2999.8765 later: back within 10 bps, the long is flattened with 50 bps of slippage
    out = _run(engine, [oracle, _book(T0 + 1, ask - 300, ask), _book(T0 + 2, bid, bid + 300)])
    intents = [d for d in out if type(d) is ev.OrderIntended]
    assert [i.side for i in intents] == ["buy", "sell"] and intents[1].reduce_only
    entry, flatten = intents
    raw_exit = bid * (10**6 - 5000) // 10**6
    if rule == "none":
        assert (entry.limit_price, flatten.limit_price) == (ask, raw_exit)
        return
    assert entry.limit_price == 29_002_000  # 2900.2: up, toward crossing the ask it targets
    assert flatten.limit_price == 29_849_000  # 2984.9: up from 2984.8771 toward the bid, inside the slippage
    assert raw_exit <= flatten.limit_price <= bid
    for i in intents:
        check_price(i.limit_price, i.price_decimals, 4)
    exit_decided = next(d for d in out if type(d) is ev.PerpExitDecided)
    assert exit_decided.limit_price == flatten.limit_price
    assert entry.notional == 10**4 * entry.limit_price // 10**2  # 1 ETH at the rounded limit, USDC 6 dp


def test_a_bad_sz_decimals_is_a_clear_config_error() -> None:
    from tapedeck.domain.strategies.perp_oracle_lag import PerpOracleLag

    with pytest.raises(ValueError, match="sz_decimals.ETH must be an integer"):
        PerpOracleLag(sz_decimals={"ETH": "4"})
    with pytest.raises(ValueError, match="price_rule must be one of"):
        PerpOracleLag(price_rule="binance")


# ----------------------------------------------------------------------------- the live gateway

KEY = "0x" + "4d" * 32  # a throwaway test key


def _executor(posted: list[bytes]) -> Any:
    from tapedeck.live.book_gateway import HyperliquidExecutor

    async def post(url: str, data: bytes) -> tuple[int, Any]:
        posted.append(data)
        return 200, {"status": "ok", "response": {"data": {"statuses": [{"resting": {"oid": 1}}]}}}

    return HyperliquidExecutor(hs.HyperliquidSigner(KEY), state=None, assets={"ETH": (1, 4)}, post=post,
                               base_decimals=4)


def _order(limit: int, pd: int) -> ev.OrderIntended:
    return ev.OrderIntended(ts=T0, seq=7, strategy="lag", venue=V, instrument=I, side="sell", amount=10**4,
                            notional=0, client_id="lag-x1", limit_price=limit, price_decimals=pd, tif="ioc",
                            reduce_only=True)


def test_the_gateway_never_sends_a_limit_the_rule_refuses() -> None:
    posted: list[bytes] = []
    x = _executor(posted)
    got = asyncio.run(x.place(_order(29_848_771, 4), lambda: T0))  # 2984.8771: 8 significant figures
    assert [type(e) for e in got] == [ev.OrderFailed] and not posted
    assert "not sent: limit price 2984.8771 has 8 significant figures" in got[0].reason
    with pytest.raises(ValueError, match="significant figures"):
        x.order(_order(29_848_771, 4), T0)
    got = asyncio.run(x.place(_order(29_849_000, 4), lambda: T0))  # the strategy's rounded limit: sent as it is
    assert [type(e) for e in got] == [ev.OrderAcknowledged] and len(posted) == 1
    assert b'"p": "2984.9"' in posted[0]
