"""Solana account bytes -> the Solana pool input events of ``domain.events``.

Three kinds of account make a Solana pool's price, each decoded from its raw bytes:

* **Raydium AMM v4** pool state (program ``675kPX9M...``, 752 bytes, no discriminator):
  ``../shared/reference/PROTOCOLS.md`` 5.1, checked field by field against raydium-amm @ 27f461dd
  ``program/src/state.rs`` ``AmmInfo`` (``#[repr(C)]`` u64/u128/Pubkey fields, no padding);
* **SPL token accounts** (its vaults): ``solders.token.state.TokenAccount`` (165 bytes; a Token-2022
  account is the same 165 bytes, then its account type byte 2 and extensions);
* **Orca Whirlpool** (program ``whirLbMi...``, Anchor): the ``Whirlpool`` (653 bytes) and its tick
  arrays -- fixed (9988 bytes: start index, 88 ticks of 113 bytes, whirlpool) and dynamic
  (``DynamicTickArray``: a bitmap and only the initialized ticks' data) -- each behind its
  discriminator ``sha256("account:<Name>")[:8]``; layouts from orca-so/whirlpools @ 630c0e01
  ``programs/whirlpool/src/state/{whirlpool,fixed_tick_array,dynamic_tick_array,tick}.rs``.

Keys, accounts and websocket frames go through ``solders``: ``Pubkey`` for base58,
``parse_websocket_message`` for ``accountNotification`` / ``programNotification`` frames (base64
and base64+zstd data decoded there), ``RpcKeyedAccount`` for a ``getProgramAccounts``-style dump
(``{"pubkey", "account"}``; the format of Orca's published test accounts). The byte layouts of
Raydium and Orca are not in solders (nor in a maintained Python package: anchorpy cannot be
installed beside solders 0.29), so they are read here with ``struct`` from the tables below.

Bad input never raises out of the event functions: data that is short, of the wrong size, behind
the wrong discriminator, owned by another program, or not base64 is an :class:`AccountDataError`
naming what was wrong, and becomes an ``InputRejected`` when it comes from a source.
"""
from __future__ import annotations

import base64
import binascii
import gzip
import hashlib
import json
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Iterable, Iterator, Mapping

from solders.pubkey import Pubkey
from solders.rpc.responses import (AccountNotification, AccountNotificationJsonParsed, ProgramNotification,
                                   ProgramNotificationJsonParsed, RpcKeyedAccount, SubscriptionResult,
                                   parse_websocket_message)
from solders.token.state import TokenAccount

from tapedeck.adapters.csv_header import MAX_TS, MIN_TS
from tapedeck.domain import events as ev

SOURCE = "solana-accounts"

RAYDIUM_AMM_V4 = "675kPX9MHTjS2zt1qfr1NYHuzeLXfQM9H24wFSUt1Mp8"
WHIRLPOOL_PROGRAM = "whirLbMiicVdio4qvUfM5KAg6Ct8VwpYzGff3uctyCc"
TOKEN_PROGRAM = "TokenkegQfeZyiNwAJbNbGKPFXCWuBvf9Ss623VQ5DA"
TOKEN_2022_PROGRAM = "TokenzQdBNbLqP5VEhdkAS6EPFLC1PHnBqCXEpPxuEb"

RAYDIUM_AMM_V4_LEN = 752
TOKEN_ACCOUNT_LEN = 165
TOKEN_2022_ACCOUNT_TYPE = 2  # the byte after the 165-byte base of a Token-2022 token account
MINT_LEN = 82


def anchor_discriminator(name: str) -> bytes:
    """Anchor's account discriminator: the first 8 bytes of ``sha256("account:<Name>")``."""
    return hashlib.sha256(f"account:{name}".encode()).digest()[:8]


WHIRLPOOL_DISCRIMINATOR = anchor_discriminator("Whirlpool")
FIXED_TICK_ARRAY_DISCRIMINATOR = anchor_discriminator("TickArray")  # the program's type keeps this name
DYNAMIC_TICK_ARRAY_DISCRIMINATOR = anchor_discriminator("DynamicTickArray")


class AccountDataError(ValueError):
    """Account bytes (or the frame carrying them) that are not what they claim; the message says why."""


# ----------------------------------------------------------------------------- layouts

