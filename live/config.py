"""A live run's configuration: one TOML file, then environment variables, then command-line options.

The file is a run config (``runtime.config_model``: ``[risk]``, ``[[strategies]]``, ``[engine]``,
``[paper]``, ``[store]``...) plus what only a live run has::

    [live]                      # the runner: where the run's log goes, how a dead source task restarts
    out = "runs/live.db"
    restart_base_s = 0.5        # a source task that died is restarted after Backoff(base, cap) seconds
    restart_cap_s = 30.0
    rebuild_after = 3           # that many deaths in a row: the adapter is rebuilt and restored from the log
    shutdown_grace_s = 5.0      # how long SIGTERM waits for sources and gateways to stop

    [ops]                       # GET /health, GET /metrics, POST /kill (live/ops.py)
    host = "127.0.0.1"          # loopback unless told otherwise
    port = 9108                 # 0: any free port (the runner says which on stderr)

    [keys]                      # --execute only: where the signing key comes from (never the file itself)
    env = "TAPEDECK_PRIVATE_KEY"            # an environment variable holding the hex key, or
    keystore = "keys/hot.json"              # an eth-account keystore whose password is in
    password_env = "TAPEDECK_KEYSTORE_PASSWORD"

    [[sources]]                 # one per outside connection; ``kind`` names the adapter (live/runner.py)
    kind = "evm"
    name = "mainnet"
    chain = "ethereum"          # adapter parameters (the adapter's from_config names them); a node URL
    ws_url = "ws://127.0.0.1:8546"  # with an API key in it from the environment: TAPEDECK_SOURCES__0__WS_URL

    [[gateways]]                # where intents for ``venue``/``venues`` go; others get paper fills
    kind = "evm"
    venues = ["ethereum:arb-executor"]  # the EVM gateway: aave-v3:<chain>, <chain>:arb-executor, <chain>:swap

**Overrides.** An environment variable ``TAPEDECK_<TABLE>__<KEY>`` (double underscore between
levels, case-insensitive, an integer level indexes an array: ``TAPEDECK_SOURCES__0__WS_URL``)
replaces that key, then each ``--set table.key=value`` on the command line (and ``--out``,
``--ops-host``, ``--ops-port``) does. A value is read as a TOML value when it parses as one
(``9200``, ``true``, ``"x"``, ``[1, 2]``), else as text. Variables without ``__`` (``TAPEDECK_DATA``,
``TAPEDECK_DEBUG``, the key variables) are not config.

**Validation** is pydantic's, ``extra="forbid"`` at every level the runner owns (an adapter's own
parameters are the adapter's to check), once, before anything starts; every problem is one line
naming the file and the dotted key, and an overridden key says which variable or option set it
(never repeating the value: a variable may carry a URL with an API key in it)::

    live.toml: ops.port: Input should be less than or equal to 65535 (set by TAPEDECK_OPS__PORT)

**Secrets** (keys, keystore passwords, API secrets, relay auth keys) are never read from the
file: a parameter named like one (``private_key``, ``api_secret``, ``password``...) is refused, and
names the environment variable to use instead (``api_secret_env = "..."``). What the run records
in its manifest is the decision config (``DECISION_KEYS``) and the adapters' kinds, names and
venues only, never their parameters (a node URL may carry an API key).
"""
from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictFloat, StrictInt, StrictStr, ValidationError

from tapedeck.adapters import config_files
from tapedeck.adapters.validation import dotted
from tapedeck.runtime.config_model import ConfigModel, _Strict, describe

ENV_PREFIX = "TAPEDECK_"
DEFAULT_KEY_ENV = "TAPEDECK_PRIVATE_KEY"
DEFAULT_PASSWORD_ENV = "TAPEDECK_KEYSTORE_PASSWORD"
LIVE_MAX_DELAY_MS = 5  # a live run commits at least this often unless [store] max_delay_ms says otherwise
DECISION_KEYS = ("risk", "strategies", "engine", "pools", "paper", "outcomes", "store")
"""The part of the config that decides (what the manifest records and ``replay --verify`` rebuilds)."""

