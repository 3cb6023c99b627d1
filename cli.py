"""The ``tapedeck`` command: import recordings, replay and verify runs, inspect and export them."""
from __future__ import annotations

import csv
import json
import sys
import time
from pathlib import Path
from typing import Any

import click

from tapedeck.adapters import config_files
from tapedeck.adapters.eventlog import EventLog, EventLogError
from tapedeck.runtime.importers import KINDS as IMPORT_KINDS
from tapedeck.runtime.importers import ImportError_, import_files
from tapedeck.adapters.uniswap_v3_logs import independent_decode_report
from tapedeck.runtime.bootstrap import BuildError, build_run
from tapedeck.runtime.loop import RunStats
from tapedeck.runtime.verify import verify
from tapedeck.domain import events as ev
from tapedeck.domain.strategies import ConfigError, build_engine

DEFAULT_CONFIG = config_files.DEFAULT_CONFIG


def load_config(path: str | Path) -> dict[str, Any]:
    try:
        return config_files.load_config(path)
    except config_files.ConfigFileError as e:
        raise click.ClickException(str(e)) from None


def open_log(path: str) -> EventLog:
    try:
        return EventLog.open(path)
    except EventLogError as e:
        raise click.ClickException(str(e)) from None


def engine_for(config: dict[str, Any], where: str):  # type: ignore[no-untyped-def]
    try:
        return build_engine(config)
    except ConfigError as e:
        raise click.ClickException(f"{where}: {e}") from None


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """tapedeck: record, replay, simulate and run on-chain trading bots on one deterministic core."""


# --------------------------------------------------------------------------- sim


@main.command()
@click.argument("scenario")
@click.option("--seed", type=int, default=None, help="Seed (default: the scenario's own).")
@click.option("--out", default=None, help="Run file (default runs/<scenario>-seed<N>.db).")
@click.option("--config", "config_path", default=None, help="Strategy config (default fixtures/config/sim-default.toml).")
@click.option("--chain", "chain", type=click.Choice(["pyevm", "anvil"]), default="pyevm", show_default=True,
              help="Chain backend: py-evm in process, or an anvil node on 127.0.0.1.")
@click.option("--force", is_flag=True, help="Overwrite --out if it exists.")
def sim(scenario: str, seed: int | None, out: str | None, config_path: str | None, chain: str, force: bool) -> None:
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
    config = load_config(cfg_file)
    engine_for(config, str(cfg_file))  # validate before the world starts
    out = out or f"runs/{sc.name}-seed{sc.seed}.db"
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
    for line in sim_report(summary, wall):
        click.echo(line)
    click.echo(f"recorded {out}  (tapedeck replay {out} --verify)")


def sim_report(summary: Any, wall: float) -> list[str]:
    """The lines ``tapedeck sim`` prints: the world, the chain, and each strategy's races."""
    st = summary.stats
    kinds = ", ".join(f"{n} {k}" for k, n in sorted(st.by_type.items())) or "none"
    lines = [f"scenario {summary.scenario} seed {summary.seed} on {summary.chain}: "
             f"{summary.simulated_seconds:,.0f} simulated s in {wall:.1f} s wall "
             f"({summary.simulated_seconds / max(wall, 1e-9):,.0f} simulated s per wall s)",
             f"  world: {summary.blocks} blocks, {summary.oracle_rounds} oracle rounds, {summary.quotes} book updates"]
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
    lines.append(f"  engine: {st.inputs} inputs, {st.decisions} decisions ({kinds})")
    return lines + outcome_lines(summary.strategies.values())


def outcome_lines(results: Any) -> list[str]:
    """One line per strategy (what it saw, did, won, lost, earned), then why it lost."""
    lines = []
    for s in results:
        lines.append(f"  strategy {s.strategy}: {s.opportunities} opportunities seen, {s.intents} acted on "
                     f"({s.rejected} refused by risk), {s.won} won, {s.lost} lost, {s.pending} pending; "
                     f"PnL {s.pnl / 1e6:,.2f} USDC net of gas ({s.gas_wei / 1e18:.4f} ETH) and fees")
        if s.lost:
            lines.append("    lost: " + "; ".join(f"{why} x{n}" for why, n in s.lost_to.most_common()))
    return lines


# --------------------------------------------------------------------------- import


@main.command("import")
@click.argument("kind", type=click.Choice(IMPORT_KINDS))
@click.argument("paths", nargs=-1, required=True)
@click.option("--out", "out", required=True, help="Log file to create or add this source to.")
@click.option("--from-block", type=int, default=None, help="Skip rows before this block.")
@click.option("--to-block", type=int, default=None, help="Skip rows after this block.")
def import_cmd(kind: str, paths: tuple[str, ...], out: str, from_block: int | None, to_block: int | None) -> None:
    """Turn a recording into input events in LOG (merged by event time with what it holds)."""
    t0 = time.perf_counter()
    try:
        rep = import_files(kind, list(paths), out, from_block=from_block, to_block=to_block)
    except (ImportError_, EventLogError) as e:
        raise click.ClickException(str(e)) from None
    click.echo(f"imported {rep.imported} events from {len(rep.files)} file(s) as {kind}; "
               f"rejected {rep.rejected} row(s); log now holds {rep.total_in_log} events "
               f"({time.perf_counter() - t0:.1f}s)")
    for r in rep.rejections:
        click.echo(f"  rejected: {r}")
    if kind == "uniswap-v3-logs":
        check_against_independent_decode(paths)


