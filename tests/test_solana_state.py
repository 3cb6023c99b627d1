"""Solana pool events through the engine: folded into ``MarketState`` with freshness, from frames to quotes."""
from __future__ import annotations

from tapedeck.adapters import solana_accounts as sa
from tapedeck.domain import events as ev
from tapedeck.domain import raydium_amm as ray
from tapedeck.domain import whirlpool as w
from tapedeck.domain.engine import Engine
from tapedeck.domain.risk import RiskGate, VenueLimits
from tests.test_solana_accounts import (SOL_USDC_AMM, TICK_ARRAY_LOWER_RPR, TICK_ARRAY_UPPER_RPR, USDC,
                                        VAULT_A_RPR, WHIRLPOOL_RPR, WSOL, _bytes, _raydium_bytes)

S = 1_000_000_000


def _engine() -> Engine:
    return Engine([], RiskGate(default=VenueLimits(1, 1)))


def test_frames_to_engine_state_to_exact_quotes() -> None:
    """Websocket frames -> decoded events -> the engine's state -> each pool's exact quote, with ages."""
    engine = _engine()
    subs = {1: SOL_USDC_AMM, 2: "VC", 3: "VP", 4: WHIRLPOOL_RPR[0], 5: TICK_ARRAY_LOWER_RPR[0],
            6: TICK_ARRAY_UPPER_RPR[0]}
    amm_bytes = _raydium_bytes(coin_vault=str(sa.Pubkey(bytes([7] * 32))), pc_vault=str(sa.Pubkey(bytes([8] * 32))))
    subs[2], subs[3] = str(sa.Pubkey(bytes([7] * 32))), str(sa.Pubkey(bytes([8] * 32)))
    vault = bytearray(_bytes(VAULT_A_RPR))

    def token(mint: str, amount: int) -> bytes:
        b = bytearray(vault)
        b[0:32] = bytes(sa.Pubkey.from_string(mint))
        b[64:72] = amount.to_bytes(8, "little")
        return bytes(b)

    frames = [
        (1 * S, sa.account_notification(1, 100, sa.RAYDIUM_AMM_V4, amm_bytes)),
        (2 * S, sa.account_notification(2, 101, sa.TOKEN_PROGRAM, token(WSOL, 5000 * 10**9))),
        (3 * S, sa.account_notification(3, 101, sa.TOKEN_PROGRAM, token(USDC, 750_000 * 10**6))),
        (4 * S, sa.account_notification(4, 102, sa.WHIRLPOOL_PROGRAM, _bytes(WHIRLPOOL_RPR))),
        (5 * S, sa.account_notification(5, 102, sa.WHIRLPOOL_PROGRAM, _bytes(TICK_ARRAY_LOWER_RPR))),
        (6 * S, sa.account_notification(6, 102, sa.WHIRLPOOL_PROGRAM, _bytes(TICK_ARRAY_UPPER_RPR))),
    ]
    for ts, frame in frames:
        for e in sa.parse_frame(frame, ts=ts, subscriptions=subs):
            assert not isinstance(e, ev.InputRejected), e
            engine.handle(e)
    st = engine.state
    p = st.raydium.pool(SOL_USDC_AMM)
    assert p is not None and p.reserves() == (5000 * 10**9 - 1234, 750_000 * 10**6 - 5678)
    assert ray.quote(p, 10**9, True) == ray.swap_base_in(10**9, *p.reserves(), 25, 10_000)
    assert st.age(SOL_USDC_AMM, 10 * S) == 7 * S  # its last part (the pc vault) arrived at 3 s
    assert st.fresh(SOL_USDC_AMM, 10 * S, 8 * S) and not st.fresh(SOL_USDC_AMM, 10 * S, 6 * S)

    pool = st.whirlpools.pool(WHIRLPOOL_RPR[0])
    assert pool is not None and sorted(pool.arrays) == [-444928, 439296]
    assert st.age(WHIRLPOOL_RPR[0], 10 * S) == 4 * S
    # the published pool's arrays are the two ends of a full-range position: between them no array
    # is known, so the quote stops where the program would need an array it does not have
    assert w.quote(pool, 10**6, True) is None


def test_stale_source_and_recovery() -> None:
    engine = _engine()
    e = sa.account_event(WHIRLPOOL_RPR[0], sa.WHIRLPOOL_PROGRAM, 7, _bytes(WHIRLPOOL_RPR), ts=1 * S)
    engine.handle(e)
    assert engine.state.fresh(WHIRLPOOL_RPR[0], 2 * S, 5 * S)
    engine.handle(ev.SourceStale(ts=2 * S, venues=(WHIRLPOOL_RPR[0],), reason="websocket disconnected"))
    assert not engine.state.fresh(WHIRLPOOL_RPR[0], 2 * S, 5 * S)
    engine.handle(ev.WhirlpoolSynced(**{**{f: getattr(e, f) for f in e.__struct_fields__}, "ts": 3 * S, "slot": 8}))
    assert engine.state.fresh(WHIRLPOOL_RPR[0], 3 * S, 5 * S)
    # a token account no pool names changes no pool's freshness
    engine.handle(ev.SplTokenAccountSynced(ts=4 * S, account="X", slot=9, mint="M", owner="O", amount=1))
    assert engine.state.age("X", 5 * S) is None