_PRIMITIVE = {"u8": "B", "u16": "H", "i32": "i", "u64": "Q"}
_SIZE = {"u8": 1, "u16": 2, "i32": 4, "u64": 8, "u128": 16, "i128": 16, "pubkey": 32}


class Layout:
    """A packed little-endian record: ``(name, kind)`` fields, kinds ``u8 u16 i32 u64 u128 i128
    pubkey`` or ``bytesN`` (kept raw). Pubkeys decode to base58 text (``solders.Pubkey``)."""

    def __init__(self, name: str, fields: Iterable[tuple[str, str]]) -> None:
        self.name = name
        self.fields: list[tuple[str, str, int]] = []  # (name, kind, offset)
        offset = 0
        for field_name, kind in fields:
            self.fields.append((field_name, kind, offset))
            offset += int(kind[5:]) if kind.startswith("bytes") else _SIZE[kind]
        self.size = offset
        self.offsets = {n: o for n, _, o in self.fields}

    def decode(self, data: bytes, base: int = 0) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name, kind, off in self.fields:
            at = base + off
            if kind in _PRIMITIVE:
                out[name] = struct.unpack_from("<" + _PRIMITIVE[kind], data, at)[0]
            elif kind in ("u128", "i128"):
                out[name] = int.from_bytes(data[at:at + 16], "little", signed=kind == "i128")
            elif kind == "pubkey":
                out[name] = str(Pubkey.from_bytes(data[at:at + 32]))
            else:
                out[name] = bytes(data[at:at + int(kind[5:])])
        return out

    def encode(self, values: Mapping[str, Any]) -> bytes:
        buf = bytearray(self.size)
        for name, kind, off in self.fields:
            v = values[name]
            if kind in _PRIMITIVE:
                struct.pack_into("<" + _PRIMITIVE[kind], buf, off, v)
            elif kind in ("u128", "i128"):
                buf[off:off + 16] = int(v).to_bytes(16, "little", signed=kind == "i128")
            elif kind == "pubkey":
                buf[off:off + 32] = bytes(Pubkey.from_string(v))
            else:
                n = int(kind[5:])
                if len(v) != n:
                    raise ValueError(f"{self.name}.{name} must be {n} bytes, got {len(v)}")
                buf[off:off + n] = v
        return bytes(buf)


_U64S = ("status nonce order_num depth coin_decimals pc_decimals state reset_flag min_size vol_max_cut_ratio "
         "amount_wave coin_lot_size pc_lot_size min_price_multiplier max_price_multiplier sys_decimal_value "
         # Fees
         "min_separate_numerator min_separate_denominator trade_fee_numerator trade_fee_denominator "
         "pnl_numerator pnl_denominator swap_fee_numerator swap_fee_denominator "
         # StateData
         "need_take_pnl_coin need_take_pnl_pc total_pnl_pc total_pnl_coin pool_open_time punish_pc_amount "
         "punish_coin_amount orderbook_to_init_time").split()
RAYDIUM_AMM_V4_LAYOUT = Layout("AmmInfo", [
    *((n, "u64") for n in _U64S),
    ("swap_coin_in_amount", "u128"), ("swap_pc_out_amount", "u128"), ("swap_acc_pc_fee", "u64"),
    ("swap_pc_in_amount", "u128"), ("swap_coin_out_amount", "u128"), ("swap_acc_coin_fee", "u64"),
    ("coin_vault", "pubkey"), ("pc_vault", "pubkey"), ("coin_mint", "pubkey"), ("pc_mint", "pubkey"),
    ("lp_mint", "pubkey"), ("open_orders", "pubkey"), ("market", "pubkey"), ("market_program", "pubkey"),
    ("target_orders", "pubkey"), ("padding1", "bytes64"), ("amm_owner", "pubkey"), ("lp_amount", "u64"),
    ("client_order_id", "u64"), ("recent_epoch", "u64"), ("padding2", "u64"),
])
assert RAYDIUM_AMM_V4_LAYOUT.size == RAYDIUM_AMM_V4_LEN

