"""The ``tapedeck`` command: import recordings, replay and verify runs, inspect and export them."""
from __future__ import annotations

import csv
import os
import json
import math
import sys
import time
from pathlib import Path
from typing import Any

import click

from tapedeck.adapters import config_files
from tapedeck.adapters.eventlog import EventLog, EventLogError, same_file
from tapedeck.adapters.paper_gateway import PaperConfigError
from tapedeck.runtime.importers import KINDS as IMPORT_KINDS
from tapedeck.runtime.importers import ImportError_, import_files
from tapedeck.adapters.uniswap_v3_check import independent_decode_check
from tapedeck.runtime.bootstrap import BuildError, build_run, is_pg_url, open_store, redact
from tapedeck.runtime.loop import RunStats
from tapedeck.runtime.verify import DIVERGED, INCOMPLETE, verify
from tapedeck.domain import codec, events as ev
from tapedeck.domain.strategies import ConfigError
from tapedeck.runtime.config_model import ConfigInvalid, validate_config
from tapedeck.runtime.strategy_loader import build_engine, code_differences, code_identity

DEFAULT_CONFIG = config_files.DEFAULT_CONFIG


def load_config(path: str | Path) -> dict[str, Any]:
    """A config file read and checked against the schema (``runtime.config_model``), or one clear error."""
    try:
        return validate_config(config_files.load_config(path), str(path))
    except (config_files.ConfigFileError, ConfigInvalid) as e:
        raise click.ClickException(str(e)) from None


def open_log(path: str) -> EventLog:
    try:
        return _open(path)
    except (EventLogError, BuildError) as e:
        raise click.ClickException(str(e)) from None


class Unreadable(click.ClickException):
    """A run that cannot be checked: missing, damaged or tampered with (exit 2, one line)."""

    exit_code = 2


def open_checked(path: str) -> EventLog:
    """Open a run for verify/inspect/export: any problem with the file is exit 2, one line."""
    try:
        return _open(path)
    except (EventLogError, BuildError) as e:
        raise Unreadable(str(e)) from None


def _open(path: str) -> EventLog:
    """A run file, or a PostgreSQL run (``postgresql://...?run=NAME``)."""
    return open_store(path) if is_pg_url(path) else EventLog.open(path)  # type: ignore[return-value]


def engine_for(config: dict[str, Any], where: str):  # type: ignore[no-untyped-def]
    try:
        return build_engine(config)
    except ConfigError as e:
        raise click.ClickException(f"{where}: {e}") from None


class TapedeckGroup(click.Group):
    """Every refusal is one line on stderr (``Error: ...``) and exit status 2, never a traceback:
    bad arguments, unreadable or wrong-kind files, invalid configs, damaged or tampered runs. Verify's
    own verdicts keep their codes (1 diverged, 3 incomplete). An unexpected exception is a bug: it
    is said in one line too (``TAPEDECK_DEBUG=1`` shows its traceback) with exit status 70."""

    def main(self, args: Any = None, prog_name: str | None = None, complete_var: str | None = None,
             standalone_mode: bool = True, **extra: Any) -> Any:
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        try:
            rv = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except click.exceptions.Abort:
            click.echo("Error: aborted", err=True)
            sys.exit(2)
        except click.ClickException as e:
            lines = [line for line in e.format_message().splitlines() if line.strip()] or [type(e).__name__]
            for line in lines:  # one line per problem (a scenario file may have several)
                click.echo(f"Error: {line}", err=True)
            sys.exit(2)
        except (KeyboardInterrupt, SystemExit):
            raise
        except Exception as e:  # a bug of ours: still no traceback for the user
            if os.environ.get("TAPEDECK_DEBUG"):
                raise
            click.echo(f"Error: internal error: {type(e).__name__}: {' '.join(str(e).split())[:300]} "
                       f"(TAPEDECK_DEBUG=1 shows the traceback)", err=True)
            sys.exit(70)
        sys.exit(rv if isinstance(rv, int) else 0)


