"""The mock perp venue: makers that lag the oracle, the mark rule, positions, CEX order handling."""
from __future__ import annotations

from dataclasses import replace
from decimal import ROUND_HALF_EVEN, Decimal as D
from typing import Any

import pytest
import simpy

from tapedeck.sim.kernel import CTX, NS, Bus, LatencyModel, SimClock
from tapedeck.sim.processes import OracleRound, PriceTick
from tapedeck.sim.scenario import Latency, Link, ScenarioError, Venue, derive_rng, load_scenario, parse_scenario
from tapedeck.sim.venues.cex import (
    ACCEPTED,
    BUY,
    FILLED,
    GTC,
    IOC,
    LIMIT,
    PARTIALLY_FILLED,
    REJECTED,
    SELL,
    SIMULATED_REJECT,
    BookQuote,
    MockCex,
    Order,
    OrderReport,
)
from tapedeck.sim.venues.perp import HL_BAD_PRICE, MockPerp, PerpMark, Position
from tapedeck.sim.world import World

MS = 1_000_000

SPEC = Venue(name="perp", kind="perp", instrument="ETH-PERP", base_decimals=4, quote_decimals=6,
             tick_size=D("0.01"), lot_size=D("0.0001"), depth_levels=3, level_size=D("2"), level_spacing_bps=D(1),
             spread_bps=D(2), taker_fee_bps=D("4.5"), maker_fee_bps=D("1.5"), oracle="oracle")


class Rig:
    """A perp venue on its own clock: 25 ms each way, no jitter; ``tick``/``round`` publish its mark and oracle."""

    def __init__(self, seed: int = 1, venue_type: type = MockPerp, **spec: Any):
        self.env = simpy.Environment()
        self.clock = SimClock(self.env, 0)
        self.bus = Bus()
        self.spec = replace(SPEC, **spec)
        link = Link(Latency(D(25)), Latency(D(25)))
        self.latency = LatencyModel(self.env, self.clock, seed, {self.spec.name: link})
        self.venue = venue_type(self.env, self.clock, self.bus, self.spec, derive_rng(seed, f"venue:{self.spec.name}"),
                                self.latency)
        self.rounds = 0

    def tick(self, price: str) -> None:
        self.bus.publish(PriceTick(self.clock.now_ns, self.spec.name, D(price)))

    def round(self, answer: str) -> None:
        self.rounds += 1
        a = D(answer)
        self.bus.publish(OracleRound(self.clock.now_ns, "oracle", self.rounds, a, int(a.scaleb(8)), 8, "heartbeat",
                                     None))

    def at(self, t: float, fn: Any, *args: Any) -> None:
        def run():  # type: ignore[no-untyped-def]
            yield self.env.timeout(t - self.env.now)
            fn(*args)

        self.env.process(run())

    def script(self, seconds: int, price: str | dict[int, str], rounds: dict[int, str]) -> dict[int, D]:
        """A tick every second (then that second's round, as in a World); returns the book mid after each tick."""
        mids: dict[int, D] = {}
        for s in range(seconds):
            p = price if isinstance(price, str) else price.get(s, price[max(k for k in price if k <= s)])
            self.at(s, self.tick, p)
            self.at(s, lambda s=s: mids.__setitem__(s, self.venue.book_mid()))
            if s in rounds:
                self.at(s, self.round, rounds[s])
        return mids

    def run(self) -> list[OrderReport]:
        self.env.run()
        return self.bus.of(OrderReport)


# ----------------------------------------------------------------------------- makers


def test_the_book_follows_the_oracle_only_after_the_maker_lag() -> None:
    rig = Rig(maker_lag=5.0)
    mids = rig.script(20, "3000.00", {0: "3000.00", 3: "3000.00", 8: "3240.00"})
    rig.run()
    assert all(mids[s] == D("3000.00") for s in range(13))  # the round of t = 8 is not seen before t = 13
    assert all(mids[s] == D("3240.00") for s in range(13, 20))  # then at once (maker_follow = 1)
    assert rig.venue.book() == (((D("3239.67"), D(2)), (D("3239.35"), D(2)), (D("3239.02"), D(2))),
                                ((D("3240.33"), D(2)), (D("3240.65"), D(2)), (D("3240.98"), D(2))))