WHIRLPOOL_LAYOUT = Layout("Whirlpool", [
    ("discriminator", "bytes8"), ("whirlpools_config", "pubkey"), ("whirlpool_bump", "u8"), ("tick_spacing", "u16"),
    ("fee_tier_index", "u16"),  # fee_tier_index_seed: [u8; 2], read little-endian as the program does
    ("fee_rate", "u16"), ("protocol_fee_rate", "u16"), ("liquidity", "u128"), ("sqrt_price", "u128"),
    ("tick_current_index", "i32"), ("protocol_fee_owed_a", "u64"), ("protocol_fee_owed_b", "u64"),
    ("token_mint_a", "pubkey"), ("token_vault_a", "pubkey"), ("fee_growth_global_a", "u128"),
    ("token_mint_b", "pubkey"), ("token_vault_b", "pubkey"), ("fee_growth_global_b", "u128"),
    ("reward_last_updated_timestamp", "u64"),
    ("reward_infos", "bytes384"),  # 3 x (mint, vault, extension, emissions/s Q64.64, growth Q64.64): not priced
])
assert WHIRLPOOL_LAYOUT.size == 653 and WHIRLPOOL_LAYOUT.offsets["sqrt_price"] == 65

REWARD_INFO_LAYOUT = Layout("WhirlpoolRewardInfo", [
    ("mint", "pubkey"), ("vault", "pubkey"),
    ("extension", "pubkey"),  # was ``authority``; reward_infos[0].extension is still the reward authority
    ("emissions_per_second_x64", "u128"), ("growth_global_x64", "u128"),
])
assert REWARD_INFO_LAYOUT.size * 3 == 384

TICK_LAYOUT = Layout("Tick", [
    ("initialized", "u8"), ("liquidity_net", "i128"), ("liquidity_gross", "u128"), ("fee_growth_outside_a", "u128"),
    ("fee_growth_outside_b", "u128"), ("reward_growths_outside", "bytes48"),
])
TICK_ARRAY_SIZE = 88
FIXED_TICK_ARRAY_LEN = 8 + 4 + TICK_ARRAY_SIZE * TICK_LAYOUT.size + 32
assert TICK_LAYOUT.size == 113 and FIXED_TICK_ARRAY_LEN == 9988
DYNAMIC_TICK_DATA_LEN = 112  # a Tick without its initialized byte (the enum tag stands for it)
_DYNAMIC_DATA = Layout("DynamicTickData", [f[:2] for f in TICK_LAYOUT.fields[1:]])
assert _DYNAMIC_DATA.size == DYNAMIC_TICK_DATA_LEN
DYNAMIC_TICKS_OFFSET = 8 + 4 + 32 + 16


# ----------------------------------------------------------------------------- decoded records


@dataclass(frozen=True, slots=True)
class TickRecord:
    offset: int
    liquidity_net: int
    liquidity_gross: int
    fee_growth_outside_a: int = 0
    fee_growth_outside_b: int = 0
    reward_growths_outside: bytes = bytes(48)


@dataclass(frozen=True, slots=True)
class TickArrayAccount:
    """A fixed or dynamic tick array: its initialized ticks only (an uninitialized fixed tick is
    all zeros except its bytes are kept nowhere: ``encode_fixed_tick_array`` writes zeros)."""

    start_tick_index: int
    whirlpool: str
    ticks: tuple[TickRecord, ...]
    dynamic: bool = False


def _key(text: str, what: str) -> str:
    try:
        return str(Pubkey.from_string(text))
    except ValueError:
        raise AccountDataError(f"{what} {text!r} is not a base58 public key") from None


def _check_owner(owner: str | None, program: str, what: str) -> None:
    if owner is not None and owner != program:
        raise AccountDataError(f"{what} must be owned by {program}, but its owner is {owner}")


def decode_raydium_amm(data: bytes, owner: str | None = None) -> dict[str, Any]:
    """A Raydium AMM v4 pool state (752 bytes) -> its fields by ``AmmInfo`` name."""
    _check_owner(owner, RAYDIUM_AMM_V4, "a Raydium AMM v4 pool account")
    if len(data) != RAYDIUM_AMM_V4_LEN:
        raise AccountDataError(f"a Raydium AMM v4 pool account is {RAYDIUM_AMM_V4_LEN} bytes, got {len(data)}")
    d = RAYDIUM_AMM_V4_LAYOUT.decode(data)
    if d["swap_fee_denominator"] == 0 or d["swap_fee_numerator"] >= d["swap_fee_denominator"]:
        raise AccountDataError(f"Raydium AMM v4 swap fee {d['swap_fee_numerator']}/{d['swap_fee_denominator']} "
                               f"is not a fraction below 1")
    if d["status"] > 7:
        raise AccountDataError(f"Raydium AMM v4 status {d['status']} is not an AmmStatus (0..7)")
    return d


