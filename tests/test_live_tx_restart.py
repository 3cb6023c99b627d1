"""A restarted EVM gateway ends every intent the previous process left open exactly once, from the
log and a scripted chain (no node): a bundle whose target block passed is dropped, an intent that
was never signed fails "not sent", one that already ended is left alone; and it reconciles before
anything else."""
from __future__ import annotations

import asyncio
from typing import Any

from tapedeck.domain import events as ev
from tapedeck.live.evm_gateway import EvmGateway, EvmGatewayConfig
from tapedeck.live.keys import key_from_hex
from tests.test_nonces import FakeChain

KEY = key_from_hex("0x" + "7a" * 32, "test")


def _intent(seq: int) -> ev.OrderIntended:
    return ev.OrderIntended(seq=seq, ts=1, strategy="s", venue="aave-v3:c", instrument="0x" + "01" * 20 + "/0x" + "02" * 20,
                            side="liquidate", amount=5, notional=5, target="0x" + "03" * 20, client_id=f"c{seq}",
                            route=("0x" + "04" * 20,))


def test_restart_ends_each_open_intent_once() -> None:
    me = KEY.address.lower()
    bundle = ev.TransactionSigned(seq=3, ts=1, intent=2, chain="c", tx="0x" + "aa" * 32, sender=me, nonce=0, gas=1,
                                  max_fee=2, max_priority_fee=1, raw="0x02", route="bundle", target_block=99)
    log: list[ev.Event] = [
        _intent(1), ev.OrderFailed(seq=2, ts=1, intent=1, venue="aave-v3:c", reason="would revert"),  # ended
        _intent(2), bundle,  # a bundle for block 99; the chain is at 100
        _intent(4),  # recorded, never acted on
    ]
    chain = FakeChain(latest=0, head=100)
    reported: list[ev.Event] = []
    gw = EvmGateway(EvmGatewayConfig(chain="c", rpc_url="http://127.0.0.1:1", liquidator="0x" + "05" * 20),
                    key=KEY, execute=True, rpc=chain, flush=lambda: None, report=reported.append)
    gw.restore(log)

    async def go() -> None:
        await gw.start()
        await gw.drain()

    asyncio.run(go())
    names = [type(e).__name__ for e in reported]
    assert names == ["TransactionDropped", "NonceReconciled", "OrderFailed", "OrderFailed"]
    ends: dict[int, list[str]] = {}
    for e in reported:
        if type(e) is ev.OrderFailed:
            ends.setdefault(e.intent, []).append(e.reason)
    assert ends == {2: ["dropped: bundle not included by its target block 99 (head 100)"],
                    4: ["not sent: the previous process stopped before acting on it"]}
    assert reported[1].next_nonce == 0 and chain.sent == []  # the bundle's nonce is free; nothing sent
    assert gw.nonces.reconciled and gw.health()["open_transactions"] == 0
