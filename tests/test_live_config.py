"""A live config: one TOML, then TAPEDECK_<TABLE>__<KEY> variables, then command-line options;
validated once, every problem one line naming the file and the key (and the variable that set it,
never its value); secrets refused in the file; what --execute needs of it."""
from __future__ import annotations

from pathlib import Path

import pytest

from tapedeck.live.config import DECISION_KEYS, LiveConfigError, execute_problems, load_live_config

FILE = """
[risk]
default_max_notional = 1_000
default_max_outstanding = 10_000

[ops]
port = 9200

[[sources]]
kind = "evm"
name = "mainnet"
url_env = "MAINNET_WS"

[[gateways]]
kind = "evm"
venues = ["ethereum"]
"""


def write(tmp_path: Path, text: str = FILE) -> str:
    p = tmp_path / "live.toml"
    p.write_text(text)
    return str(p)


def test_the_file_then_the_environment_then_the_command_line(tmp_path: Path) -> None:
    path = write(tmp_path)
    s = load_live_config(path, environ={})
    assert (s.ops.host, s.ops.port, s.out) == ("127.0.0.1", 9200, None)
    assert [(x.kind, x.name, x.params) for x in s.sources] == [("evm", "mainnet", {"url_env": "MAINNET_WS"})]
    assert [(g.name, g.venues) for g in s.gateways] == [("evm", ("ethereum",))]
    assert set(s.config) <= set(DECISION_KEYS) and s.config["store"] == {"max_delay_ms": 5}
    env = {"TAPEDECK_OPS__PORT": "9300", "TAPEDECK_LIVE__OUT": "runs/env.db", "TAPEDECK_STORE__MAX_DELAY_MS": "20",
           "TAPEDECK_SOURCES__0__URL_ENV": "OTHER_WS", "TAPEDECK_DATA": "/x", "TAPEDECK_PRIVATE_KEY": "0xnotconfig"}
    s = load_live_config(path, environ=env)
    assert (s.ops.port, s.out, s.max_delay_ms, s.sources[0].params["url_env"]) == (9300, "runs/env.db", 20, "OTHER_WS")
    assert s.origins["ops.port"] == "TAPEDECK_OPS__PORT"
    s = load_live_config(path, environ=env, sets=["ops.port=9400", "risk.daily_loss_limit=77"], out="runs/cli.db",
                         ops_host="0.0.0.0")
    assert (s.ops.port, s.out, s.ops.host, s.config["risk"]["daily_loss_limit"]) == (9400, "runs/cli.db", "0.0.0.0", 77)
    s = load_live_config(path, environ=env, sets=["ops.port=9400"], ops_port=9500)
    assert s.ops.port == 9500  # the dedicated option comes last


def test_problems_name_the_file_and_the_key_one_line_each(tmp_path: Path) -> None:
    text = FILE.replace("port = 9200", "port = 99999\nbogus = 1") + "\n[live]\nrestart_base_s = -1\n"
    path = write(tmp_path, text)
    with pytest.raises(LiveConfigError) as info:
        load_live_config(path, environ={})
    lines = str(info.value).splitlines()
    assert len(lines) == 3 and all(line.startswith(f"{path}: ") for line in lines)
    assert any("ops.port: Input should be less than or equal to 65535 (got 99999)" in line for line in lines)
    assert any("ops.bogus: unknown key" in line for line in lines)
    assert any("live.restart_base_s: Input should be greater than 0" in line for line in lines)


def test_an_overridden_bad_value_names_its_variable_and_not_its_value(tmp_path: Path) -> None:
    path = write(tmp_path)
    with pytest.raises(LiveConfigError) as info:
        load_live_config(path, environ={"TAPEDECK_OPS__PORT": "s3cr3t-looking"})
    msg = str(info.value)
    assert msg == f"{path}: ops.port: Input should be a valid integer (set by TAPEDECK_OPS__PORT)"
    with pytest.raises(LiveConfigError, match=r"--set ops\.port"):
        load_live_config(path, environ={}, sets=["ops.port=x"])
    with pytest.raises(LiveConfigError, match="expected KEY=VALUE"):
        load_live_config(path, environ={}, sets=["ops.port"])
    with pytest.raises(LiveConfigError) as info:  # inside an array too: the variable named, its value not
        load_live_config(path, environ={"TAPEDECK_SOURCES__0__NAME": "42"})
    assert str(info.value) == f"{path}: sources[0].name: Input should be a valid string (set by TAPEDECK_SOURCES__0__NAME)"
    with pytest.raises(LiveConfigError, match=r"sources\.5: no such entry \(the array has 1\)"):
        load_live_config(path, environ={"TAPEDECK_SOURCES__5__URL_ENV": "X"})


