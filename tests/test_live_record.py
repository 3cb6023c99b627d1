"""``tapedeck record``: a live tape from anvil that resumes from its checkpoint after a clean stop and
after ``kill -9`` with no gap and no duplicate, keeps no URL secret in the manifest, verifies with
``tapedeck replay LOG --verify`` and replays into a run; and the adapter's restore of a block whose
``BlockProduced`` never made it into the log (a crash mid-block)."""
from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from tapedeck.adapters.eventlog import EventLog
from tapedeck.domain import events as ev
from tapedeck.live.evm_source import EvmSource, Head, redact_url
from tapedeck.live.record import RecordConfigError, load_record_config, manifest_config, run_record

PAIR = "0x" + "ab" * 20


def write_config(path: Path, ws_url: str, http_url: str, pair: str, start: int) -> Path:
    path.write_text(f'''
[[sources]]
kind = "evm"
name = "evm-anvil"
chain = "anvil"
ws_url = "{ws_url}"
http_url = "{http_url}"
v2_pairs = ["{pair}"]
start_block = {start}
ws_retry_s = 0.5
poll_interval_s = 0.05

[store]
max_delay_ms = 20
''')
    return path


def log_events(path: Path) -> list[ev.Event]:
    log = EventLog.open(path)
    try:
        return list(log.events())
    finally:
        log.close()


def wait_for_block(path: Path, number: int, timeout: float = 60.0, proc: Any = None) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if path.exists():
            try:
                if any(type(e) is ev.BlockProduced and e.number >= number for e in log_events(path)):
                    return
            except Exception:  # noqa: BLE001 - being created
                pass
        if proc is not None:
            assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else "recorder exited"
        assert time.monotonic() < deadline, f"no block {number} in {path}"
        time.sleep(0.05)


def check_tape(events: list[ev.Event], w3: Any, pair: Any, start: int, head: int) -> None:
    """The snapshot block start-1 (the pair's getReserves then), then every block start..head once, in
    order; the pair's Sync logs exactly as eth_getLogs has them."""
    blocks = [e.number for e in events if type(e) is ev.BlockProduced]
    assert blocks == list(range(start - 1, head + 1)), "a gap or a duplicate"
    syncs = [(e.block, e.reserve0, e.reserve1) for e in events if type(e) is ev.V2ReservesSynced]
    sync_abi = pair.events.Sync()
    expected = [(x["blockNumber"], x["args"]["reserve0"], x["args"]["reserve1"])
                for x in sync_abi.get_logs(from_block=start, to_block=head)]
    assert syncs[0] == (start - 1, *pair.functions.getReserves().call(block_identifier=start - 1)[:2])
    assert syncs[1:] == expected and expected


@pytest.fixture(scope="module")
def anvil_pair() -> Any:
    from tapedeck.sim.chain import uniswap_v2 as u2
    from tapedeck.sim.chain.anvil import AnvilChain

    chain = AnvilChain()
    try:
        m = u2.deploy_v2_pair(chain.w3)
        u2.add_liquidity(m, 10**21, 2 * 10**21)
        yield chain, m
    finally:
        chain.close()


def swaps(m: Any, n: int) -> None:
    from tapedeck.domain.uniswap_v2 import get_amount_out
    from tapedeck.sim.chain import uniswap_v2 as u2

    for _ in range(n):
        r0, r1 = m.reserves()
        u2.swap_exact_in(m, 10**17, True, get_amount_out(10**17, r0, r1))


class Recorder:
    """``run_record`` on a thread, stopped through its loop."""

    def __init__(self, config: Path, out: Path) -> None:
        self.loop: asyncio.AbstractEventLoop | None = None
        self.stop_event = asyncio.Event()
        self.started = threading.Event()
        self.counts: dict[str, int] = {}
        self.error: BaseException | None = None

        def started(sources: Any, log: Any) -> None:
            self.loop = asyncio.get_running_loop()
            self.sources = sources
            self.started.set()

        def main() -> None:
            try:
                self.counts = run_record(config, out, stop=self.stop_event, on_started=started)
            except BaseException as e:  # noqa: BLE001
                self.error = e

        self.thread = threading.Thread(target=main, daemon=True)
        self.thread.start()
        assert self.started.wait(30)

    def stop(self) -> None:
        assert self.loop is not None
        self.loop.call_soon_threadsafe(self.stop_event.set)
        self.thread.join(30)
        assert not self.thread.is_alive() and self.error is None, repr(self.error)


