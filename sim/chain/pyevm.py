"""An in-process EVM: py-evm behind eth-tester and web3.py.

Every transaction passes an explicit gas limit: web3's gas estimation is py-evm re-running the
call in a binary search, 4-10x the cost of the transaction itself (measured, EVM_SIM.md).

``deploy`` and ``transact`` take a ``Web3`` and nothing backend-specific, so the anvil backend
(``sim.chain.anvil``) uses them unchanged; ``PyEvmChain.deploy`` / ``.transact`` are the same
calls bound to this chain.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

import eth_abi
import rlp
from eth_abi.codec import ABICodec
from eth_abi.decoding import AddressDecoder
from eth_abi.encoding import AddressEncoder as _AddressEncoder
from eth_abi.registry import BaseEquals
from eth_abi.registry import registry as _abi_registry
from eth.vm.forks import ParisVM, PragueVM
from eth_tester import EthereumTester, PyEVMBackend
from eth_utils import collapse_if_tuple, function_abi_to_4byte_selector, keccak, to_canonical_address
from eth_utils import to_checksum_address as _checksum
from hexbytes import HexBytes
from web3 import Web3
from web3.datastructures import AttributeDict
from web3.providers.eth_tester import EthereumTesterProvider

from tapedeck.sim.chain.artifacts import Artifact
from tapedeck.sim.chain.pyevm_vm import SimPragueVM


def _keccak_from_pysha3() -> bool:
    """Make eth-hash's ``keccak`` (py-evm's state and storage tries, SHA3, code hashes; web3's and
    eth-utils' hashes) call safe-pysha3 when it is installed: eth-hash's automatic choice tries
    pycryptodome first, ~6 us a hash through its cffi wrapper against ~1.5 here (an eth-crash run
    hashes ~250,000 times). The same digests (checked here once)."""
    try:
        from eth_hash.auto import keccak as auto_keccak
        from eth_hash.backends.pysha3 import backend
    except ImportError:
        return False
    if backend.keccak256(b"") != bytes.fromhex("c5d2460186f7233c927e7db2dcc703c0e500b653ca82273b7bfad8045d85a470"):
        return False
    auto_keccak._backend = backend
    auto_keccak.hasher = backend.keccak256
    auto_keccak.preimage = backend.preimage
    return True


KECCAK_FROM_PYSHA3 = _keccak_from_pysha3()

DEFAULT_GAS = 6_000_000
DEFAULT_TX_GAS = 500_000
SIM_CHAIN_ID = 131277322940537  # eth-tester's chain id; a sim run's anvil uses it too (same tx hashes)
CALL_GAS = 30_000_000  # gas of a read in call_many (a block's worth)


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
    """The reason ``fn`` reverts with, by running it as an ``eth_call`` on ``block`` (``""`` if it does not).

    On a backend whose provider offers ``revert_text`` (revm, in process) the call runs there
    directly, without web3's request and ABI formatting (~14 ms a reason under cProfile); the text
    is the one ``reason_text`` makes of the exception web3 would raise. A call that does not revert
    goes through web3 (its output decoding can raise too)."""
    fast = _direct_revert_text(fn, params, block)
    if fast is not None:
        return fast
    try:
        fn.call(params, block_identifier=block)
    except Exception as e:  # noqa: BLE001 - web3's ContractLogicError or eth-tester's TransactionFailed
        return reason_text(e)
    return ""


def _direct_revert_text(fn: Any, params: dict[str, Any], block: int | str) -> str | None:
    prepared = isinstance(fn, PreparedCall)
    contract = fn.contract if prepared else fn
    revert_text = getattr(getattr(getattr(contract, "w3", None), "provider", None), "revert_text", None)
    if revert_text is None:
        return None
    return revert_text(params, contract.address, fn.data if prepared else call_data(fn), block)


ERROR_STRING = bytes.fromhex("08c379a0")  # Error(string)


def reason_text(e: Exception) -> str:
    """One text per revert, whichever exception carried it: a custom error's data as ``0x`` hex
    (web3 raises ``ContractCustomError(data, data)``, on anvil ``ContractLogicError(message, data)``
    for an ``Error(string)``, or eth-tester ``TransactionFailed(bytes)``,
    and which one a process sees varied between processes: a recorded reason must not), an
    ``Error(string)`` as ``execution reverted: <message>``, anything else as its message (eth-tester
    writes custom-error data as a ``b'...'`` literal in it: that too becomes hex)."""
    args = e.args
    raw: bytes | None = None
    text = str(e)
    body = text.split("execution reverted: ", 1)[-1].strip()
    if args and isinstance(args[0], (bytes, bytearray)):
        raw = bytes(args[0])
    elif type(e).__name__ == "ContractCustomError" and args and isinstance(args[0], str) and args[0].startswith("0x"):
        raw = bytes.fromhex(args[0][2:])
    elif (type(e).__name__ == "ContractLogicError" and len(args) == 2 and isinstance(args[1], str)
          and args[1].startswith("0x") and len(args[1]) > 2):  # anvil: (message, revert data)
        raw = bytes.fromhex(args[1][2:])
    elif body.startswith(("b'", 'b"')):  # eth-tester: "execution reverted: b'...'"
        import ast

        try:
            value = ast.literal_eval(body)
        except (ValueError, SyntaxError):
            value = None
        raw = value if isinstance(value, bytes) else None
    if raw is None:
        return text
    if raw[:4] == ERROR_STRING and len(raw) >= 68:
        from eth_abi import decode

        return f"execution reverted: {decode(['string'], raw[4:])[0]}"
    return "0x" + raw.hex()


@dataclass(frozen=True)
class ChainTx:
    """A transaction as the sim's block builder hands it to a chain: sender, nonce and fees fixed.

    ``to`` None deploys ``data`` (init code). Fees are the sender's bid; what the sim charges for
    gas is the sim's own base fee, not the backend's (see ``sim.onchain``).
    """

    sender: str
    nonce: int
    gas: int
    max_fee: int
    max_priority_fee: int
    to: str | None
    data: bytes = b""
    value: int = 0

    def tester_params(self, chain_id: int) -> dict[str, Any]:
        """The same transaction in eth-tester's own field names."""
        p: dict[str, Any] = {"from": self.sender, "nonce": self.nonce, "gas": self.gas, "value": self.value,
                             "max_fee_per_gas": self.max_fee, "max_priority_fee_per_gas": self.max_priority_fee,
                             "data": "0x" + self.data.hex(), "chain_id": chain_id}
        if self.to is not None:
            p["to"] = self.to
        return p

    def params(self) -> dict[str, Any]:
        p: dict[str, Any] = {"from": self.sender, "nonce": self.nonce, "gas": self.gas, "value": self.value,
                             "maxFeePerGas": self.max_fee, "maxPriorityFeePerGas": self.max_priority_fee,
                             "data": "0x" + self.data.hex()}
        if self.to is not None:
            p["to"] = self.to
        return p