def test_makers_close_a_share_of_the_gap_per_second_and_carry_the_premium_with_the_mark() -> None:
    rig = Rig(maker_follow=D("0.5"))  # no lag: a round is seen at the next tick
    rig.at(0, rig.tick, "3000.00")
    rig.at(0, rig.round, "3240.00")  # +8% over the mark
    premiums = []
    for t, price in ((1, "3000.00"), (2, "3000.00"), (4, "3000.00"), (5, "3100.00")):
        rig.at(t, rig.tick, price)
        rig.at(t, lambda: premiums.append((rig.venue.maker_premium, rig.venue.centre())))
    rig.run()
    assert premiums[0] == (D("0.04"), D("3120.000000"))  # half the gap in 1 s
    assert premiums[1] == (D("0.06"), D("3180.000000"))
    assert premiums[2] == (D("0.075"), D("3225.000000"))  # 2 s: 1 - 0.5 ** 2 = 75% of the gap
    assert premiums[3][0] == D("0.0775") and premiums[3][1] == D("3340.250000")  # 3100 x 1.0775: the reference moved


def test_without_an_oracle_the_book_is_the_cex_book() -> None:
    perp, cex = Rig(oracle=None), Rig(venue_type=MockCex, oracle=None)
    for rig in (perp, cex):
        rig.tick("3000.00")
    assert perp.venue.book() == cex.venue.book()
    assert perp.venue.oracle_price == D("3000.00") and perp.venue.compute_mark() == D("3000.00")


# ----------------------------------------------------------------------------- mark


def test_the_mark_is_the_median_of_oracle_plus_basis_book_and_oracle() -> None:
    rig = Rig(maker_lag=100.0, mark_ema=10.0)
    rig.at(0, rig.tick, "3000.00")
    rig.at(0, rig.round, "3000.00")
    rig.at(1, rig.tick, "3000.00")  # E = mid - oracle = 0
    rig.at(2, rig.round, "3240.00")  # the oracle jumps; the book (lag 100 s) stays at 3000
    seen: list[D | None] = []
    rig.at(2, lambda: seen.append(rig.venue.mark_price))
    rig.at(3, rig.tick, "3000.00")
    rig.at(3, lambda: seen.append(rig.venue.mark_price))
    rig.run()
    # at the jump: median(3240 + 0, median(2999.70, 3000.30, mid 3000), 3240) = 3240
    # at the next tick, 2 s after the last: E = (1 - exp(-2/10)) x (3000 - 3240): the mark slides towards the book
    e = CTX.multiply(CTX.subtract(D(1), CTX.exp(D("-0.2"))), D(-240))
    expected = CTX.add(D(3240), e).quantize(D("0.01"), rounding=ROUND_HALF_EVEN)
    assert seen == [D("3240.00"), expected] and expected == D("3196.50")
    marks = [(m.ts, m.venue_ts, m.mark, m.oracle) for m in rig.bus.of(PerpMark)]
    assert marks == [(25 * MS, 0, D("3000.00"), D("3000.00")),  # published only when it changes
                     (2 * NS + 25 * MS, 2 * NS, D("3240.00"), D("3240.00")),
                     (3 * NS + 25 * MS, 3 * NS, D("3196.50"), D("3240.00"))]


def test_the_last_trade_pulls_the_mark_within_the_spread() -> None:
    rig = Rig(mark_ema=0.0, maker_lag=100.0)  # E = mid - oracle: the first term is the book mid
    rig.at(0, rig.tick, "3000.00")
    rig.at(0, rig.round, "2990.00")  # the oracle under the book
    rig.at(1, rig.tick, "3000.00")
    before: list[D | None] = []
    rig.at(1, lambda: before.append(rig.venue.mark_price))
    rig.at(1, rig.venue.submit, Order("s", SELL, D(1)))  # trades at the bid, 2999.70
    rig.run()
    assert before == [D("3000.00")]  # median(mid 3000, median(2999.70, 3000.30, 3000), 2990)
    assert rig.venue.last_trade == D("2999.70") and rig.venue.mark_price == D("2999.70")
    assert rig.bus.of(PerpMark)[-1].mark == D("2999.70")


# ----------------------------------------------------------------------------- positions


def test_fills_move_the_position_and_realize_pnl() -> None:
    rig = Rig()
    rig.tick("3000.00")
    rig.venue.submit(Order("long", BUY, D(3)))  # 2 @ 3000.30, 1 @ 3000.60
    rig.at(1, rig.venue.submit, Order("flip", SELL, D(5)))  # 2 @ 2999.70, 2 @ 2999.40, 1 @ 2999.10
    positions = []
    rig.at(0.5, lambda: positions.append(rig.venue.position))
    reports = rig.run()
    long = positions[0]
    assert (long.size, long.entry_price, long.realized_pnl) == (D(3), D("3000.40"), D(0))
    p = rig.venue.position
    # closes 3 (2 x (2999.70 - 3000.40) + 1 x (2999.40 - 3000.40)), then opens a short of 2 at 2999.25 on average
    assert (p.size, p.entry_price, p.realized_pnl) == (D(-2), D("2999.25"), D("-2.40"))
    assert p.fees == sum(r.fee for r in reports) == D("4.050540") + D("6.748785")  # 4.5 bps of 9001.20 and 14997.30
    assert p.unrealized_pnl(D("2990.00")) == D("18.50")