@pytest.mark.slow
@pytest.mark.contract
def test_record_stop_resume_has_no_gap_and_no_duplicate(anvil_pair: Any, tmp_path: Path) -> None:
    chain, m = anvil_pair
    w3 = chain.w3
    start = w3.eth.block_number + 1
    config = write_config(tmp_path / "record.toml", chain.ws_url + "/secret-key-123", chain.url, m.pair.address,
                          start)
    out = tmp_path / "tape.db"
    rec = Recorder(config, out)
    swaps(m, 3)
    wait_for_block(out, w3.eth.block_number)
    rec.stop()
    first_stop = w3.eth.block_number
    swaps(m, 4)  # while nobody records
    rec = Recorder(config, out)
    assert rec.sources[0].checkpoint()[0] == first_stop  # restored from the log
    swaps(m, 2)
    head = w3.eth.block_number
    wait_for_block(out, head)
    rec.stop()

    events = log_events(out)
    check_tape(events, w3, m.pair, start, head)
    backfills = [e.detail for e in events if type(e) is ev.SourceConnectionChanged and e.state == "backfilled"]
    assert backfills[-1].startswith(f"blocks {first_stop + 1}..")  # from the checkpoint on
    log = EventLog.open(out)
    manifest = log.manifest
    log.close()
    assert manifest.mode == "record" and manifest.ended == "clean"
    assert manifest.config["sources"][0]["ws_url"] == redact_url(chain.ws_url + "/x")
    text = out.read_bytes() + (tmp_path / "tape.db-wal").read_bytes() if (tmp_path / "tape.db-wal").exists() \
        else out.read_bytes()
    assert b"secret-key-123" not in text

    from tapedeck.cli import main

    verified = CliRunner().invoke(main, ["replay", str(out), "--verify"])
    assert verified.exit_code == 0, verified.output
    replayed = CliRunner().invoke(main, ["replay", str(out), "--out", str(tmp_path / "run.db")])
    assert replayed.exit_code == 0, replayed.output


@pytest.mark.slow
@pytest.mark.contract
def test_kill_9_mid_run_then_resume(anvil_pair: Any, tmp_path: Path) -> None:
    """``tapedeck record`` in its own process is killed with SIGKILL while blocks arrive; the next
    ``tapedeck record`` on the same tape resumes (the log says crashed-recovered) and the tape has
    every block once; SIGINT then ends it clean and it verifies."""
    chain, m = anvil_pair
    w3 = chain.w3
    start = w3.eth.block_number + 1
    config = write_config(tmp_path / "record.toml", chain.ws_url, chain.url, m.pair.address, start)
    out = tmp_path / "tape.db"
    cmd = [sys.executable, "-m", "tapedeck.cli", "record", str(config), "--out", str(out)]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    try:
        swaps(m, 3)
        wait_for_block(out, w3.eth.block_number - 2, proc=proc)
        swaps(m, 1)
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        swaps(m, 2)
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
        swaps(m, 1)
        head = w3.eth.block_number
        wait_for_block(out, head, proc=proc)
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=30)
        assert proc.returncode == 0, stderr.decode()
        assert b"recorded" in stdout
    finally:
        if proc.poll() is None:
            proc.kill()
    events = log_events(out)
    check_tape(events, w3, m.pair, start, head)
    log = EventLog.open(out)
    assert log.manifest.ended == "clean" and "recovered_at_seq" in log.manifest.notes
    log.close()
    from tapedeck.cli import main

    verified = CliRunner().invoke(main, ["replay", str(out), "--verify"])
    assert verified.exit_code == 0, verified.output


# ----------------------------------------------------------------------------- no node needed


def head(n: int, tag: str = "a") -> Head:
    return Head(n, "0x" + f"{tag}{n}".encode().hex().ljust(64, "0"), "0x" + f"{tag}{n - 1}".encode().hex().ljust(64, "0"),
                1_700_000_000 + n, 10**9, 21000, 30_000_000)


def sync_log(n: int, i: int, r0: int, tag: str = "a") -> dict[str, Any]:
    import eth_abi

    from tapedeck.adapters.evm_abis import UNISWAP_V2_PAIR
    from tapedeck.adapters.evm_logs import EventDecoder

    topic = "0x" + EventDecoder(UNISWAP_V2_PAIR, only=["Sync"]).topic0("Sync").hex()
    return {"address": PAIR, "topics": [topic], "data": "0x" + eth_abi.encode(["uint112", "uint112"], [r0, 7]).hex(),
            "blockNumber": hex(n), "blockHash": head(n, tag).hash, "transactionHash": "0x" + "11" * 32,
            "logIndex": hex(i)}