def check_against_independent_decode(paths: tuple[str, ...] | list[str]) -> None:
    for line in independent_decode_report(list(paths)):
        click.echo(line)


# --------------------------------------------------------------------------- replay


@main.command()
@click.argument("log_path", metavar="LOG")
@click.option("--verify", "do_verify", is_flag=True, help="Re-drive the recorded run and compare every decision.")
@click.option("--config", "config_path", default=None, help="Strategy config (TOML) overriding the recorded/default one.")
@click.option("--out", default=None, help="Record a new run driven by LOG's inputs here.")
@click.option("--force", is_flag=True, help="Overwrite --out if it exists.")
def replay(log_path: str, do_verify: bool, config_path: str | None, out: str | None, force: bool) -> None:
    """Verify a recorded run, or drive the strategies over a historical log into a new run."""
    if do_verify == bool(out):
        raise click.UsageError("give exactly one of --verify or --out RUN.db")
    log = open_log(log_path)
    if do_verify:
        config = load_config(config_path) if config_path else log.manifest.config
        if not config:
            raise click.ClickException(f"{log_path}: run has no recorded config; pass --config")
        engine = engine_for(config, config_path or f"{log_path} manifest config")
        result = verify(log, engine)
        log.close()
        if not result.ok:
            click.echo(result.divergence.describe())  # type: ignore[union-attr]
            click.echo(f"diverged at seq {result.divergence.seq} after {result.inputs} inputs, "  # type: ignore[union-attr]
                       f"{result.decisions} matching decisions")
            sys.exit(1)
        click.echo(f"verified {result.inputs} inputs, {result.decisions} decisions, digest {result.digest}")
        return
    cfg_file = Path(config_path) if config_path else DEFAULT_CONFIG
    config = load_config(cfg_file)
    engine = engine_for(config, str(cfg_file))
    stats = replay_into(log, config, engine, out, force)  # type: ignore[arg-type]
    log.close()
    click.echo(summary_line(stats, out))  # type: ignore[arg-type]


def replay_into(source: EventLog, config: dict[str, Any], engine: Any, out: str, force: bool) -> RunStats:
    stderr_tty = sys.stderr.isatty()

    def progress(s: RunStats) -> None:
        if stderr_tty:
            click.echo(f"\r  {s.inputs} inputs, {s.decisions} decisions", nl=False, err=True)

    try:
        stats = build_run("replay", config, out=out, source=source, engine=engine, overwrite=force,
                          progress=progress).run()
    except (EventLogError, BuildError) as e:
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
    """Show a run's manifest, its counts by event type and each strategy's outcome."""
    from tapedeck.runtime.outcomes import outcomes

    log = open_log(run_path)
    counts = log.counts_by_topic()
    m = log.manifest
    results = outcomes(log.events()) if any(t.startswith(("OpportunityDetected", "OrderIntended", "IntentRejected"))
                                            for t in counts) else {}
    log.close()
    if as_json:
        strategies = {name: {**r.__dict__, "lost_to": dict(r.lost_to)} for name, r in results.items()}
        click.echo(json.dumps({"manifest": m.__dict__, "counts": counts, "total": sum(counts.values()),
                               "strategies": strategies}, indent=2, sort_keys=True))
        return
    click.echo(f"run {m.run_id}  mode {m.mode}  ended {m.ended}  tapedeck {m.version}")
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
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(ts_ns // 10**9)) + "Z"


@main.command()
@click.argument("run_path", metavar="RUN")
@click.option("--format", "fmt", type=click.Choice(["jsonl", "csv"]), default="jsonl")
@click.option("--type", "types", multiple=True, help="Only these event types (repeatable).")
@click.option("--out", default="-", help="Output file (default stdout).")
def export(run_path: str, fmt: str, types: tuple[str, ...], out: str) -> None:
    """Write a run's events out as JSON lines or CSV (one file per type is up to you: use --type)."""
    unknown = [t for t in types if t not in ev.BY_NAME]
    if unknown:
        raise click.ClickException(f"unknown event type(s): {', '.join(unknown)} (known: {', '.join(ev.BY_NAME)})")
    if fmt == "csv" and len(types) != 1:
        raise click.ClickException("csv export needs exactly one --type (columns differ per type)")
    log = open_log(run_path)
    stream = sys.stdout if out == "-" else open(out, "w", newline="")
    try:
        writer = None
        for e in log.events():
            name = type(e).__name__
            if types and name not in types:
                continue
            row = {"type": name, **ev.to_builtins(e)}
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


# --------------------------------------------------------------------------- demo


@main.command()
@click.option("--data", default=None, help="Recordings folder (default $TAPEDECK_DATA or ../shared/data).")
@click.option("--workdir", default="runs/demo", show_default=True)
def demo(data: str | None, workdir: str) -> None:
    """Import the real 2024-01-05 USDC/WETH day, replay the arbitrage strategy over it, verify it."""
    from tapedeck.runtime.demo import run_demo

    try:
        run_demo(data, Path(workdir), echo=click.echo)
    except (config_files.ConfigFileError, EventLogError, ImportError_) as e:
        raise click.ClickException(str(e)) from None


if __name__ == "__main__":
    main()