SECRET_NAMES = frozenset({
    "key", "private_key", "secret", "secret_key", "api_key", "api_secret", "password", "passphrase",
    "auth_key", "relay_auth_key", "signing_key", "token", "auth_token", "mnemonic", "seed_phrase",
})
SECRET_SUFFIXES = ("_secret", "_password", "_private_key", "_passphrase", "_mnemonic")


class LiveConfigError(ValueError):
    """A live config that cannot run; ``str()`` is one line per problem, file and key first."""


class AdapterModel(BaseModel):
    """``kind`` (a registered name or ``module:Class``) and ``name``; the rest are the adapter's own."""

    model_config = ConfigDict(extra="allow", frozen=True)
    kind: StrictStr = Field(min_length=1)
    name: StrictStr | None = Field(default=None, min_length=1)


class GatewayModel(AdapterModel):
    venue: StrictStr | None = Field(default=None, min_length=1)
    venues: list[StrictStr] = []


class OpsModel(_Strict):
    enabled: StrictBool = True
    host: StrictStr = "127.0.0.1"
    port: StrictInt = Field(default=9108, ge=0, le=65535)


class KeysModel(_Strict):
    env: StrictStr = Field(default=DEFAULT_KEY_ENV, min_length=1)
    keystore: StrictStr | None = Field(default=None, min_length=1)
    password_env: StrictStr = Field(default=DEFAULT_PASSWORD_ENV, min_length=1)


class RunnerModel(_Strict):
    out: StrictStr | None = Field(default=None, min_length=1)
    restart_base_s: StrictFloat | StrictInt = Field(default=0.5, gt=0, le=3600)
    restart_cap_s: StrictFloat | StrictInt = Field(default=30.0, gt=0, le=86400)
    shutdown_grace_s: StrictFloat | StrictInt = Field(default=5.0, ge=0, le=600)
    rebuild_after: StrictInt = Field(default=3, ge=1, le=1000)


class LiveConfigModel(ConfigModel):
    live: RunnerModel = RunnerModel()
    ops: OpsModel = OpsModel()
    keys: KeysModel = KeysModel()
    sources: list[AdapterModel] = []
    gateways: list[GatewayModel] = []


@dataclass(frozen=True)
class AdapterSpec:
    """One ``[[sources]]``/``[[gateways]]`` entry: ``kind``, ``name`` (default: the kind, numbered
    when repeated), the venues a gateway serves, and the adapter's own parameters."""

    kind: str
    name: str
    params: dict[str, Any]
    venues: tuple[str, ...] = ()

    def table(self) -> dict[str, Any]:
        """The entry as written (``kind``, ``name`` and the adapter's own keys; a gateway's venues apart)."""
        return {"kind": self.kind, "name": self.name, **self.params}

    def describe(self) -> str:
        """What the manifest may say about it: kind, name, venues (no parameter: it may be secret)."""
        return f"{self.kind}:{self.name}" + (f"@{','.join(self.venues)}" if self.venues else "")


@dataclass
class LiveSettings:
    file: str
    config: dict[str, Any]  # the decision config (DECISION_KEYS), what the engine and the manifest get
    sources: list[AdapterSpec]
    gateways: list[AdapterSpec]
    ops: OpsModel
    keys: KeysModel
    runner: RunnerModel
    origins: dict[str, str] = field(default_factory=dict)  # dotted key -> the variable/option that set it

    @property
    def out(self) -> str | None:
        return self.runner.out

    @property
    def max_delay_ms(self) -> int:
        return int(self.config["store"]["max_delay_ms"])


# --------------------------------------------------------------------------- overrides


def parse_value(text: str) -> Any:
    """A TOML value when ``text`` is one (``9200``, ``true``, ``"a b"``, ``[1, 2]``), else the text."""
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def env_overrides(environ: Mapping[str, str]) -> list[tuple[list[str], str, str]]:
    """``(path, raw value, origin)`` for every ``TAPEDECK_A__B`` variable, in sorted name order."""
    out = []
    for name in sorted(environ):
        if not name.upper().startswith(ENV_PREFIX) or "__" not in name:
            continue
        path = [p for p in name[len(ENV_PREFIX):].lower().split("__")]
        if not all(path):
            raise LiveConfigError(f"environment {name}: an empty level in the name (TAPEDECK_TABLE__KEY)")
        out.append((path, environ[name], name))
    return out


