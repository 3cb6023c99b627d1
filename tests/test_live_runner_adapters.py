"""The real adapters plugged into the runner by ``kind`` (skipped until they are merged): the Binance
source against the local playback of the real 2024-08-08 recording with the book gateway filling on
paper, and the EVM source and gateway against anvil on 127.0.0.1, stopped and resumed. Each run's
log verifies; the resumed chain has every block once."""
from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path

import pytest

from tapedeck.domain import events as ev
from tapedeck.live.runner import LiveRunner
from tests.test_live_runner import BASE, config, events, settings, verified

pytestmark = pytest.mark.slow
OPS = BASE.replace("[ops]\nenabled = false", "[ops]\nport = 0").replace("every = 3", "every = 50")


def run_until(runner: LiveRunner, events_at_least: int, tick=None) -> None:  # type: ignore[no-untyped-def]
    async def main() -> None:
        task = asyncio.get_running_loop().create_task(runner.run())
        for _ in range(3000):
            await asyncio.sleep(0.01)
            if tick is not None:
                await asyncio.to_thread(tick)
            if runner.metrics.recorded >= events_at_least or task.done():
                break
        runner.stop()
        await task

    asyncio.run(main())


def test_binance_source_and_book_gateway_on_paper(tmp_path: Path) -> None:
    pytest.importorskip("tapedeck.live.binance_source")
    from tapedeck.live.playback import BinancePlayback
    from tests.conftest import require_data

    require_data("binance-ethusdt-ws-2024-08-08")
    out = tmp_path / "run.db"

    async def play() -> None:
        async with BinancePlayback(rate=3000) as pb:
            cfg = config(tmp_path, OPS + f'''
[[sources]]
kind = "binance"
name = "binance"
url = "{pb.url}"
symbols = ["ETHUSDT"]

[[gateways]]
kind = "book"
venue = "binance"
''')
            runner = LiveRunner(settings(cfg), out=str(out), signals=False).prepare()
            task = asyncio.get_running_loop().create_task(runner.run())
            for _ in range(3000):
                await asyncio.sleep(0.01)
                if runner.metrics.recorded >= 2000:
                    break
            runner.stop()
            await task

    asyncio.run(play())
    c = Counter(type(e) for e in events(out))
    assert c[ev.QuoteUpdated] > 1000 and c[ev.OrderIntended] > 10
    assert c[ev.OrderFilled] == c[ev.OrderIntended]  # the book gateway's paper fills, against the live book
    assert {e.source for e in events(out) if type(e) is ev.OrderFilled} == {"paper"}
    assert verified(out).status == "verified"


def test_evm_source_and_gateway_on_anvil_stop_and_resume(tmp_path: Path) -> None:
    pytest.importorskip("tapedeck.live.evm_source")
    pytest.importorskip("tapedeck.live.evm_gateway")
    from tapedeck.sim.chain import uniswap_v2 as u2
    from tapedeck.sim.chain.anvil import AnvilChain

    out = tmp_path / "run.db"
    with AnvilChain() as anvil:
        v2 = u2.deploy_v2_pair(anvil.w3)  # the sim's Uniswap V2 pair, for the source to follow
        u2.add_liquidity(v2, 10**21, 2 * 10**21)
        cfg = config(tmp_path, OPS + f'''
[[sources]]
kind = "evm"
name = "anvil"
chain = "anvil"
ws_url = "{anvil.ws_url}"
http_url = "{anvil.url}"
v2_pairs = ["{v2.pair.address}"]

[[gateways]]
kind = "evm"
venues = ["aave-v3:anvil"]
chain = "anvil"
rpc_url = "{anvil.url}"
sender = "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"
''')
        mine = lambda: anvil.rpc("evm_mine", [])  # noqa: E731
        run_until(LiveRunner(settings(cfg), out=str(out), signals=False).prepare(), 20, mine)
        for _ in range(5):
            mine()  # mined while nobody listens: the resumed source backfills them
        second = LiveRunner(settings(cfg), out=str(out), signals=False).prepare()
        assert second.resumed
        run_until(second, 60, mine)
    evs = events(out)
    blocks = [e.number for e in evs if type(e) is ev.BlockProduced]
    assert len(blocks) > 20 and blocks == list(range(blocks[0], blocks[0] + len(blocks)))  # each once, none missed
    assert any(type(e) is ev.V2ReservesSynced for e in evs)  # the pair's state, from the adapter's snapshot
    assert verified(out).status == "verified"


def test_execute_with_a_book_gateway_venue_that_has_no_executor_refuses_to_start() -> None:
    """--execute on a book gateway whose venue has no [book_gateway.<venue>] table (no keys, so no executor)
    is refused when the runner builds it, naming the venue: it used to start "EXECUTING" and fail every order."""
    from tapedeck.domain.state import MarketState
    from tapedeck.live.config import AdapterSpec
    from tapedeck.live.runner import AdapterContext, book_gateway

    spec = AdapterSpec(kind="book", name="book", params={}, venues=("binance",))
    ctx = AdapterContext(name="book", clock=lambda: 0, execute=True, state=MarketState(), config={})
    with pytest.raises(ValueError, match=r"--execute: no executor for venue\(s\) binance: .*\[book_gateway.<venue>\]"):
        book_gateway(spec, ctx)
    paper = AdapterContext(name="book", clock=lambda: 0, execute=False, state=MarketState(), config={})
    assert book_gateway(spec, paper).executors == {}  # paper: fills from the book, no executor asked for