@functools.lru_cache(maxsize=4096)
def _canonical_address(value: Any) -> bytes:
    return to_canonical_address(value)


class AddressEncoder(_AddressEncoder):
    """eth_abi's address encoder with its text -> 20 bytes conversion memoised: a run encodes the same
    few addresses (tokens, pools, routers, agents) thousands of times, and eth_utils' conversion
    (hex checks through its validation decorators) was most of an encode (eth-crash on revm: ~2,900
    conversions, 0.29 of 0.67 profiled s). Validation is eth_abi's own, as before (each valid value
    checked once); the class keeps eth_abi's name, so its errors read the same."""

    encode_fn = staticmethod(_canonical_address)

    @classmethod
    def validate_value(cls, value: Any) -> None:
        try:
            hash(value)
        except TypeError:  # unhashable: not an address either; eth_abi says so as before
            return super().validate_value(value)
        if value not in _VALID_ADDRESSES:
            super().validate_value(value)
            _VALID_ADDRESSES.add(value)


_VALID_ADDRESSES: set[Any] = set()
_abi_registry_cached = _abi_registry.copy()
_abi_registry_cached.unregister("address")
_abi_registry_cached.register(BaseEquals("address"), AddressEncoder, AddressDecoder, label="address")
# the calldata codec of the sim's own calls: eth_abi's registry but for the memoised address encoder
# (same bytes; tests/test_revm_fast_paths.py holds them equal to eth_abi.encode)
_CODEC = ABICodec(_abi_registry_cached)