def cli_overrides(sets: Sequence[str]) -> list[tuple[list[str], str, str]]:
    """``(path, raw value, origin)`` for each ``--set a.b=value``."""
    out = []
    for item in sets:
        key, eq, value = item.partition("=")
        path = key.strip().split(".")
        if not eq or not all(p.strip() for p in path):
            raise LiveConfigError(f"--set {item!r}: expected KEY=VALUE with a dotted key (ops.port=9200)")
        out.append(([p.strip() for p in path], value, f"--set {key.strip()}"))
    return out


def apply_override(data: dict[str, Any], path: list[str], value: Any, origin: str) -> None:
    node: Any = data
    for i, part in enumerate(path):
        last = i == len(path) - 1
        if isinstance(node, list):
            if not part.isdigit() or int(part) >= len(node):
                raise LiveConfigError(f"{origin}: {'.'.join(path[:i + 1])}: no such entry "
                                      f"(the array has {len(node)})")
            if last:
                node[int(part)] = value
            else:
                node = node[int(part)]
            continue
        if not isinstance(node, dict):
            raise LiveConfigError(f"{origin}: {'.'.join(path[:i])} is not a table")
        if last:
            node[part] = value
        else:
            node = node.setdefault(part, {})


# --------------------------------------------------------------------------- loading


def load_live_config(path: str, *, environ: Mapping[str, str] | None = None, sets: Sequence[str] = (),
                     out: str | None = None, ops_host: str | None = None, ops_port: int | None = None,
                     defaults: Mapping[str, Any] | None = None) -> LiveSettings:
    """Read ``path``, apply the environment's then the command line's overrides, validate; one
    ``LiveConfigError`` with a line per problem otherwise. ``defaults``: top-level tables a caller
    supplies when the file has none (``tapedeck record``: the default config's ``[risk]``)."""
    env = os.environ if environ is None else environ
    try:
        data = config_files.load_config(path)
    except config_files.ConfigFileError as e:
        raise LiveConfigError(str(e)) from None
    for k, v in (defaults or {}).items():
        data.setdefault(k, v)
    origins: dict[str, str] = {}
    overrides = env_overrides(env) + cli_overrides(sets)
    for key, value in (("live.out", out), ("ops.host", ops_host), ("ops.port", ops_port)):
        if value is not None:
            overrides.append((key.split("."), value, f"--{key.replace('live.', '').replace('.', '-')}"))
    for p, raw, origin in overrides:
        apply_override(data, p, parse_value(raw) if isinstance(raw, str) and origin.startswith(("TAPEDECK", "--set"))
                       else raw, origin)
        origins[dotted(tuple(int(x) if x.isdigit() else x for x in p))] = origin  # as pydantic's errors name it
    problems = _secret_problems(path, data)
    try:
        model = LiveConfigModel.model_validate(data)
    except ValidationError as e:
        problems += [_with_origin(line, origins) for line in describe(str(path), e).splitlines()]
    if problems:
        raise LiveConfigError("\n".join(problems))
    return _settings(str(path), data, model, origins)


def _with_origin(line: str, origins: dict[str, str]) -> str:
    """A pydantic line with the overriding variable named, and its value (maybe secret) left out."""
    where, _, rest = line.partition(": ")
    key = rest.split(": ", 1)[0]
    for k, origin in origins.items():
        if key == k or key.startswith(k + ".") or key.startswith(k + "["):
            text = rest.rsplit(" (got ", 1)[0] if " (got " in rest else rest
            return f"{where}: {text} (set by {origin})"
    return line


