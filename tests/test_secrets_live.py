"""No secret a live run is given reaches anything it writes: a planted private key (environment),
a planted keystore password, and a credential in a dying source's error message are searched for
in the log file (every byte of it and its side files), the manifest, /health, /metrics, stdout and
stderr of ``tapedeck live --execute`` run to a clean end, and in its refusals."""
from __future__ import annotations

import json
import signal
from pathlib import Path

import pytest

from tapedeck.adapters.eventlog import EventLog
from tapedeck.domain import events as ev
from tests.test_live_runner import FAKES, GATEWAY, QUOTES, config, count, events, fake_run
from tests.test_live_runner_process import OPS, Live, cli, no_runner_left_behind  # noqa: F401 (its fixture)

pytestmark = pytest.mark.slow

PLANTED_KEY = "4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318"  # a well-known test key
PLANTED_PASSWORD = "correct-horse-battery-staple-7f3a"
READY = OPS.replace("default_max_outstanding = 100_000_000", "default_max_outstanding = 100_000_000\n"
                    "daily_loss_limit = 50_000_000\n[risk.venues.fakex]\nmax_notional = 5_000_000")
DYING = f"""
[[sources]]
kind = "{FAKES}:DyingSource"
name = "flaky"
die_after = 2
deaths = 1
count = 4
interval_s = 0.001
"""


def needles(*secrets: str) -> list[bytes]:
    out = []
    for s in secrets:
        for form in (s, s.upper(), "0x" + s, s[:24], s[-24:]):
            out.append(form.encode())
    return out


def written(out: Path) -> bytes:
    """Every byte the run left on disk next to its log (the .db and any -wal/-shm/.lock)."""
    return b"".join(p.read_bytes() for p in sorted(out.parent.glob(out.name + "*")) if p.is_file())


def run_execute(tmp_path: Path, text: str, env: dict[str, str]) -> tuple[Path, bytes]:
    cfg = config(tmp_path, text)
    out = tmp_path / "run.db"
    live = Live(str(cfg), "--out", str(out), "--execute", env=env)
    h = live.wait_for(lambda h: h["sources"]["quotes"]["adapter"]["emitted"] >= 12 and h["mode"] == "execute")
    scraped = json.dumps(h).encode() + live.get("/metrics") + live.get("/kill", b'{"reason": "done"}')
    live.signal(signal.SIGTERM)
    rc, stdout, stderr = live.finish()
    assert rc == 0, stderr
    assert "SigningKey(address=" not in stdout + stderr or "secret=<hidden>" in stdout + stderr
    m = EventLog.open(out).manifest
    assert m.ended == "clean" and m.notes["sessions"] == [{"from_seq": 1, "execute": True}]
    evs = events(out)
    assert count(evs, ev.OrderFilled, source="fake-venue") >= 4  # it did run for real (the fake venue)
    return out, scraped + stdout.encode() + stderr.encode() + m.to_json().encode() + written(out)


def test_a_planted_env_key_appears_nowhere(tmp_path: Path) -> None:
    text = READY + QUOTES.format(count=0) + DYING + GATEWAY.format(extra="")
    out, everything = run_execute(tmp_path, text, {"TAPEDECK_PRIVATE_KEY": "0x" + PLANTED_KEY})
    for needle in needles(PLANTED_KEY) + [b"SECRET-IN-URL"]:
        assert needle not in everything, needle
    assert count(events(out), ev.SourceConnectionChanged, source="live-runner") == 1  # the dying source did die


def test_a_planted_keystore_password_and_its_key_appear_nowhere(tmp_path: Path) -> None:
    from eth_account import Account

    keystore = tmp_path / "hot.json"
    keystore.write_text(json.dumps(Account.encrypt("0x" + PLANTED_KEY, PLANTED_PASSWORD, kdf="pbkdf2",
                                                   iterations=1000)))
    text = READY + f'\n[keys]\nkeystore = "{keystore}"\n' + QUOTES.format(count=0) + GATEWAY.format(extra="")
    env = {"TAPEDECK_KEYSTORE_PASSWORD": PLANTED_PASSWORD, "TAPEDECK_PRIVATE_KEY": ""}
    out, everything = run_execute(tmp_path, text, env)
    for needle in needles(PLANTED_KEY, PLANTED_PASSWORD):
        assert needle not in everything, needle
    # a wrong password is refused in one line that names the variable, never the password
    wrong = cli("live", str(tmp_path / "live.toml"), "--out", str(tmp_path / "other.db"), "--execute",
                env={"TAPEDECK_KEYSTORE_PASSWORD": PLANTED_PASSWORD + "x"})
    assert wrong.returncode == 2 and wrong.stderr.count("\n") == 1, wrong.stderr
    assert "TAPEDECK_KEYSTORE_PASSWORD" in wrong.stderr and PLANTED_PASSWORD not in wrong.stderr + wrong.stdout
    assert not (tmp_path / "other.db").exists()


def test_a_malformed_env_key_is_refused_without_being_echoed(tmp_path: Path) -> None:
    cfg, _ = fake_run(tmp_path, 0, READY)
    p = cli("live", str(cfg), "--out", str(tmp_path / "x.db"), "--execute",
            env={"TAPEDECK_PRIVATE_KEY": PLANTED_KEY[:-2] + "zz"})
    assert p.returncode == 2 and p.stderr.count("\n") == 1 and "TAPEDECK_PRIVATE_KEY" in p.stderr, p.stderr
    for needle in needles(PLANTED_KEY[:-2]):
        assert needle not in (p.stderr + p.stdout).encode()
