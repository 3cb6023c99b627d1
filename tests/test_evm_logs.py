"""The shared EVM log decoder: the contracts' own event ABIs, checked against web3's decoder, the
importer's hand-written V3 layouts and an independent decode of real Aave logs; bad logs are one
``LogDecodeError`` line, never another exception."""
from __future__ import annotations

import ast
import csv
import random
from typing import Any

import eth_abi
import pytest
from eth_utils import event_abi_to_log_topic, keccak
from hypothesis import given, settings
from hypothesis import strategies as st
from web3 import Web3
from web3._utils.events import get_event_data

from tapedeck.adapters import evm_abis
from tapedeck.adapters.evm_logs import DecodedLog, EventDecoder, LogDecodeError
from tests.conftest import require_data

ABIS = {"UniswapV3Pool": evm_abis.UNISWAP_V3_POOL, "UniswapV2Pair": evm_abis.UNISWAP_V2_PAIR,
        "AavePool": evm_abis.AAVE_V3_POOL}
ARTIFACTS = {"UniswapV3Pool": ("@uniswap/v3-core", "UniswapV3Pool"), "UniswapV2Pair": ("@uniswap/v2-core", "UniswapV2Pair"),
             "AavePool": ("@aave/core-v3", "Pool")}
V3_RAW = "uniswap-v3-usdc-weth-2024-01-05/ethereum-0x88e6a0c2ddd26feeb64f039a2c41296fcb3f5640-2024-01-05.raw.csv"
AAVE = "aave-v3-polygon-2024-01-06/polygon-aave_v3-0x7ceb23fd6bc0add59e62ac25578270cff1b9f619-2024-01-06"