@click.group(cls=TapedeckGroup, context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """tapedeck: record, replay, simulate and run on-chain trading bots on one deterministic core."""


# --------------------------------------------------------------------------- sim


@main.command()
@click.argument("scenario")
@click.option("--seed", type=click.IntRange(0, 2**64 - 1), default=None, help="Seed (default: the scenario's own).")
@click.option("--out", default=None, help="Run file (default runs/<scenario>-seed<N>.db).")
@click.option("--config", "config_path", default=None, help="Strategy config (default fixtures/config/sim-default.toml).")
@click.option("--chain", "chain", type=click.Choice(["pyevm", "anvil", "revm"]), default="revm", show_default=True,
              help="Chain backend: revm in process (the default), py-evm in process (the pure-Python "
                   "reference), or an anvil node on 127.0.0.1.")
@click.option("--force", is_flag=True, help="Overwrite --out if it exists.")
@click.option("--report", "with_report", is_flag=True, help="Also write the run's HTML report and print its path.")
def sim(scenario: str, seed: int | None, out: str | None, config_path: str | None, chain: str, force: bool,
        with_report: bool) -> None:
    """Simulate a market scenario (name in fixtures/scenarios or a TOML path) and record the run.

    The world's blocks, oracle rounds, books and chain facts are recorded as inputs, the engine's
    decisions as decisions, and what the world did with its intents as executions. Where the
    scenario has borrowers, a real Aave v3 market runs on the chain backend, with competing
    searchers whose transactions go through the mempool and the block builder.
    """
    from tapedeck.sim.chain.artifacts import ArtifactMissing
    from tapedeck.sim.recording import run_scenario
    from tapedeck.sim.scenario import ScenarioError, load_scenario

    try:
        sc = load_scenario(scenario, seed=seed)
    except ScenarioError as e:
        raise click.ClickException(str(e)) from None
    cfg_file = Path(config_path) if config_path else config_files.ROOT / "fixtures" / "config" / "sim-default.toml"
    from tapedeck.sim.cex_dex_config import complete as complete_cex_dex
    from tapedeck.sim.liquidator_config import SimConfigError, complete

    try:  # what only the sim's deployment knows (pool tokens), before the engine is validated
        config, notes = complete(load_config(cfg_file), sc)
        config, more = complete_cex_dex(config, sc)
        notes += more
    except SimConfigError as e:
        raise click.ClickException(str(e)) from None
    engine_for(config, str(cfg_file))  # validate before the world starts
    out = out or f"runs/{sc.name}-seed{sc.seed}.db"
    if Path(out).is_dir():  # (before the world runs: --force removes a run, never a directory)
        raise click.ClickException(f"--out {out}: is a directory, not a run file")
    t0 = time.perf_counter()
    tty = sys.stderr.isatty()

    def progress(s: RunStats) -> None:
        if tty:
            click.echo(f"\r  t={(s.last_ts - sc.start_ns) / 1e9:,.0f}/{sc.duration:,.0f} s: {s.inputs} inputs, "
                       f"{s.decisions} decisions, {s.executions} executions", nl=False, err=True)

    try:
        summary = run_scenario(sc, config, out, overwrite=force, scenario_file=str(scenario), progress=progress,
                               chain=chain)
    except (EventLogError, ArtifactMissing, BuildError) as e:
        raise click.ClickException(str(e)) from None
    if tty:
        click.echo("", err=True)
    wall = time.perf_counter() - t0
    summary.notes = notes + summary.notes  # said once the run stands (sim_report prints them)
    for line in (sim_report(summary, wall) + liquidation_lines(out) + slicing_lines(out)
                 + cex_dex_lines(out) + perp_lines(out)):
        click.echo(line)
    click.echo(f"recorded {redact(out)}  (tapedeck replay {redact(out)} --verify)")
    if with_report:
        click.echo(f"report {write_run_report(out, None)}")


def liquidation_lines(run: str) -> list[str]:
    """The liquidation strategies' summary, computed from the run's recorded events."""
    from tapedeck.runtime.liquidation_report import liquidation_reports

    with _open(run) as log:
        if not any(t.startswith(("LiquidationOpportunity", "LiquidationSkipped")) for t in log.counts_by_topic()):
            return []
        return [line for r in liquidation_reports(log.events()) for line in r.lines()]


def slicing_lines(run: str) -> list[str]:
    """The sliced orders' summary (filled against scheduled), computed from the run's recorded events."""
    from tapedeck.runtime.slicing_report import TOPICS, slicing_lines as lines

    with _open(run) as log:
        if not any(t.startswith(TOPICS) for t in log.counts_by_topic()):
            return []
        return lines(log.events(), log.manifest.config)


def cex_dex_lines(run: str) -> list[str]:
    """The CEX-DEX arbitrage strategies' summary, computed from the run's recorded events, ETH valued as the
    run's recorded config says (as completed for its scenario: the same price as the strategy lines)."""
    from tapedeck.runtime.cex_dex_report import cex_dex_reports
    from tapedeck.runtime.outcomes import eth_price_source

    with _open(run) as log:
        if not any(t.startswith("CexDexOpportunity") for t in log.counts_by_topic()):
            return []
        price = eth_price_source(log.manifest.config)
        return [line for r in cex_dex_reports(log.events(), price) for line in r.lines()]


def perp_lines(run: str) -> list[str]:
    """The perp strategies' summary (entries, exits by path and reason, latency, PnL), from the run's events."""
    from tapedeck.runtime.perp_report import perp_reports

    with _open(run) as log:
        if not any(t.startswith(("PerpEntryDecided", "PerpExitDecided")) for t in log.counts_by_topic()):
            return []
        return [line for r in perp_reports(log.events()) for line in r.lines()]


def sim_report(summary: Any, wall: float) -> list[str]:
    """The lines ``tapedeck sim`` prints: the world, the chain, and each strategy's races."""
    st = summary.stats
    kinds = ", ".join(f"{n} {k}" for k, n in sorted(st.by_type.items())) or "none"
    lines = [f"scenario {summary.scenario} seed {summary.seed} on {summary.chain}: "
             f"{summary.simulated_seconds:,.0f} simulated s in {wall:.1f} s wall "
             f"({summary.simulated_seconds / max(wall, 1e-9):,.0f} simulated s per wall s)",
             f"  world: {summary.blocks} blocks, {summary.oracle_rounds} oracle rounds, {summary.quotes} book updates"
             + (f", {summary.trades} trades printed" if summary.trades else "")]
    if summary.chain_txs:
        lines.append(f"  chain ({summary.chain}): {summary.chain_txs} agent transactions executed in "
                     f"{summary.chain_blocks} blocks")
    if summary.pools:
        lines.append(f"  pools: {summary.pools} on chain, {summary.pool_swaps} swaps ({summary.arbitrages} by their "
                     f"lagging arbitrageurs)")
    if summary.arb_searchers:
        lines.append("  v2/v3 arbitrage searchers: " + ", ".join(
            f"{name} won {w}, lost {lost}" for name, (w, lost) in summary.arb_searchers.items()))
    if summary.borrowers:
        wins = ", ".join(f"{name} {n}" for name, n in summary.wins.items()) or "nobody"
        lines.append(f"  aave v3 (real contracts): {summary.borrowers} borrowers, {summary.liquidations} liquidations "
                     f"(won by {wins}); {summary.reverted_attempts} competing attempts reverted")
    if getattr(summary, "copycats", None):
        lines.append("  mempool copycats: " + ", ".join(
            f"{name} won {w}, lost {lost}" for name, (w, lost) in summary.copycats.items()))
    lines.extend(f"  config: {note}" for note in getattr(summary, "notes", []))
    lines.append(f"  engine: {st.inputs} inputs, {st.decisions} decisions ({kinds})")
    return lines + outcome_lines(summary.strategies.values())


def outcome_lines(results: Any) -> list[str]:
    """One line per strategy (what it saw, did, won, lost, earned), then what of it was paper and
    what was executed, what partial executions left (marked at the named ETH price), why it lost."""
    lines = []
    for s in results:
        again = f" (unique gaps; {s.redetections} re-detections not counted)" if s.redetections else ""
        paper = f"{s.paper_filled} filled on paper, " if s.paper_filled else ""
        lines.append(f"  strategy {s.strategy}: {s.opportunities} opportunities seen{again}, "
                     f"{s.acted} acted on ({s.refused} refused by risk); {s.intents} orders ({s.rejected} refused): "
                     f"{paper}{s.won} won, {s.lost} lost, {s.pending} pending; PnL {s.pnl / 1e6:,.2f} USDC net of gas "
                     f"({s.gas_wei / 1e18:.4f} ETH) and fees")
        if s.exits or s.exits_refused:
            lines.append(f"    exits (flattens of those positions, not opportunities): {s.exits} intended "
                         f"({s.exits_refused} refused by risk), {s.exits_filled} filled, {s.exits_failed} failed, "
                         f"{s.exits_pending} pending")
        if s.suppressed:
            lines.append(f"    suppressed as stale: {s.suppressed} gaps priced on state older than the strategy's "
                         f"max_age (they would have reported {s.suppressed_net / 1e6:,.2f} USDC; not acted on)")
        if s.intents:
            partial = f" ({s.paper_partial} partial)" if s.paper_partial else ""
            gas = (f"; gas not modelled on {s.paper_gas_unmodelled} (no block base fee recorded)"
                   if s.paper_gas_unmodelled else "")
            lines.append(f"    paper: {s.paper_fills} fills{partial}, {s.paper_losing} at a loss, PnL {s.paper_pnl / 1e6:,.2f} USDC "
                         f"(computed from pool state and books{gas})")
            lines.append(f"    executed: {s.executed_fills} fills, {s.executed_losing} at a loss, PnL {s.executed_pnl / 1e6:,.2f} USDC "
                         f"(venue reports, gas of mined transactions)")
        if s.inventory:
            held = ", ".join(_asset_amount(a, d) for a, d in s.inventory.items())
            lines.append(f"    left by partial executions: {held}; marked {s.inventory_value / 1e6:,.2f} USDC "
                         f"at {s.eth_price}")
        if s.unpriced:
            lines.append(f"    unpriced: {s.unpriced} fills or fees (no {s.eth_price.split(' (')[0]} price yet, "
                         f"or an asset without one)")
        if s.lost:
            lines.append("    lost: " + "; ".join(f"{why} x{n}" for why, n in s.lost_to.most_common()))
    named = next((s.eth_price for s in results if s.intents and s.eth_price), "")
    if named:
        lines.append(f"  ETH valued at {named}")
    return lines


def _asset_amount(asset: str, delta: int) -> str:
    places = {"USDC": 6, "WETH": 18, "ETH": 18}.get(asset)
    return f"{delta / 10**places:+,.{4 if places == 18 else 2}f} {asset}" if places else f"{delta:+} {asset} base units"


# --------------------------------------------------------------------------- import


class ImportUsageError(click.ClickException):
    """A bad import request: one line on stderr, exit 2."""

    exit_code = 2


@main.command("import")
@click.argument("kind", type=click.Choice(IMPORT_KINDS))
@click.argument("paths", nargs=-1, required=True)
@click.option("--out", "out", required=True, help="Log file to create or add this source to.")
@click.option("--from-block", type=click.IntRange(min=0), default=None, help="Skip rows before this block.")
@click.option("--to-block", type=click.IntRange(min=0), default=None, help="Skip rows after this block.")
@click.option("--pool", default=None, help="Pool address, when the file name holds none (0x + 40 hex); "
              "for aave-v3-logs the Pool contract (default: the chain's known Pool).")
@click.option("--fee", type=click.IntRange(min=1), default=None,
              help="Pool fee (V3 in pips: 500 = 0.05%; V2 in bps), overriding the registry.")
@click.option("--tick-spacing", type=click.IntRange(min=1), default=None,
              help="V3 tick spacing, overriding the registry (must go with --fee).")
@click.option("--chain", default=None, help="Chain of the pool, when its address is registered on several "
              "(aave-v3-logs: when the file name does not start with it).")
@click.option("--registry", "registries", multiple=True,
              help="Extra registry file ([[pools]] entries, like fixtures/registry.toml); repeatable.")
@click.option("--config", "config_path", default=None, help="A config file whose [[pools]] entries extend the registry.")
@click.option("--snapshot", default=None, help="uniswap-v3-logs: the pool read at the block before the first log "
              "(JSON: slot0, liquidity, every initialized tick), checked against every Swap of the file, recorded "
              "as a V3PoolSnapshot so strategies size across ticks.")
def import_cmd(kind: str, paths: tuple[str, ...], out: str, from_block: int | None, to_block: int | None,
               pool: str | None, fee: int | None, tick_spacing: int | None, chain: str | None,
               registries: tuple[str, ...], config_path: str | None, snapshot: str | None) -> None:
    """Turn a recording into input events in LOG (merged by event time with what it holds).

    The pool's identity (fee, tick spacing, tokens) comes from the registry (fixtures/registry.toml,
    extended by --registry/--config); a pool it does not know needs --fee and --tick-spacing.
    aave-v3-logs takes its chain from --chain or the file name (<chain>-aave_v3-...) and prints
    how many ReserveDataUpdated indexes the exact math predicts, with the cause of each miss.
    hyperliquid-ws reads hftbacktest-format recordings (<local_recv_ns> <frame> per line, gzipped)
    and prints the frames by channel, the events by type and what it skipped or rejected.
    """
    from tapedeck.adapters.registry import RegistryError, load_registry

    t0 = time.perf_counter()
    try:
        registry = load_registry(registries, configs=[config_path] if config_path else [])
        rep = import_files(kind, list(paths), out, from_block=from_block, to_block=to_block, pool=pool, fee=fee,
                           tick_spacing=tick_spacing, chain=chain, registry=registry, snapshot=snapshot)
    except (ImportError_, EventLogError, RegistryError) as e:
        raise ImportUsageError(str(e)) from None
    for note in rep.notes:
        click.echo(f"note: {note}")
    if kind == "hyperliquid-ws":
        report_hyperliquid_import(rep, time.perf_counter() - t0)
        return
    labels = sorted({f"{s.label} ({s.address})" for s in rep.pools.values()})
    click.echo(f"imported {rep.imported} events from {len(rep.files)} file(s) as {kind} of {', '.join(labels)}; "
               f"rejected {rep.rejected} row(s); log now holds {rep.total_in_log} events"
               f"{f', {rep.retimed} block-only events re-timed' if rep.retimed else ''} "
               f"({time.perf_counter() - t0:.1f}s)")
    for r in rep.rejections:
        click.echo(f"  rejected: {r}")
    if kind == "uniswap-v3-logs":
        fees = {p: (s.fee, s.tick_spacing) for p, s in rep.pools.items() if s.tick_spacing is not None}
        check_against_independent_decode(paths, fees, pool)
    if kind == "aave-v3-logs":
        from tapedeck.adapters.aave_v3_check import day_report

        for line in day_report({p: s.chain for p, s in rep.pools.items()}):
            click.echo(line)


def report_hyperliquid_import(rep: Any, seconds: float) -> None:
    """What a Hyperliquid WebSocket import read: frames by channel, events by type, skips, rejections."""
    def counts(c: dict[str, int]) -> str:
        return ", ".join(f"{k} {v}" for k, v in sorted(c.items())) or "none"

    click.echo(f"imported {rep.imported} events from {len(rep.files)} file(s) as hyperliquid-ws (venue hyperliquid); "
               f"rejected {rep.rejected} frame(s); log now holds {rep.total_in_log} events ({seconds:.1f}s)")
    click.echo(f"frames by channel: {counts(rep.frames)}")
    click.echo(f"events by type: {counts(rep.by_type)}")
    click.echo(f"skipped (no event): {counts(rep.skipped)}")
    for r in rep.rejections:
        click.echo(f"  rejected: {r}")


def check_against_independent_decode(paths: tuple[str, ...] | list[str],
                                     fees: dict[str, tuple[int, int]] | None = None, pool: str | None = None) -> None:
    lines, failed = independent_decode_check(list(paths), fees, pool)
    for line in lines:
        click.echo(line)
    if failed:  # (imported as asked, but the pool's own tick file says the swaps are not priced right)
        given = ", ".join(f"fee {fees[p][0]} pips, tick spacing {fees[p][1]}" if fees and p in fees else Path(p).name
                          for p in failed)
        raise click.ClickException(f"the import's check failed (NOT OK above) for {', '.join(Path(p).name for p in failed)}:"
                                   f" its swaps are not reproduced with {given}, which the log was written with (if "
                                   "--fee/--tick-spacing overrode the registry, import again into a new --out with "
                                   "the pool's own)")


# --------------------------------------------------------------------------- replay


@main.command()
@click.argument("log_path", metavar="LOG")
@click.option("--verify", "do_verify", is_flag=True, help="Check the recorded run's bytes, re-drive it and compare every decision.")
@click.option("--allow-incomplete", is_flag=True, help="With --verify: accept a run that did not end clean (its prefix is checked).")
@click.option("--config", "config_path", default=None, help="Strategy config (TOML) overriding the recorded/default one.")
@click.option("--out", default=None, help="Record a new run driven by LOG's inputs here.")
@click.option("--force", is_flag=True, help="Overwrite --out if it exists.")
@click.option("--report", "with_report", is_flag=True, help="With --out: also write the new run's HTML report "
              "and print its path.")
def replay(log_path: str, do_verify: bool, allow_incomplete: bool, config_path: str | None, out: str | None,
           force: bool, with_report: bool) -> None:
    """Verify a recorded run, or drive the strategies over a historical log into a new run.

    --verify exits 0 verified, 1 diverged (the first differing decision is shown), 2 tampered or
    damaged (the first bad segment is named), 3 incomplete (the run did not end clean; what it holds
    was checked; --allow-incomplete makes that 0).
    """
    if do_verify == bool(out):
        raise click.UsageError("give exactly one of --verify or --out RUN.db")
    if with_report and not out:
        raise click.UsageError("--report writes the report of the run --out records (tapedeck report LOG "
                               "writes one of LOG itself)")
    if do_verify:
        verify_run(log_path, config_path, allow_incomplete)
        return
    if same_file(log_path, out):  # type: ignore[arg-type]
        raise click.ClickException(f"--out {out} is the log being replayed ({log_path}); a replay never "
                                   "writes over its source (choose another --out)")
    log = open_log(log_path)
    cfg_file = Path(config_path) if config_path else DEFAULT_CONFIG
    config = load_config(cfg_file)
    engine = engine_for(config, str(cfg_file))
    stats = replay_into(log, config, engine, out, force)  # type: ignore[arg-type]
    log.close()
    click.echo(summary_line(stats, redact(out)))  # type: ignore[arg-type]
    if with_report:
        click.echo(f"report {write_run_report(out, None)}")  # type: ignore[arg-type]


def verify_run(log_path: str, config_path: str | None, allow_incomplete: bool) -> None:
    """``replay --verify``: one verdict, its exit code (see ``replay``'s help)."""
    log = open_checked(log_path)
    try:
        log.check_manifest()  # a tampered config would otherwise fail to build, or diverge
        if log.manifest.mode == "import":  # (market data only: no decision was ever recorded to compare)
            raise click.ClickException(f"{log_path}: is an import log (recorded inputs, no decisions): nothing to "
                                       f"verify; replay it into a run (tapedeck replay {log_path} --out RUN.db) "
                                       "and verify that run")
        config = load_config(config_path) if config_path else log.manifest.config
        if not config:
            raise click.ClickException(f"{log_path}: run has no recorded config; pass --config")
        engine = engine_for(config, config_path or f"{log_path} manifest config")
        changed = code_differences(log.manifest.code, code_identity(engine))
        if changed:  # said, and still compared: same decisions from changed code is worth knowing too
            click.echo(f"recorded with different code: {'; '.join(changed)}")
        result = verify(log, engine)
    except EventLogError as e:
        raise Unreadable(str(e)) from None
    finally:
        log.close()
    status = result.status
    if result.problem is not None:
        raise Unreadable(str(result.problem))
    if status == DIVERGED:
        if not log.manifest.code:  # said where it matters: the divergence may be a code change
            click.echo(f"recorded before runs named their code (tapedeck {log.manifest.version}): the code "
                       f"may have changed since")
        click.echo(result.divergence.describe())  # type: ignore[union-attr]
        click.echo(f"diverged at seq {result.divergence.seq} after {result.inputs} inputs, "  # type: ignore[union-attr]
                   f"{result.decisions} matching decisions")
        sys.exit(1)
    integrity = result.integrity
    assert integrity is not None
    cut = (f"; the last input's {result.unrecorded} decision(s) were not recorded before it stopped"
           if result.unrecorded else "")
    if status == INCOMPLETE and not allow_incomplete:
        click.echo(f"incomplete: {log_path} ended {integrity.ended!r} without a seal; what it holds checks out "
                   f"({result.inputs} inputs, {result.decisions} decisions up to seq {integrity.last_seq}, "
                   f"digest {result.digest}){cut}; --allow-incomplete accepts it")
        sys.exit(3)
    click.echo(f"integrity: {integrity.describe()}{cut}")
    if result.older_schema:
        click.echo(f"{result.older_schema} decisions were recorded at an older schema version: compared on the "
                   f"fields that version has (what it could say), fields added since were not compared")
    click.echo(f"verified {result.inputs} inputs, {result.decisions} decisions, digest {result.digest}")


def replay_into(source: EventLog, config: dict[str, Any], engine: Any, out: str, force: bool) -> RunStats:
    stderr_tty = sys.stderr.isatty()

    def progress(s: RunStats) -> None:
        if stderr_tty:
            click.echo(f"\r  {s.inputs} inputs, {s.decisions} decisions", nl=False, err=True)

    try:
        stats = build_run("replay", config, out=out, source=source, engine=engine, overwrite=force,
                          progress=progress).run()
    except (EventLogError, BuildError, PaperConfigError) as e:
        raise click.ClickException(str(e)) from None
    if stderr_tty:
        click.echo("", err=True)
    return stats


def summary_line(stats: RunStats, out: str) -> str:
    kinds = ", ".join(f"{n} {k}" for k, n in sorted(stats.by_type.items())) or "no decisions"
    return f"recorded {out}: {stats.inputs} inputs, {stats.executions} executions, {stats.decisions} decisions ({kinds})"


# --------------------------------------------------------------------------- inspect / export


@main.command()
@click.argument("run_path", metavar="RUN")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def inspect(run_path: str, as_json: bool) -> None:
    """Show a run's manifest, whether it is complete and intact, its counts by event type and each
    strategy's outcome. Exits 2 (one line) if the file is damaged or tampered with."""
    from tapedeck.runtime.outcomes import EthPrice, eth_price_source, outcomes

    log = open_checked(run_path)
    try:
        counts = log.counts_by_topic()  # a full read: checks every segment and the seal
        integrity = log.integrity
        try:
            price = EthPrice(eth_price_source(log.manifest.config)).source
        except ValueError as e:
            raise click.ClickException(f"{run_path}: [outcomes] config: {e}") from None
        results = outcomes(log.events(), price) if any(t.startswith(("OpportunityDetected", "OpportunitySuppressed", "OrderIntended",
                                                                      "IntentRejected")) for t in counts) else {}
    except EventLogError as e:
        raise Unreadable(str(e)) from None
    finally:
        log.close()
    m = log.manifest
    assert integrity is not None
    if as_json:
        strategies = {name: {**r.__dict__, "lost_to": dict(r.lost_to)} for name, r in results.items()}
        click.echo(json.dumps({"manifest": m.__dict__, "counts": counts, "total": sum(counts.values()),
                               "integrity": {**integrity.as_dict(), "summary": integrity.describe()},
                               "strategies": strategies}, indent=2, sort_keys=True, default=str))
        return
    click.echo(f"run {m.run_id}  mode {m.mode}  ended {m.ended}  tapedeck {m.version}")
    click.echo(f"integrity: {integrity.describe()}")
    click.echo(f"config hash {m.config_hash or '-'}  seed {m.seed}")
    if m.parent:
        click.echo(f"replayed from {m.parent}")
    for s in m.sources:
        click.echo(f"source {s}")
    if m.started_ts:
        click.echo(f"event time {_iso(m.started_ts)} .. {_iso(m.ended_ts)}")
    for topic, n in counts.items():
        click.echo(f"{n:>10}  {topic}")
    click.echo(f"{sum(counts.values()):>10}  total")
    for line in outcome_lines(results.values()):
        click.echo(line)


def _iso(ts_ns: int) -> str:
    try:
        return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(ts_ns // 10**9)) + "Z"
    except (OverflowError, OSError, ValueError):  # not a time this machine can show
        return f"{ts_ns} ns"


def guard_out(run_path: str, out: str | Path | None) -> None:
    """Refuse an ``--out`` that would destroy a run: the run being read itself (through links too), or any
    existing SQLite database (another run, most likely). Other existing files (an earlier export or report)
    are written over, as before."""
    if out is None or str(out) == "-":
        return
    if same_file(run_path, out):
        raise click.ClickException(f"--out {out} is the run being read ({run_path}); choose another --out")
    p = Path(out)
    if p.is_file():
        try:
            with open(p, "rb") as f:
                head = f.read(16)
        except OSError:
            return  # (the write says why it cannot)
        if head == b"SQLite format 3\x00":
            raise click.ClickException(f"--out {out}: is a database (a run?), which this would overwrite; choose "
                                       "another --out or remove it")


@main.command()
@click.argument("run_path", metavar="RUN")
@click.option("--format", "fmt", type=click.Choice(["jsonl", "csv", "parquet"]), default="jsonl")
@click.option("--type", "types", multiple=True, help="Only these event types (repeatable).")
@click.option("--out", default="-", help="Output file (default stdout); for parquet a folder, one <Type>.parquet "
              "per event type.")
def export(run_path: str, fmt: str, types: tuple[str, ...], out: str) -> None:
    """Write a run's events out as JSON lines, CSV (one --type) or Parquet (a folder of one file per
    type, current columns, older versions upcast; see adapters/event_views.py)."""
    unknown = [t for t in types if t not in ev.BY_NAME]
    if unknown:
        raise click.ClickException(f"unknown event type(s): {', '.join(unknown)} (known: {', '.join(ev.BY_NAME)})")
    if fmt == "csv" and len(types) != 1:
        raise click.ClickException("csv export needs exactly one --type (columns differ per type)")
    guard_out(run_path, out)
    if fmt == "parquet":
        export_parquet(run_path, types, out)
        return
    log = open_checked(run_path)
    try:
        stream = sys.stdout if out == "-" else open(out, "w", newline="")
    except OSError as e:
        log.close()
        raise click.ClickException(f"--out {out}: cannot write: {e.strerror or e}") from None
    try:
        writer = None
        for e in _checked_events(log):
            name = type(e).__name__
            if types and name not in types:
                continue
            row = {"type": name, **codec.to_builtins(e)}
            if fmt == "jsonl":
                stream.write(json.dumps(row) + "\n")
            else:
                if writer is None:
                    writer = csv.DictWriter(stream, fieldnames=list(row))
                    writer.writeheader()
                writer.writerow(row)
    finally:
        log.close()
        if stream is not sys.stdout:
            stream.close()


def export_parquet(run_path: str, types: tuple[str, ...], out: str) -> None:
    from tapedeck.adapters.event_views import write_parquet

    if out == "-":
        raise click.ClickException("parquet export needs --out FOLDER (one <Type>.parquet per event type)")
    if Path(out).exists() and not Path(out).is_dir():
        raise click.ClickException(f"--out {out}: is a file; parquet export writes a folder")
    log = open_checked(run_path)
    counts = write_from_run(log, out, lambda: write_parquet(log, out, types))
    if log.integrity is not None and not log.integrity.complete:
        click.echo(f"note: {log.path}: {log.integrity.describe()}", err=True)
    for name, n in counts.items():
        click.echo(f"{n:>10}  {Path(out) / (name + '.parquet')}")


@main.command()
@click.argument("run_path", metavar="RUN")
def views(run_path: str) -> None:
    """Add the per-event-type SQL views (named columns) to a run written before they existed, and a
    <Type>_v<N> view for each older schema version it holds. New runs have them from the start."""
    from tapedeck.adapters.event_views import add_views
    from tapedeck.adapters.eventlog import WriterLock

    log = open_checked(run_path)
    try:
        topics = log.counts_by_topic()  # a full read: a damaged or tampered run gets no views
    except EventLogError as e:
        raise Unreadable(str(e)) from None
    finally:
        log.close()
    try:
        with WriterLock(run_path):
            made = add_views(run_path, topics)
    except EventLogError as e:
        raise click.ClickException(str(e)) from None
    click.echo(f"{run_path}: {len(made)} views added" + (f" ({', '.join(n for n in made if '_v' in n)} for older "
                                                          f"versions)" if any("_v" in n for n in made) else ""))


def _checked_events(log: EventLog):  # type: ignore[no-untyped-def]
    """The run's events; a damaged or tampered segment ends the export with exit 2 (nothing of it is written)."""
    try:
        yield from log.events()
    except EventLogError as e:
        raise Unreadable(str(e)) from None
    if log.integrity is not None and not log.integrity.complete:
        click.echo(f"note: {log.path}: {log.integrity.describe()}", err=True)


# --------------------------------------------------------------------------- report


class ReportGroup(click.Group):
    """``tapedeck report RUN.db [--out FILE]`` is short for ``tapedeck report html RUN.db``: a first
    argument that is not one of the subcommands (nor an option) names a run."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and not args[0].startswith("-"):
            args = ["html", *args]
        return super().parse_args(ctx, args)


@main.group(cls=ReportGroup)
def report() -> None:
    """Summaries computed from a log's events. `tapedeck report RUN.db` writes the run's HTML report."""


@report.command("html")
@click.argument("run_path", metavar="RUN")
@click.option("--out", default=None, help="HTML file to write (default: RUN with .report.html).")
def report_html(run_path: str, out: str | None) -> None:
    """One self-contained HTML page of RUN's charts (PnL, opportunities and their fate, latencies,
    health factors, perp exits, gas), computed from its events; no network needed to view it."""
    click.echo(write_run_report(run_path, out))


def write_run_report(run_path: str, out: str | None) -> str:
    """Write RUN's report (a full, checked read: a damaged or tampered run is exit 2) and return its path."""
    from tapedeck.runtime.report_html import default_out, write_report

    target = Path(out) if out else default_out(run_path)
    guard_out(run_path, target)
    log = open_checked(run_path)
    return str(write_from_run(log, target, lambda: write_report(log, target)))


def write_from_run(log: EventLog, out: Any, write: Any) -> Any:
    """``write()`` reading ``log`` (closed after): a bad run is exit 2, an unwritable ``out`` one line."""
    try:
        return write()
    except EventLogError as e:
        raise Unreadable(str(e)) from None
    except OSError as e:
        raise click.ClickException(f"--out {out}: cannot write: {e.strerror or e}") from None
    finally:
        log.close()


class FiniteRange(click.FloatRange):
    """``click.FloatRange`` that refuses nan too (it compares false with both bounds, so FloatRange
    lets it by): a usage error naming the option, never an internal error when it is used."""

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        rv = super().convert(value, param, ctx)
        if math.isnan(rv):
            self.fail(f"{value!r} is not a number in the range {self.min}<=x<={self.max}.", param, ctx)
        return rv


@report.command("opportunities")
@click.argument("log_path", metavar="LOG")
@click.option("--gas-price-gwei", type=FiniteRange(0, 10**6), default=15.0, show_default=True,
              help="Gas price when the log has no block base fee.")
@click.option("--max-age-s", type=FiniteRange(0, 365 * 86400), default=60.0, show_default=True,
              help="Venues updated longer ago than this (event time) take no part.")
@click.option("--min-profit", type=FiniteRange(0, 10**12), default=0.0, show_default=True,
              help="Net profit after gas an opportunity must clear, in whole profit tokens (USDC).")
@click.option("--top", type=click.IntRange(min=0), default=10, show_default=True, help="How many of the best to list.")
def report_opportunities(log_path: str, gas_price_gwei: float, max_age_s: float, min_profit: float, top: int) -> None:
    """The cross-venue round trips LOG offered above gas: episodes, sizes and profits (exact math)."""
    from tapedeck.runtime.opportunity_report import opportunities

    open_log(log_path).close()
    try:
        rep = opportunities(log_path, gas_price_wei=int(gas_price_gwei * 1e9), max_age_ns=int(max_age_s * 1e9),
                            min_profit=int(min_profit * 1e6))
    except EventLogError as e:
        raise click.ClickException(str(e)) from None
    for line in rep.lines(top):
        click.echo(line)


# --------------------------------------------------------------------------- serve


@main.command()
@click.argument("log_path", metavar="LOG")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind (loopback unless told).")
@click.option("--port", type=click.IntRange(0, 65535), default=8080, show_default=True, help="0: any free port "
              "(the one bound is printed).")
@click.option("--cors", "cors", multiple=True, help="An origin allowed to call the API from a browser (repeatable; "
              "off by default).")
@click.option("--max-age-s", type=FiniteRange(0, 365 * 86400), default=60.0, show_default=True,
              help="State older than this (event time) takes no part in /scan-arbitrage.")
@click.option("--gas-price-gwei", type=FiniteRange(0, 10**6), default=15.0, show_default=True,
              help="Gas price when the log has no block base fee.")
def serve(log_path: str, host: str, port: int, cors: tuple[str, ...], max_age_s: float, gas_price_gwei: float) -> None:
    """Serve the pool price cache of LOG over HTTP: GET /health, /prices, /prices/{pair}, POST /scan-arbitrage.

    LOG's inputs are folded by the engine; every response is precomputed from that state. The
    address is bound before the line saying where it serves (with the real port for --port 0).
    """
    from tapedeck.runtime.serve import build_app, load_cache, uvicorn_config

    try:
        import uvicorn
    except ImportError as e:
        raise click.ClickException(f"serve needs uvicorn and starlette installed: {e}") from None
    log = open_log(log_path)  # (a missing file or a directory: one line, from EventLog.open)
    log.close()
    try:
        cache = load_cache(log_path, max_age_ns=int(max_age_s * 1e9), gas_price_wei=int(gas_price_gwei * 1e9))
    except EventLogError as e:
        raise click.ClickException(str(e)) from None
    sock, url = listening(host, port)
    click.echo(f"serving {log_path}: {cache.events} events, {len(cache.venues)} venues in {len(cache.finder.pairs)} "
               f"pairs, {len(cache.opportunities)} opportunities; {url}/health", err=True)
    with sock:
        bound_host, bound_port = sock.getsockname()[:2]
        uvicorn.Server(uvicorn_config(build_app(cache, cors), host=bound_host, port=bound_port)).run(sockets=[sock])


def listening(host: str, port: int) -> tuple[Any, str]:
    """``runtime.serve.listen``'s socket, bound before anything says where it serves, and its URL
    (``http://HOST:PORT``, the port bound for ``--port 0``); a busy port or a bad host is one line."""
    from tapedeck.runtime.serve import listen

    try:
        sock = listen(host, port)
    except (OSError, ValueError) as e:
        raise click.ClickException(f"cannot listen on {host}:{port}: {getattr(e, 'strerror', None) or e}") from None
    bound_host, bound_port = sock.getsockname()[:2]
    return sock, f"http://{f'[{bound_host}]' if ':' in bound_host else bound_host}:{bound_port}"


# --------------------------------------------------------------------------- dashboard


@main.command()
@click.argument("run_path", metavar="RUN")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind (loopback unless told).")
@click.option("--port", type=click.IntRange(0, 65535), default=8090, show_default=True)
@click.option("--poll-ms", type=click.IntRange(100, 60_000), default=1000, show_default=True,
              help="How often the page asks for new events.")
def dashboard(run_path: str, host: str, port: int, poll_ms: int) -> None:
    """A web page of RUN's charts (the report's) that follows the log as it grows: the page polls
    /api/update, which reads the events after the last seq it folded."""
    from tapedeck.runtime.dashboard import Dashboard, build_app, open_store
    from tapedeck.runtime.serve import uvicorn_config

    try:
        import uvicorn
    except ImportError as e:
        raise click.ClickException(f"dashboard needs uvicorn and starlette installed: {e}") from None
    try:
        store = open_store(run_path)
    except EventLogError as e:
        raise click.ClickException(str(e)) from None
    board = Dashboard(store, poll_ms=poll_ms)
    try:
        sock, url = listening(host, port)
        click.echo(f"dashboard of {run_path}: {url}/", err=True)
        with sock:
            bound_host, bound_port = sock.getsockname()[:2]
            uvicorn.Server(uvicorn_config(build_app(board), host=bound_host, port=bound_port)).run(sockets=[sock])
    finally:
        store.close()
# --------------------------------------------------------------------------- live


@main.command()
@click.argument("config_path", metavar="CONFIG")
@click.option("--out", default=None, help="The run's log (default [live] out). An existing live run is resumed.")
@click.option("--execute", is_flag=True, help="Send for real (default: paper). Needs a key from the environment or "
              "a keystore, [risk] daily_loss_limit and a max_notional for every venue a gateway serves.")
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE", help="Override a config key (dotted: "
              "ops.port=9200); applied after TAPEDECK_<TABLE>__<KEY> environment variables.")
@click.option("--ops-host", default=None, help="Address of /health, /metrics, /kill (default 127.0.0.1).")
@click.option("--ops-port", type=click.IntRange(0, 65535), default=None, help="Their port (default 9108; 0: any).")
def live(config_path: str, out: str | None, execute: bool, sets: tuple[str, ...], ops_host: str | None,
         ops_port: int | None) -> None:
    """Run the strategies live: the configured sources feed the same loop as sim and replay.

    Paper by default. SIGINT/SIGTERM stop it gracefully (the log closes clean); SIGUSR1 or
    POST /kill engages the kill switch (recorded: no new intents). Run again with the same --out to
    resume the run.
    """
    from tapedeck.live.config import LiveConfigError, load_live_config

    try:
        settings = load_live_config(config_path, sets=sets, out=out, ops_host=ops_host, ops_port=ops_port)
    except LiveConfigError as e:
        raise click.ClickException(str(e)) from None
    say = lambda line: click.echo(f"live: {line}", err=True)  # noqa: E731
    try:
        run = build_run("live", settings.config, out=settings.out or "", live=settings, execute_orders=execute, say=say)
    except BuildError as e:
        raise click.ClickException(str(e)) from None
    runner = run.world
    say(f"{'EXECUTING' if execute else 'paper'} run {'resumed' if runner.resumed else 'recording'} to {runner.out} "
        f"(pid {os.getpid()}; SIGTERM stops, SIGUSR1 kills)")
    for note in runner.notes:
        say(note)
    told = len(runner.notes)
    from tapedeck.live.runner import RunnerError

    try:
        run.run()
    except RunnerError as e:
        raise click.ClickException(str(e)) from None
    s = runner.summary
    for note in s.notes[told:]:
        say(note)
    click.echo(f"live run {s.out}: {s.events} events this session (seq {s.first_seq}..{s.last_seq}), ended {s.ended}"
               f"{', kill switch engaged' if s.kill_switch else ''}")
# --------------------------------------------------------------------------- sweep


@main.command()
@click.argument("sources", nargs=-1, required=True, metavar="SCENARIO...")
@click.option("--seeds", default=None, help="Seeds: 1-100, 7, or 1,5,10-12 (default: each scenario's own).")
@click.option("--set", "sets", multiple=True, metavar="PATH=V1,V2,...",
              help="A config value to vary (repeatable; the sets are their product), e.g. "
                   "strategies[4].min_profit=1_000_000,5_000_000 (values are TOML literals).")
@click.option("--scheduler", default=None, help="Address of an existing Dask scheduler (default: a local cluster).")
@click.option("--workers", type=click.IntRange(min=1), default=None,
              help="Local cluster worker processes (default: this machine's cores).")
@click.option("--out", "out_dir", default="runs/sweep", show_default=True,
              help="Directory for the runs (runs/...), sweep.csv/.parquet, sweep-summary.csv/.parquet, sweep.html.")
@click.option("--config", "config_path", default=None,
              help="Strategy config (default: fixtures/config/sim-default.toml for scenarios, default.toml for logs).")
@click.option("--chain", type=click.Choice(["pyevm", "anvil", "revm"]), default="revm", show_default=True,
              help="Chain backend of the sims.")
@click.option("--duration", type=float, default=None, help="Simulated seconds (default: each scenario's own).")
@click.option("--strategy", default=None, help="Whose outcome the tables report (default: the strategy the --set "
              "options vary, else 'all' summed).")
@click.option("--retries", type=click.IntRange(min=0), default=2, show_default=True,
              help="Times a failed task is run again.")
@click.option("--force", is_flag=True, help="Write over a sweep already in --out.")
def sweep(sources: tuple[str, ...], seeds: str | None, sets: tuple[str, ...], scheduler: str | None,
          workers: int | None, out_dir: str, config_path: str | None, chain: str, duration: float | None,
          strategy: str | None, retries: int, force: bool) -> None:
    """Run every (scenario, seed, parameter set) as a Dask task and tabulate the runs.

    A SCENARIO is a name in fixtures/scenarios, a TOML path, or a run file (*.db) to replay. Each task
    records its run under --out/runs; the tables are computed from those runs' events and the same
    sweep gives the same tables. Exit status 1 if a task failed every attempt (its row says why).
    """
    from tapedeck.runtime import sweep as sw
    from tapedeck.runtime.sweep_report import write_report

    if scheduler and workers:
        raise click.UsageError("--workers sizes the local cluster; an existing one (--scheduler) has its own")
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise click.ClickException(f"--out {out_dir}: is a file, not a directory (a sweep writes a folder)")
    if (out / "sweep.csv").exists() and not force:
        raise click.ClickException(f"--out {out_dir} already holds a sweep (sweep.csv); --force writes over it")
    try:
        plan = sw.plan_sweep(list(sources), seeds=sw.parse_seeds(seeds) if seeds else None, sets=list(sets),
                             config_path=config_path, duration=duration, chain=chain, strategy=strategy)
    except sw.SweepError as e:
        raise click.ClickException(str(e)) from None
    for note in plan.notes:
        click.echo(f"note: {note}", err=True)
    def connected(n: int) -> None:
        click.echo(f"sweep: {len(plan.cells)} tasks ({len(plan.sources)} scenario(s) x {len(plan.sets)} parameter "
                   f"set(s){f' x {len(plan.seeds)} seed(s)' if plan.seeds else ''}) on "
                   f"{scheduler or 'a local cluster'} with {n} workers", err=True)

    try:
        result = sw.run_sweep(plan, out, scheduler=scheduler, workers=workers, retries=retries,
                              progress=sw.main_progress(), connected=connected)
    except sw.SweepError as e:
        raise click.ClickException(str(e)) from None
    for cell_id, notes in result.retried.items():
        click.echo(f"retried {cell_id}: {'; '.join(notes)}", err=True)
    written = sw.write_tables(result, out)
    report = write_report(result, out / "sweep.html")
    for line in sw.printed(result):
        click.echo(line)
    click.echo(f"wrote {', '.join(str(p) for p in written.values())}, {report}")
    if result.failed:
        for cell_id, why in result.failed.items():
            click.echo(f"failed {cell_id}: {why}", err=True)
        click.echo(f"Error: {len(result.failed)} of {len(plan.cells)} tasks failed every attempt", err=True)
        sys.exit(1)


# --------------------------------------------------------------------------- demo


@main.command()
@click.option("--data", default=None, help="Recordings folder (default $TAPEDECK_DATA or ../shared/data).")
@click.option("--workdir", default="runs/demo", show_default=True)
def demo(data: str | None, workdir: str) -> None:
    """Import the real 2024-01-05 USDC/WETH day, replay the arbitrage strategy over it, verify it."""
    from tapedeck.runtime.demo import run_demo

    try:
        run_demo(data, Path(workdir), echo=click.echo)
    except (config_files.ConfigFileError, EventLogError, ImportError_, PaperConfigError) as e:
        raise click.ClickException(str(e)) from None



# --------------------------------------------------------------------------- record (issue 13, live-evm)


@main.command("record")
@click.argument("config_path", metavar="CONFIG")
@click.option("--out", required=True, help="Log to record into; an existing recording is resumed from its checkpoint.")
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE",
              help="Override a config key after the file and TAPEDECK_<TABLE>__<KEY> variables (as tapedeck live).")