def encode_raydium_amm(fields: Mapping[str, Any]) -> bytes:
    return RAYDIUM_AMM_V4_LAYOUT.encode(fields)


def decode_token_account(data: bytes, owner: str | None = None) -> TokenAccount:
    """An SPL Token (or Token-2022) token account -> ``solders`` ``TokenAccount``."""
    if owner is not None and owner not in (TOKEN_PROGRAM, TOKEN_2022_PROGRAM):
        raise AccountDataError(f"a token account must be owned by the SPL Token program ({TOKEN_PROGRAM} or "
                               f"{TOKEN_2022_PROGRAM}), but its owner is {owner}")
    if len(data) == MINT_LEN:
        raise AccountDataError(f"{MINT_LEN} bytes is an SPL mint, not a token account")
    if len(data) < TOKEN_ACCOUNT_LEN or (len(data) > TOKEN_ACCOUNT_LEN and owner == TOKEN_PROGRAM):
        raise AccountDataError(f"an SPL token account is {TOKEN_ACCOUNT_LEN} bytes, got {len(data)}")
    if len(data) > TOKEN_ACCOUNT_LEN and data[TOKEN_ACCOUNT_LEN] != TOKEN_2022_ACCOUNT_TYPE:
        raise AccountDataError(f"a Token-2022 account of {len(data)} bytes has account type {data[TOKEN_ACCOUNT_LEN]}, "
                               f"not {TOKEN_2022_ACCOUNT_TYPE} (token account)")
    try:
        return TokenAccount.from_bytes(bytes(data[:TOKEN_ACCOUNT_LEN]))
    except Exception as e:  # solders raises its own error types for a bad state byte
        raise AccountDataError(f"not an initialized SPL token account: {e}") from None


def _anchor(data: bytes, owner: str | None, what: str) -> bytes:
    _check_owner(owner, WHIRLPOOL_PROGRAM, what)
    if len(data) < 8:
        raise AccountDataError(f"{what}: {len(data)} bytes is shorter than its 8-byte discriminator")
    return bytes(data[:8])


def decode_whirlpool(data: bytes, owner: str | None = None) -> dict[str, Any]:
    """An Orca ``Whirlpool`` account (653 bytes with its discriminator) -> its fields."""
    disc = _anchor(data, owner, "a Whirlpool account")
    if disc != WHIRLPOOL_DISCRIMINATOR:
        raise AccountDataError(f"discriminator {disc.hex()} is not Whirlpool's ({WHIRLPOOL_DISCRIMINATOR.hex()})")
    if len(data) != WHIRLPOOL_LAYOUT.size:
        raise AccountDataError(f"a Whirlpool account is {WHIRLPOOL_LAYOUT.size} bytes, got {len(data)}")
    d = WHIRLPOOL_LAYOUT.decode(data)
    if d["tick_spacing"] == 0:
        raise AccountDataError("Whirlpool tick spacing is 0")
    if d["sqrt_price"] == 0:
        raise AccountDataError("Whirlpool sqrt price is 0")
    return d


def reward_infos(whirlpool: Mapping[str, Any]) -> tuple[dict[str, Any], ...]:
    """The three ``WhirlpoolRewardInfo`` records of a decoded Whirlpool (not needed to price a swap)."""
    raw = whirlpool["reward_infos"]
    return tuple(REWARD_INFO_LAYOUT.decode(raw, i * REWARD_INFO_LAYOUT.size) for i in range(3))


def encode_whirlpool(fields: Mapping[str, Any]) -> bytes:
    return WHIRLPOOL_LAYOUT.encode({**fields, "discriminator": WHIRLPOOL_DISCRIMINATOR})