def source() -> EvmSource:
    return EvmSource("evm-x", chain="x", http_url="http://127.0.0.1:1", v2_pairs=[PAIR], max_reorg_depth=4,
                     snapshot=False)


def crashed_log() -> list[ev.Event]:
    """What a recorder killed mid-block 6 leaves: blocks 4 and 5 whole, block 6's first log only."""
    s, out = source(), []
    s._emit = out.append
    s._apply(head(4), [sync_log(4, 0, 40)])
    s._apply(head(5), [])
    s._apply(head(6), [sync_log(6, 0, 60), sync_log(6, 1, 61)])
    return out[:-2]  # the second log and the BlockProduced of 6 never made it


def test_restore_skips_what_a_crash_left_of_the_same_block() -> None:
    s, out = source(), []
    s.restore(crashed_log())
    assert s.checkpoint() == (5, head(5).hash) and len(s._partial) == 1
    s._emit = out.append
    s._apply(head(6), [sync_log(6, 0, 60), sync_log(6, 1, 61)])
    assert [(type(e).__name__, getattr(e, "reserve0", None)) for e in out] == [("V2ReservesSynced", 61),
                                                                               ("BlockProduced", None)]


def test_restore_retracts_what_a_crash_left_of_another_block() -> None:
    s, out = source(), []
    s.restore(crashed_log())
    s._emit = out.append
    s._apply(head(6, "b"), [sync_log(6, 0, 66, "b")])
    assert [type(e).__name__ for e in out] == ["LogRetracted", "V2ReservesSynced", "BlockProduced"]
    r = out[0]
    assert (r.block, r.block_hash, r.tx, r.log_index, r.reason) == (6, "", "", -1, "reorg")
    assert out[1].reserve0 == 66


def test_restore_keeps_the_window_through_a_recorded_reorg() -> None:
    s, out = source(), []
    s._emit = out.append
    for n in range(3, 8):
        s._apply(head(n), [sync_log(n, 0, n)])
    s._retract(s.window[-1], "reorg")
    s.window.pop()
    s._apply(head(7, "b"), [])
    t = source()
    t.restore(out)
    assert [(b.number, b.hash) for b in t.window] == [(b.number, b.hash) for b in s.window]
    assert t.window[-1].hash == head(7, "b").hash and len(t.window) == 4 and not t._partial


def test_redaction_and_config_errors(tmp_path: Path) -> None:
    assert redact_url("wss://mainnet.example.io/v3/abcdef") == "wss://mainnet.example.io/..."
    assert redact_url("http://user:pw@127.0.0.1:8545") == "http://127.0.0.1:8545/..."
    assert redact_url("ws://127.0.0.1:8545") == "ws://127.0.0.1:8545"
    bad = tmp_path / "bad.toml"
    bad.write_text("[[sources]]\nkind = \"evm\"\nname = \"e\"\nchain = \"x\"\nws_url = \"ws://h\"\nv2_pairs = [\"%s\"]\n"
                   "colour = 1\n" % PAIR)
    from tapedeck.live.record import build_sources

    with pytest.raises(RecordConfigError, match=r"bad.toml: sources\[0\] \(e\): unknown key\(s\) colour"):
        build_sources(load_record_config(bad), str(bad))
    empty = tmp_path / "empty.toml"
    empty.write_text("[store]\nmax_delay_ms = 5\n")
    with pytest.raises(RecordConfigError, match="needs at least one"):
        load_record_config(empty)
    cfg = manifest_config({"sources": [{"kind": "evm", "ws_url": "wss://x.io/key", "http_url": "https://x.io?k=1"}]})
    assert cfg["sources"][0]["ws_url"] == "wss://x.io/..." and cfg["sources"][0]["http_url"] == "https://x.io/..."
    assert cfg["strategies"] == [] and cfg["risk"]