def call_data(fn: Any) -> bytes:
    """The calldata of a bound contract call (``contract.functions.f(...)``).

    Encoded by eth_abi from the function's ABI entry (selector and argument types cached per
    entry): web3's own path maps every argument through its ABI normalizers first, which was
    ~14 ms a call and most of an anvil run's client CPU (eth-crash: ~970 calls). Arguments eth_abi
    does not take as given (ENS names, text for bytes) go through web3 as before."""
    abi = fn.abi
    key = id(abi)
    known = _SELECTORS.get(key)
    if known is None or known[0] is not abi:
        known = (abi, function_abi_to_4byte_selector(abi), [collapse_if_tuple(dict(i)) for i in abi["inputs"]])
        _SELECTORS[key] = known
    try:
        return known[1] + _CODEC.encode(known[2], list(fn.args))
    except Exception:  # noqa: BLE001 - whatever eth_abi refuses, web3 normalizes
        return bytes.fromhex(fn._encode_transaction_data()[2:])


_SELECTORS: dict[int, tuple[Any, bytes, list[str]]] = {}


@functools.lru_cache(maxsize=256)
def _selector(signature: str) -> bytes:
    return bytes(keccak(text=signature)[:4])


class PreparedCall:
    """A contract call encoded once by eth_abi from its signature, for the sim's hot paths (a trader's
    swap, an arbitrageur's): web3 builds a bound function by searching the ABI and hashing every
    overload's selector (~5 ms a swap, most of a revm run's client time). ``data`` is the calldata;
    ``call`` builds web3's bound function only when it is asked for (a revert reason), so it stands
    in wherever a bound call (``fn.call(...)``, ``fn.fn_name``) is kept beside a transaction."""

    __slots__ = ("contract", "fn_name", "args", "data")

    def __init__(self, contract: Any, fn_name: str, types: tuple[str, ...], args: tuple[Any, ...]) -> None:
        self.contract, self.fn_name, self.args = contract, fn_name, args
        self.data = _selector(f"{fn_name}({','.join(types)})") + _CODEC.encode(list(types), list(args))

    def call(self, *args: Any, **kwargs: Any) -> Any:
        return getattr(self.contract.functions, self.fn_name)(*self.args).call(*args, **kwargs)


def create_address(sender: str, nonce: int) -> str:
    """The address a CREATE from ``sender`` at ``nonce`` deploys to (keccak of rlp([sender, nonce])),
    so a later transaction of the same block can already name it."""
    return to_checksum_address(keccak(rlp.encode([to_canonical_address(sender), nonce]))[12:])


def receipts_of(w3: Web3, hashes: list[Any]) -> list[Any]:
    return [w3.eth.get_transaction_receipt(h) for h in hashes]


@functools.lru_cache(maxsize=4096)
def to_checksum_address(address: Any) -> str:
    """EIP-55 of an address, memoised: receipts repeat the same few contract addresses (thousands
    of keccaks a run otherwise)."""
    return _checksum(address)


