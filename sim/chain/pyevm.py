"""An in-process EVM: py-evm behind eth-tester and web3.py.

Every transaction passes an explicit gas limit: web3's gas estimation is py-evm re-running the
call in a binary search, 4-10x the cost of the transaction itself (measured, EVM_SIM.md).

``deploy`` and ``transact`` take a ``Web3`` and nothing backend-specific, so the anvil backend
(``sim.chain.anvil``) uses them unchanged; ``PyEvmChain.deploy`` / ``.transact`` are the same
calls bound to this chain.
"""
from __future__ import annotations

from typing import Any

from eth_tester import EthereumTester, PyEVMBackend
from web3 import Web3
from web3.providers.eth_tester import EthereumTesterProvider

from sim.chain.artifacts import Artifact

DEFAULT_GAS = 6_000_000
DEFAULT_TX_GAS = 500_000


class TransactionReverted(RuntimeError):
    """A transaction was mined with status 0 (anvil) or refused as reverting (eth-tester)."""

    def __init__(self, message: str, receipt: Any = None):
        super().__init__(message)
        self.receipt = receipt


def deploy(w3: Web3, artifact: Artifact, *args: Any, sender: str | None = None, gas: int = DEFAULT_GAS,
           bytecode: str | None = None) -> Any:
    """Deploy a build and return the web3 contract at its address (raises if the deploy reverted).

    ``bytecode`` overrides the artifact's code (e.g. ``artifact.linked({...})`` for Aave).
    """
    code = bytecode or artifact.bytecode
    if "__" in code:
        raise ValueError(f"{artifact.name} has unlinked libraries {artifact.libraries}: pass "
                         f"bytecode=artifact.linked({{name: address}})")
    factory = w3.eth.contract(abi=artifact.abi, bytecode=code)
    tx = factory.constructor(*args).transact({"from": sender or w3.eth.default_account, "gas": gas})
    receipt = w3.eth.wait_for_transaction_receipt(tx)
    if receipt["status"] != 1 or not receipt["contractAddress"]:
        raise TransactionReverted(f"deploying {artifact.name} failed (gas {gas}): {dict(receipt)}", receipt)
    return w3.eth.contract(address=receipt["contractAddress"], abi=artifact.abi)


def transact(w3: Web3, fn: Any, sender: str | None = None, gas: int = DEFAULT_TX_GAS, *,
             check: bool = True) -> Any:
    """Send a bound contract call (``contract.functions.f(...)``) as a transaction with an explicit
    gas limit and return its receipt.

    Both backends mine a reverting transaction with status 0; with ``check`` that raises
    ``TransactionReverted``, whose message carries the revert reason (replayed as an ``eth_call``
    on the parent block, only on failure).
    """
    params = {"from": sender or w3.eth.default_account, "gas": gas}
    receipt = w3.eth.wait_for_transaction_receipt(fn.transact(params))
    if check and receipt["status"] != 1:
        raise TransactionReverted(f"{fn.fn_name} reverted (gas {gas}, used {receipt['gasUsed']}): "
                                  f"{revert_reason(fn, params, receipt['blockNumber'] - 1)}", receipt)
    return receipt


def revert_reason(fn: Any, params: dict[str, Any], block: int | str = "latest") -> str:
    """The reason ``fn`` reverts with, by running it as an ``eth_call`` on ``block`` (``""`` if it does not)."""
    try:
        fn.call(params, block_identifier=block)
    except Exception as e:  # noqa: BLE001 - web3's ContractLogicError or eth-tester's TransactionFailed
        return str(e)
    return ""


class PyEvmChain:
    """eth-tester's PyEVMBackend (default fork: Prague) with web3's EthereumTesterProvider.

    10 funded accounts (keys 1..10); ``accounts[0]`` is the default sender, and also the ``from``
    of ``eth_call`` (setting it about doubles the call rate: web3 otherwise lists the accounts on
    every call).
    """

    def __init__(self, backend: PyEVMBackend | None = None) -> None:
        self.tester = EthereumTester(backend or PyEVMBackend())
        self.w3 = Web3(EthereumTesterProvider(self.tester))
        self.accounts = list(self.w3.eth.accounts)
        self.w3.eth.default_account = self.accounts[0]

    def deploy(self, artifact: Artifact, *args: Any, sender: str | None = None, gas: int = DEFAULT_GAS,
               bytecode: str | None = None) -> Any:
        return deploy(self.w3, artifact, *args, sender=sender, gas=gas, bytecode=bytecode)

    def transact(self, fn: Any, sender: str | None = None, gas: int = DEFAULT_TX_GAS, *, check: bool = True) -> Any:
        return transact(self.w3, fn, sender, gas, check=check)

    def snapshot(self) -> Any:
        """An id for the latest mined block's state (block-granular; revert to it as often as wanted)."""
        return self.tester.take_snapshot()

    def revert(self, snapshot_id: Any) -> None:
        self.tester.revert_to_snapshot(snapshot_id)