def test_secrets_are_never_read_from_the_file(tmp_path: Path) -> None:
    text = FILE.replace('url_env = "MAINNET_WS"', 'url_env = "MAINNET_WS"\napi_secret = "hunter2"') + \
        '\n[[gateways]]\nkind = "binance"\nvenue = "binance"\nprivate_key = "0xabc"\n'
    path = write(tmp_path, text)
    with pytest.raises(LiveConfigError) as info:
        load_live_config(path, environ={})
    msg = str(info.value)
    assert "sources[0].api_secret: secrets are never read from the config; give the name of an environment " \
           "variable instead (api_secret_env = \"...\")" in msg
    assert "gateways[1].private_key: secrets are never read" in msg
    assert "hunter2" not in msg and "0xabc" not in msg
    ok = write(tmp_path, FILE.replace('url_env = "MAINNET_WS"', 'api_secret_env = "BINANCE_SECRET"'))
    assert load_live_config(ok, environ={}).sources[0].params == {"api_secret_env": "BINANCE_SECRET"}


def test_names_and_venues_are_unique(tmp_path: Path) -> None:
    path = write(tmp_path, FILE + '\n[[sources]]\nkind = "evm"\nname = "mainnet"\n')
    with pytest.raises(LiveConfigError, match="sources: two entries are named 'mainnet'"):
        load_live_config(path, environ={})
    path = write(tmp_path, FILE + '\n[[gateways]]\nkind = "book"\nvenue = "ethereum"\n')
    with pytest.raises(LiveConfigError, match=r"gateways\[1\]: venue 'ethereum' is already served by gateway 'evm'"):
        load_live_config(path, environ={})
    path = write(tmp_path, FILE + '\n[[gateways]]\nkind = "book"\n')
    with pytest.raises(LiveConfigError, match=r"gateways\[1\]: names no venue"):
        load_live_config(path, environ={})
    two = write(tmp_path, FILE.replace('name = "mainnet"\n', "") + '\n[[sources]]\nkind = "evm"\n')
    assert [x.name for x in load_live_config(two, environ={}).sources] == ["evm-1", "evm-2"]


def test_what_execute_needs_of_the_config(tmp_path: Path) -> None:
    s = load_live_config(write(tmp_path), environ={})
    problems = execute_problems(s)
    assert [p.split(": ")[1] for p in problems] == ["risk.venues.ethereum.max_notional", "risk.daily_loss_limit"]
    ready = FILE.replace("default_max_outstanding = 10_000", "default_max_outstanding = 10_000\n"
                         "daily_loss_limit = 500\n[risk.venues.ethereum]\nmax_notional = 100")
    assert execute_problems(load_live_config(write(tmp_path, ready), environ={})) == []
    no_gw = write(tmp_path, ready.split("[[gateways]]")[0])
    assert "needs at least one [[gateways]] entry" in execute_problems(load_live_config(no_gw, environ={}))[0]
    with pytest.raises(LiveConfigError, match="daily_loss_limit: Input should be greater than or equal to 1"):
        load_live_config(write(tmp_path, ready.replace("daily_loss_limit = 500", "daily_loss_limit = 0")), environ={})


def test_the_shipped_example_is_valid_and_paper_only() -> None:
    from tapedeck.adapters.config_files import FIXTURES

    s = load_live_config(str(FIXTURES / "config" / "live-paper.toml"), environ={})
    assert [(x.kind, x.name) for x in s.sources] == [("evm", "mainnet")]
    assert s.gateways == []  # its venue is filled on paper; --execute needs a gateway of the user's own
    assert [p.split(": ", 1)[1].split(":")[0] for p in execute_problems(s)] == ["gateways"]  # caps, loss limit set
    from tapedeck.runtime.strategy_loader import build_engine

    assert build_engine(s.config).risk.daily_loss_limit == 500_000_000