def _receipts(block: Any, signed: list[Any], receipts: Any, computations: Any) -> list[AttributeDict]:
    """The block's receipts as web3 formats them (``eth_getTransactionReceipt``), built from what
    py-evm's ``mine_all`` returned: a web3 lookup per receipt re-read and RLP-decoded every receipt
    of its block through eth-tester (~14 of a 66 s profiled set-up)."""
    header = block.header
    block_hash, number, base_fee = HexBytes(header.hash), header.block_number, header.base_fee_per_gas
    out, used, log_index = [], 0, 0
    for i, (tx, r, c) in enumerate(zip(signed, receipts, computations)):
        tx_hash = HexBytes(tx.hash)
        logs = []
        for log in r.logs:
            logs.append(AttributeDict({
                "address": to_checksum_address(log.address), "blockHash": block_hash, "blockNumber": number,
                "data": HexBytes(log.data), "logIndex": log_index, "removed": False,
                "topics": [HexBytes(t.to_bytes(32, "big")) for t in log.topics], "transactionHash": tx_hash,
                "transactionIndex": i}))
            log_index += 1
        created = None
        if not tx.to and not c.is_error:
            created = to_checksum_address(c.msg.storage_address)
        out.append(AttributeDict({
            "blockHash": block_hash, "blockNumber": number, "contractAddress": created,
            "cumulativeGasUsed": r.gas_used, "effectiveGasPrice": min(tx.max_fee_per_gas, base_fee
                                                                       + tx.max_priority_fee_per_gas),
            "from": to_checksum_address(tx.sender), "gasUsed": r.gas_used - used, "logs": logs,
            "status": 0 if c.is_error else 1, "to": to_checksum_address(tx.to) if tx.to else None,
            "transactionHash": tx_hash, "transactionIndex": i, "type": tx.type_id or 0}))
        used = r.gas_used
    return out


