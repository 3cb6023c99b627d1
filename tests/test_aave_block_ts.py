"""``block_ts`` on the Aave log events: every source fills it with the block's timestamp, old logs
load with 0 (unknown), and the borrower book accrues interest from the block's second rather than
from the event time (live, the time the log was received).
"""
from __future__ import annotations

from typing import Any

import eth_abi
import msgspec
import pytest

from tapedeck.adapters.aave_v3_logs import DECODER
from tapedeck.domain import aave_v3 as m
from tapedeck.domain import codec
from tapedeck.domain import events as ev
from tapedeck.domain.aave_book import AaveBook, chain_time_s
from tapedeck.domain.strategies.aave_liquidator import AaveLiquidator
from tapedeck.domain.state import MarketState
from tests.test_aave_book_tape import NS, Tape, addr, fresh_reserves

AAVE_LOGS = [c for c in ev.EVENT_TYPES if issubclass(c, ev.AaveLog)] + [ev.AaveLiquidationObserved]


def test_every_aave_log_class_carries_block_ts_and_describes_the_version_before_it() -> None:
    assert len(AAVE_LOGS) == 10
    for cls in AAVE_LOGS:
        assert "block_ts" in cls.__struct_fields__
        before = cls.PAST[cls.SCHEMA - 1]
        assert "block_ts" not in before.fields and before.upgrade({})["block_ts"] == 0, cls


@pytest.mark.parametrize("cls", AAVE_LOGS, ids=lambda c: c.__name__)
def test_a_body_stored_before_block_ts_loads_with_0_unknown(cls: type[ev.Event]) -> None:
    fields = cls.PAST[cls.SCHEMA - 1].fields
    sample = {"seq": 3, "ts": 5 * NS, "source": "old", "cause": 0, "chain": "x", "block": 9, "tx": "0x01",
              "log_index": 2, "enabled": True, "use_atokens": False, "receive_atoken": False}
    values = [sample.get(f, 7 if f not in ("reserve", "user", "on_behalf_of", "to", "repayer", "target",
                                           "initiator", "asset", "sender", "recipient", "collateral_asset",
                                           "debt_asset", "liquidator") else "0xab") for f in fields]
    body = msgspec.json.encode([cls.__name__, *values])
    e = codec.decode(f"{cls.__name__}.v{cls.SCHEMA - 1}", body)
    assert type(e) is cls and e.block_ts == 0 and (e.block, e.log_index, e.seq) == (9, 2, 3)
    now = msgspec.structs.replace(e, block_ts=1_700_000_000)
    assert codec.decode(codec.topic(cls), codec.encode(now)) == now  # the current version keeps it


def test_chain_time_is_block_ts_when_known_else_event_time() -> None:
    e = ev.AaveSupplied(ts=1_700_000_030 * NS + 5, chain="x", block=1, tx="0x", log_index=0, reserve="0xa", user="0xb",
                        on_behalf_of="0xb", amount=1, referral=0)
    assert chain_time_s(e) == 1_700_000_030
    assert chain_time_s(msgspec.structs.replace(e, block_ts=1_700_000_000)) == 1_700_000_000
    assert chain_time_s(ev.TimerFired(ts=7 * NS, strategy="s", key="k")) == 7


