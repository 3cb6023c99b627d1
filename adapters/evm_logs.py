"""One decoder of EVM event logs, from the contracts' own ABIs, for every reader of logs.

The importers (raw log CSVs), the sim (receipts of the sim chain) and the live adapters
(``eth_getLogs``) all meet the same thing: a log's ``topics`` and ``data``. ``EventDecoder`` turns
them into the event's name and arguments, by the contract ABI's ``event`` entries (the npm
artifacts' ``abi``, or ``adapters.evm_abis`` for readers that run without them): the event is found by
``topic0`` (keccak of the canonical signature, ``eth_utils.event_abi_to_log_topic``), the topic
count is checked, indexed arguments are decoded from the topics and the others from ``data`` with
eth_abi's strict decoder, and ``data`` must be exactly the canonical encoding of what it decodes to
(nothing truncated, nothing appended).

Every problem is a ``LogDecodeError`` with a one-line reason and never another exception, so a
reader can turn a bad log into a recorded rejection. Values are eth_abi's: ints as ``int``,
addresses as lower-case ``0x`` hex (EIP-55 mixed case with ``checksum=True``, as web3 gives them),
``bytesN``/``bytes`` as ``bytes``; an indexed argument that is not a value type (``string``,
``bytes``, arrays, structs) is only its 32-byte keccak hash, as on chain.
Anonymous events have no ``topic0`` and cannot be told apart; they are not decoded.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Iterable, Mapping, Sequence

import eth_abi
from eth_abi.decoding import ContextFramesBytesIO
from eth_abi.exceptions import DecodingError, EncodingError
from eth_abi.grammar import BasicType
from eth_abi.grammar import parse as parse_abi_type
from eth_abi.registry import registry as abi_registry
from eth_utils import collapse_if_tuple, event_abi_to_log_topic, to_checksum_address

WORD = 32
_HEX = re.compile(r"(?:[0-9a-fA-F]{2})*")


class LogDecodeError(ValueError):
    """A log this decoder cannot decode; the message says why in one line."""


@dataclass(frozen=True)
class DecodedLog:
    """A decoded log: the event's name and its arguments by their ABI names, in ABI order."""

    event: str
    args: Mapping[str, Any]
    address: str | None = None  # lower-case; set by ``decode_receipt``
    log_index: int | None = None
    block_number: int | None = None
    transaction_hash: bytes | None = None


def _one_word(abi_type: str) -> bool:
    """A value type (uintN, intN, address, bool, bytesN...): encoded as one 32-byte word."""
    parsed = parse_abi_type(abi_type)
    return isinstance(parsed, BasicType) and not parsed.arrlist and not parsed.is_dynamic


def _hashed_when_indexed(abi_type: str) -> bool:
    """Solidity logs an indexed argument that is not a value type (string, bytes, arrays, structs) as its hash."""
    return abi_type in ("string", "bytes") or abi_type.endswith("]") or abi_type.startswith("(")


@dataclass(frozen=True)
class EventLayout:
    """One event of an ABI: where each argument is (topic or data) and its canonical ABI type."""

    name: str
    signature: str
    topic0: bytes
    inputs: tuple[tuple[str, str, bool], ...]  # (name, canonical type, indexed), in ABI order
    indexed: tuple[tuple[str, str], ...]
    data: tuple[tuple[str, str], ...]
    static: bool  # every argument is one 32-byte word where it is logged (a topic or a data word)

    @classmethod
    def from_abi(cls, entry: Mapping[str, Any]) -> "EventLayout":
        inputs = tuple((str(a.get("name") or f"arg{k}"), collapse_if_tuple(dict(a)), bool(a.get("indexed")))
                       for k, a in enumerate(entry.get("inputs", ())))
        signature = f"{entry['name']}({','.join(t for _, t, _ in inputs)})"
        indexed = tuple((n, t) for n, t, i in inputs if i)
        data = tuple((n, t) for n, t, i in inputs if not i)
        static = all(not _hashed_when_indexed(t) for _, t in indexed) and all(_one_word(t) for _, t in data)
        return cls(str(entry["name"]), signature, bytes(event_abi_to_log_topic(dict(entry))), inputs, indexed, data,
                   static)