class PyEvmChain:
    """eth-tester's PyEVMBackend (default fork: Prague) with web3's EthereumTesterProvider.

    10 funded accounts (keys 1..10); ``accounts[0]`` is the default sender, and also the ``from``
    of ``eth_call`` (setting it about doubles the call rate: web3 otherwise lists the accounts on
    every call).

    Chain time is pinned: py-evm stamps a new block with the wall clock, which would make interest
    accrual (and every Aave amount) depend on when a run happens. Here every block is stamped
    ``max(parent + 1, self.time)``: ``start_time`` (default: the genesis) and whatever
    ``mine_block`` was asked for since.

    ``stock_vm``: py-evm's own ``PragueVM`` instead of ``sim.chain.pyevm_vm.SimPragueVM`` (the same
    EVM with a leaner interpreter loop; the default), for holding the two equal.

    ``world_cache``: set-ups run through ``sim.chain.world_cache.cached`` on this chain are kept and
    replayed (the sim's chains: ``sim.recording``); off by default, so a chain made elsewhere (a
    test, a benchmark) deploys every time as before.
    """

    def __init__(self, backend: PyEVMBackend | None = None, *, start_time: int | None = None,
                 world_cache: bool = False, stock_vm: bool = False) -> None:
        self.world_cache = world_cache
        if backend is None:
            genesis = PyEVMBackend.generate_genesis_params()
            if start_time is not None:
                genesis["timestamp"] = start_time
            backend = PyEVMBackend(genesis_parameters=genesis)
            if not stock_vm:
                # eth-tester's chain class is made per backend: its VM becomes the leaner one
                type(backend.chain).vm_configuration = ((0, SimPragueVM),)
        self.tester = EthereumTester(backend)
        self.w3 = Web3(EthereumTesterProvider(self.tester))
        self.accounts = list(self.w3.eth.accounts)
        self.w3.eth.default_account = self.accounts[0]
        self.chain_id = self.w3.eth.chain_id
        chain = self.tester.backend.chain
        self.time = start_time if start_time is not None else chain.get_canonical_head().timestamp
        mine = self.tester.backend.mine_blocks

        def mine_pinned(num_blocks: int = 1, coinbase: Any = None) -> tuple[Any, ...]:
            hashes: list[Any] = []
            for _ in range(num_blocks):
                hashes.extend(mine(1, coinbase) if coinbase is not None else mine(1))
                self._pin()
            return tuple(hashes)

        self.tester.backend.mine_blocks = mine_pinned  # type: ignore[method-assign]
        self._runs: dict[tuple[ChainTx, ...], _BlockRun] = {}  # simulations of the pending block (simulate_block)
        self._pin()

    def _pin(self) -> None:
        chain = self.tester.backend.chain
        parent = chain.get_canonical_head().timestamp
        chain.header = chain.header.copy(timestamp=max(parent + 1, self.time))

    def mine_block(self, txs: list[ChainTx], timestamp: int) -> list[Any]:
        """Execute ``txs`` in this order in one new block stamped ``timestamp`` (seconds); their receipts.

        A reverting transaction is mined with status 0, as on a real chain. The transactions are
        signed by eth-tester's keys and applied as py-evm's ``mine_all`` does: one VM for the block,
        its transaction and receipt tries built once. eth-tester's pending block (the previous
        path) re-applied nothing but rebuilt both tries and a new VM per transaction, quadratic in
        the block's size (11.6 / 33 / 54 ms per transfer in blocks of 10 / 50 / 100, BENCHMARKS.md).
        ``prevrandao`` is derived from the timestamp (eth-tester draws it from ``os.urandom``).

        When a ``simulate_block`` of this same pending block already executed the first of ``txs``
        (a bundle simulation: the block's public transactions and the bundle where it stands),
        that VM goes on with the rest instead of executing them again: ``mine_all`` itself is
        ``apply_all_transactions`` then sealing, and applying a block's transactions in two calls
        (the second from the header the first returned) is the same execution, receipt by receipt."""
        self.time = max(self.time, timestamp)
        self._pin()
        if not txs:
            self._runs.clear()
            self.tester.mine_blocks(1)
            return []
        run = self._take_run(txs)
        if run is None:
            run = self._begin()
        try:
            run.apply(self, txs[len(run.txs):])
        finally:
            self._runs.clear()
        return self._seal(run)

    # ------------------------------------------------------------------ blocks on a throw-away VM

    def _mine_kwargs(self) -> dict[str, Any]:
        chain = self.tester.backend.chain
        kwargs: dict[str, Any] = {"coinbase": bytes(20)}
        vm_class = chain.get_vm_class(chain.header)
        if issubclass(vm_class, ParisVM):
            kwargs["mix_hash"] = keccak(chain.header.timestamp.to_bytes(32, "big"))
        if issubclass(vm_class, PragueVM):
            kwargs["blob_gas_used"] = 0
        return kwargs

    def _begin(self) -> "_BlockRun":
        """A VM for the pending block as ``mine_all`` makes it (its header, its coinbase)."""
        chain = self.tester.backend.chain
        kwargs = self._mine_kwargs()
        base = chain.header
        return _BlockRun(base, kwargs, chain.get_vm(chain._custom_header(base, **kwargs)))

    def _take_run(self, txs: list[ChainTx]) -> "_BlockRun | None":
        """The longest kept simulation of this pending block whose transactions begin ``txs``."""
        header = self.tester.backend.chain.header
        best = None
        for key, run in self._runs.items():
            n = len(key)
            if n <= len(txs) and (best is None or n > len(best.txs)) and run.base == header \
                    and run.kwargs == self._mine_kwargs() and tuple(txs[:n]) == key:
                best = run
        return best

    def _seal(self, run: "_BlockRun") -> list[Any]:
        """What ``mine_all`` does after ``apply_all_transactions``: fill, seal, persist, next header."""
        chain, vm = self.tester.backend.chain, run.vm
        filled = vm.set_block_transactions_and_withdrawals(vm.get_block(), run.header, run.signed, run.receipts,
                                                           withdrawals=None)
        block = vm.mine_block(filled, **run.kwargs).block
        imported = chain.persist_block(block)[0]
        chain.header = chain.create_header_from_parent(imported.header)
        self._pin()
        return _receipts(imported, run.signed, run.receipts, run.computations)

    def simulate_block(self, txs: list[ChainTx], timestamp: int, *, keep: bool = True) -> "_BlockRun":
        """Execute ``txs`` as ``mine_block`` would, on a VM that is never sealed nor persisted (nothing
        of it reaches the chain's database); the run (``receipts``, ``coinbase_surplus``,
        ``revert_reason``, ``apply`` for more transactions). Raises what ``mine_block`` raises
        for a transaction the VM refuses. The chain's time moves to ``timestamp`` as with
        ``mine_block``. With ``keep`` the run is kept for this pending block: a ``mine_block``
        whose transactions begin with these goes on from it (see there)."""
        self.time = max(self.time, timestamp)
        self._pin()
        run = self._begin()
        run.apply(self, txs)
        if keep:
            self.keep(run)
        return run

    def keep(self, run: "_BlockRun") -> None:
        """Keep ``run`` for this pending block's ``mine_block`` (a run with a revert reason read on
        it, or one that failed, is not kept)."""
        if run.failed or run.probed:
            return
        if run.base == self.tester.backend.chain.header:
            self._runs[tuple(run.txs)] = run

    def call_many(self, calls: list[tuple[str, bytes]], gas: int = CALL_GAS) -> list[bytes | None]:
        """Run read-only calls ``(to, calldata)`` on the latest block's state; their return data
        (None for a revert). One VM for the whole batch, messages applied straight to it and rolled
        back: web3 + eth-tester cost more per ``eth_call`` than the EVM (a sim's account reads)."""
        from eth.vm.message import Message

        chain = self.tester.backend.chain
        state = chain.get_vm(at_header=chain.get_canonical_head()).state
        sender = to_canonical_address(self.accounts[0])
        context = state.get_transaction_context_class()(gas_price=0, origin=sender)
        out: list[bytes | None] = []
        for to, data in calls:
            target = to_canonical_address(to)
            snapshot = state.snapshot()
            msg = Message(gas=gas, to=target, sender=sender, value=0, data=data, code=state.get_code(target))
            computation = state.computation_class.apply_message(state, msg, context)
            state.revert(snapshot)
            out.append(None if computation.is_error else bytes(computation.output))
        return out

    def deploy(self, artifact: Artifact, *args: Any, sender: str | None = None, gas: int = DEFAULT_GAS,
               bytecode: str | None = None) -> Any:
        return deploy(self.w3, artifact, *args, sender=sender, gas=gas, bytecode=bytecode)

    def transact(self, fn: Any, sender: str | None = None, gas: int = DEFAULT_TX_GAS, *, check: bool = True) -> Any:
        return transact(self.w3, fn, sender, gas, check=check)

    def snapshot(self) -> Any:
        """An id for the latest mined block's state (block-granular; revert to it as often as wanted)."""
        return self.tester.take_snapshot()

    def revert(self, snapshot_id: Any) -> None:
        """Back to the snapshot's block. eth-tester makes it the head again by importing it, which
        re-executes all its transactions (~0.5 s for a liquidation's block; a bundle simulation
        reverts once: 13 of 166 s of a profiled eth-crash); its state is in the database already, so
        here the head is set and the next header made from it, as that import ends (filters, which
        the sim does not use, and genesis take eth-tester's own path)."""
        from eth.constants import GENESIS_PARENT_HASH

        tester = self.tester
        self._runs.clear()
        block_hash = tester._snapshots.get(snapshot_id)
        if block_hash is None or tester._block_filters or tester._pending_transaction_filters or tester._log_filters:
            tester.revert_to_snapshot(snapshot_id)
            return
        chain = tester.backend.chain
        block = chain.get_block_by_hash(block_hash)
        if block.number == 0:
            tester.revert_to_snapshot(snapshot_id)
            return
        chaindb = chain.chaindb
        chaindb._set_as_canonical_chain_head(chaindb.db, block.header, GENESIS_PARENT_HASH)
        chain.header = chain.create_header_from_parent(block.header)
        self._pin()