def test_source_config_errors_name_the_key(tmp_path: Path) -> None:
    ok = {"kind": "evm", "name": "e", "chain": "x", "ws_url": "ws://127.0.0.1:1", "v2_pairs": [PAIR]}
    assert EvmSource.from_config(ok).name == "e"
    cases = [({"kind": "binance"}, 'kind is \'binance\', not "evm"'), ({"name": ""}, "name must be a non-empty string"),
             ({"ws_url": "http://x"}, "ws_url must start with ws://"), ({"v2_pairs": []}, "follows no address"),
             ({"aave_oracle": PAIR.replace("ab", "cd")}, "aave_oracle goes with exactly one of aave_pools"),
             ({"v3_pools": [PAIR]}, "is listed twice"), ({"max_reorg_depth": 0}, "max_reorg_depth")]
    for change, message in cases:
        with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
            EvmSource.from_config({**ok, **change}, where="live.toml: [[sources]] #1")
    other = tmp_path / "other.toml"
    other.write_text('[[sources]]\nkind = "carrier-pigeon"\nname = "s"\n')
    from tapedeck.live.record import build_sources

    with pytest.raises(RecordConfigError, match="other.toml: sources\\[0\\] \\(s\\): unknown kind 'carrier-pigeon'"):
        build_sources(load_record_config(other), str(other))


def test_record_refuses_a_log_that_is_not_a_recording(tmp_path: Path) -> None:
    from tapedeck.adapters.eventlog import Manifest
    from tapedeck.live.record import open_tape

    run = tmp_path / "sim.db"
    EventLog.create(run, Manifest(run_id="", mode="sim")).close(ended="clean")
    cfg = {"sources": [{"kind": "evm", "name": "e", "chain": "x", "ws_url": "ws://127.0.0.1:1", "v2_pairs": [PAIR]}]}
    with pytest.raises(RecordConfigError, match="is a sim run, not a recording"):
        open_tape(run, cfg, [])


def test_record_reads_its_config_through_the_live_loader(tmp_path: Path) -> None:
    """``tapedeck record`` reads its config as ``tapedeck live`` does (``live.config``): the file, then
    ``TAPEDECK_<TABLE>__<KEY>`` variables, then ``--set``; the same validation (a secret in the file
    is refused, an overridden bad value names its variable); every kind the runner knows is built
    the way the runner builds it, and its batches are tied to the log's commit."""
    from tapedeck.live.binance_source import BinanceSource
    from tapedeck.live.hyperliquid_source import HyperliquidSource
    from tapedeck.live.record import build_sources, open_tape

    path = tmp_path / "rec.toml"
    path.write_text(f'''
[[sources]]
kind = "evm"
name = "e"
chain = "x"
ws_url = "ws://127.0.0.1:1/secret-path"
v2_pairs = ["{PAIR}"]

[[sources]]
kind = "binance"
name = "bn"
url = "ws://127.0.0.1:2/stream"

[[sources]]
kind = "hyperliquid"
name = "hl"
url = "ws://127.0.0.1:3/ws"
coins = ["ETH"]

[store]
max_delay_ms = 50
''')
    env = {"TAPEDECK_SOURCES__1__URL": "ws://127.0.0.1:9/stream", "TAPEDECK_STORE__MAX_DELAY_MS": "30"}
    cfg = load_record_config(path, environ=env, sets=["sources.0.chain=anvil"])
    assert cfg["store"] == {"max_delay_ms": 30} and cfg["risk"]  # the environment over the file; the default risk
    evm, bn, hl = build_sources(cfg, str(path))
    assert (evm.chain, bn.url, hl.url) == ("anvil", "ws://127.0.0.1:9/stream", "ws://127.0.0.1:3/ws")
    assert isinstance(bn, BinanceSource) and isinstance(hl, HyperliquidSource)
    assert all(hasattr(s, "after_batch") for s in (evm, bn, hl))
    log, resumed = open_tape(tmp_path / "t.db", cfg, [evm, bn, hl])
    try:
        assert not resumed and log.max_delay_ms == 30
        m = log.manifest
        assert m.sources == ["e", "bn", "hl"] and "settings" not in m.config
        assert m.config["sources"][0]["ws_url"] == "ws://127.0.0.1:1/..."  # no path: a provider's key lives there
        assert m.config["sources"][1]["url"] == "ws://127.0.0.1:9/..."
    finally:
        log.close()
    secret = tmp_path / "secret.toml"
    secret.write_text(path.read_text().replace('name = "bn"', 'name = "bn"\napi_secret = "hunter2"'))
    with pytest.raises(RecordConfigError, match=r"sources\[1\]\.api_secret: secrets are never read") as e:
        load_record_config(secret, environ={})
    assert "hunter2" not in str(e.value)
    with pytest.raises(RecordConfigError, match=r"set by TAPEDECK_STORE__MAX_DELAY_MS") as e:
        load_record_config(path, environ={"TAPEDECK_STORE__MAX_DELAY_MS": "-4"})
