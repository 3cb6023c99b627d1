"""A real headless Chromium (Debian's ``chromium``) driven over the DevTools protocol with the
``websockets`` library, for the report and dashboard tests: load a page, collect its console
errors, uncaught exceptions, log errors and every network request, read values back with
JavaScript, and keep a screenshot.

Chromium is started with a new empty profile and without its background services (they would
try the network, which this machine does not have); ``--remote-debugging-port=0`` lets it pick a
free port, which it prints on stderr. ``CHROMIUM`` names another binary.
"""
from __future__ import annotations

import asyncio
import base64
import itertools
import json
import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import pytest

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-default-apps", "--disable-extensions", "--hide-scrollbars", "--mute-audio",
         "--window-size=1280,2600", "--remote-debugging-port=0"]
ROOT = Path(__file__).resolve().parent.parent
WAIT_S = 60  # the longest a page may take to draw its charts on this shared machine (a bound, not a measure)


def chromium_path() -> str | None:
    return os.environ.get("CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")


def require_chromium() -> str:
    path = chromium_path()
    if path is None:
        pytest.skip("chromium is not installed and could not be (make test installs Debian's chromium as root; "
                    "see Makefile 'browser')")
    return path


def artifact_dir() -> Path:
    """Where screenshots are kept: $TAPEDECK_ARTIFACTS, else runs/artifacts in the checkout."""
    d = Path(os.environ.get("TAPEDECK_ARTIFACTS") or ROOT / "runs" / "artifacts")
    d.mkdir(parents=True, exist_ok=True)
    return d


@dataclass
class PageResult:
    url: str
    requests: list[str] = field(default_factory=list)
    console_errors: list[str] = field(default_factory=list)  # console.error/assert, uncaught exceptions, log errors
    value: Any = None  # what ``read`` returned
    screenshot: Path | None = None


