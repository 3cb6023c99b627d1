"""An in-process EVM: py-evm behind eth-tester and web3.py.

Every transaction passes an explicit gas limit: web3's gas estimation is py-evm re-running the
call in a binary search, 4-10x the cost of the transaction itself (measured, EVM_SIM.md).
The deploy helpers take a ``Web3`` so the anvil backend can reuse them.
"""
from __future__ import annotations

from typing import Any

from eth_tester import EthereumTester, PyEVMBackend
from web3 import Web3
from web3.providers.eth_tester import EthereumTesterProvider

from sim.chain.artifacts import Artifact

DEFAULT_GAS = 6_000_000


class PyEvmChain:
    def __init__(self) -> None:
        self.tester = EthereumTester(PyEVMBackend())
        self.w3 = Web3(EthereumTesterProvider(self.tester))
        self.accounts = list(self.w3.eth.accounts)
        self.w3.eth.default_account = self.accounts[0]

    def snapshot(self) -> Any:
        return self.tester.take_snapshot()

    def revert(self, snapshot_id: Any) -> None:
        self.tester.revert_to_snapshot(snapshot_id)


def deploy(w3: Web3, artifact: Artifact, *args: Any, sender: str | None = None, gas: int = DEFAULT_GAS,
           bytecode: str | None = None) -> Any:
    """Deploy a build and return the web3 contract at its address (raises if the deploy reverted)."""
    factory = w3.eth.contract(abi=artifact.abi, bytecode=bytecode or artifact.bytecode)
    tx = factory.constructor(*args).transact({"from": sender or w3.eth.default_account, "gas": gas})
    receipt = w3.eth.wait_for_transaction_receipt(tx)
    if receipt["status"] != 1 or not receipt["contractAddress"]:
        raise RuntimeError(f"deploying {artifact.name} failed: {receipt}")
    return w3.eth.contract(address=receipt["contractAddress"], abi=artifact.abi)


def transact(w3: Web3, fn: Any, sender: str | None = None, gas: int = 500_000) -> Any:
    """Send a contract call as a transaction with an explicit gas limit; return the receipt."""
    tx = fn.transact({"from": sender or w3.eth.default_account, "gas": gas})
    return w3.eth.wait_for_transaction_receipt(tx)
