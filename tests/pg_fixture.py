"""A PostgreSQL server for the tests that need one (marked ``postgres``), and a fresh database each.

The server is ``$TAPEDECK_PG_URL`` when set, else the local test cluster ``.ci/pg-cluster`` starts
(and creates, and installs PostgreSQL for, when it can: ``make pg``) on 127.0.0.1. When no server
can be had the tests skip saying why, unless ``TAPEDECK_PG_REQUIRED=1`` (CI), which makes that a
failure. Each test gets a database of its own, dropped afterwards.

Import the fixtures into a test module: ``from tests.pg_fixture import pg_server, pg_db  # noqa: F401``.
"""
from __future__ import annotations

import fcntl
import os
import subprocess
import uuid
from urllib.parse import urlsplit, urlunsplit

import pytest

from tests.conftest import ROOT

SCRIPT = ROOT / ".ci" / "pg-cluster"


def _reachable(url: str) -> str:
    """"" when a connection to ``url`` works, else why not."""
    import psycopg

    try:
        with psycopg.connect(url, connect_timeout=3):
            return ""
    except psycopg.Error as e:
        return " ".join(str(e).split())


def _start_local() -> tuple[str, str]:
    """(URL, "") of the local cluster once it runs, or ("", why not)."""
    lock_path = "/tmp/tapedeck-pg-cluster.lock"  # pytest-xdist workers start it one at a time
    with open(lock_path, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            proc = subprocess.run(["bash", str(SCRIPT)], capture_output=True, text=True, timeout=300)
        except (OSError, subprocess.TimeoutExpired) as e:
            return "", f"{SCRIPT} could not run: {e}"
    if proc.returncode != 0:
        return "", f"{SCRIPT} failed: {' '.join(proc.stderr.split())[-300:]}"
    return proc.stdout.strip().splitlines()[-1], ""


@pytest.fixture(scope="session")
def pg_server() -> str:
    """URL of a PostgreSQL server's maintenance database, where tests may create databases."""
    url = os.environ.get("TAPEDECK_PG_URL", "")
    why = ""
    if url:
        why = _reachable(url)
        why = why and f"TAPEDECK_PG_URL={url}: {why}"
    else:
        url, why = _start_local()
        if url:
            why = _reachable(url)
    if why:
        if os.environ.get("TAPEDECK_PG_REQUIRED") == "1":
            pytest.fail(f"no PostgreSQL server (TAPEDECK_PG_REQUIRED=1): {why}")
        pytest.skip(f"no PostgreSQL server could be started: {why}")
    return url


@pytest.fixture
def pg_db(pg_server: str):  # type: ignore[no-untyped-def]
    """URL (no run=) of a fresh, empty database on the test server; dropped after the test."""
    import psycopg
    from psycopg import sql

    name = f"tapedeck_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(pg_server, autocommit=True) as c:
        c.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    parts = urlsplit(pg_server)
    yield urlunsplit((parts.scheme, parts.netloc, "/" + name, "", ""))
    with psycopg.connect(pg_server, autocommit=True) as c:
        c.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


class Store:
    """One of the two stores, for tests that run on both: ``where(name)`` is a run's address
    (a file under the test's tmp folder, or a run of the test's database), ``cls`` the log class."""

    def __init__(self, kind: str, tmp_path, db_url: str = ""):  # type: ignore[no-untyped-def]
        self.kind, self.tmp_path, self.db_url = kind, tmp_path, db_url
        if kind == "postgres":
            from tapedeck.adapters.pg_eventlog import PgEventLog as cls
        else:
            from tapedeck.adapters.eventlog import EventLog as cls
        self.cls = cls

    def where(self, name: str) -> str:
        if self.kind == "postgres":
            return f"{self.db_url}?run={name}"
        return str(self.tmp_path / f"{name}.db")

    def query(self, name: str, query: str) -> list[tuple]:
        """Rows of ``query`` run against the run ``name`` (tables unqualified: its own)."""
        if self.kind == "postgres":
            import psycopg

            with psycopg.connect(self.db_url) as c:
                c.execute(f"SET search_path TO {name}")
                return [tuple(r) for r in c.execute(query).fetchall()]
        import sqlite3
        from contextlib import closing

        with closing(sqlite3.connect(self.where(name))) as c:
            return c.execute(query).fetchall()

    def __repr__(self) -> str:
        return self.kind


STORES = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


@pytest.fixture(params=STORES)
def store(request, tmp_path) -> Store:  # type: ignore[no-untyped-def]
    """Each test using it runs on SQLite and on PostgreSQL (marked ``postgres``)."""
    if request.param == "postgres":
        return Store("postgres", tmp_path, request.getfixturevalue("pg_db"))
    return Store("sqlite", tmp_path)