def _late(tape: Tape, delay_s: int, stamped: bool) -> list[ev.Event]:
    """The tape's events as a live source sees them: received ``delay_s`` after their block, with
    ``block_ts`` (the block's second, what the tape's contracts accrued to) or without it."""
    out = []
    for e in tape.events:
        if isinstance(e, (ev.AaveLog, ev.AaveLiquidationObserved)):
            e = msgspec.structs.replace(e, ts=e.ts + delay_s * NS, block_ts=e.ts // NS if stamped else 0)
        out.append(e)
    return out


def _tape() -> tuple[Tape, str]:
    t = Tape(fresh_reserves())
    weth, usdc = t.reserves[0], t.reserves[1]
    user = addr(0x51, 1)
    t.supply(addr(0x52, 9), usdc, 10**7 * 10**6)
    t.supply(user, weth, 100 * 10**18)
    t.advance(3600)
    t.borrow(user, usdc, 100_000 * 10**6)
    t.advance(86_400)
    t.repay(user, usdc, 10 * 10**6)  # an index update one day later: the book's reserve moves to its block
    return t, user


def test_the_book_accrues_from_the_block_second_not_from_when_the_log_arrived() -> None:
    t, user = _tape()
    usdc = t.reserves[1]
    stamped, unstamped = AaveBook(), AaveBook()
    for e in _late(t, 30, stamped=True):
        stamped.apply(e)
    for e in _late(t, 30, stamped=False):
        unstamped.apply(e)
    assert stamped.reserves[usdc.asset].last == t.now  # the block's second, as ReserveLogic stores it
    assert unstamped.reserves[usdc.asset].last == t.now + 30  # event time: 30 s late
    later = t.now + 600
    want = t.balance(user, usdc)[1]  # the contracts' debt at the tape's last block
    _, at_block = stamped.balances(user, usdc.asset, t.now)
    assert at_block == want
    # the debt index at a later second: the contract's from the block's second, exactly
    dbt = m.normalized_debt(usdc.vbi, usdc.vbr, t.now, later)
    assert stamped.reserves[usdc.asset].debt_index(later) == dbt
    assert unstamped.reserves[usdc.asset].debt_index(later) != dbt  # 30 s of interest short: the bug it fixes


def test_the_liquidator_evaluates_an_aave_log_at_its_block_second() -> None:
    t, user = _tape()
    book_seen: list[int] = []
    strat = AaveLiquidator(name="liq", chain="sim")
    orig = strat.book.evaluate  # the fast path evaluates the users an event names in one pass

    def spy(addresses: Any, now_s: int, *a: Any) -> Any:
        book_seen.append(now_s)
        return orig(addresses, now_s, *a)

    strat.book.evaluate = spy  # type: ignore[method-assign]
    state = MarketState()
    last = _late(t, 45, stamped=True)[-1]
    for e in _late(t, 45, stamped=True):
        strat.on_event(e, state)
    assert isinstance(last, ev.AaveRepaid) and book_seen[-1] == last.block_ts == t.now


def _aave_log(event: str, args: dict[str, Any], pool: str, n: int, i: int, block_hash: str) -> dict[str, Any]:
    layout = DECODER.layout(event)
    topics = ["0x" + layout.topic0.hex()] + ["0x" + eth_abi.encode([ty], [args[k]]).hex() for k, ty in layout.indexed]
    data = "0x" + eth_abi.encode([ty for _, ty in layout.data], [args[k] for k, _ in layout.data]).hex()
    return {"address": pool, "topics": topics, "data": data, "blockNumber": hex(n), "blockHash": block_hash,
            "transactionHash": "0x" + "22" * 32, "logIndex": hex(i)}


def test_the_live_evm_source_stamps_aave_logs_with_their_block_header_time() -> None:
    from tapedeck.live.evm_source import EvmSource, Head

    pool, reserve, user = "0x" + "a0" * 20, "0x" + "11" * 20, "0x" + "51" * 20
    s = EvmSource("evm-x", chain="x", http_url="http://127.0.0.1:1", aave_pools=[pool], snapshot=False)
    out: list[ev.Event] = []
    s._emit = out.append
    head = Head(7, "0x" + "07" * 32, "0x" + "06" * 32, 1_700_000_123, 10**9, 21_000, 30_000_000)
    s._apply(head, [_aave_log("Supply", dict(reserve=reserve, user=user, onBehalfOf=user, amount=5, referralCode=0),
                              pool, 7, 0, head.hash)])
    sup, block = out
    assert type(sup) is ev.AaveSupplied and sup.amount == 5 and sup.block_ts == 1_700_000_123
    assert type(block) is ev.BlockProduced and block.block_ts == 1_700_000_123
