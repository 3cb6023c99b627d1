"""Aave v3 Pool logs (raw CSV) -> the Aave pool-log input events of ``domain.events``.

The CSV is demeter-fetch's raw form, as for Uniswap V3: ``block_number, block_timestamp (UTC),
transaction_hash, transaction_index, log_index, topics (a Python list repr), data (hex)``, no
address column (every row is a log of one Pool contract). Each row is decoded from its topics and
data by the one shared decoder (``adapters.evm_logs.EventDecoder`` over the Pool's ABI in
``adapters.evm_abis``). A row that cannot be decoded, is out of range, or breaks the order
((block, log index) strictly rising; one time per block; time never falls while blocks rise)
becomes an ``InputRejected`` naming the row (``"<file name>:row <n>"``), why, and the raw line.

Pool events that are real but not modelled as inputs (``MintedToTreasury``, ``BackUnbacked``,
``IsolationModeTotalDebtUpdated``, ...) and unknown topic0s are recorded rejections too, not silent
skips: the log then says what the file held that the book never saw. The reader never raises on
bad data. The index-prediction check of a day is :mod:`adapters.aave_v3_check`.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import IO, Any, Callable, Iterator

import eth_abi

from tapedeck.adapters.csv_header import RowError
from tapedeck.adapters.evm_abis import AAVE_V3_POOL
from tapedeck.adapters.evm_logs import DecodedLog, EventDecoder, LogDecodeError
from tapedeck.adapters.uniswap_v3_logs import log_rows
from tapedeck.domain import aave_v3 as aave
from tapedeck.domain import events as ev

SOURCE = "aave-v3-logs"
# The Aave v3 Pool on Polygon PoS (shared data's PROVENANCE.md); the same address serves several
# chains, so it never tells the chain: that comes from ``--chain`` or the file name.
DEFAULT_POOLS = {"polygon": "0x794a61358d6845594f94dc1db02a252b5b4814ad"}

MODELLED = ("ReserveDataUpdated", "Supply", "Withdraw", "Borrow", "Repay", "LiquidationCall",
            "ReserveUsedAsCollateralEnabled", "ReserveUsedAsCollateralDisabled", "FlashLoan", "UserEModeSet")
DECODER = EventDecoder(AAVE_V3_POOL, only=MODELLED)
# The Pool's other events: named in their rejection so the user knows what was left out.
OTHERS = EventDecoder(AAVE_V3_POOL, only=[e["name"] for e in AAVE_V3_POOL if e["name"] not in MODELLED])

REQUIRED_COLUMNS = ("block_number", "block_timestamp", "transaction_hash", "log_index", "topics", "data")
# demeter-fetch names files ``<chain>-aave_v3-<reserve>-<date>.raw.csv``
_NAME = re.compile(r"^([a-z][a-z0-9-]*?)-aave_v3-(0x[0-9a-fA-F]{40})(?![0-9a-fA-F])")
UINT128 = 2**128 - 1  # indexes and rates are stored as uint128 (ReserveData)


def chain_from_filename(path: str | Path) -> str | None:
    m = _NAME.match(Path(path).name)
    return m.group(1) if m else None


def reserve_from_filename(path: str | Path) -> str | None:
    m = _NAME.match(Path(path).name)
    return m.group(2).lower() if m else None


def _ray_field(name: str, value: int, index: bool) -> None:
    """Rates and indexes are uint128 rays; an index starts at RAY and never falls below it."""
    if value > UINT128:
        raise RowError(f"ReserveDataUpdated {name} {value} exceeds uint128")
    if index and value < aave.RAY:
        raise RowError(f"ReserveDataUpdated {name} {value} is below RAY (1e27): indexes start at RAY")


def _reserve_data(a: dict[str, Any]) -> dict[str, Any]:
    for name in ("liquidityRate", "stableBorrowRate", "variableBorrowRate"):
        _ray_field(name, a[name], index=False)
    for name in ("liquidityIndex", "variableBorrowIndex"):
        _ray_field(name, a[name], index=True)
    return dict(reserve=a["reserve"], liquidity_rate=a["liquidityRate"], stable_borrow_rate=a["stableBorrowRate"],
                variable_borrow_rate=a["variableBorrowRate"], liquidity_index=a["liquidityIndex"],
                variable_borrow_index=a["variableBorrowIndex"])


def _rate_mode(event: str, mode: int, allowed: tuple[int, ...]) -> int:
    """``DataTypes.InterestRateMode`` is an enum (0 NONE, 1 STABLE, 2 VARIABLE): other bytes are corrupt."""
    if mode not in allowed:
        raise RowError(f"{event} interestRateMode {mode} is not one of {', '.join(map(str, allowed))}")
    return mode


def _borrow(a: dict[str, Any]) -> dict[str, Any]:
    return dict(reserve=a["reserve"], user=a["user"], on_behalf_of=a["onBehalfOf"], amount=a["amount"],
                rate_mode=_rate_mode("Borrow", a["interestRateMode"], (1, 2)), borrow_rate=a["borrowRate"],
                referral=a["referralCode"])


def _flash_loan(a: dict[str, Any]) -> dict[str, Any]:
    return dict(target=a["target"], initiator=a["initiator"], asset=a["asset"], amount=a["amount"],
                rate_mode=_rate_mode("FlashLoan", a["interestRateMode"], (0, 1, 2)), premium=a["premium"],
                referral=a["referralCode"])


def _liquidation(a: dict[str, Any]) -> dict[str, Any]:
    return dict(collateral_asset=a["collateralAsset"], debt_asset=a["debtAsset"], user=a["user"],
                debt_to_cover=a["debtToCover"], liquidated_collateral=a["liquidatedCollateralAmount"],
                liquidator=a["liquidator"], receive_atoken=a["receiveAToken"])


# event name -> (event class, the ABI arguments -> the event's fields)
_BUILD: dict[str, tuple[type[ev.Event], Callable[[dict[str, Any]], dict[str, Any]]]] = {
    "ReserveDataUpdated": (ev.AaveReserveDataUpdated, _reserve_data),
    "Supply": (ev.AaveSupplied, lambda a: dict(reserve=a["reserve"], user=a["user"], on_behalf_of=a["onBehalfOf"],
                                               amount=a["amount"], referral=a["referralCode"])),
    "Withdraw": (ev.AaveWithdrawn, lambda a: dict(reserve=a["reserve"], user=a["user"], to=a["to"],
                                                  amount=a["amount"])),
    "Borrow": (ev.AaveBorrowed, _borrow),
    "Repay": (ev.AaveRepaid, lambda a: dict(reserve=a["reserve"], user=a["user"], repayer=a["repayer"],
                                            amount=a["amount"], use_atokens=a["useATokens"])),
    "LiquidationCall": (ev.AaveLiquidationObserved, _liquidation),
    "ReserveUsedAsCollateralEnabled": (ev.AaveCollateralToggled,
                                       lambda a: dict(reserve=a["reserve"], user=a["user"], enabled=True)),
    "ReserveUsedAsCollateralDisabled": (ev.AaveCollateralToggled,
                                        lambda a: dict(reserve=a["reserve"], user=a["user"], enabled=False)),
    "FlashLoan": (ev.AaveFlashLoaned, _flash_loan),
    "UserEModeSet": (ev.AaveEModeSet, lambda a: dict(user=a["user"], category=a["categoryId"])),
}
assert set(_BUILD) == set(MODELLED)


def decode_log(topics: list[str], data: bytes) -> tuple[type[ev.Event], dict[str, Any]]:
    """One Pool log -> (event class, its fields but the envelope). Raises RowError naming what is wrong."""
    try:
        decoded: DecodedLog = DECODER.decode(topics, data)
    except LogDecodeError as exc:
        if topics and OTHERS.knows(topics[0]):
            name = OTHERS.events[bytes.fromhex(topics[0][2:])].name
            raise RowError(f"{name} log (topic0 {topics[0]}) is not modelled as an input") from None
        raise RowError(str(exc)) from None
    cls, build = _BUILD[decoded.event]
    return cls, build(dict(decoded.args))


def read_aave_logs(path: str | Path, chain: str) -> Iterator[ev.Event]:
    """Events of one raw Pool-log CSV, in file order; bad rows become ``InputRejected``.

    ``chain`` is the registry's chain name (the file has no address and the Pool's address is the
    same on several chains, so the caller names it)."""
    path = Path(path)

    def read() -> Iterator[ev.Event]:
        with open(path, "rb") as f:
            yield from read_aave_stream(f, path.name, chain)

    return read()


def read_aave_stream(f: IO[bytes], name: str, chain: str) -> Iterator[ev.Event]:
    """:func:`read_aave_logs` over an open binary stream (``name`` labels the rows)."""
    for item in log_rows(f, name, REQUIRED_COLUMNS, SOURCE, decode_log):
        if isinstance(item, ev.InputRejected):
            yield item
            continue
        row_ts, block, tx, log_index, (cls, values) = item
        yield cls(ts=row_ts, source=SOURCE, chain=chain, block=block, tx=tx, log_index=log_index,
                  block_ts=row_ts // 1_000_000_000, **values)  # the row's time is the block's


def encode_row(event: str, args: dict[str, Any], *, block: int, log_index: int, time: str, tx: str,
               decoder: EventDecoder = DECODER) -> str:
    """One raw CSV row of a Pool log (the inverse of the reader): for tests and fuzz seeds without the data."""
    layout = decoder.layout(event)
    topics = ["0x" + layout.topic0.hex()] + ["0x" + eth_abi.encode([t], [args[n]]).hex() for n, t in layout.indexed]
    data = "0x" + eth_abi.encode([t for _, t in layout.data], [args[n] for n, _ in layout.data]).hex()
    return f'{block},{time},{tx},0,{log_index},"{topics!r}",{data}'