def _word(abi_type: str, word: bytes, what: str) -> Any:
    try:
        return abi_registry.get_decoder(abi_type).decode(ContextFramesBytesIO(word))
    except DecodingError as e:
        raise LogDecodeError(f"{what}: not a valid {abi_type} ({e})") from None


def _as_bytes(value: bytes | bytearray | str, what: str) -> bytes:
    if isinstance(value, (bytes, bytearray)):
        return bytes(value)
    if isinstance(value, str):
        text = value[2:] if value[:2] in ("0x", "0X") else value
        if not _HEX.fullmatch(text):
            raise LogDecodeError(f"{what} is not hex of whole bytes: {value[:80]!r}")
        return bytes.fromhex(text)
    raise LogDecodeError(f"{what} is not bytes or a hex string: {type(value).__name__}")


class EventDecoder:
    """Decodes the logs of one contract (or several whose events do not clash) by topic0."""

    def __init__(self, abi: Iterable[Mapping[str, Any]], *, only: Iterable[str] | None = None,
                 checksum: bool = False):
        """``only``: the names of the events to decode (others are unknown); ``checksum``: addresses
        in EIP-55 mixed case, as web3 gives them (default: lower case, as the domain's ids are)."""
        wanted = None if only is None else set(only)
        self.checksum = checksum
        self.events: dict[bytes, EventLayout] = {}
        for entry in abi:
            if entry.get("type") != "event" or entry.get("anonymous"):
                continue
            if wanted is not None and entry["name"] not in wanted:
                continue
            layout = EventLayout.from_abi(entry)
            self.events[layout.topic0] = layout
        if wanted is not None and (missing := wanted - {e.name for e in self.events.values()}):
            raise ValueError(f"no event named {', '.join(sorted(missing))} in the ABI")
        self._by_name = {e.name: e for e in self.events.values()}

    def knows(self, topic0: bytes | str) -> bool:
        """Whether a log with this topic0 is one of the decoder's events."""
        try:
            return _as_bytes(topic0, "topic 0") in self.events
        except LogDecodeError:
            return False

    def layout(self, name: str) -> EventLayout:
        return self._by_name[name]

    def topic0(self, name: str) -> bytes:
        return self._by_name[name].topic0

    def decode(self, topics: Sequence[bytes | str], data: bytes | str) -> DecodedLog:
        """The event of one log; ``LogDecodeError`` naming what is wrong otherwise."""
        if not topics:
            raise LogDecodeError("no topics (an anonymous log)")
        words = [_as_bytes(t, f"topic {i}") for i, t in enumerate(topics)]
        for i, w in enumerate(words):
            if len(w) != WORD:
                raise LogDecodeError(f"topic {i} is {len(w)} bytes, not 32")
        layout = self.events.get(words[0])
        if layout is None:
            raise LogDecodeError(f"unknown topic0 0x{words[0].hex()}")
        if len(words) != 1 + len(layout.indexed):
            raise LogDecodeError(f"wrong topic count: {layout.name} has {1 + len(layout.indexed)} topics, "
                                 f"the log has {len(words)}")
        body = _as_bytes(data, "data")
        if layout.static:
            if len(body) != WORD * len(layout.data):
                raise LogDecodeError(f"{'truncated' if len(body) < WORD * len(layout.data) else 'oversized'} data: "
                                     f"{layout.name} needs {WORD * len(layout.data)} bytes, the log has {len(body)}")
            # one word per argument: each through eth_abi's own decoder of its type (padding and range
            # checked), without the tuple decoder's pointer validation (no pointers here; 40% faster)
            by_name: dict[str, Any] = {}
            for k, ((name, abi_type), word) in enumerate(zip(layout.indexed, words[1:]), start=1):
                by_name[name] = _word(abi_type, word, f"topic {k} ({name})")
            for j, (name, abi_type) in enumerate(layout.data):
                by_name[name] = _word(abi_type, body[WORD * j:WORD * (j + 1)], f"data word {j} ({name})")
            return self._result(layout, by_name)
        return self._decode_each(layout, words, body)

    def _result(self, layout: EventLayout, by_name: dict[str, Any]) -> DecodedLog:
        args = {name: by_name[name] for name, _, _ in layout.inputs}
        if self.checksum:
            for name, abi_type, _ in layout.inputs:
                if abi_type == "address":
                    args[name] = to_checksum_address(args[name])
        return DecodedLog(layout.name, args)

    def _decode_each(self, layout: EventLayout, words: list[bytes], body: bytes) -> DecodedLog:
        """Each topic, then the data, on its own (dynamic types; and to name what failed)."""
        args: dict[str, Any] = {}
        for k, ((name, abi_type), word) in enumerate(zip(layout.indexed, words[1:]), start=1):
            if _hashed_when_indexed(abi_type):
                args[name] = word  # only the hash of the value is logged
                continue
            try:
                args[name] = eth_abi.decode([abi_type], word)[0]
            except DecodingError as e:
                raise LogDecodeError(f"topic {k} ({name}): not a valid {abi_type} ({e})") from None
        types = [t for _, t in layout.data]
        try:
            values = eth_abi.decode(types, body)
        except DecodingError as e:
            raise LogDecodeError(f"data: not a valid {layout.name} encoding ({e})") from None
        try:
            canonical = eth_abi.encode(types, values)
        except EncodingError as e:  # pragma: no cover - what decodes re-encodes
            raise LogDecodeError(f"data: not a valid {layout.name} encoding ({e})") from None
        if canonical != body:
            raise LogDecodeError(f"data: not the canonical {layout.name} encoding "
                                 f"({len(body)} bytes, canonical {len(canonical)})")
        data_values = iter(values)
        return self._result(layout, {name: (args[name] if is_indexed else next(data_values))
                                     for name, _, is_indexed in layout.inputs})

    def decode_receipt(self, receipt: Mapping[str, Any], address: str | None = None) -> list[DecodedLog]:
        """The logs of a receipt (``web3``'s or a JSON-RPC one) that this decoder knows, in log order;
        only those emitted by ``address`` if given. Logs of other events are skipped, as web3's
        ``process_receipt(errors=DISCARD)`` does; a known event that does not decode raises."""
        want = None if address is None else address.lower()
        out = []
        for log in receipt["logs"]:
            emitter = str(log["address"]).lower()
            if want is not None and emitter != want:
                continue
            topics = log["topics"]
            if not topics or not self.knows(topics[0]):
                continue
            d = self.decode(topics, log["data"])
            tx = log.get("transactionHash")
            out.append(DecodedLog(d.event, d.args, emitter, _int(log.get("logIndex")), _int(log.get("blockNumber")),
                                  None if tx is None else _as_bytes(tx, "transactionHash")))
        return out