def decode_tick_array(data: bytes, owner: str | None = None) -> TickArrayAccount:
    """An Orca tick array, fixed (``TickArray``, 9988 bytes) or dynamic (``DynamicTickArray``)."""
    disc = _anchor(data, owner, "a Whirlpool tick array")
    if disc == FIXED_TICK_ARRAY_DISCRIMINATOR:
        if len(data) != FIXED_TICK_ARRAY_LEN:
            raise AccountDataError(f"a fixed tick array is {FIXED_TICK_ARRAY_LEN} bytes, got {len(data)}")
        start = struct.unpack_from("<i", data, 8)[0]
        ticks = []
        for i in range(TICK_ARRAY_SIZE):
            flag = data[12 + i * TICK_LAYOUT.size]
            if flag > 1:
                raise AccountDataError(f"tick {i} has initialized byte {flag} (not a bool)")
            if not flag:
                continue  # an uninitialized tick: the program reads nothing else of it
            t = TICK_LAYOUT.decode(data, 12 + i * TICK_LAYOUT.size)
            ticks.append(TickRecord(i, t["liquidity_net"], t["liquidity_gross"], t["fee_growth_outside_a"],
                                    t["fee_growth_outside_b"], t["reward_growths_outside"]))
        whirlpool = str(Pubkey.from_bytes(data[FIXED_TICK_ARRAY_LEN - 32:]))
        return TickArrayAccount(start, whirlpool, tuple(ticks))
    if disc == DYNAMIC_TICK_ARRAY_DISCRIMINATOR:
        return _decode_dynamic_tick_array(data)
    raise AccountDataError(f"discriminator {disc.hex()} is neither TickArray's ({FIXED_TICK_ARRAY_DISCRIMINATOR.hex()}) "
                           f"nor DynamicTickArray's ({DYNAMIC_TICK_ARRAY_DISCRIMINATOR.hex()})")


def _decode_dynamic_tick_array(data: bytes) -> TickArrayAccount:
    if len(data) < DYNAMIC_TICKS_OFFSET + TICK_ARRAY_SIZE:
        raise AccountDataError(f"a dynamic tick array is at least {DYNAMIC_TICKS_OFFSET + TICK_ARRAY_SIZE} bytes, "
                               f"got {len(data)}")
    start = struct.unpack_from("<i", data, 8)[0]
    whirlpool = str(Pubkey.from_bytes(data[12:44]))
    bitmap = int.from_bytes(data[44:60], "little")
    at = DYNAMIC_TICKS_OFFSET
    ticks = []
    for i in range(TICK_ARRAY_SIZE):
        if at >= len(data):
            raise AccountDataError(f"dynamic tick array ends inside tick {i}")
        tag = data[at]
        if tag > 1 or bool(tag) != bool(bitmap >> i & 1):
            raise AccountDataError(f"dynamic tick {i} has tag {tag} but bitmap bit {bitmap >> i & 1}")
        at += 1
        if tag:
            if at + DYNAMIC_TICK_DATA_LEN > len(data):
                raise AccountDataError(f"dynamic tick array ends inside tick {i}")
            t = _DYNAMIC_DATA.decode(data, at)
            ticks.append(TickRecord(i, t["liquidity_net"], t["liquidity_gross"], t["fee_growth_outside_a"],
                                    t["fee_growth_outside_b"], t["reward_growths_outside"]))
            at += DYNAMIC_TICK_DATA_LEN
    if any(data[at:]):
        raise AccountDataError(f"dynamic tick array has {len(data) - at} non-zero bytes after its last tick")
    return TickArrayAccount(start, whirlpool, tuple(ticks), dynamic=True)


def encode_fixed_tick_array(account: TickArrayAccount) -> bytes:
    buf = bytearray(FIXED_TICK_ARRAY_LEN)
    buf[:8] = FIXED_TICK_ARRAY_DISCRIMINATOR
    struct.pack_into("<i", buf, 8, account.start_tick_index)
    for t in account.ticks:
        at = 12 + t.offset * TICK_LAYOUT.size
        buf[at:at + TICK_LAYOUT.size] = TICK_LAYOUT.encode({
            "initialized": 1, "liquidity_net": t.liquidity_net, "liquidity_gross": t.liquidity_gross,
            "fee_growth_outside_a": t.fee_growth_outside_a, "fee_growth_outside_b": t.fee_growth_outside_b,
            "reward_growths_outside": t.reward_growths_outside})
    buf[-32:] = bytes(Pubkey.from_string(account.whirlpool))
    return bytes(buf)