def _secret_problems(path: str, data: dict[str, Any]) -> list[str]:
    out = []

    def walk(node: Any, where: str) -> None:
        if isinstance(node, dict):
            for k, v in node.items():
                low = str(k).lower()
                key = f"{where}.{k}" if where else str(k)
                if (low in SECRET_NAMES or low.endswith(SECRET_SUFFIXES)) and not isinstance(v, (dict, list)):
                    out.append(f"{path}: {key}: secrets are never read from the config; give the name of an "
                               f"environment variable instead ({k}_env = \"...\")")
                else:
                    walk(v, key)
        elif isinstance(node, list):
            for i, v in enumerate(node):
                walk(v, f"{where}[{i}]")

    for table in ("sources", "gateways", "live", "ops"):
        walk(data.get(table), table)
    return out


def _names(entries: list[AdapterModel], what: str, path: str) -> list[str]:
    names, counts = [], {}
    for e in entries:
        counts[e.kind] = counts.get(e.kind, 0) + 1
    seen: dict[str, int] = {}
    for e in entries:
        if e.name:
            names.append(e.name)
            continue
        seen[e.kind] = seen.get(e.kind, 0) + 1
        base = e.kind.rsplit(":", 1)[-1].lower()
        names.append(base if counts[e.kind] == 1 else f"{base}-{seen[e.kind]}")
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise LiveConfigError(f"{path}: {what}: two entries are named {dupes[0]!r} (names label health, metrics "
                              f"and the events they record)")
    return names


def _settings(path: str, data: dict[str, Any], model: LiveConfigModel, origins: dict[str, str]) -> LiveSettings:
    config = {k: data[k] for k in DECISION_KEYS if k in data}
    store = dict(config.get("store", {}))
    store.setdefault("max_delay_ms", LIVE_MAX_DELAY_MS)
    config["store"] = store
    sources = []
    for entry, name in zip(model.sources, _names(model.sources, "sources", path)):
        params = {k: v for k, v in (entry.model_extra or {}).items()}
        sources.append(AdapterSpec(entry.kind, name, params))
    gateways, served = [], {}
    for i, (entry, name) in enumerate(zip(model.gateways, _names(model.gateways, "gateways", path))):
        venues = tuple(entry.venues) + ((entry.venue,) if entry.venue else ())
        if not venues:
            raise LiveConfigError(f"{path}: gateways[{i}]: names no venue (venue = \"...\" or venues = [...])")
        for v in venues:
            if v in served:
                raise LiveConfigError(f"{path}: gateways[{i}]: venue {v!r} is already served by gateway "
                                      f"{served[v]!r}")
            served[v] = name
        gateways.append(AdapterSpec(entry.kind, name, dict(entry.model_extra or {}), venues))
    return LiveSettings(path, config, sources, gateways, model.ops, model.keys, model.live, origins)


# --------------------------------------------------------------------------- --execute


def execute_problems(settings: LiveSettings) -> list[str]:
    """What ``--execute`` needs of the config and is missing: a gateway, a per-venue notional cap
    for every venue a gateway serves, a daily loss limit (the key is checked apart: ``load_signing_key``)."""
    path, risk = settings.file, settings.config.get("risk", {})
    out = []
    if not settings.gateways:
        out.append(f"{path}: gateways: --execute needs at least one [[gateways]] entry (every other venue is paper)")
    venues = risk.get("venues", {}) if isinstance(risk.get("venues"), dict) else {}
    for g in settings.gateways:
        for v in g.venues:
            if not isinstance(venues.get(v), dict) or venues[v].get("max_notional") is None:
                out.append(f"{path}: risk.venues.{v}.max_notional: --execute needs a notional cap for every venue "
                           f"a gateway sends to")
    if risk.get("daily_loss_limit") is None:
        out.append(f"{path}: risk.daily_loss_limit: --execute needs a daily loss limit (risk-currency base units)")
    return out


def load_signing_key(keys: KeysModel, environ: Mapping[str, str] | None = None) -> Any:
    """The run's signing key (``live.keys``: from the keystore when ``keys.keystore`` is set, its
    password in ``keys.password_env``, else from ``keys.env``). Raises ``LiveConfigError`` naming the
    variable or file, never the secret."""
    from tapedeck.live.keys import KeyUnavailable, load_key

    try:
        return load_key(env=keys.env, keystore=keys.keystore, password_env=keys.password_env, environ=environ)
    except KeyUnavailable as e:
        raise LiveConfigError(str(e)) from None