def _sender_once(tx: Any) -> Any:
    """``tx`` answering ``sender`` from its signature recovered once: py-evm recovers it at every
    use (validation, fees, nonce, the message, the refund: ~6 times a transaction)."""
    sender = tx.get_sender()
    tx.get_sender = lambda: sender
    return tx


class _BlockRun:
    """A pending block's transactions applied on a VM of its own, as ``mine_all`` applies them, not
    (yet) sealed: ``PyEvmChain.simulate_block`` discards it, ``mine_block`` may seal it."""

    def __init__(self, base: Any, kwargs: dict[str, Any], vm: Any) -> None:
        self.base, self.kwargs, self.vm = base, kwargs, vm
        self.header = base  # mine_all applies from the uncustomised pending header
        self.txs: list[ChainTx] = []
        self.signed: list[Any] = []
        self.receipts: list[Any] = []
        self.computations: list[Any] = []
        self.failed = False  # a transaction was refused: the VM's state is half-applied
        self.probed = False  # a revert reason was read on the state (an eth_call, reverted)
        self.coinbase_start = vm.state.get_balance(kwargs["coinbase"])

    def apply(self, chain: PyEvmChain, txs: list[ChainTx]) -> None:
        if not txs:
            return
        if self.failed:
            raise RuntimeError("this block run failed: it cannot go on")
        tester, backend = chain.tester, chain.tester.backend
        signed = [_sender_once(backend._get_normalized_and_signed_evm_transaction(
            tester.normalizer.normalize_inbound_transaction(t.tester_params(chain.chain_id)))) for t in txs]
        try:
            header, receipts, computations = self.vm.apply_all_transactions(signed, self.header)
        except BaseException:
            self.failed = True
            raise
        self.header = header
        self.txs.extend(txs)
        self.signed.extend(signed)
        self.receipts.extend(receipts)
        self.computations.extend(computations)

    def outcomes(self, start: int = 0) -> list[dict[str, int]]:
        """The receipts' fields a bundle simulation reads (``status``, ``gasUsed``,
        ``effectiveGasPrice``), as ``_receipts`` makes them, from transaction ``start`` on."""
        base_fee = self.base.base_fee_per_gas
        out, used = [], self.receipts[start - 1].gas_used if start else 0
        for tx, r, c in zip(self.signed[start:], self.receipts[start:], self.computations[start:]):
            out.append({"status": 0 if c.is_error else 1, "gasUsed": r.gas_used - used,
                        "effectiveGasPrice": min(tx.max_fee_per_gas, base_fee + tx.max_priority_fee_per_gas)})
            used = r.gas_used
        return out

    def coinbase_surplus(self) -> int:
        """``sim.bundles.coinbase_surplus`` of this block so far: the coinbase's balance change less
        the transactions' priority fees."""
        base_fee = self.base.base_fee_per_gas
        delta = self.vm.state.get_balance(self.kwargs["coinbase"]) - self.coinbase_start
        return delta - sum(r["gasUsed"] * (r["effectiveGasPrice"] - base_fee) for r in self.outcomes())

    def revert_reason(self, fn: Any, params: dict[str, Any]) -> str | None:
        """``revert_reason(fn, params)`` as it reads on this block once mined ("latest"): the same
        web3 ``eth_call`` through eth-tester, whose "latest" VM is this one (the mined header's
        execution context is the pending one's: number, time, coinbase, base fee, prevrandao,
        gas limit; the state is the block's end state). None when the call does not revert with
        REVERT data (a success, or another error): then the caller takes the exact slow path."""
        import eth_tester.backends.pyevm.main as tester_main
        from eth.exceptions import Revert

        original = tester_main._get_vm_for_block_number
        vm = self.vm
        outcome: dict[str, Any] = {}

        def at_latest(chain: Any, block_number: Any) -> Any:
            if block_number in ("latest", "safe", "finalized"):
                return _Probe(vm, outcome)
            return original(chain, block_number)

        self.probed = True
        tester_main._get_vm_for_block_number = at_latest
        try:
            reason = revert_reason(fn, params)
        finally:
            tester_main._get_vm_for_block_number = original
        errors = outcome.get("errors", [])
        if not reason or len(errors) != 1 or not isinstance(errors[0], Revert):
            return None
        return reason


class _Probe:
    """A VM whose ``state`` records each applied transaction's error (``_BlockRun.revert_reason``)."""

    def __init__(self, vm: Any, outcome: dict[str, Any]) -> None:
        self._vm, self._outcome = vm, outcome

    @property
    def state(self) -> Any:
        return _ProbeState(self._vm.state, self._outcome)


class _ProbeState:
    def __init__(self, state: Any, outcome: dict[str, Any]) -> None:
        self._state, self._outcome = state, outcome

    def apply_transaction(self, tx: Any) -> Any:
        c = self._state.apply_transaction(tx)
        self._outcome.setdefault("errors", []).append(c._error if c.is_error else None)
        return c

    def __getattr__(self, name: str) -> Any:
        return getattr(self._state, name)