def _events(abi: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [e for e in abi if e.get("type") == "event"]


def _value(abi_type: str, rng: random.Random) -> Any:
    """A random value of a (value) type, edges included."""
    if abi_type == "address":
        return "0x" + rng.randbytes(20).hex()
    if abi_type == "bool":
        return rng.random() < 0.5
    if abi_type.startswith("uint"):
        bits = int(abi_type[4:] or 256)
        return rng.choice([0, 1, 2**bits - 1, rng.randrange(2**bits)])
    if abi_type.startswith("int"):
        bits = int(abi_type[3:] or 256)
        return rng.choice([0, -1, -(2 ** (bits - 1)), 2 ** (bits - 1) - 1, rng.randrange(-(2 ** (bits - 1)), 2 ** (bits - 1))])
    if abi_type.startswith("bytes") and abi_type != "bytes":
        return rng.randbytes(int(abi_type[5:]))
    raise AssertionError(f"no generator for {abi_type}")


def _log(event: dict[str, Any], args: dict[str, Any]) -> tuple[list[bytes], bytes]:
    """Topics and data of ``event`` with ``args``, encoded by eth_abi as the EVM logs them."""
    topics = [event_abi_to_log_topic(event)]
    topics += [eth_abi.encode([i["type"]], [args[i["name"]]]) for i in event["inputs"] if i["indexed"]]
    data_inputs = [i for i in event["inputs"] if not i["indexed"]]
    data = eth_abi.encode([i["type"] for i in data_inputs], [args[i["name"]] for i in data_inputs])
    return topics, data


def test_the_shipped_abis_are_the_npm_artifacts_events() -> None:
    from tapedeck.sim.chain.artifacts import ArtifactMissing, load

    for name, (package, contract) in ARTIFACTS.items():
        try:
            art = load(package, contract)
        except ArtifactMissing as e:
            pytest.skip(str(e))
        want = [(e["name"], bool(e.get("anonymous")), [(i["name"], i["type"], bool(i["indexed"])) for i in e["inputs"]])
                for e in _events(art.abi)]
        have = [(e["name"], e["anonymous"], [(i["name"], i["type"], i["indexed"]) for i in e["inputs"]])
                for e in ABIS[name]]
        assert have == want, name


@pytest.mark.parametrize("contract", ABIS)
def test_every_event_round_trips_and_agrees_with_web3(contract: str) -> None:
    """Each event of the ABI, at edge and random values: the decoder gives back what was encoded,
    and web3's own log decoder (checksummed addresses aside) reads the same."""
    decoder = EventDecoder(ABIS[contract])
    checksummed = EventDecoder(ABIS[contract], checksum=True)
    w3 = Web3()
    rng = random.Random(f"evm-logs:{contract}")
    events = _events(ABIS[contract])
    assert len(decoder.events) == len(events) >= 6
    for event in events:
        for _ in range(25):
            args = {i["name"]: _value(i["type"], rng) for i in event["inputs"]}
            topics, data = _log(event, args)
            got = decoder.decode(topics, data)
            assert got == DecodedLog(event["name"], args)
            assert list(got.args) == [i["name"] for i in event["inputs"]]  # ABI order
            entry = {"topics": topics, "data": data, "logIndex": 0, "transactionIndex": 0, "transactionHash": b"\0" * 32,
                     "address": "0x" + "11" * 20, "blockHash": b"\0" * 32, "blockNumber": 1}
            theirs = get_event_data(w3.codec, event, entry)
            assert theirs["event"] == got.event
            assert {k: v.lower() if isinstance(v, str) else v for k, v in theirs["args"].items()} == dict(got.args)
            assert dict(checksummed.decode(topics, data).args) == dict(theirs["args"])  # exactly web3's
            # hex strings in, the same out
            assert decoder.decode(["0x" + t.hex() for t in topics], "0x" + data.hex()) == got


def test_real_v3_day_decodes_as_the_importer_reads_it() -> None:
    """Every row of a real day of the USDC/WETH 0.05% pool: the same fields as the importer's
    hand-written layouts (``adapters.uniswap_v3_logs.decode_log``)."""
    from tapedeck.adapters.uniswap_v3_logs import decode_log

    decoder = EventDecoder(evm_abis.UNISWAP_V3_POOL)
    names = {"sqrtPriceX96": "sqrt_price_x96", "tickLower": "tick_lower", "tickUpper": "tick_upper"}
    counts: dict[str, int] = {}
    with require_data(V3_RAW).open(newline="") as f:
        for row in csv.DictReader(f):
            topics = [t.lower() for t in ast.literal_eval(row["topics"])]
            data = bytes.fromhex(row["data"][2:])
            got = decoder.decode(topics, data)
            kind, fields = decode_log(topics, data)
            assert got.event == kind
            assert {names.get(k, k): v for k, v in got.args.items()} == fields, row["log_index"]
            counts[kind] = counts.get(kind, 0) + 1
    assert counts["Swap"] > 6000 and set(counts) == {"Swap", "Mint", "Burn", "Collect"}


def test_real_aave_day_decodes_as_an_independent_decode_reads_it() -> None:
    """Every Aave v3 Pool log of a real day on Polygon decodes by the Pool's ABI; each user action
    agrees with demeter-fetch's own decode (``*.tick.csv``: reserve, owner, amount)."""
    decoder = EventDecoder(evm_abis.AAVE_V3_POOL)
    raw = require_data(AAVE + ".raw.csv")
    by_log: dict[tuple[str, int], DecodedLog] = {}
    with raw.open(newline="") as f:
        for row in csv.DictReader(f):
            by_log[(row["transaction_hash"], int(row["log_index"]))] = decoder.decode(
                ast.literal_eval(row["topics"]), row["data"])
    kinds = {d.event for d in by_log.values()}
    assert kinds == {"ReserveDataUpdated", "Supply", "Withdraw", "Repay", "Borrow"}
    # the argument demeter-fetch calls "owner": the position's account, but for a withdrawal where the
    # underlying goes (``to``; it differs from ``user`` in 4 of the 129 withdrawals of this day)
    owner_field = {"AAVE_SUPPLY": "onBehalfOf", "AAVE_WITHDRAW": "to", "AAVE_BORROW": "onBehalfOf",
                   "AAVE_REPAY": "user"}
    compared = 0
    with require_data(AAVE + ".tick.csv").open(newline="") as f:
        for row in csv.DictReader(f):
            d = by_log[(row["transaction_hash"], int(row["log_index"]))]
            assert d.event.upper() == row["tx_type"].removeprefix("AAVE_")
            assert d.args["reserve"] == row["reserve"].lower()
            assert d.args[owner_field[row["tx_type"]]] == row["owner"].lower()
            assert d.args["amount"] == int(row["amount"])
            compared += 1
    assert compared == sum(1 for d in by_log.values() if d.event != "ReserveDataUpdated") > 400
    rates = [d.args for d in by_log.values() if d.event == "ReserveDataUpdated"]
    assert all(r["liquidityIndex"] >= 10**27 and r["variableBorrowIndex"] >= 10**27 for r in rates)


SWAP_V3 = next(e for e in evm_abis.UNISWAP_V3_POOL if e["name"] == "Swap")


def _swap() -> tuple[list[bytes], bytes]:
    return _log(SWAP_V3, {"sender": "0x" + "ab" * 20, "recipient": "0x" + "cd" * 20, "amount0": -5, "amount1": 7,
                          "sqrtPriceX96": 2**96, "liquidity": 10**18, "tick": -3})


@pytest.mark.parametrize("mutate,words", [
    (lambda t, d: ([], d), "no topics"),
    (lambda t, d: ([keccak(text="Nope()")] + t[1:], d), "unknown topic0 0x"),
    (lambda t, d: (t[:2], d), "wrong topic count: Swap has 3 topics, the log has 2"),
    (lambda t, d: (t, d[:-1]), "truncated data: Swap needs 160 bytes, the log has 159"),
    (lambda t, d: (t, d + b"\0" * 32), "oversized data: Swap needs 160 bytes, the log has 192"),
    (lambda t, d: ([t[0], b"\1" * 32, t[2]], d), "topic 1 (sender): not a valid address"),
    (lambda t, d: (t, d[:128] + b"\1" * 32), "data word 4 (tick): not a valid int24"),
    (lambda t, d: ([t[0], t[1][:31], t[2]], d), "topic 1 is 31 bytes, not 32"),
    (lambda t, d: (["0xzz"] + t[1:], d), "topic 0 is not hex of whole bytes"),
    (lambda t, d: (t, "0x123"), "data is not hex of whole bytes"),
    (lambda t, d: (t, "0x12 34"), "data is not hex of whole bytes"),
    (lambda t, d: (t, 5), "data is not bytes or a hex string: int"),
])
def test_a_bad_log_is_one_line_naming_what_is_wrong(mutate: Any, words: str) -> None:
    decoder = EventDecoder(evm_abis.UNISWAP_V3_POOL)
    topics, data = _swap()
    assert decoder.decode(topics, data).event == "Swap"
    with pytest.raises(LogDecodeError) as info:
        decoder.decode(*mutate(topics, data))
    message = str(info.value)
    assert words in message and "\n" not in message, message


DYNAMIC = {"type": "event", "name": "Note", "anonymous": False, "inputs": [
    {"name": "who", "type": "address", "indexed": True},
    {"name": "tag", "type": "string", "indexed": True},
    {"name": "text", "type": "string", "indexed": False},
    {"name": "values", "type": "uint256[]", "indexed": False},
]}


def test_dynamic_types_decode_and_must_be_canonical() -> None:
    decoder = EventDecoder([DYNAMIC])
    args = {"who": "0x" + "01" * 20, "text": "hello", "values": (1, 2, 3)}
    topics = [event_abi_to_log_topic(DYNAMIC), eth_abi.encode(["address"], [args["who"]]), keccak(text="tag")]
    data = eth_abi.encode(["string", "uint256[]"], ["hello", [1, 2, 3]])
    got = decoder.decode(topics, data)
    assert got.event == "Note" and got.args["tag"] == keccak(text="tag")  # an indexed string is its hash
    assert (got.args["who"], got.args["text"], got.args["values"]) == (args["who"], "hello", (1, 2, 3))
    with pytest.raises(LogDecodeError, match="not the canonical Note encoding"):
        decoder.decode(topics, data + b"\0" * 32)


def test_decode_receipt_keeps_the_known_events_of_the_address_in_log_order() -> None:
    decoder = EventDecoder(evm_abis.UNISWAP_V2_PAIR, only=["Sync", "Swap"])
    sync = next(e for e in evm_abis.UNISWAP_V2_PAIR if e["name"] == "Sync")
    transfer = next(e for e in evm_abis.UNISWAP_V2_PAIR if e["name"] == "Transfer")
    pair, other = "0x" + "AB" * 20, "0x" + "cd" * 20

    def entry(event: dict[str, Any], args: dict[str, Any], address: str, index: int) -> dict[str, Any]:
        topics, data = _log(event, args)
        return {"address": address, "topics": topics, "data": data, "logIndex": index, "blockNumber": 9,
                "transactionHash": b"\7" * 32}

    receipt = {"logs": [
        entry(transfer, {"from": other, "to": pair.lower(), "value": 5}, pair, 0),  # not asked for
        entry(sync, {"reserve0": 1, "reserve1": 2}, pair, 1),
        entry(sync, {"reserve0": 3, "reserve1": 4}, other, 2),  # another contract
        {"address": pair, "topics": [], "data": b"", "logIndex": 3},  # anonymous
        entry(sync, {"reserve0": 5, "reserve1": 6}, pair, 4),
    ]}
    got = decoder.decode_receipt(receipt, address=pair.lower())
    assert [(d.event, dict(d.args), d.log_index, d.address) for d in got] == [
        ("Sync", {"reserve0": 1, "reserve1": 2}, 1, pair.lower()), ("Sync", {"reserve0": 5, "reserve1": 6}, 4, pair.lower())]
    assert got[0].block_number == 9 and got[0].transaction_hash == b"\7" * 32
    assert len(decoder.decode_receipt(receipt)) == 3
    with pytest.raises(ValueError, match="no event named Nope"):
        EventDecoder(evm_abis.UNISWAP_V2_PAIR, only=["Sync", "Nope"])


AAVE_EVENTS = _events(evm_abis.AAVE_V3_POOL)


def test_no_log_raises_anything_but_a_log_decode_error() -> None:
    """Real-shaped logs of every Aave event, mutated (a byte flipped, data cut or extended, a topic
    dropped or added) or left alone, and arbitrary bytes and text: each decodes or is one line."""
    seen = {"decoded": 0, "rejected": 0}
    decoder = EventDecoder(evm_abis.AAVE_V3_POOL)

    @settings(max_examples=400, deadline=None, derandomize=True)
    @given(event=st.sampled_from(AAVE_EVENTS), seed=st.integers(0, 2**32),
           mutation=st.sampled_from(["none", "flip", "cut", "extend", "drop-topic", "add-topic", "garbage"]),
           where=st.integers(0, 10_000), junk=st.one_of(st.binary(max_size=80), st.text(max_size=80)))
    def check(event: dict[str, Any], seed: int, mutation: str, where: int, junk: Any) -> None:
        rng = random.Random(seed)
        topics, data = _log(event, {i["name"]: _value(i["type"], rng) for i in event["inputs"]})
        topics_any: list[Any] = list(topics)
        data_any: Any = data
        if mutation == "flip" and data:
            k = where % len(data)
            data_any = data[:k] + bytes([data[k] ^ (1 + where % 255)]) + data[k + 1:]
        elif mutation == "cut":
            data_any = data[:where % (len(data) + 1)]
        elif mutation == "extend":
            data_any = data + bytes(where % 40)
        elif mutation == "drop-topic":
            topics_any = topics_any[:-1]
        elif mutation == "add-topic":
            topics_any.append(junk if where % 2 else bytes(32))
        elif mutation == "garbage":
            topics_any[where % len(topics_any)] = junk
        try:
            got = decoder.decode(topics_any, data_any)
        except LogDecodeError as e:
            assert str(e) and "\n" not in str(e)
            seen["rejected"] += 1
        else:
            assert got.event == event["name"] or mutation == "garbage"
            seen["decoded"] += 1

    check()
    assert seen["decoded"] > 50 and seen["rejected"] > 50, seen


@settings(max_examples=300, deadline=None, derandomize=True)
@given(data=st.one_of(st.binary(max_size=300),
                      st.builds(lambda n, tail: eth_abi.encode(["uint256"], [n]) + tail,
                                st.integers(0, 2**256 - 1), st.binary(max_size=200))))
def test_dynamic_data_of_any_bytes_decodes_or_is_one_line(data: bytes) -> None:
    """Offsets and lengths anywhere (huge ones included) in the data of an event with dynamic types."""
    decoder = EventDecoder([DYNAMIC])
    topics = [event_abi_to_log_topic(DYNAMIC), bytes(32), keccak(text="tag")]
    try:
        got = decoder.decode(topics, data)
    except LogDecodeError as e:
        assert str(e) and "\n" not in str(e)
    else:
        assert eth_abi.encode(["string", "uint256[]"], [got.args["text"], list(got.args["values"])]) == data
