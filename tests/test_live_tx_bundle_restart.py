"""Issue 13: a private liquidation's bundle signed and saved (``TransactionSigned`` flushed) but never
sent to the relay before the process stopped. On the restart the gateway restores from the log and
reconciles: while its target block is still ahead the *same recorded bytes* go to the relay (one
``TransactionBroadcast`` saying so) and land once; when its target block went by meanwhile it is
dropped, recorded (``TransactionDropped`` + ``OrderFailed``), the relay gets nothing and the nonce is
free again. On anvil (127.0.0.1) with the sim's Aave v3 deployment and a local relay."""
from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from tapedeck.adapters.eventlog import EventLog
from tapedeck.domain import events as ev
from tapedeck.live.evm_gateway import EvmGateway
from tapedeck.live.flashbots import FlashbotsRelay
from tapedeck.live.keys import key_from_hex
from tests.test_live_tx_gateway import (BOT_SECRET, RELAY_SECRET, Recorder, _config, _fresh, _intent, _of,  # noqa: F401
                                        world)

pytestmark = [pytest.mark.contract, pytest.mark.slow]


async def _crash_after_signing(world: Any, path: Path, relay_url: str) -> ev.TransactionSigned:
    """A first process: the bundle is signed and saved, then it stops before the relay sees it
    (its ``_broadcast`` never runs: what ``kill -9`` right after the save leaves)."""
    rec = Recorder(path)
    gw = EvmGateway(_config(world), key=key_from_hex(BOT_SECRET, "test"), execute=True, flush=rec.flush,
                    relay=FlashbotsRelay(relay_url, key_from_hex(RELAY_SECRET, "test"), name="local"))

    async def never_sent(*_: Any, **__: Any) -> None:
        return None

    gw._broadcast = never_sent  # type: ignore[method-assign]

    gw.bind(rec.report)
    await gw.start()
    gw.submit(rec.intent(_intent(world, private=True)))
    await gw.drain()
    rec.log.flush()
    rec.log._datastore.close()  # no close(): the run is left open, as a killed process leaves it
    rec.log._writer.release()  # type: ignore[union-attr]
    [signed] = _of(rec.events, ev.TransactionSigned)
    assert signed.route == "bundle" and not _of(rec.events, ev.TransactionBroadcast)
    return signed


async def _restart(world: Any, path: Path, relay_url: str) -> list[ev.Event]:
    log = EventLog.open(path, resume=True)
    before = log.next_seq
    gw = EvmGateway(_config(world), key=key_from_hex(BOT_SECRET, "test"), execute=True, flush=log.flush,
                    relay=FlashbotsRelay(relay_url, key_from_hex(RELAY_SECRET, "test"), name="local"))
    gw.restore(log.events())

    gw.bind(log.append)
    await gw.start()
    await gw.close()
    log.close("clean")
    return [e for e in EventLog.open(path).events() if e.seq >= before]


@pytest.mark.parametrize("blocks_meanwhile", [0, 2])
def test_a_bundle_signed_but_never_sent_is_sent_from_the_log_or_dropped(world: Any, tmp_path: Path,
                                                                        blocks_meanwhile: int) -> None:
    from tests.test_flashbots import LocalRelay

    _fresh(world)
    chain, w3 = world["chain"], world["chain"].w3
    nonce0 = w3.eth.get_transaction_count(world["bot"])
    path = tmp_path / "run.db"

    async def main() -> tuple[ev.TransactionSigned, list[ev.Event], LocalRelay]:
        relay = await LocalRelay(chain.url).start()
        try:
            signed = await _crash_after_signing(world, path, relay.url)
            assert all(p["method"] != "eth_sendBundle" for _, _, p in relay.requests)
            for _ in range(blocks_meanwhile):
                await asyncio.to_thread(chain.rpc, "evm_mine", [])
            try:  # a bundle nobody sends is followed until its target block, which never comes: bounded
                after = await asyncio.wait_for(_restart(world, path, relay.url), 90)
            except asyncio.TimeoutError:
                raise AssertionError("the restart never settled the bundle (not sent, not dropped)") from None
            return signed, after, relay
        finally:
            await relay.stop()

    signed, after, relay = asyncio.run(main())
    sent = [p for _, _, p in relay.requests if p["method"] == "eth_sendBundle"]
    [recon] = _of(after, ev.NonceReconciled)
    if blocks_meanwhile == 0:  # target block still ahead: the recorded bytes to the relay, once, and mined
        assert [p["params"][0]["txs"] for p in sent] == [[signed.raw]]
        [bcast] = _of(after, ev.TransactionBroadcast)
        assert bcast.tx == signed.tx and bcast.detail.startswith("sent from the log after a restart")
        [inc] = _of(after, ev.TransactionIncluded)
        assert inc.tx == signed.tx and inc.status == "success"
        assert len(_of(after, ev.OrderFilled)) == 1 and not _of(after, ev.OrderFailed)
        assert w3.eth.get_transaction_count(world["bot"]) == nonce0 + 1
        assert w3.eth.get_transaction_receipt(signed.tx)["blockNumber"] == inc.block
        assert signed.tx in recon.open
    else:  # its blocks went by: dropped, recorded, nothing to the relay, the nonce free again
        assert sent == []
        [drop] = _of(after, ev.TransactionDropped)
        assert drop.tx == signed.tx and "bundle not included by its target block" in drop.reason
        [failed] = _of(after, ev.OrderFailed)
        assert failed.intent == signed.intent and failed.reason.startswith("dropped: bundle not included")
        assert not _of(after, ev.TransactionBroadcast) and not _of(after, ev.TransactionIncluded)
        assert w3.eth.get_transaction_count(world["bot"]) == nonce0 == recon.next_nonce
        assert chain.rpc("eth_getTransactionReceipt", [signed.tx]) is None
    assert not _of(after, ev.TransactionSigned)  # nothing signed anew for that nonce