class _Cdp:
    def __init__(self, ws: Any):
        self.ws = ws
        self.ids = itertools.count(1)
        self.pending: dict[int, asyncio.Future] = {}
        self.listeners: list[Any] = []
        self.reader = asyncio.get_running_loop().create_task(self._read())

    async def _read(self) -> None:
        async for raw in self.ws:
            msg = json.loads(raw)
            if "id" in msg and msg["id"] in self.pending:
                self.pending.pop(msg["id"]).set_result(msg)
            else:
                for listen in self.listeners:
                    listen(msg)

    async def send(self, method: str, params: dict[str, Any] | None = None, session: str | None = None) -> Any:
        i = next(self.ids)
        fut = asyncio.get_running_loop().create_future()
        self.pending[i] = fut
        msg: dict[str, Any] = {"id": i, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        await self.ws.send(json.dumps(msg))
        reply = await asyncio.wait_for(fut, WAIT_S)
        if "error" in reply:
            raise RuntimeError(f"{method}: {reply['error']}")
        return reply.get("result", {})


async def _visit(binary: str, url: str, ready: str, read: str | None, shot: Path | None,
                 action: Callable[[], None] | None = None, settled: str | None = None) -> PageResult:
    import websockets

    profile = tempfile.mkdtemp(prefix="tapedeck-chromium-")
    proc = await asyncio.create_subprocess_exec(binary, *FLAGS, f"--user-data-dir={profile}", "about:blank",
                                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    result = PageResult(url)
    try:
        ws_url = None
        assert proc.stderr is not None
        while ws_url is None:
            line = (await asyncio.wait_for(proc.stderr.readline(), WAIT_S)).decode(errors="replace")
            if not line:
                raise RuntimeError("chromium exited before it listened for DevTools")
            m = re.search(r"DevTools listening on (ws://\S+)", line)
            ws_url = m.group(1) if m else None
        asyncio.get_running_loop().create_task(_drain(proc.stderr))
        async with websockets.connect(ws_url, max_size=None) as ws:
            cdp = _Cdp(ws)
            target = (await cdp.send("Target.createTarget", {"url": "about:blank"}))["targetId"]
            session = (await cdp.send("Target.attachToTarget", {"targetId": target, "flatten": True}))["sessionId"]
            loaded = asyncio.Event()

            def listen(msg: dict[str, Any]) -> None:
                if msg.get("sessionId") != session:
                    return
                method, params = msg.get("method"), msg.get("params", {})
                if method == "Network.requestWillBeSent":
                    result.requests.append(params["request"]["url"])
                elif method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
                    result.console_errors.append("console: " + " ".join(
                        str(a.get("value", a.get("description", ""))) for a in params.get("args", [])))
                elif method == "Runtime.exceptionThrown":
                    d = params.get("exceptionDetails", {})
                    result.console_errors.append("exception: " + str(d.get("exception", {}).get("description")
                                                                     or d.get("text")))
                elif method == "Log.entryAdded" and params.get("entry", {}).get("level") == "error":
                    e = params["entry"]
                    result.console_errors.append(f"log: {e.get('text')} {e.get('url', '')}".strip())
                elif method == "Page.loadEventFired":
                    loaded.set()

            cdp.listeners.append(listen)
            for domain in ("Page", "Runtime", "Log", "Network"):
                await cdp.send(f"{domain}.enable", session=session)
            await cdp.send("Page.navigate", {"url": url}, session=session)
            await asyncio.wait_for(loaded.wait(), WAIT_S)
            await _until(cdp, session, ready)
            if action is not None:  # e.g. grow the log while the page is open
                await asyncio.to_thread(action)
                if settled:
                    await _until(cdp, session, settled)
            if read:
                result.value = await _eval(cdp, session, read)
            if shot is not None:
                png = (await cdp.send("Page.captureScreenshot", {"format": "png"}, session=session))["data"]
                shot.write_bytes(base64.b64decode(png))
                result.screenshot = shot
            await cdp.send("Browser.close")
            cdp.reader.cancel()
    finally:
        if proc.returncode is None:
            proc.kill()
        await proc.wait()
        shutil.rmtree(profile, ignore_errors=True)
    return result


async def _drain(stream: Any) -> None:
    while await stream.readline():
        pass


async def _eval(cdp: _Cdp, session: str, expression: str) -> Any:
    r = await cdp.send("Runtime.evaluate", {"expression": expression, "returnByValue": True, "awaitPromise": True},
                       session=session)
    if "exceptionDetails" in r:
        raise RuntimeError(f"{expression[:80]}: {r['exceptionDetails'].get('text')}")
    return r.get("result", {}).get("value")


async def _until(cdp: _Cdp, session: str, expression: str) -> None:
    """Wait (bounded by WAIT_S) for ``expression`` to be true in the page."""
    async def poll() -> None:
        while not await _eval(cdp, session, expression):
            await asyncio.sleep(0.1)

    await asyncio.wait_for(poll(), WAIT_S)


def visit(url: str, *, ready: str, read: str | None = None, screenshot: str | None = None,
          action: Callable[[], None] | None = None, settled: str | None = None) -> PageResult:
    """Load ``url`` in a fresh headless Chromium, wait until ``ready`` (JS) is true, then run
    ``action`` (Python, in a thread) and wait until ``settled`` (JS) is true, evaluate ``read`` (JS,
    its JSON value returned), keep a screenshot named ``screenshot`` (.png)."""
    binary = require_chromium()
    shot = artifact_dir() / screenshot if screenshot else None
    return asyncio.run(_visit(binary, url, ready, read, shot, action, settled))


# JS that reads every chart of the page back: {div id: [{name, x, y, type}...]}
READ_CHARTS = ("JSON.stringify(Object.fromEntries([...document.querySelectorAll('.js-plotly-plot')].map("
               "d => [d.id, d.data.map(t => ({name: t.name, type: t.type, x: t.x, y: t.y}))])))")