def encode_dynamic_tick_array(account: TickArrayAccount) -> bytes:
    bitmap = sum(1 << t.offset for t in account.ticks)
    out = bytearray(DYNAMIC_TICK_ARRAY_DISCRIMINATOR + struct.pack("<i", account.start_tick_index)
                    + bytes(Pubkey.from_string(account.whirlpool)) + bitmap.to_bytes(16, "little"))
    by_offset = {t.offset: t for t in account.ticks}
    for i in range(TICK_ARRAY_SIZE):
        t = by_offset.get(i)
        if t is None:
            out.append(0)
            continue
        out.append(1)
        out += _DYNAMIC_DATA.encode({"liquidity_net": t.liquidity_net, "liquidity_gross": t.liquidity_gross,
                                     "fee_growth_outside_a": t.fee_growth_outside_a,
                                     "fee_growth_outside_b": t.fee_growth_outside_b,
                                     "reward_growths_outside": t.reward_growths_outside})
    return bytes(out)


# ----------------------------------------------------------------------------- account -> event


def account_event(pubkey: str, owner: str, slot: int, data: bytes, *, ts: int, source: str = SOURCE) -> ev.Event:
    """One account's bytes -> its typed input event, by owner program (and discriminator).
    Raises :class:`AccountDataError` naming what is wrong."""
    pubkey = _key(pubkey, "account")
    owner = _key(owner, "owner")
    if owner == RAYDIUM_AMM_V4:
        d = decode_raydium_amm(data, owner)
        return ev.RaydiumPoolSynced(
            ts=ts, source=source, pool=pubkey, slot=slot, status=d["status"], coin_decimals=d["coin_decimals"],
            pc_decimals=d["pc_decimals"], trade_fee_numerator=d["trade_fee_numerator"],
            trade_fee_denominator=d["trade_fee_denominator"], swap_fee_numerator=d["swap_fee_numerator"],
            swap_fee_denominator=d["swap_fee_denominator"], need_take_pnl_coin=d["need_take_pnl_coin"],
            need_take_pnl_pc=d["need_take_pnl_pc"], pool_open_time=d["pool_open_time"], coin_vault=d["coin_vault"],
            pc_vault=d["pc_vault"], coin_mint=d["coin_mint"], pc_mint=d["pc_mint"], lp_mint=d["lp_mint"],
            open_orders=d["open_orders"], market=d["market"], lp_amount=d["lp_amount"])
    if owner in (TOKEN_PROGRAM, TOKEN_2022_PROGRAM):
        t = decode_token_account(data, owner)
        return ev.SplTokenAccountSynced(ts=ts, source=source, account=pubkey, slot=slot, mint=str(t.mint),
                                        owner=str(t.owner), amount=t.amount)
    if owner == WHIRLPOOL_PROGRAM:
        disc = _anchor(data, owner, "a Whirlpool program account")
        if disc == WHIRLPOOL_DISCRIMINATOR:
            w = decode_whirlpool(data, owner)
            return ev.WhirlpoolSynced(
                ts=ts, source=source, pool=pubkey, slot=slot, whirlpools_config=w["whirlpools_config"],
                tick_spacing=w["tick_spacing"], fee_tier_index=w["fee_tier_index"], fee_rate=w["fee_rate"],
                protocol_fee_rate=w["protocol_fee_rate"], liquidity=w["liquidity"], sqrt_price=w["sqrt_price"],
                tick_current_index=w["tick_current_index"], mint_a=w["token_mint_a"], vault_a=w["token_vault_a"],
                mint_b=w["token_mint_b"], vault_b=w["token_vault_b"], fee_growth_global_a=w["fee_growth_global_a"],
                fee_growth_global_b=w["fee_growth_global_b"])
        if disc in (FIXED_TICK_ARRAY_DISCRIMINATOR, DYNAMIC_TICK_ARRAY_DISCRIMINATOR):
            a = decode_tick_array(data, owner)
            return ev.WhirlpoolTickArraySynced(ts=ts, source=source, account=pubkey, slot=slot, pool=a.whirlpool,
                                               start_tick_index=a.start_tick_index,
                                               ticks=tuple((t.offset, t.liquidity_net) for t in a.ticks))
        raise AccountDataError(f"Whirlpool program account with discriminator {disc.hex()} is neither a Whirlpool "
                               f"nor a tick array (a position, config or fee tier is not a pool state)")
    raise AccountDataError(f"owner {owner} is not Raydium AMM v4, Orca Whirlpool or an SPL Token program")


