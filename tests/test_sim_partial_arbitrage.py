"""A sim arbitrage whose legs did not both go through books what the leg that did moved (read from
its token Transfer logs), and outcomes mark it at the named ETH price instead of booking nothing."""
from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from eth_utils import keccak, to_checksum_address

from tapedeck.domain import events as ev
from tapedeck.runtime.outcomes import outcomes
from tapedeck.sim.gateway import PoolArbitrage
from tapedeck.sim.onchain import SUCCESS, TxOutcome


def address(text: str) -> str:
    return to_checksum_address("0x" + text.rjust(40, "0"))


BOT, POOL = address("b07"), address("9001")
TRANSFER_ABI = [{"type": "event", "name": "Transfer", "anonymous": False,
                 "inputs": [{"name": "from", "type": "address", "indexed": True},
                            {"name": "to", "type": "address", "indexed": True},
                            {"name": "value", "type": "uint256", "indexed": False}]}]
TRANSFER = keccak(text="Transfer(address,address,uint256)")


class Token:
    """Test-only stand-in for a web3 ERC-20 contract (its address and ABI)."""

    def __init__(self, address: str):
        self.address, self.abi = address, TRANSFER_ABI


def receipt(*transfers: tuple[str, str, str, int]) -> dict[str, Any]:
    """A receipt whose logs are these ERC-20 Transfers (token, from, to, value), as the chain logs them:
    every token's share the event's signature, so only the log's address tells them apart."""
    word = lambda a: bytes(12) + bytes.fromhex(a[2:])  # noqa: E731 - an address as a topic
    return {"logs": [{"address": t, "topics": [TRANSFER, word(f), word(to)], "data": v.to_bytes(32, "big")}
                     for t, f, to, v in transfers]}


def executor(usdc: Token, weth: Token) -> PoolArbitrage:
    arb = PoolArbitrage.__new__(PoolArbitrage)  # no chain: only the result/booking code is under test
    arb.dex, arb.bot, arb.venue = SimpleNamespace(usdc=usdc, weth=weth), BOT, "ethereum"
    return arb


def leg(status: str, name: str | None, reason: str = "") -> TxOutcome:
    return TxOutcome(tx=None, block=7, ts=0, index=1, status=status, gas_used=120_000, gas_price=2 * 10**10,
                     receipt=RECEIPTS[name] if name else None, reason=reason)


INTENT = ev.OrderIntended(seq=4, ts=1, strategy="arb", venue="ethereum", instrument="uniswap-v2->uniswap-v3",
                          side="arb", amount=3_000 * 10**6, notional=3_000 * 10**6)
USDC, WETH = Token(address("05dc")), Token(address("0e74"))
RECEIPTS = {"r1": receipt((USDC.address, BOT, POOL, 3_000 * 10**6), (WETH.address, POOL, BOT, 15 * 10**17)),
            "r2": receipt((WETH.address, BOT, POOL, 15 * 10**17), (USDC.address, POOL, BOT, 3_100 * 10**6))}


def test_first_leg_alone_books_the_usdc_paid_and_the_weth_held_then_fails() -> None:
    out = executor(USDC, WETH)._result(INTENT, leg(SUCCESS, "r1"), leg("reverted", "r2", "too little received"))
    assert [type(e) for e in out] == [ev.InventoryChanged, ev.InventoryChanged, ev.OrderFailed]
    assert [(e.asset, e.delta) for e in out[:2]] == [("USDC", -3_000 * 10**6), ("WETH", 15 * 10**17)]
    assert all(e.strategy == "arb" and e.intent == 4 and "leg 1 alone" in e.reason for e in out[:2])
    assert out[-1].reason == "leg 2 reverted: too little received"

    oracle = ev.OracleUpdated(ts=0, feed="eth-usd", chain="ethereum", round_id=1, answer=1_900 * 10**8, decimals=8)
    decoy = ev.OracleUpdated(ts=9, feed="hl-eth-oracle", chain="", round_id=1, answer=9_999 * 10**8, decimals=8)
    r = outcomes([oracle, INTENT, *out, decoy], "oracle:eth-usd")["arb"]
    assert r.inventory_value == -3_000 * 10**6 + 1_900 * 15 * 10**5  # 1.5 WETH at the named feed: -150 USDC
    assert r.pnl == r.executed_pnl == r.inventory_value and r.lost == 1


def test_second_leg_alone_sells_weth_the_bot_held_and_books_that() -> None:
    out = executor(USDC, WETH)._result(INTENT, leg("nonce too low", None), leg(SUCCESS, "r2"))
    assert [(e.asset, e.delta) for e in out if type(e) is ev.InventoryChanged] == [("USDC", 3_100 * 10**6),
                                                                                   ("WETH", -15 * 10**17)]
    assert "leg 2 alone" in out[0].reason and out[-1].reason == "leg 1 nonce too low"


def test_both_legs_or_neither_leave_no_inventory_record() -> None:
    both = executor(USDC, WETH)._result(INTENT, leg(SUCCESS, "r1"), leg(SUCCESS, "r2"))
    assert [type(e) for e in both] == [ev.OrderFilled] and both[0].amount == 3_100 * 10**6
    neither = executor(USDC, WETH)._result(INTENT, leg("reverted", "r1", "x"), leg("reverted", "r2", "y"))
    assert [type(e) for e in neither] == [ev.OrderFailed] and neither[0].reason == "leg 1 reverted: x; leg 2 reverted: y"


def test_a_log_that_does_not_decode_as_the_event_is_skipped_as_webs_discard_did() -> None:
    ok = receipt((USDC.address, POOL, BOT, 7))
    nft = {"address": USDC.address, "topics": [*ok["logs"][0]["topics"], (5).to_bytes(32, "big")], "data": b""}
    out = leg(SUCCESS, None)
    for logs, moved in (([nft], 0), ([nft, *ok["logs"]], 7)):  # ERC-721's Transfer: 4 topics, no data
        got = executor(USDC, WETH)._net_transfer(USDC, TxOutcome(**{**out.__dict__, "receipt": {"logs": logs}}))
        assert got == moved
