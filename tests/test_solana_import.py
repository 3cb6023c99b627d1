"""``tapedeck import solana-ws``: a recorded Solana websocket session into a log, replayed and verified."""
from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from tapedeck.adapters import solana_accounts as sa
from tapedeck.adapters.eventlog import EventLog
from tapedeck.cli import main
from tapedeck.domain import events as ev
from tapedeck.runtime.importers import ImportError_, import_files
from tests.test_solana_accounts import (TICK_ARRAY_LOWER_RPR, VAULT_A_RPR, VAULT_B_RPR, WHIRLPOOL_RPR, _bytes)

T0 = 1_764_600_000 * 10**9  # 2025-12-01


def _session() -> list[str]:
    """A session as a recorder writes it: its own subscribe requests, the acks, the notifications."""
    sub = lambda i, key: json.dumps({"jsonrpc": "2.0", "id": i, "method": "accountSubscribe",  # noqa: E731
                                     "params": [key, {"encoding": "base64", "commitment": "confirmed"}]})
    ack = lambda i, s: json.dumps({"jsonrpc": "2.0", "result": s, "id": i})  # noqa: E731
    lines = [
        (0, sub(1, WHIRLPOOL_RPR[0])), (1, sub(2, VAULT_A_RPR[0])), (2, ack(1, 501)), (3, ack(2, 502)),
        (4, json.dumps({"jsonrpc": "2.0", "id": 3, "method": "programSubscribe", "params": [sa.WHIRLPOOL_PROGRAM]})),
        (5, ack(3, 503)),
        (10, sa.account_notification(501, 900, sa.WHIRLPOOL_PROGRAM, _bytes(WHIRLPOOL_RPR))),
        (11, sa.account_notification(502, 900, sa.TOKEN_PROGRAM, _bytes(VAULT_A_RPR))),
        (12, sa.program_notification(503, 901, TICK_ARRAY_LOWER_RPR[0], sa.WHIRLPOOL_PROGRAM,
                                     _bytes(TICK_ARRAY_LOWER_RPR))),
        (13, sa.account_notification(777, 901, sa.TOKEN_PROGRAM, _bytes(VAULT_B_RPR))),  # never subscribed
        (14, "{not json"),
        (9, sa.account_notification(501, 902, sa.WHIRLPOOL_PROGRAM, _bytes(WHIRLPOOL_RPR))),  # time falls
        (15, sa.account_notification(501, 903, sa.WHIRLPOOL_PROGRAM, _bytes(WHIRLPOOL_RPR)[:600])),
    ]
    return [f"{T0 + ms * 1_000_000} {body}" for ms, body in lines] + ["garbage line"]


def test_session_imports_with_its_rejections_recorded(tmp_path: Path) -> None:
    rec = tmp_path / "solana_session.gz"
    with gzip.open(rec, "wt") as f:
        f.write("\n".join(_session()) + "\n")
    rep = import_files("solana-ws", [str(rec)], tmp_path / "log.db")
    events = list(EventLog.open(tmp_path / "log.db").events())
    kinds = [type(e).__name__ for e in events if not isinstance(e, ev.InputRejected)]
    assert kinds == ["WhirlpoolSynced", "SplTokenAccountSynced", "WhirlpoolTickArraySynced"]
    assert (rep.imported, rep.rejected) == (3, 5)
    reasons = [e.reason for e in events if isinstance(e, ev.InputRejected)]
    assert any("subscription 777, which names no known account" in r for r in reasons)
    assert any(r.startswith("not JSON") for r in reasons)
    assert any("before the previous line's" in r for r in reasons)
    assert any("is 653 bytes, got 600" in r for r in reasons)
    assert any("does not start with a receive time" in r for r in reasons)
    origins = sorted(e.origin for e in events if isinstance(e, ev.InputRejected))
    assert origins == sorted(f"solana_session.gz:line {n}" for n in (10, 11, 12, 13, 14))
    w = next(e for e in events if isinstance(e, ev.WhirlpoolSynced))
    assert (w.pool, w.slot, w.ts) == (WHIRLPOOL_RPR[0], 900, T0 + 10_000_000)
    assert EventLog.open(tmp_path / "log.db").manifest.notes["pools"]["solana"]["protocol"] == "solana-accounts"
    with pytest.raises(ImportError_, match="names its accounts itself"):
        import_files("solana-ws", [str(rec)], tmp_path / "x.db", fee=30)


def test_cli_import_then_replay_verifies(tmp_path: Path) -> None:
    rec = tmp_path / "s.txt"
    rec.write_text("\n".join(_session()[:9]) + "\n")
    log, out = tmp_path / "in.db", tmp_path / "run.db"
    r = CliRunner().invoke(main, ["import", "solana-ws", str(rec), "--out", str(log)], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    assert "imported 3 events" in r.output and "Solana account frames" in r.output
    assert CliRunner().invoke(main, ["replay", str(log), "--out", str(out)]).exit_code == 0
    ok = CliRunner().invoke(main, ["replay", str(out), "--verify"])
    assert ok.exit_code == 0 and ok.output.strip().splitlines()[-1].startswith("verified 3 inputs"), ok.output
