"""The liquidation summary is computed from recorded events: wins from fills, losses from failures
(grouped by whom they lost to), realised profit from the executor's balance moves, latencies from
event times."""
from __future__ import annotations

from tapedeck.domain import events as ev
from tapedeck.runtime.liquidation_report import liquidation_reports

MS = 10**6


def opportunity(seq: int, ts: int, client_id: str, path: str, latency: int, profit: int) -> ev.Event:
    return ev.LiquidationOpportunity(seq=seq, ts=ts, cause=seq - 1, strategy="liq", user="0xu" + client_id,
                                     collateral_asset="0xc", debt_asset="0xd", debt_to_cover=1000,
                                     collateral_to_liquidator=5, protocol_fee=1, proceeds=1100, flash_premium=0,
                                     gas_cost=10, expected_profit=profit, health_factor=9 * 10**17, path=path,
                                     latency_ns=latency, detected_cause=seq - 1, route=("0xp",), client_id=client_id,
                                     rules="v3.0")


def intent(seq: int, ts: int, client_id: str, private: bool) -> ev.Event:
    return ev.OrderIntended(seq=seq, ts=ts, strategy="liq", venue="aave-v3:sim", instrument="0xc/0xd",
                            side="liquidate", amount=1000, notional=1000, target="0xu", client_id=client_id,
                            route=("0xp",), min_profit=5, profit_asset="0xd", private=private)


def test_wins_losses_profit_and_latencies_come_from_the_recorded_outcomes() -> None:
    tape = [
        opportunity(2, 100 * MS, "liq-1", "fast", 0, 90), intent(3, 100 * MS, "liq-1", True),
        opportunity(4, 200 * MS, "liq-2", "scan", 40 * MS, 70), intent(5, 200 * MS, "liq-2", False),
        ev.LiquidationSkipped(seq=6, ts=300 * MS, strategy="liq", user="0xv", reason="below min_profit",
                              health_factor=9 * 10**17, expected_profit=1, debt_asset="0xd", path="fast"),
        ev.TransactionIncluded(seq=7, ts=1100 * MS, intent=3, chain="sim", tx="t1", block=9, index=0,
                               status="success", gas_used=300_000, gas_price=10**9),
        ev.OrderFilled(seq=8, ts=1100 * MS, intent=3, venue="aave-v3:sim", amount=5, notional=1000,
                       fee=3 * 10**14, fee_asset="ETH"),
        ev.InventoryChanged(seq=9, ts=1100 * MS, intent=3, venue="aave-v3:sim", strategy="liq", asset="WETH", delta=-5),
        ev.InventoryChanged(seq=10, ts=1100 * MS, intent=3, venue="aave-v3:sim", strategy="liq", asset="USDC",
                            delta=1087),
        ev.OrderFailed(seq=11, ts=1200 * MS, intent=5, venue="aave-v3:sim",
                       reason="reverted: 43; liquidated first in block 10 by copycat"),
    ]
    (r,) = liquidation_reports(tape)
    assert (r.found["fast"], r.found["scan"], r.attempted, r.private, r.won) == (1, 1, 2, 1, 1)
    assert r.realised == [87] and r.expected == [90, 70] and r.gas_wei == 3 * 10**14
    assert r.lost == {"reverted: 43; liquidated first by copycat": 1} and r.skipped == {"below min_profit": 1}
    assert r.detection_ns == {"fast": [0], "scan": [40 * MS]} and r.inclusion_ns == [1000 * MS]
    assert r.won_by_path == {"fast": 1}
    text = "\n".join(r.lines())
    assert "found 1 by the fast path, 1 by the scan path" in text and "won 1, lost 1, skipped 1" in text
    assert "detection latency (scan): median 40.0 ms" in text and "liquidated first by copycat x1" in text


def test_a_run_without_liquidation_decisions_has_no_report() -> None:
    assert liquidation_reports([ev.KillSwitchSet(ts=1, engaged=False)]) == []