def _int(value: Any) -> int | None:
    if value is None:
        return None
    return int(value, 16) if isinstance(value, str) else int(value)


# ----------------------------------------------------------------------------- node logs -> input events
# Issue 13 (live-evm helper): a live chain adapter gets JSON-RPC logs (``eth_getLogs``, ``eth_subscribe
# logs``) of the contracts it follows and turns each into the domain's input event, with the same
# decoders the importers use (``adapters.uniswap_v3_logs.decode_log``, ``adapters.aave_v3_logs.decode_log``,
# both over ``EventDecoder``), so a live tape and an imported one hold the same events for the same log.

V2, V3, AAVE_POOL, AGGREGATOR, ATOKEN = "v2", "v3", "aave", "aggregator", "atoken"
AAVE_ORACLE = "aave_oracle"  # AssetSourceUpdated: needs the market's state, so ``source_updated`` only decodes it
KINDS = (V2, V3, AAVE_POOL, AGGREGATOR, ATOKEN, AAVE_ORACLE)


def log_field_int(value: Any, what: str) -> int:
    """A JSON-RPC quantity (``0x``-hex text) or an int (web3's formatted form)."""
    if isinstance(value, bool):
        raise LogDecodeError(f"{what} is not a quantity: {value!r}")
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value[:2] in ("0x", "0X") and len(value) <= 66:
        try:
            return int(value, 16)
        except ValueError:
            pass
    raise LogDecodeError(f"{what} is not a hex quantity: {str(value)[:80]!r}")