def record_cmd(config_path: str, out: str, sets: tuple[str, ...]) -> None:
    """Record the live inputs of CONFIG's [[sources]] (no strategies) into LOG until SIGINT/SIGTERM;
    replay it later with `tapedeck replay LOG --verify` or `--out RUN.db`. CONFIG is read as
    `tapedeck live` reads it (live/config.py)."""
    from tapedeck.live.record import RecordConfigError, run_record

    try:
        counts = run_record(config_path, out, sets=sets)
    except (RecordConfigError, EventLogError) as e:
        raise click.ClickException(str(e)) from None
    total = sum(counts.values())
    click.echo(f"recorded {total} events into {out}: "
               + ", ".join(f"{n} {k}" for k, n in sorted(counts.items())))
# --------------------------------------------------------------------------- copy between stores


@main.command("copy")
@click.argument("src", metavar="SRC")
@click.argument("dst", metavar="DST")
@click.option("--force", is_flag=True, help="Replace DST if it exists.")
def copy_cmd(src: str, dst: str, force: bool) -> None:
    """Copy a run between stores, segment for segment: SRC and DST are each a run file (RUN.db) or a
    PostgreSQL run (postgresql://[user@]host[:port]/DB?run=NAME). The copy has the same manifest,
    chain, seal and digest; it is read back and its digest compared before this says so."""
    from tapedeck.runtime.store_copy import copy_run

    try:
        done = copy_run(src, dst, overwrite=force)
    except (EventLogError, BuildError) as e:
        raise Unreadable(str(e)) from None
    click.echo(done.describe(src, dst))



