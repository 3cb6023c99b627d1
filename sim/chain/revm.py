"""The third chain backend: revm (the Rust EVM of reth and foundry) in process, through ``pyrevm``.

Why a web3 provider: every deploy helper and read in ``sim.chain`` (Aave, Uniswap V2/V3, the
executor) and the sim's agents talk to a chain through a ``Web3`` (``w3.eth.contract``,
``fn.transact``, ``fn.call``, ``get_block``, receipts), and the other backends are reached the same
way (py-evm through ``EthereumTesterProvider``, anvil through ``HTTPProvider``). ``RevmProvider``
answers those JSON-RPC methods from a ``RevmChain``, in process and with no HTTP, so all of that
code runs unchanged; the sim's hot paths (``mine_block``, ``call_many``) skip web3 as they do on
the other backends.

What ``pyrevm`` 0.3.7 (revm 8) gives and what this module adds to make it a chain:

* **Transactions are isolated here, not by pyrevm.** pyrevm never finalizes revm's journal: every
  account and slot a call touched stays warm for the next call, and a slot's "original value"
  (EIP-2200/3529 gas and refunds) stays the one before the first call. Measured: a second ERC20
  ``transfer`` cost 24,705 gas on pyrevm as is and 34,305 on py-evm. So each transaction runs
  inside a journal checkpoint; what it changed is read from revm's journal (``journal_str``: the
  journaled state's Debug text, the only place pyrevm shows the touched slots), the checkpoint is
  reverted (the journal is empty again, every account cold) and the changes are written into
  revm's database. The next transaction then starts as on a real chain: cold accounts, original
  values = the committed state. Every write is logged with its old and new value, which gives
  snapshots (undo back to a point) and reads at an older block (undo, read, redo).
* **Fees are accounted here.** pyrevm runs calls with ``is_message_call`` (no gas charged, nonce
  not bumped) and forces the block's base fee to 0. So the base fee (EIP-1559 from the parent's gas
  used, as py-evm computes it), the sender's ``gas used x effective price``, the coinbase's tip
  (the base fee is burnt) and the nonce are applied after each transaction, before the next one.
  Inside the EVM, ``BASEFEE`` reads 0 and a deploy's ``GASPRICE`` reads 0 (pyrevm sets them); no
  contract the project runs reads either.
* **Transaction hashes are the other backends'.** A sender whose key is known (the ten default
  accounts, keys 1..10 as eth-tester's, and every ``add_key``/``anvil_impersonateAccount``-ed sim
  account that comes with its key) has its transactions signed as EIP-1559 transactions with
  py-evm's chain id, so a run's events, which name transactions, are the same on every backend.
* **Hard fork: Cancun, plus Prague's gas floor.** revm 8's newest complete fork is Cancun (its
  "Prague" has neither EIP-7623 nor EIP-7702); py-evm and anvil run Prague. The one Prague change
  a sim transaction can meet is EIP-7623's calldata floor (a call with much calldata and little
  execution pays ``21,000 + 10 per token``), applied here in the fee accounting; set-code
  transactions (EIP-7702) are not offered, and Prague's system contracts (EIP-2935 block hashes,
  EIP-7002/7251) are absent, which no contract here reads. The parity tests compare gas used to
  the unit.

Blocks are stamped like ``PyEvmChain``'s: ``max(parent + 1, self.time)``, never the wall clock
once ``start_time`` is given; ``prevrandao`` is keccak of the timestamp, the coinbase the zero address.
"""
from __future__ import annotations

import functools
import re
import time as _time
from dataclasses import dataclass, field
from typing import Any

import coincurve
import eth_abi
import pyrevm
from eth_abi.exceptions import DecodingError
from eth_account import Account
from eth_tester.exceptions import TransactionFailed
from eth_utils import keccak, to_canonical_address
from hexbytes import HexBytes
from web3 import Web3
from web3._utils.error_formatters_utils import PANIC_ERROR_CODES
from web3.exceptions import ContractPanicError
from web3.datastructures import AttributeDict
from web3.middleware import AttributeDictMiddleware
from web3.providers.base import BaseProvider

from tapedeck.sim.chain.artifacts import Artifact
from tapedeck.sim.chain.pyevm import (
    CALL_GAS, DEFAULT_GAS, DEFAULT_TX_GAS, SIM_CHAIN_ID, ChainTx, deploy, reason_text, to_checksum_address, transact,
)
from tapedeck.sim.inclusion import next_base_fee

SPEC = "Cancun"  # revm's SpecId text (an unknown one silently means "latest")
GAS_LIMIT = 30_029_122  # eth-tester's genesis gas limit, kept by py-evm on every block
GENESIS_BASE_FEE = 10**9
DEFAULT_BALANCE = 10**24  # 1,000,000 ETH, as eth-tester funds its accounts
DEFAULT_KEYS = tuple(i.to_bytes(32, "big") for i in range(1, 11))  # eth-tester's: keys 1..10
DEFAULT_TIP = 10**9  # eth_maxPriorityFeePerGas, and a web3 send without fees (eth-tester's 1 gwei)
ZERO = "0x0000000000000000000000000000000000000000"
EMPTY_CODE_HASH = keccak(b"")
PANIC = bytes.fromhex("4e487b71")  # Panic(uint256)

# revm's journaled state as Debug prints it (pyrevm 0.3.7 / revm 8): one match per account
_ACCOUNT = re.compile(r"(0x[0-9a-f]{40}): Account \{ info: AccountInfo \{ balance: (\d+), nonce: (\d+), "
                      r"code_hash: 0x([0-9a-f]{64}), code: ")
_SLOT = re.compile(r"(\d+): StorageSlot \{ previous_or_original_value: (\d+), present_value: (\d+) \}")
_HEADER = ": Account { info: AccountInfo { balance: "
_STORAGE = " storage: "
_STATUS_AT = ", status: AccountStatus("
_OUTPUT = re.compile(r"output: 0x([0-9a-f]*)")

try:  # safe-pysha3 (eth-tester's dependency): keccak without eth_hash's dispatch
    from sha3 import keccak_256 as _keccak_256

    def _keccak(data: bytes) -> bytes:
        return _keccak_256(data).digest()
except ImportError:  # pycryptodome (eth_hash's backend here), called directly: eth_utils' keccak
    from Crypto.Hash import keccak as _pycryptodome_keccak  # checks its argument and dispatches per call

    def _keccak(data: bytes) -> bytes:
        return _pycryptodome_keccak.new(data=data, digest_bits=256).digest()


