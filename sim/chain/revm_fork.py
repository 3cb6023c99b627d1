"""A revm fork of a node's state at one block, for simulating calls in the block after it (issue 12
item 4: paper execution against real state, beside the node's own ``eth_simulateV1``).

pyrevm's ``EVM(fork_url=..., fork_block=<block hash>)`` reads an account, its code or a slot from
the node the first time a call touches it (JSON-RPC), then keeps it in its database: the first
simulation at a block pays the reads, the next ones at the same block are local. Each call runs in
a journal checkpoint that is reverted afterwards (nothing it wrote stays; every account cold again:
what ``sim.chain.revm`` does per transaction), so simulations at one block never see each other.

Gas is what revm charges (Cancun) with Prague's EIP-7623 calldata floor on top, as the revm chain
backend does, so a simulated transaction's ``gasUsed`` is the node's for the same call. Inside the
EVM ``BASEFEE`` and ``GASPRICE`` read 0 (pyrevm's message calls); no contract the project calls
reads them. pyrevm's objects are used from one thread only: the caller keeps a fork on the thread
that made it (``live.evm_gateway`` runs them on one worker thread).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import pyrevm
from eth_utils import keccak

from tapedeck.sim.chain.revm import GAS_LIMIT, SPEC, ZERO, calldata_floor

_OUTPUT = re.compile(r"output: 0x([0-9a-f]*)")


@dataclass(frozen=True)
class ForkCall:
    """One simulated call: success, gas used (with the calldata floor), its logs in JSON-RPC form
    (``address``, ``topics``, ``data`` as hex), its return or revert data."""

    ok: bool
    gas_used: int
    logs: list[dict[str, Any]]
    output: bytes


class RevmFork:
    """The node at ``url`` as it was after block ``block_hash`` (number ``number``), with the next
    block's context: number ``number + 1``, timestamp ``timestamp`` (the caller's choice: the head's
    plus the block time), the given ``chain_id``."""

    def __init__(self, url: str, block_hash: str, *, number: int, timestamp: int, chain_id: int,
                 gas_limit: int = GAS_LIMIT) -> None:
        self.block_hash, self.number = block_hash, number
        env = pyrevm.Env(cfg=pyrevm.CfgEnv(chain_id=chain_id))
        self.evm = pyrevm.EVM(env=env, fork_url=url, fork_block=block_hash, gas_limit=gas_limit, spec_id=SPEC)
        self.evm.set_block_env(pyrevm.BlockEnv(number=number + 1, coinbase=ZERO, timestamp=timestamp,
                                               prevrandao=keccak(timestamp.to_bytes(32, "big")), basefee=0,
                                               gas_limit=gas_limit, difficulty=0))
        self.calls = 0

    def call(self, sender: str, to: str, data: bytes, *, value: int = 0, gas: int = GAS_LIMIT) -> ForkCall:
        """``data`` sent from ``sender`` to ``to`` on the forked state; nothing it changes is kept."""
        evm = self.evm
        self.calls += 1
        cp = evm.snapshot()
        try:
            try:
                out = bytes(evm.message_call(sender.lower(), to.lower(), data, value=value, gas=gas, gas_price=0))
            except RuntimeError as e:
                result = evm.result
                if result is None:  # refused before running (pyrevm validates the message)
                    raise ValueError(f"revm refused the call: {e}") from None
                m = _OUTPUT.search(str(e))
                return ForkCall(False, max(result.gas_used, calldata_floor(data)), [],
                                bytes.fromhex(m.group(1)) if m else b"")
            result = evm.result
            logs = [{"address": str(log.address).lower(), "topics": ["0x" + bytes(t).hex() for t in log.data[0]],
                     "data": "0x" + bytes(log.data[1]).hex()} for log in result.logs]
            return ForkCall(True, max(result.gas_used, calldata_floor(data)), logs, out)
        finally:
            evm.revert(cp)