def test_a_resting_orders_maker_fill_moves_the_position_too() -> None:
    rig = Rig(oracle=None)
    rig.tick("3000.00")
    rig.venue.submit(Order("rest", BUY, D(1), LIMIT, D("2990.00"), GTC))
    rig.at(1, rig.tick, "2985.00")
    _, filled = rig.run()
    assert filled.status == FILLED and filled.fills[0].liquidity == "maker"
    assert rig.venue.position == Position(D(1), D("2990.00"), D(0), D("0.448500"))  # 1.5 bps
    assert rig.venue.unrealized_pnl() == D("-5.00")  # at the mark, 2985.00


def test_position_arithmetic() -> None:
    p = Position().fill(SELL, D(2), D(100)).fill(SELL, D(2), D(110))
    assert (p.size, p.entry_price) == (D(-4), D(105))
    p = p.fill(BUY, D(1), D(95))
    assert (p.size, p.entry_price, p.realized_pnl) == (D(-3), D(105), D(10))  # a short gains when the price falls
    p = p.fill(BUY, D(3), D(100))
    assert (p.size, p.entry_price, p.realized_pnl) == (D(0), D(0), D(25))


# ----------------------------------------------------------------------------- orders are the CEX's


def test_orders_behave_exactly_like_the_cex() -> None:
    def reports(venue_type: type) -> tuple[list[OrderReport], list[BookQuote]]:
        rig = Rig(seed=4, venue_type=venue_type, oracle=None, reject_probability=D("0.3"), rate_limit=5)
        rig.tick("3000.00")
        for i in range(8):
            rig.at(i * 0.01, rig.venue.submit, Order(f"o{i}", BUY if i % 2 else SELL, D("1.5")))
        rig.at(0.5, rig.venue.submit, Order("big", BUY, D(9)))
        rig.at(2, rig.venue.submit, Order("huge", SELL, D(100)))
        return rig.run(), rig.bus.of(BookQuote)

    perp, cex = reports(MockPerp), reports(MockCex)
    assert perp == cex
    statuses = {r.client_id: (r.status, r.reason) for r in perp[0]}
    assert (REJECTED, SIMULATED_REJECT) in statuses.values()
    assert (REJECTED, "rate limit: more than 5 orders per second") in statuses.values()
    (huge,) = [r for r in perp[0] if r.client_id == "huge"]  # more than the bids left
    assert (huge.status, huge.remaining) == (PARTIALLY_FILLED, 0) and 0 < huge.filled_qty < huge.qty


def test_a_price_hyperliquids_rule_refuses_is_rejected_with_the_venues_error_and_never_rests() -> None:
    rig = Rig(oracle=None)
    rig.tick("3000.00")
    rig.venue.submit(Order("six-figures", BUY, D(1), LIMIT, D("2990.01"), GTC))  # on the tick, 6 significant figures
    rig.venue.submit(Order("five", BUY, D(1), LIMIT, D("2990.10"), GTC))  # 5 figures: rests
    rig.venue.submit(Order("integer", BUY, D(1), LIMIT, D("123456"), IOC))  # an integer always passes: fills
    fine = Rig(oracle=None, tick_size=D("0.00001"))
    fine.tick("0.50000")
    fine.venue.submit(Order("decimals", BUY, D(1), LIMIT, D("0.12345"), GTC))  # 5 figures, 5 > 6 - 4 decimals
    reports = {r.client_id: r for r in rig.run() + fine.run()}
    six, dec = reports["six-figures"], reports["decimals"]
    assert (six.status, six.filled_qty) == (REJECTED, 0) and six.reason.startswith(f"invalid order: {HL_BAD_PRICE} (")
    assert "2990.01 has 6 significant figures" in six.reason
    assert dec.status == REJECTED and dec.reason.startswith(f"invalid order: {HL_BAD_PRICE} (")
    assert "more than the 2 decimals" in dec.reason
    assert reports["five"].status == ACCEPTED and reports["integer"].status == FILLED
    assert list(rig.venue._resting) == ["five"] and not fine.venue._resting


# ----------------------------------------------------------------------------- the world


def jump_world(seed: int | None = None, until: float = 420) -> World:
    world = World(load_scenario("oracle-jump", seed=seed))
    world.run(until=until)
    return world