def log_field_hex(value: Any, what: str, size: int | None = 32) -> str:
    """A JSON-RPC data field (hash, address, topic) as lower-case ``0x`` hex; ``size`` bytes if given."""
    raw = _as_bytes(value, what)
    if size is not None and len(raw) != size:
        raise LogDecodeError(f"{what} is {len(raw)} bytes, not {size}")
    return "0x" + raw.hex()


class ChainLogMapper:
    """The logs of one chain's followed contracts -> input events (``events(log, ts, source)``).

    ``kinds`` maps each followed address (any case) to what it is: ``"v2"`` (a Uniswap V2 pair:
    ``Sync`` -> ``V2ReservesSynced``, one per log), ``"v3"`` (a V3 pool: Swap/Mint/Burn/Collect),
    ``"aave"`` (an Aave v3 Pool: the modelled pool events, ``chain`` on each), ``"aggregator"``
    (a Chainlink-style aggregator: ``AnswerUpdated`` -> ``OracleUpdated`` with ``decimals[address]``,
    default 8), ``"atoken"`` (``BalanceTransfer`` -> ``AaveATokenTransferred``; ``reserves[address]``
    names its underlying, else the aToken's address, which ``AaveBook`` maps). ``topic0s()`` is the
    subscription's topic filter. A log this cannot map raises ``LogDecodeError`` with the reason."""

    def __init__(self, chain: str, kinds: Mapping[str, str], *, decimals: Mapping[str, int] | None = None,
                 reserves: Mapping[str, str] | None = None) -> None:
        from tapedeck.adapters import aave_v3_logs, evm_abis, uniswap_v3_logs  # they import this module

        self.chain = chain
        self.kinds = {a.lower(): k for a, k in kinds.items()}
        for a, k in self.kinds.items():
            if k not in KINDS:
                raise ValueError(f"address {a}: unknown kind {k!r} ({', '.join(KINDS)})")
        self.decimals = {a.lower(): int(d) for a, d in (decimals or {}).items()}
        self.reserves = {a.lower(): r.lower() for a, r in (reserves or {}).items()}
        self._v3 = uniswap_v3_logs.decode_log
        self._aave = aave_v3_logs.decode_log
        self._sync = EventDecoder(evm_abis.UNISWAP_V2_PAIR, only=["Sync"])
        self._answer = EventDecoder(evm_abis.AGGREGATOR_ANSWER_UPDATED)
        self._transfer = EventDecoder(evm_abis.AAVE_V3_ATOKEN_BALANCE_TRANSFER)
        self._source = EventDecoder(evm_abis.AAVE_ORACLE_SOURCE_UPDATED)
        self._topics: dict[str, list[bytes]] = {
            V2: [self._sync.topic0("Sync")],
            V3: [uniswap_v3_logs._MODELLED.topic0(n) for n in ("Swap", "Mint", "Burn", "Collect")],
            AAVE_POOL: [aave_v3_logs.DECODER.topic0(n) for n in aave_v3_logs.MODELLED],
            AGGREGATOR: [self._answer.topic0("AnswerUpdated")],
            ATOKEN: [self._transfer.topic0("BalanceTransfer")],
            AAVE_ORACLE: [self._source.topic0("AssetSourceUpdated")],
        }

    def addresses(self) -> list[str]:
        return list(self.kinds)

    def pools(self) -> tuple[str, ...]:
        """The Uniswap pools followed (their events name no chain)."""
        return tuple(a for a, k in self.kinds.items() if k in (V2, V3))

    def topic0s(self) -> list[str]:
        """Every modelled topic0 of the followed kinds, in a stable order (one OR-filter)."""
        out: list[str] = []
        for k in KINDS:
            if k in self.kinds.values():
                out.extend("0x" + t.hex() for t in self._topics[k] if "0x" + t.hex() not in out)
        return out

    def follow(self, address: str, kind: str, decimals: int | None = None) -> bool:
        """Follow one more contract (e.g. an oracle's new price feed); False if it already was."""
        a = address.lower()
        if a in self.kinds:
            return False
        self.kinds[a] = kind
        if decimals is not None:
            self.decimals.setdefault(a, decimals)
        return True

    def source_updated(self, log: Mapping[str, Any]) -> tuple[str, str]:
        """(asset, new source) of an AaveOracle ``AssetSourceUpdated`` log (lower case)."""
        a = self._source.decode([log_field_hex(t, f"topic {i}") for i, t in enumerate(log.get("topics") or ())],
                                _as_bytes(log.get("data", "0x"), "data")).args
        return a["asset"], a["source"]

    def events(self, log: Mapping[str, Any], ts: int, source: str) -> list[Any]:
        """The input events of one log (``LogDecodeError`` if it cannot be mapped)."""
        from tapedeck.adapters.csv_header import RowError
        from tapedeck.domain import events as ev

        try:
            address = log_field_hex(log.get("address"), "address", 20)
            kind = self.kinds.get(address)
            if kind is None:
                raise LogDecodeError(f"log of {address}, which is not followed")
            if kind == AAVE_ORACLE:
                raise LogDecodeError("an AssetSourceUpdated needs the market's state (source_updated)")
            topics = log.get("topics")
            if not isinstance(topics, (list, tuple)) or not topics:
                raise LogDecodeError("no topics")
            hex_topics = [log_field_hex(t, f"topic {i}") for i, t in enumerate(topics)]
            data = _as_bytes(log.get("data", "0x"), "data")
            block = log_field_int(log.get("blockNumber"), "blockNumber")
            tx = log_field_hex(log.get("transactionHash"), "transactionHash")
            index = log_field_int(log.get("logIndex"), "logIndex")
            where = dict(ts=ts, source=source, block=block)
            if kind == V2:
                a = self._sync.decode(hex_topics, data).args
                return [ev.V2ReservesSynced(**where, pool=address, reserve0=a["reserve0"], reserve1=a["reserve1"])]
            if kind == V3:
                name, values = self._v3(hex_topics, data)
                cls = {"Swap": ev.V3Swapped, "Mint": ev.V3Minted, "Burn": ev.V3Burned, "Collect": ev.V3Collected}[name]
                return [cls(**where, pool=address, tx=tx, log_index=index, **values)]
            if kind == AAVE_POOL:
                cls, values = self._aave(hex_topics, data)
                return [cls(**where, chain=self.chain, tx=tx, log_index=index, **values)]
            if kind == AGGREGATOR:
                a = self._answer.decode(hex_topics, data).args
                return [ev.OracleUpdated(ts=ts, source=source, feed=address, chain=self.chain, round_id=a["roundId"],
                                         answer=a["current"], decimals=self.decimals.get(address, 8))]
            a = self._transfer.decode(hex_topics, data).args
            return [ev.AaveATokenTransferred(**where, chain=self.chain, tx=tx, log_index=index,
                                             reserve=self.reserves.get(address, address), sender=a["from"],
                                             recipient=a["to"], scaled_amount=a["value"], index=a["index"])]
        except RowError as e:
            raise LogDecodeError(str(e)) from None
