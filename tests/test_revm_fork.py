"""Paper execution on a revm fork of the node's state (``[[gateways]] simulate = "revm-fork"``,
``sim.chain.revm_fork``) gives the same outcomes as the node's own ``eth_simulateV1``, on anvil
with the sim's Aave v3 + Uniswap V2 deployment (``tests/test_live_tx_gateway``'s world): the same
events (fills, inventory changes, gas fees to the wei) for a liquidation through the executor, an
atomic arbitrage and a plain swap; the same "would revert" reason; nothing sent; one fork per head,
reused by the intents of that block."""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import msgspec
import pytest

from tapedeck.domain import events as ev
from tapedeck.live.evm_gateway import EvmGateway, EvmGatewayConfig, EvmGatewayConfigError
from tapedeck.live.fees import GWEI
from tests.test_live_tx_gateway import E6, Recorder, _config, _fresh, _intent, _run, msgspec_replace
from tests.test_live_tx_gateway import world  # noqa: F401 - the module's anvil world (a fixture)

pytestmark = [pytest.mark.contract, pytest.mark.slow]


def _body(events: list[ev.Event]) -> list[tuple[str, list[tuple[str, Any]]]]:
    """What a paper report says, without its seq/ts stamps."""
    return [(type(e).__name__, sorted((k, v) for k, v in msgspec.structs.asdict(e).items() if k not in ("seq", "ts")))
            for e in events]


def _intents(world: Any) -> list[ev.OrderIntended]:
    """A liquidation through the executor, an atomic arbitrage, a plain swap, and a liquidation that
    would revert (ProfitBelowMinimum): the shapes of ``tests/test_live_tx_gateway``."""
    arb = ev.OrderIntended(seq=2, ts=1, source="engine", strategy="arb", venue="anvil:arb-executor",
                           instrument="weth-usdc->weth-usdc-2", side="arb", amount=20_000 * E6, notional=20_000 * E6,
                           max_priority_fee=GWEI, client_id="a2", route=("weth-usdc", "weth-usdc-2"), min_profit=1)
    swap = ev.OrderIntended(seq=3, ts=1, source="engine", strategy="cd", venue="anvil:swap", instrument="weth-usdc",
                            side="buy", amount=10_000 * E6, notional=10_000 * E6, max_priority_fee=GWEI,
                            client_id="s3", min_profit=1, profit_asset="WETH")
    greedy = msgspec_replace(_intent(world, 4), min_profit=10**15)
    return [_intent(world, 1), arb, swap, greedy]


def test_paper_on_a_revm_fork_reports_what_eth_simulate_reports(world: Any, tmp_path: Path) -> None:  # noqa: F811
    _fresh(world)
    w3 = world["chain"].w3
    head0, nonce0 = w3.eth.block_number, w3.eth.get_transaction_count(world["bot"])
    intents = _intents(world)
    node = _run(EvmGateway(_config(world)), Recorder(tmp_path / "node.db"), intents)
    gw = EvmGateway(dataclasses.replace(_config(world), simulate="revm-fork"))
    fork = _run(gw, Recorder(tmp_path / "fork.db"), intents)
    assert (w3.eth.block_number, w3.eth.get_transaction_count(world["bot"])) == (head0, nonce0)  # nothing sent
    names = [type(e).__name__ for e in node]
    assert names.count("OrderFilled") == 3 and names.count("OrderFailed") == 1  # each kind exercised
    assert any("ProfitBelowMinimum(" in getattr(e, "reason", "") for e in node)
    assert sorted(_body(fork)) == sorted(_body(node))  # (their tasks interleave: compared as sets)
    assert all(e.source == "paper:evm:anvil" for e in fork)
    assert gw.fork_stats == {"forks": 1, "calls": 4}  # all four on one fork of the one head
    assert gw._fork is None and gw._fork_pool is None  # let go on close


def test_an_unknown_simulate_option_is_refused_by_name() -> None:
    with pytest.raises(EvmGatewayConfigError, match="simulate must be one of eth_call, revm-fork"):
        EvmGatewayConfig.from_mapping({"chain": "x", "rpc_url": "http://127.0.0.1:1", "simulate": "tenderly"})