def test_the_same_seed_gives_the_same_messages() -> None:
    a, b, c = jump_world(until=330), jump_world(until=330), jump_world(seed=4, until=330)
    assert a.bus.messages == b.bus.messages
    assert a.bus.of(PerpMark) and a.bus.of(PerpMark) != c.bus.of(PerpMark)


def test_oracle_jump_oracle_and_book_disagree_for_the_maker_lag() -> None:
    scenario = load_scenario("oracle-jump")
    spec = scenario.venue("hyperliquid-eth")
    assert (spec.oracle, spec.maker_lag, spec.maker_follow) == ("hl-eth-oracle", 20.0, D("0.5"))
    world = World(scenario)
    venue = world.venues["hyperliquid-eth"]
    assert isinstance(venue, MockPerp)
    gap: dict[int, D] = {}
    for t in range(290, 431):
        world.run(until=t)
        mid, oracle = venue.book_mid(), venue.oracle_price
        assert mid is not None and oracle is not None
        gap[t] = abs(mid / oracle - 1)
    calm = D("0.0005")
    assert all(gap[t] < calm for t in range(290, 300))
    assert all(gap[t] > D("0.05") for t in range(300, 320))  # entries: the oracle is up, the book is not
    assert all(gap[t] < calm for t in range(330, 360))  # the makers caught up
    assert all(gap[t] > D("0.05") for t in range(360, 380))  # exits: the oracle is back, the book is still up
    assert all(gap[t] < calm for t in range(390, 431))
    # the mark follows the oracle, not the lagging book; the bot sees it after the inbound delay
    t0 = scenario.start_ns
    jumped = [m for m in world.bus.of(PerpMark) if t0 + 300 * NS <= m.venue_ts < t0 + 320 * NS]
    assert jumped and all(m.mark > D("1.05") * m.oracle / D("1.08") for m in jumped)
    assert all(100 * MS <= m.ts - m.venue_ts <= 140 * MS for m in world.bus.of(PerpMark))


# ----------------------------------------------------------------------------- scenario fields


PERP = """
duration = 60
[reference]
start_price = "3000.00"
[oracles.o1]
heartbeat = 3
[venues.p]
kind = "{kind}"
instrument = "ETH-PERP"
depth_levels = 3
level_size = "2"
spread_bps = 2
taker_fee_bps = 4
{extra}
"""


def _error(text: str) -> str:
    with pytest.raises(ScenarioError) as info:
        parse_scenario(text, file="fixtures/scenarios/x.toml")
    return str(info.value)


def test_perp_fields_parse_with_defaults() -> None:
    p = parse_scenario(PERP.format(kind="perp", extra="")).venue("p")
    assert (p.oracle, p.maker_lag, p.maker_follow, p.mark_ema) == ("o1", 0.0, D(1), 150.0)  # the only off-chain oracle
    none = parse_scenario(PERP.format(kind="perp", extra="").replace("[oracles.o1]\nheartbeat = 3\n", ""))
    assert none.venue("p").oracle is None
    given = parse_scenario(PERP.format(kind="perp", extra='oracle = "o1"\nmaker_lag = 2.5\nmaker_follow = "0.2"\n'
                                                          "mark_ema = 0"))
    assert given.venue("p") == replace(p, maker_lag=2.5, maker_follow=D("0.2"), mark_ema=0.0)


@pytest.mark.parametrize("kind,extra,path,words", [
    ("cex", "maker_lag = 5", "venues.p.maker_lag", "only for perp venues (this venue's kind is 'cex')"),
    ("cex", 'oracle = "o1"', "venues.p.oracle", "only for perp venues"),
    ("perp", 'oracle = "o2"', "venues.p.oracle", "unknown oracle 'o2' (declared: o1)"),
    ("perp", "maker_follow = 0", "venues.p.maker_follow", "expected a fraction in (0, 1], got 0"),
    ("perp", "maker_follow = 1.5", "venues.p.maker_follow", "got 1.5"),
    ("perp", "maker_lag = -1", "venues.p.maker_lag", "expected a number >= 0, got -1"),
    ("perp", "mark_ema = 'slow'", "venues.p.mark_ema", "got 'slow'"),
    ("perp", "[oracles.o2]\nheartbeat = 3", "venues.p.oracle", "several off-chain oracles: o1, o2"),
])
def test_bad_perp_fields_name_file_and_path(kind: str, extra: str, path: str, words: str) -> None:
    text = PERP.format(kind=kind, extra="" if extra.startswith("[") else extra)
    if extra.startswith("["):
        text = text.replace("[venues.p]", extra + "\n[venues.p]")
    message = _error(text)
    assert message.startswith(f"fixtures/scenarios/x.toml: {path}: "), message
    assert words in message
