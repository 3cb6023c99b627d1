"""The second chain backend: a real anvil node (npm ``@foundry-rs/anvil``) on 127.0.0.1.

Started as a child process on a free loopback port, reached over JSON-RPC with web3.py; the
deploy helpers of ``sim.chain`` take the ``Web3`` and work unchanged. The live runner will be
tested against the same node.
"""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

from web3 import Web3

from tapedeck.sim.chain.artifacts import ArtifactMissing, node_modules
from tapedeck.sim.chain.pyevm import ChainTx, receipts_of


def anvil_binary() -> Path:
    """The anvil executable the npm package installed (or ``$TAPEDECK_ANVIL``)."""
    explicit = os.environ.get("TAPEDECK_ANVIL")
    if explicit:
        return Path(explicit)
    for candidate in sorted((node_modules() / "@foundry-rs").glob("anvil-*/bin/anvil")):
        if os.access(candidate, os.X_OK):
            return candidate
    found = shutil.which("anvil")
    if found:
        return Path(found)
    raise ArtifactMissing(f"no anvil binary under {node_modules() / '@foundry-rs'}: run `make bootstrap` (npm install)")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class AnvilChain:
    """An anvil node for the lifetime of this object (``close()`` or use as a context manager).

    Like ``PyEvmChain``, chain time never comes from the wall clock: with ``start_time`` the genesis
    is stamped with it and every automined block one second after its parent; ``mine_block`` stamps
    the blocks it is asked for. The mempool is FIFO (``--order fifo``) so a block keeps the order
    the sim's block builder chose.
    """

    def __init__(self, *, block_time: int | None = None, chain_id: int = 31337, timeout: float = 20.0,
                 start_time: int | None = None):
        self.port = _free_port()
        args = [str(anvil_binary()), "--host", "127.0.0.1", "--port", str(self.port), "--chain-id", str(chain_id),
                "--silent", "--order", "fifo"]
        if start_time is not None:
            args += ["--timestamp", str(start_time)]
        if block_time is not None:
            args += ["--block-time", str(block_time)]
        self._http: Any = None  # a requests session for batched JSON-RPC (call_many)
        self.process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        self.url = f"http://127.0.0.1:{self.port}"
        self.ws_url = f"ws://127.0.0.1:{self.port}"
        # web3 asks for the chain id on every send and call (~40% of a sim's requests): cache that
        # one answer only (blocks and calls must not be cached: snapshots revert them).
        self.w3 = Web3(Web3.HTTPProvider(self.url, request_kwargs={"timeout": 30}, cache_allowed_requests=True,
                                         cacheable_requests={"eth_chainId"}))
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                err = self.process.stderr.read().decode(errors="replace") if self.process.stderr else ""
                raise RuntimeError(f"anvil exited with {self.process.returncode}: {err.strip()}")
            try:
                if self.w3.is_connected():
                    break
            except Exception:  # noqa: BLE001 - not listening yet
                pass
            if time.monotonic() > deadline:
                self.close()
                raise TimeoutError(f"anvil did not answer on {self.url} within {timeout}s")
            time.sleep(0.05)
        self.accounts = list(self.w3.eth.accounts)
        self.w3.eth.default_account = self.accounts[0]
        self.chain_id = self.w3.eth.chain_id
        if start_time is not None:
            self.rpc("anvil_setBlockTimestampInterval", [1])

    def rpc(self, method: str, params: list[Any]) -> Any:
        response = self.w3.provider.make_request(method, params)  # type: ignore[arg-type]
        if "error" in response:
            raise RuntimeError(f"anvil {method} failed: {response['error']}")
        return response.get("result")

    def mine_block(self, txs: list[ChainTx], timestamp: int) -> list[Any]:
        """Execute ``txs`` in this order in one new block stamped ``timestamp`` (seconds); their receipts."""
        self.rpc("evm_setAutomine", [False])
        try:
            hashes = [self.w3.eth.send_transaction(t.params()) for t in txs]  # type: ignore[arg-type]
            latest = self.w3.eth.get_block("latest")["timestamp"]
            self.rpc("evm_mine", [max(timestamp, latest + 1)])
        finally:
            self.rpc("evm_setAutomine", [True])
        return receipts_of(self.w3, hashes)

    def call_many(self, calls: list[tuple[str, bytes]]) -> list[bytes | None]:
        """Read-only calls ``(to, calldata)`` on the latest block as ONE JSON-RPC batch (one HTTP
        request; web3 would make one each, plus its ABI mapping); return data, None for a revert."""
        if not calls:
            return []
        sender = self.accounts[0]
        batch = [{"jsonrpc": "2.0", "id": i, "method": "eth_call",
                  "params": [{"from": sender, "to": to, "data": "0x" + data.hex()}, "latest"]}
                 for i, (to, data) in enumerate(calls)]
        answers = {a["id"]: a for a in self._session().post(self.url, json=batch, timeout=30).json()}
        return [bytes.fromhex(a["result"][2:]) if "result" in a else None
                for a in (answers[i] for i in range(len(calls)))]

    def _session(self) -> Any:
        if self._http is None:
            import requests

            self._http = requests.Session()
        return self._http

    def snapshot(self) -> Any:
        return self.w3.provider.make_request("evm_snapshot", [])["result"]

    def revert(self, snapshot_id: Any) -> None:
        """Back to ``snapshot_id``. Anvil uses the snapshot up: take a new one to revert again."""
        ok = self.w3.provider.make_request("evm_revert", [snapshot_id]).get("result")
        if ok is not True:
            raise RuntimeError(f"anvil refused evm_revert to snapshot {snapshot_id} (already used or unknown)")

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def __enter__(self) -> "AnvilChain":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