@main.command("serve-role")
@click.argument("role", type=click.Choice(["scanner", "evaluator", "executor"]))
@click.argument("config_path", metavar="CONFIG")
@click.option("--store", required=True, help="postgresql://[user@]host[:port]/DB?run=NAME: the runs NAME_in (inputs), "
              "NAME (inputs and decisions) and NAME_ex (executions).")
@click.option("--tape", default=None, help="scanner: the recorded log whose inputs it records (a file or postgresql:// run).")
@click.option("--flush-every", type=click.IntRange(min=0), default=0, show_default=True,
              help="scanner: commit every N inputs (0: the store's own batching).")
def serve_role(role: str, config_path: str, store: str, tape: str | None, flush_every: int) -> None:
    """Run one role of the loop on a shared PostgreSQL log (runtime/roles.py): the scanner records
    inputs, the evaluator follows them and decides, the executor follows the decisions and fills
    the intents on paper; each follows the others through the library's notification log."""
    from tapedeck.runtime import roles

    try:
        if role == "scanner":
            if not tape:
                raise click.UsageError("the scanner needs --tape LOG (the recorded inputs it records)")
            n = roles.serve_scanner(store, tape, flush_every=flush_every)
            click.echo(f"scanner: recorded {n} inputs")
            return
        config = load_config(config_path)
        engine_for(config, config_path)
        if role == "evaluator":
            stats = roles.serve_evaluator(config, store)
            click.echo(summary_line(stats, redact(store)))
        else:
            n = roles.serve_executor(config, store)
            click.echo(f"executor: submitted {n} intents")
    except (EventLogError, BuildError) as e:
        raise click.ClickException(str(e)) from None

if __name__ == "__main__":
    main()