def decode_base64(text: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as e:
        raise AccountDataError(f"account data is not base64: {e}") from None


def raw_update(pubkey: str, owner: str, slot: int, lamports: int, data: bytes, *, ts: int,
               source: str = SOURCE) -> ev.SolanaAccountUpdated:
    return ev.SolanaAccountUpdated(ts=ts, source=source, pubkey=pubkey, owner=owner, slot=slot, lamports=lamports,
                                   data=base64.b64encode(data).decode())


def decode_update(u: ev.SolanaAccountUpdated, origin: str = "") -> ev.Event:
    """A raw account update -> its typed event, or an ``InputRejected`` saying why not."""
    try:
        return account_event(u.pubkey, u.owner, u.slot, decode_base64(u.data), ts=u.ts, source=u.source)
    except AccountDataError as e:
        return ev.InputRejected(ts=u.ts, source=u.source, origin=origin or f"{SOURCE}:{u.pubkey}@{u.slot}",
                                reason=str(e), raw=u.data)


# ----------------------------------------------------------------------------- websocket frames


def parse_frame(raw: str | bytes, *, ts: int, subscriptions: Mapping[int, str] | None = None,
                origin: str = SOURCE, source: str = SOURCE, raw_events: bool = False) -> list[ev.Event]:
    """One websocket frame (single or batched) -> events; never raises.

    ``accountNotification`` carries no account key, so ``subscriptions`` maps a subscription id to
    the base58 key it was opened for (from the ``accountSubscribe`` acknowledgement);
    ``programNotification`` carries its key. Subscription acknowledgements give no event. Each
    account becomes its typed event (or, with ``raw_events``, a ``SolanaAccountUpdated``); a frame
    or account that cannot be read becomes an ``InputRejected`` naming why. jsonParsed encodings
    are refused: subscribe with ``base64`` (or ``base64+zstd``) to get the bytes."""
    text = raw.decode("utf-8", "replace") if isinstance(raw, (bytes, bytearray)) else raw

    def rejected(reason: str) -> ev.InputRejected:
        return ev.InputRejected(ts=ts, source=source, origin=origin, reason=reason, raw=text)

    try:
        messages = parse_websocket_message(text)
    except Exception as e:  # solders.SerdeJSONError and friends: not a frame it knows
        return [rejected(f"not a Solana websocket frame solders can parse: {e}")]
    out: list[ev.Event] = []
    for m in messages:
        if isinstance(m, SubscriptionResult):
            continue
        if isinstance(m, (AccountNotificationJsonParsed, ProgramNotificationJsonParsed)):
            out.append(rejected("jsonParsed account data has no raw bytes: subscribe with encoding base64"))
            continue
        if isinstance(m, AccountNotification):
            pubkey = (subscriptions or {}).get(m.subscription)
            if pubkey is None:
                out.append(rejected(f"accountNotification for subscription {m.subscription}, "
                                    f"which names no known account"))
                continue
            account = m.result.value
        elif isinstance(m, ProgramNotification):
            pubkey, account = str(m.result.value.pubkey), m.result.value.account
        else:
            out.append(rejected(f"{type(m).__name__} is not an account notification"))
            continue
        slot = m.result.context.slot
        data = bytes(account.data)
        if raw_events:
            out.append(raw_update(pubkey, str(account.owner), slot, account.lamports, data, ts=ts, source=source))
            continue
        try:
            out.append(account_event(pubkey, str(account.owner), slot, data, ts=ts, source=source))
        except AccountDataError as e:
            out.append(rejected(f"account {pubkey} at slot {slot}: {e}"))
    return out


def keyed_account(text: str) -> tuple[str, str, int, bytes]:
    """A ``{"pubkey": ..., "account": {...}}`` dump (``getProgramAccounts`` item, ``solana account
    --output json``) -> (pubkey, owner, lamports, data), through ``solders.RpcKeyedAccount``."""
    try:
        k = RpcKeyedAccount.from_json(text)
    except Exception as e:
        raise AccountDataError(f"not a keyed account dump: {e}") from None
    return str(k.pubkey), str(k.account.owner), k.account.lamports, bytes(k.account.data)


def account_notification(subscription: int, slot: int, owner: str, data: bytes, *, lamports: int = 0) -> str:
    """An ``accountNotification`` frame (the shape agave's pubsub tests assert), for tests and replays."""
    return json.dumps({"jsonrpc": "2.0", "method": "accountNotification", "params": {
        "result": {"context": {"slot": slot}, "value": {
            "owner": owner, "lamports": lamports, "data": [base64.b64encode(data).decode(), "base64"],
            "executable": False, "rentEpoch": 18446744073709551615, "space": len(data)}},
        "subscription": subscription}})


def program_notification(subscription: int, slot: int, pubkey: str, owner: str, data: bytes, *,
                         lamports: int = 0) -> str:
    """A ``programNotification`` frame (account key in ``value.pubkey``)."""
    return json.dumps({"jsonrpc": "2.0", "method": "programNotification", "params": {
        "result": {"context": {"slot": slot}, "value": {"pubkey": pubkey, "account": {
            "owner": owner, "lamports": lamports, "data": [base64.b64encode(data).decode(), "base64"],
            "executable": False, "rentEpoch": 18446744073709551615, "space": len(data)}}},
        "subscription": subscription}})


# ----------------------------------------------------------------------------- recordings


def read_solana_ws(path: str | Path) -> Iterator[ev.Event]:
    """A recorded Solana websocket session -> events, in file order; bad lines become ``InputRejected``.

    The format of the shared websocket recordings: one line per frame, ``<receive time ns> <json>``,
    plain or gzip. ``accountNotification`` carries no account key, so the session's own
    ``accountSubscribe`` requests are recorded too (as sent: ``{"method": "accountSubscribe",
    "params": [<key>, ...], "id": n}``) and each acknowledgement ``{"result": <sub id>, "id": n}``
    ties its subscription id to the key; ``programNotification`` frames name their account. Times
    must be within 2015..2100 and never fall; a line that breaks that, is not JSON, or holds an
    account that does not decode is a recorded rejection naming the line (``<file>:line <n>``)."""
    path = Path(path)

    def read() -> Iterator[ev.Event]:
        with open(path, "rb") as raw:
            gz = raw.read(2) == b"\x1f\x8b"
        with (gzip.open(path, "rb") if gz else open(path, "rb")) as f:
            yield from read_solana_ws_stream(f, path.name)

    return read()


def read_solana_ws_stream(f: IO[bytes], name: str) -> Iterator[ev.Event]:
    pending: dict[int, str] = {}  # request id -> account key of an accountSubscribe sent
    subscriptions: dict[int, str] = {}  # subscription id -> account key
    last_ts = MIN_TS
    for n, line in enumerate(f, 1):
        text = line.decode("utf-8", "replace").rstrip("\r\n")
        if not text.strip():
            continue
        origin = f"{name}:line {n}"
        stamp, _, body = text.partition(" ")

        def rejected(reason: str, ts: int) -> ev.InputRejected:
            return ev.InputRejected(ts=ts, source=SOURCE, origin=origin, reason=reason, raw=text)

        try:
            ts = int(stamp)
        except ValueError:
            yield rejected(f"line does not start with a receive time in ns: {stamp[:30]!r}", last_ts)
            continue
        if not MIN_TS <= ts < MAX_TS:
            yield rejected(f"receive time {ts} ns is outside 2015..2100", last_ts)
            continue
        if ts < last_ts:
            yield rejected(f"receive time {ts} ns is before the previous line's {last_ts}", last_ts)
            continue
        last_ts = ts
        try:
            msg = json.loads(body)
        except ValueError as e:
            yield rejected(f"not JSON: {e}", ts)
            continue
        if isinstance(msg, dict) and msg.get("method") == "accountSubscribe":
            params = msg.get("params")
            key = params[0] if isinstance(params, list) and params and isinstance(params[0], str) else None
            try:
                pending[int(msg["id"])] = _key(str(key), "accountSubscribe account")
            except (AccountDataError, KeyError, TypeError, ValueError) as e:
                yield rejected(f"accountSubscribe request without an account key and id: {e}", ts)
            continue
        if isinstance(msg, dict) and isinstance(msg.get("method"), str) and msg["method"].endswith("Subscribe"):
            continue  # another subscription request: nothing to tie an account to
        if isinstance(msg, dict) and "id" in msg and isinstance(msg.get("result"), int):
            request = msg.get("id")
            if isinstance(request, int) and request in pending:
                subscriptions[msg["result"]] = pending.pop(request)
            continue
        yield from parse_frame(body, ts=ts, subscriptions=subscriptions, origin=origin)