def _rlp_item(item: Any) -> bytes:
    """RLP of a byte string, an unsigned int (big-endian, no leading zeros) or a list of them.

    Written here (rather than ``rlp.encode``) for the transaction hash, once per mined
    transaction: ``rlp`` infers a sedes per item and was ~0.7 ms of each transaction (a third of
    revm's execution path); a test holds the two equal on generated values."""
    if isinstance(item, int):
        if item < 0:
            raise ValueError(f"RLP encodes unsigned integers only, got {item}")
        item = item.to_bytes((item.bit_length() + 7) // 8, "big")
    elif isinstance(item, list):
        body = b"".join(_rlp_item(x) for x in item)
        return _rlp_length(len(body), 0xC0) + body
    if len(item) == 1 and item[0] < 0x80:
        return bytes(item)
    return _rlp_length(len(item), 0x80) + bytes(item)


def _rlp_length(n: int, offset: int) -> bytes:
    if n < 56:
        return bytes([offset + n])
    size = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([offset + 55 + len(size)]) + size


def rlp_encode(item: Any) -> bytes:
    """RLP of ``item`` (see ``_rlp_item``): what ``rlp.encode`` gives for bytes, unsigned ints and lists."""
    return _rlp_item(item)


def _hexbytes(b: bytes) -> HexBytes:
    """``HexBytes(b)`` for a ``bytes`` ``b`` without its type dispatch (the same object)."""
    return bytes.__new__(HexBytes, b)


_EMPTY_BLOOM = _hexbytes(bytes(256))
_new_object = object.__new__
_set_attribute = object.__setattr__


def _attribute_dict(d: dict[str, Any]) -> AttributeDict:
    """``AttributeDict(d)`` that takes ``d`` itself as its contents (web3's copies it twice, through its
    own ``__setattr__``): the same type and contents; ``d`` must not be used after."""
    a = _new_object(AttributeDict)
    _set_attribute(a, "__dict__", d)
    return a


def _to_json(v: Any) -> Any:
    """A web3-formatted value back in JSON-RPC form (what web3's result formatters read)."""
    if isinstance(v, bool) or v is None:
        return v
    if isinstance(v, int):
        return hex(v)
    if isinstance(v, bytes):
        return "0x" + v.hex()
    if isinstance(v, str):
        return v.lower() if v.startswith("0x") and len(v) == 42 else v
    if isinstance(v, (list, tuple)):
        return [_to_json(x) for x in v]
    return {k: _to_json(x) for k, x in v.items()}


def calldata_floor(data: bytes) -> int:
    """EIP-7623 (Prague): a transaction pays at least 21,000 + 10 per calldata token (a zero byte is one
    token, any other byte four), whatever its execution used after refunds."""
    zeros = data.count(0)
    return 21_000 + 10 * (zeros + 4 * (len(data) - zeros))


@functools.lru_cache(maxsize=4096)
def _canonical(address: str) -> bytes:
    return to_canonical_address(address)


def _rlp_uint(i: int) -> bytes:
    """``rlp_encode`` of an unsigned int, written out (the transaction's fields)."""
    if i < 0x80:
        if i < 0:
            raise ValueError(f"RLP encodes unsigned integers only, got {i}")
        return bytes((i,)) if i else b"\x80"
    n = (i.bit_length() + 7) // 8
    return bytes((0x80 + n,)) + i.to_bytes(n, "big")


def _rlp_bytes(b: bytes) -> bytes:
    """``rlp_encode`` of a byte string, written out."""
    n = len(b)
    if n == 1 and b[0] < 0x80:
        return bytes(b)
    return (bytes((0x80 + n,)) if n < 56 else _rlp_length(n, 0x80)) + b


@functools.lru_cache(maxsize=64)
def _account(key: bytes) -> Any:
    """``Account.from_key(key)``, once per process (it derives the public key: every chain made has
    the ten default accounts)."""
    return Account.from_key(key)


@functools.lru_cache(maxsize=4096)
def _signing_key(secret: bytes) -> coincurve.PrivateKey:
    """The coincurve key of ``secret``, once per process (making one derives its public key, ~50 us;
    every run's chain signs for the same default, agent and bot accounts)."""
    return coincurve.PrivateKey(secret)


def signed_eip1559(key: coincurve.PrivateKey, chain_id: int, t: ChainTx) -> bytes:
    """``t`` as a signed EIP-1559 transaction, its raw bytes (``0x02 || rlp([chain id, nonce, tip, max fee,
    gas, to, value, data, [], y, r, s])``): what eth_account's ``sign_transaction`` gives (RFC 6979
    signatures through libsecp256k1 either way; a test holds the two equal), without its typed
    transaction machinery (~1.2 ms a transaction, a fifth of an anvil run's client CPU). Its hash
    is the transaction's hash. The RLP is written out for these fields (the generic ``rlp_encode``
    dispatched on every item: a third of a revm transaction's hash)."""
    body = b"".join((_rlp_uint(chain_id), _rlp_uint(t.nonce), _rlp_uint(t.max_priority_fee), _rlp_uint(t.max_fee),
                     _rlp_uint(t.gas), b"\x94" + _canonical(t.to) if t.to else b"\x80", _rlp_uint(t.value),
                     _rlp_bytes(t.data), b"\xc0"))
    sig = key.sign_recoverable(_keccak(b"\x02" + _rlp_length(len(body), 0xC0) + body), hasher=None)
    # r and s as unsigned ints: their big-endian bytes without leading zeros
    body += _rlp_uint(sig[64]) + _rlp_bytes(sig[:32].lstrip(b"\x00")) + _rlp_bytes(sig[32:64].lstrip(b"\x00"))
    return b"\x02" + _rlp_length(len(body), 0xC0) + body


class RevmTxInvalid(ValueError):
    """A transaction no block may include (nonce, funds, fee below the base fee, gas): py-evm and anvil
    refuse it too, so the block is not mined."""


@dataclass
class _Outcome:
    success: bool
    gas_used: int
    logs: list[tuple[str, list[bytes], bytes]]
    output: bytes  # return data, or the revert data
    created: str | None = None


@dataclass
class _Block:
    number: int
    timestamp: int
    base_fee: int
    parent_hash: bytes
    gas_used: int = 0
    log_count: int = 0  # logs so far (the next log's index in the block)
    tx_hashes: list[bytes] = field(default_factory=list)
    hash: bytes = b""
    log_end: int = 0  # length of the write log once the block was mined


class RevmChain:
    """revm in process with the sim's blocks, fees, receipts and snapshots (see the module docstring).

    Same interface as ``PyEvmChain``/``AnvilChain``: ``w3``, ``accounts`` (``accounts[0]`` the
    default sender), ``chain_id``, ``mine_block``, ``call_many``, ``deploy``/``transact``,
    ``snapshot``/``revert`` (a snapshot can be reverted to as often as wanted, like py-evm's),
    ``add_key``; ``tester`` answers the few eth-tester calls the tests and benchmarks make."""

    def __init__(self, *, start_time: int | None = None, chain_id: int = SIM_CHAIN_ID) -> None:
        self.chain_id = chain_id
        env = pyrevm.Env(cfg=pyrevm.CfgEnv(chain_id=chain_id))
        self.evm = pyrevm.EVM(env=env, gas_limit=GAS_LIMIT, spec_id=SPEC)
        self.gas_limit = GAS_LIMIT
        self.keys: dict[str, Any] = {}  # lowercase address -> eth_account account (signs: the tx hash)
        self._signers: dict[str, Any] = {}  # lowercase address -> its coincurve key
        self.senders: set[str] = set()  # lowercase addresses that may send (keyed or impersonated)
        self._accounts: dict[str, tuple[int, int, bytes]] = {}  # lowercase address -> (balance, nonce, code hash)
        self._log: list[tuple[str, int | None, Any, Any]] = []  # (address, slot or None for the account, old, new)
        self._snapshots: dict[int, tuple[int, int]] = {}  # id -> (blocks, write log length)
        self._snapshot_count = 0
        self._receipts: dict[bytes, AttributeDict] = {}  # tx hash -> receipt (web3's format)
        self._txs: dict[bytes, tuple[ChainTx, int, int, _Block]] = {}  # tx hash -> (tx, price, index, block)
        genesis_time = int(_time.time()) if start_time is None else start_time
        self.time = genesis_time
        self.accounts = []
        for key in DEFAULT_KEYS:
            acct = _account(key)
            self.add_key(acct)
            self._put_account(acct.address.lower(), DEFAULT_BALANCE, 0, EMPTY_CODE_HASH)
            self.accounts.append(acct.address)
        genesis = _Block(0, genesis_time, GENESIS_BASE_FEE, bytes(32))
        genesis.hash = keccak(b"revm-genesis" + genesis_time.to_bytes(32, "big"))
        genesis.log_end = len(self._log)
        self.blocks = [genesis]
        # web3's default middleware less what a local chain does not need (ENS names, legacy gas
        # price strategies, chain id and extraData validation, gas estimation: every caller gives gas)
        self.w3 = Web3(RevmProvider(self), middleware=[AttributeDictMiddleware])
        self.w3.eth.default_account = self.accounts[0]
        self.tester = _Tester(self)

    # ------------------------------------------------------------------ state, written through a log

    def _put_account(self, address: str, balance: int, nonce: int, code_hash: bytes, code: bytes | None = None) -> None:
        old = self._accounts.get(address, (0, 0, EMPTY_CODE_HASH))
        new = (balance, nonce, code_hash)
        if old == new and code is None:
            return
        self._log.append((address, None, old, (new, code)))
        self._write_account(address, new, code)

    def _write_account(self, address: str, info: tuple[int, int, bytes], code: bytes | None) -> None:
        balance, nonce, code_hash = info
        self._accounts[address] = info
        self.evm.insert_account_info(address, pyrevm.AccountInfo(balance=balance, nonce=nonce, code_hash=code_hash,
                                                                 code=code))

    def _write_slot(self, address: str, slot: int, value: int) -> None:
        # pyrevm loads the account into the journal after writing the slot to the database: undone at
        # once, so that the account is cold (and the next slot goes to the database) again
        cp = self.evm.snapshot()
        self.evm.insert_account_storage(address, slot, value)
        self.evm.revert(cp)

    def _write_slots(self, writes: list[tuple[str, list[tuple[int, int]]]]) -> None:
        """``_write_slot`` of every ``(address, [(slot, value), ...])``, one journal checkpoint per round
        in which each address writes one of its slots: pyrevm writes a cold account's slot to the
        database and then loads the account, so a second slot of it in the same checkpoint would go
        to the journal (and be reverted), another account's still goes to the database."""
        evm = self.evm
        while writes:
            cp = evm.snapshot()
            later = []
            for address, slots in writes:
                slot, value = slots.pop()
                evm.insert_account_storage(address, slot, value)
                if slots:
                    later.append((address, slots))
            evm.revert(cp)
            writes = later

    def _rewind(self, to: int) -> None:
        """Undo the write log back to length ``to`` (the writes are dropped)."""
        while len(self._log) > to:
            address, slot, old, _new = self._log.pop()
            self._undo(address, slot, old)

    def _undo(self, address: str, slot: int | None, old: Any) -> None:
        if slot is None:
            self._write_account(address, old, None)
        else:
            self._write_slot(address, slot, old)

    def _redo(self, address: str, slot: int | None, new: Any) -> None:
        if slot is None:
            info, code = new
            self._write_account(address, info, code)
        else:
            self._write_slot(address, slot, new)

    def _at(self, block: Any) -> "_AtBlock":
        """The state after block ``block`` ("latest", a number or a hex number) for a read."""
        return _AtBlock(self, self._block_number(block))

    def _block_number(self, block: Any) -> int:
        latest = len(self.blocks) - 1
        if block in (None, "latest", "pending", "safe", "finalized"):
            return latest
        if block == "earliest":
            return 0
        n = int(block, 16) if isinstance(block, str) else int(block)
        if not 0 <= n <= latest:
            raise ValueError(f"block {n} is not mined (latest {latest})")
        return n

    # ------------------------------------------------------------------ execution

    def _run(self, sender: str, to: str | None, data: bytes, value: int, gas: int, gas_price: int, *,
             commit: bool = True) -> _Outcome:
        """One message in a journal checkpoint; with ``commit`` its changes (when it succeeds) are
        written to the database through the log. The journal is left empty."""
        evm = self.evm
        cp = evm.snapshot()
        try:
            try:
                if to is None:
                    created = evm.deploy(sender, data, value=value, gas=gas)
                    out = b""
                else:
                    created = None
                    out = evm.message_call(sender, to, data, value=value, gas=gas, gas_price=gas_price)
            except RuntimeError as e:
                result = evm.result
                if result is None:  # refused before running (pyrevm validates the message)
                    raise RevmTxInvalid(str(e)) from None
                m = _OUTPUT.search(str(e))
                return _Outcome(False, result.gas_used, [], bytes.fromhex(m.group(1)) if m else b"")
            result = evm.result
            logs = [(log.address, *log.data) for log in result.logs]
            changes = self._journal_changes() if commit else []
        finally:
            evm.revert(cp)
        if changes:
            writes = []
            log = self._log
            for address, balance, nonce, code_hash, code, slots in changes:
                self._put_account(address, balance, nonce, code_hash, code)
                if slots:
                    log.extend((address, slot, old, new) for slot, old, new in slots)
                    writes.append((address, [(slot, new) for slot, _old, new in slots]))
            self._write_slots(writes)
        return _Outcome(True, result.gas_used, logs, bytes(out), created)

    def _journal_changes(self) -> list[tuple[str, int, int, bytes, bytes | None, list[tuple[int, int, int]]]]:
        """What the last message changed, from revm's journaled state: per account its info (with the
        code if it was created) and the slots whose value changed (old, new).

        The journal's text (``journal_str``) has every loaded contract's code in it as hex (~91 KB a
        transaction, 86 MB an eth-crash run, most of its formatting and of the search through it):
        first each loaded account whose code is the one committed here gets its info back without
        the code (``insert_account_info`` on an account in the journal replaces its info there, not
        in the database, and the checkpoint's revert drops it with the account), so the text is
        ~10 KB. A created account keeps its code (its hash is not the committed one): read below."""
        evm = self.evm
        known = self._accounts
        for address, info in evm.journal_state.items():
            code_hash = info.code_hash
            if code_hash != EMPTY_CODE_HASH:
                committed = known.get(address.lower())
                if committed is not None and committed[2] == code_hash:
                    evm.insert_account_info(address, pyrevm.AccountInfo(balance=info.balance, nonce=info.nonce,
                                                                        code_hash=code_hash))
        text = evm.journal_str
        end = text.index("}, transient_storage: ")
        out = []
        # str.find over the text (the code of every loaded contract is in it, as hex): no regex
        # scans the code; each account's header and its storage section are matched where found
        at = text.find(_HEADER)
        while 0 <= at < end:
            head = _ACCOUNT.match(text, at - 42)
            if head is None:
                raise RuntimeError(f"unexpected revm journal text at {at}: {text[at - 42:at + 200]!r}")
            address, balance, nonce, code_hash = head.groups()
            storage = text.find(_STORAGE, head.end())
            status = text.find(_STATUS_AT, storage)
            flags = text[status + len(_STATUS_AT):text.find(")", status)]
            if "SelfDestructed" in flags:
                raise NotImplementedError(f"{address} self-destructed: the revm backend does not clear storage")
            slots = [] if text.startswith("{}", storage + len(_STORAGE)) else [
                (int(k), int(o), int(n)) for k, o, n in _SLOT.findall(text, storage, status) if o != n]
            created = None
            if "Created" in flags:  # its code, from revm (still in the journal)
                created = bytes(self.evm.get_code(address) or b"") or None
            out.append((address, int(balance), int(nonce), bytes.fromhex(code_hash), created, slots))
            at = text.find(_HEADER, status)
        return out

    def _block_env(self, block: _Block) -> None:
        self.evm.set_block_env(pyrevm.BlockEnv(number=block.number, coinbase=ZERO, timestamp=block.timestamp,
                                               prevrandao=_keccak(block.timestamp.to_bytes(32, "big")),
                                               basefee=block.base_fee, gas_limit=self.gas_limit, difficulty=0))

    def _new_block(self, stamp: int) -> _Block:
        """The next block, stamped ``max(parent + 1, stamp)``, its base fee from the parent (EIP-1559)."""
        parent = self.blocks[-1]
        base = next_base_fee(parent.base_fee, parent.gas_used, self.gas_limit // 2)
        block = _Block(parent.number + 1, max(parent.timestamp + 1, stamp), base, parent.hash)
        self._block_env(block)
        return block

    def _execute(self, block: _Block, t: ChainTx, index: int) -> dict[str, Any]:
        """Apply ``t`` at the end of ``block``: checks, the message, fees and nonce; its JSON-RPC receipt."""
        price, outcome = self._apply(block, t)
        tx_hash = self._hash(t)
        block.tx_hashes.append(tx_hash)
        return self._receipt(block, index, t, tx_hash, price, outcome)

    def _apply(self, block: _Block, t: ChainTx) -> tuple[int, _Outcome]:
        """``_execute`` less the transaction's hash and receipt: (its gas price, its outcome)."""
        sender = t.sender.lower()
        balance, nonce, code_hash = self._accounts.get(sender, (0, 0, EMPTY_CODE_HASH))
        if t.nonce != nonce:
            raise RevmTxInvalid(f"invalid transaction nonce from {t.sender}: expected {nonce}, got {t.nonce}")
        if t.max_fee < block.base_fee:
            raise RevmTxInvalid(f"max fee per gas {t.max_fee} of {t.sender} is below the base fee {block.base_fee}")
        if t.max_priority_fee > t.max_fee:
            raise RevmTxInvalid(f"priority fee {t.max_priority_fee} above the max fee {t.max_fee}")
        if balance < t.gas * t.max_fee + t.value:
            raise RevmTxInvalid(f"sender {t.sender} cannot afford gas {t.gas} x {t.max_fee} + value {t.value} "
                                f"(balance {balance})")
        if block.gas_used + t.gas > self.gas_limit:
            raise RevmTxInvalid(f"transaction gas {t.gas} exceeds what is left of the block's gas limit")
        floor = calldata_floor(t.data)
        if t.gas < floor:
            raise RevmTxInvalid(f"transaction gas {t.gas} is below its EIP-7623 calldata floor {floor}")
        price = min(t.max_fee, block.base_fee + t.max_priority_fee)
        if sender not in self.senders:  # what ``_hash`` refuses
            raise RevmTxInvalid(f"{t.sender} has no key here and is not impersonated")
        to = t.to.lower() if t.to is not None else None
        outcome = self._run(sender, to, t.data, t.value, t.gas, price)
        outcome.gas_used = max(outcome.gas_used, floor)  # Prague: what revm's Cancun does not charge
        # the fee (base fee burnt, tip to the coinbase) and the nonce, on top of what the message did
        balance, _, code_hash = self._accounts.get(sender, (0, 0, EMPTY_CODE_HASH))
        self._put_account(sender, balance - outcome.gas_used * price, t.nonce + 1, code_hash)
        cb = self._accounts.get(ZERO, (0, 0, EMPTY_CODE_HASH))
        self._put_account(ZERO, cb[0] + outcome.gas_used * (price - block.base_fee), cb[1], cb[2])
        block.gas_used += outcome.gas_used
        return price, outcome

    def _seal(self, block: _Block, receipts: list[dict[str, Any]]) -> list[AttributeDict]:
        """Append ``block`` (its hash now known) and return its receipts in web3's format, kept with
        their transactions for the JSON-RPC reads."""
        block.hash = _keccak(rlp_encode([block.parent_hash, block.number, block.timestamp, block.base_fee,
                                         block.gas_used, block.tx_hashes]))
        block.log_end = len(self._log)
        self.blocks.append(block)
        number, bhash = block.number, _hexbytes(block.hash)
        out = []
        for r in receipts:
            r["blockHash"], r["blockNumber"] = bhash, number
            logs = r["logs"]
            if logs:
                for log in logs:
                    log["blockHash"], log["blockNumber"] = bhash, number
                r["logs"] = [_attribute_dict(log) for log in logs]
            receipt = _attribute_dict(r)
            self._receipts[bytes(r["transactionHash"])] = receipt
            out.append(receipt)
        return out

    def mine_block(self, txs: list[ChainTx], timestamp: int) -> list[Any]:
        """Execute ``txs`` in this order in one new block stamped ``max(parent + 1, timestamp)``; their
        receipts (web3's format). A reverting transaction is mined with status 0; a transaction no
        block may include raises ``RevmTxInvalid`` and nothing of the block is kept."""
        self.time = max(self.time, timestamp)
        return self._mine(txs, self.time)

    def _mine(self, txs: list[ChainTx], stamp: int) -> list[Any]:
        block = self._new_block(stamp)
        mark = len(self._log)
        receipts: list[dict[str, Any]] = []
        try:
            for i, t in enumerate(txs):
                receipts.append(self._execute(block, t, i))
        except BaseException:
            self._rewind(mark)
            for h in block.tx_hashes:
                self._txs.pop(h, None)
            raise
        return self._seal(block, receipts)

    def simulate_block(self, txs: list[ChainTx], timestamp: int, *, keep: bool = True) -> "_BlockRun":
        """What ``mine_block(txs, timestamp)`` would do, read and undone at once (the interface of
        ``PyEvmChain.simulate_block``, which ``sim.bundles`` takes when a backend has it): the run's
        ``outcomes`` (status, gas used, gas price), ``coinbase_surplus``, ``revert_reason`` on its end
        state, ``apply`` for more transactions. Nothing of it stays: no block, no hash, no receipt
        (a bundle simulation mined a block on a snapshot before: its transactions signed and
        hashed, its receipts built, and web3 requests for the coinbase's balances, about a third of
        the auction's CPU). Raises what ``mine_block`` raises for a transaction no block may include.
        The chain's time moves to ``timestamp`` as with ``mine_block``; ``keep`` is accepted and
        does nothing (a run is not kept: executing it again costs less than keeping it)."""
        self.time = max(self.time, timestamp)
        run = _BlockRun(self, self.time)
        run.apply(self, txs)
        return run

    def keep(self, run: "_BlockRun") -> None:
        """Nothing is kept here (``simulate_block``)."""

    def call_many(self, calls: list[tuple[str, bytes]], gas: int = CALL_GAS) -> list[bytes | None]:
        """Read-only calls ``(to, calldata)`` on the latest state; return data (None for a revert)."""
        out: list[bytes | None] = []
        sender = self.accounts[0].lower()
        for to, data in calls:
            r = self._call(sender, to.lower(), data, 0, gas)
            out.append(r.output if r.success else None)
        return out

    def _call(self, sender: str, to: str | None, data: bytes, value: int, gas: int,
              number: int | None = None) -> _Outcome:
        """A message whose changes are all dropped (``eth_call``), in the context of block ``number``
        (default the latest: its number, timestamp... as py-evm runs a call on a mined block); the
        state is the caller's business (``_at``)."""
        self._block_env(self.blocks[-1 if number is None else number])
        return self._run(sender, to, data, value, gas, 0, commit=False)

    # ------------------------------------------------------------------ accounts and hashes

    def add_key(self, account: Any) -> None:
        """Let ``account`` send; its transactions are signed with its key (the hash py-evm gives them)."""
        self.keys[account.address.lower()] = account
        self.senders.add(account.address.lower())

    def impersonate(self, address: str) -> None:
        """Let ``address`` send without a key (anvil's ``anvil_impersonateAccount``); its transaction
        hashes are then this backend's own."""
        self.senders.add(address.lower())

    def _hash(self, t: ChainTx) -> bytes:
        """The transaction's hash: of the EIP-1559 transaction signed with the sender's key (what
        eth_account signs and py-evm hashes; a test holds the two equal), or of the unsigned fields
        for an impersonated sender."""
        sender = t.sender.lower()
        key = self._signers.get(sender)
        if key is None and sender in self.keys:
            key = self._signers[sender] = _signing_key(bytes(self.keys[sender].key))
        if key is not None:
            return _keccak(signed_eip1559(key, self.chain_id, t))
        if sender not in self.senders:
            raise RevmTxInvalid(f"{t.sender} has no key here and is not impersonated")
        fields = [self.chain_id, t.nonce, t.max_priority_fee, t.max_fee, t.gas,
                  _canonical(t.to) if t.to else b"", t.value, t.data, []]
        return _keccak(b"revm-impersonated" + _canonical(t.sender) + rlp_encode(fields))

    # ------------------------------------------------------------------ JSON-RPC shapes

    def _receipt(self, block: _Block, index: int, t: ChainTx, tx_hash: bytes, price: int,
                 outcome: _Outcome) -> dict[str, Any]:
        """The receipt as web3 formats one (what ``anvil._receipt`` makes of the JSON-RPC receipt:
        ints, ``HexBytes``, checksummed addresses), built from the values directly; the block's hash
        and number are added by ``_seal``. The JSON-RPC shapes (``receipt_json``, ``tx_json``) are
        made from it and the transaction only when asked for."""
        self._txs[tx_hash] = (t, price, index, block)
        h = _hexbytes(tx_hash)
        first = block.log_count
        logs = [{"address": to_checksum_address(address), "topics": [_hexbytes(bytes(tp)) for tp in topics],
                 "data": _hexbytes(bytes(data)), "logIndex": first + j, "transactionIndex": index,
                 "transactionHash": h, "removed": False}
                for j, (address, topics, data) in enumerate(outcome.logs if outcome.success else [])]
        created = outcome.created if outcome.success else None
        r = {"transactionHash": h, "transactionIndex": index, "from": to_checksum_address(t.sender),
             "to": to_checksum_address(t.to) if t.to else None,
             "contractAddress": to_checksum_address(created) if created else None,
             "gasUsed": outcome.gas_used, "cumulativeGasUsed": block.gas_used, "effectiveGasPrice": price,
             "status": 1 if outcome.success else 0, "type": 2, "logs": logs, "logsBloom": _EMPTY_BLOOM}
        block.log_count += len(logs)
        return r

    def receipt_json(self, tx_hash: bytes) -> dict[str, Any] | None:
        """The JSON-RPC receipt of a mined transaction (hex quantities, lowercase addresses)."""
        r = self._receipts.get(tx_hash)
        return None if r is None else _to_json(r)

    def tx_json(self, tx_hash: bytes) -> dict[str, Any] | None:
        """The JSON-RPC transaction of a mined one."""
        found = self._txs.get(tx_hash)
        if found is None:
            return None
        t, price, index, block = found
        return {"hash": "0x" + tx_hash.hex(), "type": "0x2", "nonce": hex(t.nonce), "from": t.sender.lower(),
                "to": t.to.lower() if t.to else None, "value": hex(t.value), "gas": hex(t.gas),
                "input": "0x" + t.data.hex(), "maxFeePerGas": hex(t.max_fee),
                "maxPriorityFeePerGas": hex(t.max_priority_fee), "gasPrice": hex(price),
                "chainId": hex(self.chain_id), "accessList": [], "transactionIndex": hex(index),
                "blockHash": "0x" + block.hash.hex(), "blockNumber": hex(block.number)}

    def block_json(self, number: int, full: bool = False) -> dict[str, Any]:
        b = self.blocks[number]
        txs: list[Any] = [self.tx_json(h) for h in b.tx_hashes] if full else ["0x" + h.hex() for h in b.tx_hashes]
        return {"number": hex(b.number), "hash": "0x" + b.hash.hex(), "parentHash": "0x" + b.parent_hash.hex(),
                "timestamp": hex(b.timestamp), "baseFeePerGas": hex(b.base_fee), "gasLimit": hex(self.gas_limit),
                "gasUsed": hex(b.gas_used), "miner": ZERO, "difficulty": "0x0", "totalDifficulty": "0x0",
                "nonce": "0x0000000000000000", "extraData": "0x", "logsBloom": "0x" + "00" * 256,
                "mixHash": "0x" + keccak(b.timestamp.to_bytes(32, "big")).hex(), "sha3Uncles": "0x" + "00" * 32,
                "stateRoot": "0x" + "00" * 32, "transactionsRoot": "0x" + "00" * 32,
                "receiptsRoot": "0x" + "00" * 32, "size": "0x0", "transactions": txs, "uncles": []}

    # ------------------------------------------------------------------ the shared interface

    def deploy(self, artifact: Artifact, *args: Any, sender: str | None = None, gas: int = DEFAULT_GAS,
               bytecode: str | None = None) -> Any:
        return deploy(self.w3, artifact, *args, sender=sender, gas=gas, bytecode=bytecode)

    def transact(self, fn: Any, sender: str | None = None, gas: int = DEFAULT_TX_GAS, *, check: bool = True) -> Any:
        return transact(self.w3, fn, sender, gas, check=check)

    def snapshot(self) -> int:
        """An id for the latest block's state; revert to it as often as wanted."""
        self._snapshot_count += 1
        self._snapshots[self._snapshot_count] = (len(self.blocks), len(self._log))
        return self._snapshot_count

    def revert(self, snapshot_id: Any) -> None:
        """Back to the state and blocks of ``snapshot_id``. Like ``PyEvmChain``, the chain's time
        (the least timestamp of the next block) is not moved back."""
        if snapshot_id not in self._snapshots:
            raise KeyError(f"unknown revm snapshot {snapshot_id!r}")
        blocks, log = self._snapshots[snapshot_id]
        if blocks > len(self.blocks):
            raise KeyError(f"revm snapshot {snapshot_id!r} is ahead of the chain (reverted past it)")
        for b in self.blocks[blocks:]:
            for h in b.tx_hashes:
                self._receipts.pop(h, None)
                self._txs.pop(h, None)
        del self.blocks[blocks:]
        self._rewind(log)
        for sid in [s for s, (b, _) in self._snapshots.items() if b > blocks]:
            del self._snapshots[sid]

    def close(self) -> None:
        """Nothing to stop (in process); for the interface of ``AnvilChain``."""


class _BlockRun:
    """A block ``RevmChain.simulate_block`` executed and undid: what it did (``outcomes``, the
    coinbase's balance change, its writes), and its writes are done again for a read on its end
    state (``revert_reason``) or more transactions (``apply``), and undone after."""

    def __init__(self, chain: RevmChain, stamp: int) -> None:
        self.chain, self.stamp = chain, stamp
        self.parent = len(chain.blocks)
        self.base_fee = next_base_fee(chain.blocks[-1].base_fee, chain.blocks[-1].gas_used, chain.gas_limit // 2)
        self.txs: list[ChainTx] = []
        self.results: list[dict[str, int]] = []  # per transaction: status, gasUsed, effectiveGasPrice
        self.writes: list[tuple[str, int | None, Any, Any]] = []  # its entries of the write log, in order
        self.gas_used = 0
        self.coinbase_start = chain._accounts.get(ZERO, (0, 0, EMPTY_CODE_HASH))[0]
        self.coinbase_end = self.coinbase_start
        self.failed = False

    def _redo(self) -> tuple[int, _Block]:
        """The chain as at the run's end (its writes done again): (the write log's length before, the block)."""
        c = self.chain
        if len(c.blocks) != self.parent:
            raise RuntimeError("the chain moved on since this block run: it cannot be read or go on")
        mark = len(c._log)
        block = c._new_block(self.stamp)
        block.gas_used = self.gas_used
        for entry in self.writes:
            c._log.append(entry)
            c._redo(entry[0], entry[1], entry[3])
        return mark, block

    def apply(self, chain: RevmChain, txs: list[ChainTx]) -> None:
        if not txs:
            return
        if self.failed:
            raise RuntimeError("this block run failed: it cannot go on")
        mark, block = self._redo()
        try:
            for t in txs:
                price, outcome = chain._apply(block, t)
                self.results.append({"status": 1 if outcome.success else 0, "gasUsed": outcome.gas_used,
                                     "effectiveGasPrice": price})
                self.txs.append(t)
        except BaseException:
            self.failed = True
            raise
        finally:
            self.writes = chain._log[mark:]
            self.gas_used = block.gas_used
            self.coinbase_end = chain._accounts.get(ZERO, (0, 0, EMPTY_CODE_HASH))[0]
            chain._rewind(mark)

    def outcomes(self, start: int = 0) -> list[dict[str, int]]:
        """The receipts' fields a bundle simulation reads (``status``, ``gasUsed``, ``effectiveGasPrice``),
        from transaction ``start`` on."""
        return [dict(r) for r in self.results[start:]]

    def coinbase_surplus(self) -> int:
        """``sim.bundles.coinbase_surplus`` of this block so far: the coinbase's balance change less the
        transactions' priority fees."""
        return self.coinbase_end - self.coinbase_start - sum(
            r["gasUsed"] * (r["effectiveGasPrice"] - self.base_fee) for r in self.results)

    def revert_reason(self, fn: Any, params: dict[str, Any]) -> str | None:
        """``pyevm.revert_reason(fn, params)`` as it reads once the block is mined ("latest": the block's
        number, time and base fee, its end state), run on the end state in the pending block's
        context; None when the call does not revert (the caller then takes the slow path)."""
        from tapedeck.sim.chain.pyevm import PreparedCall, call_data

        prepared = isinstance(fn, PreparedCall)
        contract = fn.contract if prepared else fn
        data = fn.data if prepared else call_data(fn)
        c = self.chain
        mark, _block = self._redo()
        try:
            r = c._run((params.get("from") or c.accounts[0]).lower(), contract.address.lower(), data,
                       _hex_int(params.get("value")), _hex_int(params.get("gas"), CALL_GAS), 0, commit=False)
        finally:
            c._rewind(mark)
        return _revert_text(r)


class _AtBlock:
    """``with chain._at(n):`` reads see the state after block ``n`` (undo the later writes, redo them after)."""

    def __init__(self, chain: RevmChain, number: int) -> None:
        self.chain, self.number = chain, number
        self.undone: list[Any] = []

    def __enter__(self) -> None:
        c = self.chain
        if self.number == len(c.blocks) - 1:
            return
        end = c.blocks[self.number].log_end
        for entry in reversed(c._log[end:]):
            c._undo(entry[0], entry[1], entry[2])
            self.undone.append(entry)

    def __exit__(self, *exc: object) -> None:
        for address, slot, _old, new in reversed(self.undone):
            self.chain._redo(address, slot, new)


class _Tester:
    """The eth-tester calls tests and benchmarks make on ``chain.tester`` (``PyEvmChain`` exposes
    eth-tester itself), answered by the revm chain."""

    def __init__(self, chain: RevmChain) -> None:
        self.chain = chain

    def add_account(self, private_key: str) -> str:
        acct = Account.from_key(private_key)
        self.chain.add_key(acct)
        return acct.address

    def mine_blocks(self, num_blocks: int = 1) -> list[bytes]:
        for _ in range(num_blocks):
            self.chain._mine([], self.chain.time)
        return [b.hash for b in self.chain.blocks[-num_blocks:]]

    def time_travel(self, timestamp: int) -> None:
        """Mine one block stamped ``timestamp - 1`` as eth-tester's ``time_travel`` does (the chain's
        time is not moved: the next block is one second later)."""
        self.chain._mine([], timestamp - 1)

    def take_snapshot(self) -> int:
        return self.chain.snapshot()

    def revert_to_snapshot(self, snapshot_id: int) -> None:
        self.chain.revert(snapshot_id)


def _hex_int(v: Any, default: int = 0) -> int:
    if v is None:
        return default
    return int(v, 16) if isinstance(v, str) else int(v)


def _raise_revert(output: bytes) -> None:
    """Raise for an ``eth_call`` revert exactly what web3 raises on py-evm (``EthereumTesterProvider``),
    the reference backend, so ``pyevm.reason_text`` and every caller read the same text:
    ``ContractPanicError`` for a Solidity panic, else eth-tester's ``TransactionFailed`` with
    ``execution reverted: <the data decoded as a string>``, or with the raw bytes' repr when they
    do not decode (custom errors, empty data). (On anvil web3 raises ``ContractLogicError(message,
    data)`` instead, whose text ``reason_text`` keeps as the tuple's repr: see the README.)"""
    if output[:4] == PANIC and len(output) == 36:
        raise ContractPanicError(PANIC_ERROR_CODES[output[-1:].hex()], data="0x" + output.hex())
    try:
        reason: Any = eth_abi.decode(["string"], output[4:])[0]
    except DecodingError:
        reason = output
    raise TransactionFailed(f"execution reverted: {reason}")


def _revert_text(r: _Outcome) -> str | None:
    """``reason_text`` of what web3 raises for a call with outcome ``r`` (None if it did not revert)."""
    if r.success:
        return None
    try:
        _raise_revert(r.output)
    except Exception as e:  # noqa: BLE001 - exactly what web3 would raise
        return reason_text(e)
    return None  # pragma: no cover - _raise_revert always raises


class RevmProvider(BaseProvider):
    """The JSON-RPC methods web3 and the sim use, answered by a ``RevmChain`` in process (no HTTP).

    Transactions sent with ``eth_sendTransaction`` are mined at once, one block each (automine), as
    on eth-tester and anvil. ``eth_estimateGas`` is not offered: every caller here passes ``gas``."""

    def __init__(self, chain: RevmChain) -> None:
        super().__init__()
        self.chain = chain

    def is_connected(self, show_traceback: bool = False) -> bool:
        return True

    def make_request(self, method: Any, params: Any) -> Any:
        handler = getattr(self, "_" + str(method), None)
        if handler is None:
            return {"jsonrpc": "2.0", "id": 1,
                    "error": {"code": -32601, "message": f"method {method} is not offered by the revm backend"}}
        try:
            result = handler(*params)
        except _RpcError as e:
            return {"jsonrpc": "2.0", "id": 1, "error": e.error}
        except RevmTxInvalid as e:
            return {"jsonrpc": "2.0", "id": 1, "error": {"code": -32000, "message": str(e)}}
        return {"jsonrpc": "2.0", "id": 1, "result": result}

    # --- chain and accounts
    def _eth_chainId(self) -> str:
        return hex(self.chain.chain_id)

    def _net_version(self) -> str:
        return str(self.chain.chain_id)

    def _eth_accounts(self) -> list[str]:
        return [a for a in self.chain.accounts]

    def _eth_blockNumber(self) -> str:
        return hex(len(self.chain.blocks) - 1)

    def _eth_maxPriorityFeePerGas(self) -> str:
        return hex(DEFAULT_TIP)

    def _eth_gasPrice(self) -> str:
        return hex(self.chain.blocks[-1].base_fee + DEFAULT_TIP)

    def _eth_getBlockByNumber(self, block: Any, full: bool = False) -> dict[str, Any] | None:
        try:
            return self.chain.block_json(self.chain._block_number(block), full)
        except ValueError:
            return None

    def _eth_getBlockByHash(self, block_hash: str, full: bool = False) -> dict[str, Any] | None:
        want = bytes.fromhex(block_hash[2:])
        for b in self.chain.blocks:
            if b.hash == want:
                return self.chain.block_json(b.number, full)
        return None

    def _eth_getBalance(self, address: str, block: Any = "latest") -> str:
        with self.chain._at(block):
            return hex(self.chain._accounts.get(address.lower(), (0, 0, b""))[0])

    def _eth_getTransactionCount(self, address: str, block: Any = "latest") -> str:
        with self.chain._at(block):
            return hex(self.chain._accounts.get(address.lower(), (0, 0, b""))[1])

    def _eth_getCode(self, address: str, block: Any = "latest") -> str:
        with self.chain._at(block):
            cp = self.chain.evm.snapshot()
            try:
                code = self.chain.evm.get_code(address.lower())
            finally:
                self.chain.evm.revert(cp)
        return "0x" + (bytes(code).hex() if code else "")

    def _eth_getStorageAt(self, address: str, slot: Any, block: Any = "latest") -> str:
        with self.chain._at(block):
            cp = self.chain.evm.snapshot()
            try:
                value = self.chain.evm.storage(address.lower(), _hex_int(slot))
            finally:
                self.chain.evm.revert(cp)
        return "0x" + int(value).to_bytes(32, "big").hex()

    # --- transactions
    def _eth_sendTransaction(self, tx: dict[str, Any]) -> str:
        c = self.chain
        sender = tx.get("from") or c.accounts[0]
        if sender.lower() not in c.senders:
            raise RevmTxInvalid(f"{sender} is neither a known key nor impersonated")
        if "gasPrice" in tx and "maxFeePerGas" not in tx:
            max_fee = tip = _hex_int(tx["gasPrice"])
        else:
            tip = _hex_int(tx.get("maxPriorityFeePerGas"), DEFAULT_TIP)
            max_fee = _hex_int(tx.get("maxFeePerGas"), max(DEFAULT_TIP, tip))
        nonce = _hex_int(tx.get("nonce"), c._accounts.get(sender.lower(), (0, 0, b""))[1])
        data = tx.get("data") or tx.get("input") or "0x"
        t = ChainTx(sender=to_checksum_address(sender), nonce=nonce, gas=_hex_int(tx.get("gas"), DEFAULT_TX_GAS),
                    max_fee=max_fee, max_priority_fee=tip, to=to_checksum_address(tx["to"]) if tx.get("to") else None,
                    data=bytes(HexBytes(data)), value=_hex_int(tx.get("value")))
        (receipt,) = c._mine([t], c.time)
        return "0x" + bytes(receipt["transactionHash"]).hex()

    def _eth_getTransactionReceipt(self, tx_hash: str) -> dict[str, Any] | None:
        return self.chain.receipt_json(bytes.fromhex(tx_hash[2:]))

    def _eth_getTransactionByHash(self, tx_hash: str) -> dict[str, Any] | None:
        return self.chain.tx_json(bytes.fromhex(tx_hash[2:]))

    def _eth_call(self, tx: dict[str, Any], block: Any = "latest", *overrides: Any) -> str:
        if overrides:
            raise _RpcError({"code": -32602, "message": "eth_call state overrides are not offered by the revm backend"})
        c = self.chain
        sender = (tx.get("from") or c.accounts[0]).lower()
        to = tx.get("to")
        data = bytes(HexBytes(tx.get("data") or tx.get("input") or "0x"))
        number = c._block_number(block)
        with c._at(number):
            r = c._call(sender, to.lower() if to else None, data, _hex_int(tx.get("value")),
                        _hex_int(tx.get("gas"), CALL_GAS), number)
        if not r.success:
            _raise_revert(r.output)
        return "0x" + r.output.hex()

    def revert_text(self, params: dict[str, Any], to: str, data: bytes, block: Any = "latest") -> str | None:
        """What ``pyevm.revert_reason`` records for a call of ``data`` on ``to`` with ``params``
        (``from``, ``gas``, ``value``) at ``block``, run here directly: ``reason_text`` of the error
        ``eth_call`` raises; None when it does not revert (the caller then goes through web3)."""
        c = self.chain
        number = c._block_number(block)
        with c._at(number):
            r = c._call((params.get("from") or c.accounts[0]).lower(), to.lower(), data, _hex_int(params.get("value")),
                        _hex_int(params.get("gas"), CALL_GAS), number)
        return _revert_text(r)

    # --- node controls (anvil's names, so ``sim.onchain.add_account`` needs no branch for revm)
    def _anvil_impersonateAccount(self, address: str) -> None:
        self.chain.impersonate(address)

    def _evm_snapshot(self) -> str:
        return hex(self.chain.snapshot())

    def _evm_revert(self, snapshot_id: Any) -> bool:
        self.chain.revert(_hex_int(snapshot_id))
        return True

    def _evm_mine(self, timestamp: Any = None) -> str:
        self.chain.mine_block([], _hex_int(timestamp, self.chain.time))
        return "0x0"


class _RpcError(Exception):
    def __init__(self, error: dict[str, Any]) -> None:
        super().__init__(error.get("message"))
        self.error = error


