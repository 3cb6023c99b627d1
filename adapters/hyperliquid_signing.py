"""Hyperliquid exchange actions: building them exactly, hashing and signing them.

Written from the spec (``../shared/reference/PROTOCOLS.md`` section 6; the docs' ``signing.md`` and
``exchange-endpoint.md``) because the official SDK cannot be installed beside web3 8; proven equal
to every vector of the SDK's own ``tests/signing_test.py`` (``tests/test_hyperliquid_signing.py``).

* **Numbers on the wire** (:func:`to_wire`): a price or size is a decimal string of at most 8
  decimal places with trailing zeros removed (``"100"``, ``"1670.1"``, ``"0.0147"``), built from a
  ``Decimal``/``str``/``int`` exactly; a value that would need rounding is refused, never rounded.
  Floats are refused (a float is not the number its text shows). :func:`to_int_for_hashing` is the
  ``x * 10**8`` integer some actions carry, exact or refused.
* **Actions** (:func:`order_wire`, :func:`order_action`, :func:`cancel_action`,
  :func:`cancel_by_cloid_action`, :func:`schedule_cancel_action`, user-signed
  :func:`usd_send_action`, :func:`withdraw_action`, :func:`approve_agent_action`): dicts whose key
  order is the wire's (msgpack hashes the keys in order, so the order is part of the signature).
* **L1 actions** (orders, cancels...): ``connectionId = keccak(msgpack(action) ‖ nonce u64 BE ‖
  (0x00 | 0x01 ‖ vault 20 bytes) ‖ [0x00 ‖ expiresAfter u64 BE])`` (:func:`action_hash`); the
  *phantom agent* ``{source: "a" mainnet | "b" testnet, connectionId}`` is signed as EIP-712 type
  ``Agent`` under domain ``Exchange`` v1, chainId 1337, verifying contract 0x0 (eth-account).
* **User-signed actions** (transfers, withdrawals, agent approval): the action itself is the
  EIP-712 message, primary type ``HyperliquidTransaction:<Name>``, domain
  ``HyperliquidSignTransaction`` v1 with ``chainId = signatureChainId`` (default ``0x66eee``) and
  ``hyperliquidChain`` "Mainnet"/"Testnet" in the message.

The private key lives only inside :class:`HyperliquidSigner` (an eth-account ``LocalAccount``): its
``repr``/``str`` show the address, it refuses pickling and copying, and no error raised here
carries the key or the exception that saw it.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Mapping, Sequence

import msgpack
from eth_account import Account
from eth_account.messages import encode_typed_data
from eth_utils import keccak

from tapedeck.domain import hl_price
from tapedeck.domain.decimals import CTX

WIRE_DECIMALS = 8
MAX_U64 = 2**64 - 1
ZERO_ADDRESS = "0x0000000000000000000000000000000000000000"
L1_CHAIN_ID = 1337
DEFAULT_SIGNATURE_CHAIN_ID = "0x66eee"  # what the SDK signs user actions with (Arbitrum Sepolia id)
TIFS = ("Gtc", "Ioc", "Alo")
_DOMAIN_TIF = {"gtc": "Gtc", "ioc": "Ioc", "alo": "Alo", "": "Ioc"}  # OrderIntended.tif -> wire ("" = IOC)
GROUPINGS = ("na", "normalTpsl", "positionTpsl")
_ADDRESS = re.compile(r"0x[0-9a-fA-F]{40}")
_CLOID = re.compile(r"0x[0-9a-fA-F]{32}")
_DECIMAL_TEXT = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)")

EIP712_DOMAIN = [
    {"name": "name", "type": "string"},
    {"name": "version", "type": "string"},
    {"name": "chainId", "type": "uint256"},
    {"name": "verifyingContract", "type": "address"},
]
AGENT_TYPE = [{"name": "source", "type": "string"}, {"name": "connectionId", "type": "bytes32"}]

# User-signed action types: (wire "type", EIP-712 primary type, fields in signing order).
USD_SEND = ("usdSend", "HyperliquidTransaction:UsdSend",
            (("hyperliquidChain", "string"), ("destination", "string"), ("amount", "string"), ("time", "uint64")))
WITHDRAW = ("withdraw3", "HyperliquidTransaction:Withdraw",
            (("hyperliquidChain", "string"), ("destination", "string"), ("amount", "string"), ("time", "uint64")))
APPROVE_AGENT = ("approveAgent", "HyperliquidTransaction:ApproveAgent",
                 (("hyperliquidChain", "string"), ("agentAddress", "address"), ("agentName", "string"),
                  ("nonce", "uint64")))
SPOT_SEND = ("spotSend", "HyperliquidTransaction:SpotSend",
             (("hyperliquidChain", "string"), ("destination", "string"), ("token", "string"), ("amount", "string"),
              ("time", "uint64")))
USER_SIGNED = {t[0]: t for t in (USD_SEND, WITHDRAW, APPROVE_AGENT, SPOT_SEND)}


class ActionError(ValueError):
    """An action that cannot be built exactly (a value that would be rounded, a bad field); the
    message names the field and the value (never a key)."""


# ----------------------------------------------------------------------------- numbers


def _decimal(value: Any, what: str) -> Decimal:
    if isinstance(value, bool) or isinstance(value, float):
        raise ActionError(f"{what} {value!r} is a {type(value).__name__}: give a str, int or Decimal "
                          f"(a float is not the exact number it prints as)")
    if isinstance(value, Decimal):
        d = value
    elif isinstance(value, int):
        d = Decimal(value)
    elif isinstance(value, str):
        if len(value) > 64 or not _DECIMAL_TEXT.fullmatch(value.strip()):
            raise ActionError(f"{what} {value[:80]!r} is not a plain decimal number")
        d = Decimal(value.strip())
    else:
        raise ActionError(f"{what} is a {type(value).__name__}, expected str, int or Decimal")
    if not d.is_finite():
        raise ActionError(f"{what} {value!r} is not a finite number")
    if len(d.as_tuple().digits) > 60 or abs(d.adjusted()) > 60:
        raise ActionError(f"{what} {value} has more digits than any price or size")
    return d


def to_wire(value: Any, what: str = "value") -> str:
    """A number as Hyperliquid's wire string: at most 8 decimals, trailing zeros and a trailing
    point removed, no exponent, ``0`` for zero (also -0). More than 8 decimals -> ``ActionError``."""
    d = _decimal(value, what)
    if _places(d) > WIRE_DECIMALS:
        raise ActionError(f"{what} {value} has more than {WIRE_DECIMALS} decimal places: it would be rounded")
    if d == 0:
        return "0"
    text = format(d, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text


def to_int_for_hashing(value: Any, power: int = WIRE_DECIMALS, what: str = "value") -> int:
    """``value * 10**power`` as an exact integer (the SDK's ``float_to_int_for_hashing`` at power 8,
    ``float_to_usd_int`` at 6); a value with more than ``power`` decimals -> ``ActionError``."""
    d = _decimal(value, what)
    scaled = d.scaleb(power, context=CTX)
    n = int(scaled.to_integral_value(context=CTX))
    if scaled != n:
        raise ActionError(f"{what} {value} has more than {power} decimal places: it would be rounded")
    return n


def check_tick(price: Any, size: Any, sz_decimals: int, *, spot: bool = False, what: str = "order") -> None:
    """The venue's tick and lot rules (docs ``tick-and-lot-size.md``): a size has at most
    ``sz_decimals`` decimals; a price at most 5 significant figures (an integer price always
    passes) and at most ``(8 if spot else 6) - sz_decimals`` decimals (``domain.hl_price``, the rule
    the strategies round their limits by). ``ActionError`` otherwise."""
    p, s = _decimal(price, f"{what} price"), _decimal(size, f"{what} size")
    if _places(s) > sz_decimals:
        raise ActionError(f"{what} size {size} has more than the coin's {sz_decimals} size decimals")
    problem = hl_price.decimal_price_problem(p, sz_decimals, spot)  # the domain's one price rule
    if problem:
        raise ActionError(f"{what}: {problem}")


def _trailing_zeros(d: Decimal) -> int:
    digits = d.as_tuple().digits
    n = 0
    while n < len(digits) - 1 and digits[-1 - n] == 0:
        n += 1
    return n


def _places(d: Decimal) -> int:
    """Decimal places the value needs (trailing zeros do not count; never rounds)."""
    exponent = int(d.as_tuple().exponent)
    if not any(d.as_tuple().digits):
        return 0
    return max(0, -exponent - _trailing_zeros(d)) if exponent < 0 else 0


# ----------------------------------------------------------------------------- ids


def _asset(asset: Any) -> int:
    if isinstance(asset, bool) or not isinstance(asset, int) or not 0 <= asset < 2**32:
        raise ActionError(f"asset {asset!r} is not an asset id (an int >= 0; see adapters.hyperliquid_ids)")
    return asset


def cloid(value: Any) -> str:
    """A client order id as the wire takes it: ``0x`` + 32 hex digits (16 bytes), lowercase."""
    if isinstance(value, (bytes, bytearray)):
        if len(value) != 16:
            raise ActionError(f"cloid has {len(value)} bytes, expected 16")
        return "0x" + bytes(value).hex()
    if not isinstance(value, str) or not _CLOID.fullmatch(value):
        raise ActionError(f"cloid {str(value)[:80]!r} is not 0x + 32 hex digits (16 bytes)")
    return value.lower()


def cloid_for(client_id: str) -> str:
    """A deterministic cloid for one of our client ids (the first 16 bytes of its keccak): the
    engine's ``client_id`` is free text, the venue's cloid 16 bytes."""
    if not isinstance(client_id, str) or not client_id:
        raise ActionError("client id must be a non-empty string")
    return "0x" + keccak(text=client_id)[:16].hex()


def address(value: Any, what: str = "address") -> str:
    if not isinstance(value, str) or not _ADDRESS.fullmatch(value):
        raise ActionError(f"{what} {str(value)[:80]!r} is not 0x + 40 hex digits")
    return value.lower()


def _u64(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_U64:
        raise ActionError(f"{what} {value!r} is not an unsigned 64-bit integer")
    return value


# ----------------------------------------------------------------------------- actions


def order_wire(asset: int, is_buy: bool, price: Any, size: Any, *, tif: str = "Gtc", reduce_only: bool = False,
               client_order_id: Any = None, trigger: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """One order as the ``order`` action lists it: ``{a, b, p, s, r, t[, c]}``.

    ``tif`` "Gtc" | "Ioc" | "Alo" (or the domain's "gtc"/"ioc"/"alo"/"" = IOC) for a limit order;
    ``trigger`` ``{"trigger_px": ..., "is_market": bool, "tpsl": "tp"|"sl"}`` makes it a trigger
    order instead (``tif`` ignored). ``price``/``size`` exact decimals (> 0)."""
    if not isinstance(is_buy, bool) or not isinstance(reduce_only, bool):
        raise ActionError("is_buy and reduce_only must be bools")
    p, s = to_wire(price, "price"), to_wire(size, "size")
    if Decimal(p) <= 0 or Decimal(s) <= 0:
        raise ActionError(f"price {p} and size {s} must be > 0")
    if trigger is not None:
        tpsl = trigger.get("tpsl")
        if tpsl not in ("tp", "sl") or not isinstance(trigger.get("is_market"), bool):
            raise ActionError(f"trigger {dict(trigger)!r} needs is_market (bool) and tpsl 'tp'|'sl'")
        tpx = to_wire(trigger.get("trigger_px"), "trigger_px")
        if Decimal(tpx) <= 0:
            raise ActionError(f"trigger_px {tpx} must be > 0")
        order_type: dict[str, Any] = {"trigger": {"isMarket": trigger["is_market"], "triggerPx": tpx, "tpsl": tpsl}}
    else:
        wire_tif = tif if tif in TIFS else _DOMAIN_TIF.get(tif) if isinstance(tif, str) else None
        if wire_tif is None:
            raise ActionError(f"tif {tif!r} is not one of {', '.join(TIFS)} (or ioc/gtc/alo)")
        order_type = {"limit": {"tif": wire_tif}}
    wire: dict[str, Any] = {"a": _asset(asset), "b": is_buy, "p": p, "s": s, "r": reduce_only, "t": order_type}
    if client_order_id is not None:
        wire["c"] = cloid(client_order_id)
    return wire


def order_action(orders: Sequence[Mapping[str, Any]], *, grouping: str = "na",
                 builder: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """``{"type": "order", "orders": [...], "grouping": ...[, "builder": {"b": addr, "f": tenths of bp}]}``."""
    if not orders:
        raise ActionError("an order action needs at least one order")
    if grouping not in GROUPINGS:
        raise ActionError(f"grouping {grouping!r} is not one of {', '.join(GROUPINGS)}")
    action: dict[str, Any] = {"type": "order", "orders": [dict(o) for o in orders], "grouping": grouping}
    if builder is not None:
        fee = builder.get("f")
        if isinstance(fee, bool) or not isinstance(fee, int) or fee < 0:
            raise ActionError(f"builder fee f {fee!r} is not an int >= 0 (tenths of a basis point)")
        action["builder"] = {"b": address(builder.get("b"), "builder address"), "f": fee}
    return action


def cancel_action(cancels: Sequence[tuple[int, int]]) -> dict[str, Any]:
    """``{"type": "cancel", "cancels": [{"a": asset, "o": oid}, ...]}``."""
    if not cancels:
        raise ActionError("a cancel action needs at least one order")
    return {"type": "cancel", "cancels": [{"a": _asset(a), "o": _u64(o, "oid")} for a, o in cancels]}


def cancel_by_cloid_action(cancels: Sequence[tuple[int, Any]]) -> dict[str, Any]:
    """``{"type": "cancelByCloid", "cancels": [{"asset": asset, "cloid": "0x..."}, ...]}``."""
    if not cancels:
        raise ActionError("a cancel action needs at least one order")
    return {"type": "cancelByCloid", "cancels": [{"asset": _asset(a), "cloid": cloid(c)} for a, c in cancels]}


def schedule_cancel_action(time: int | None = None) -> dict[str, Any]:
    """``{"type": "scheduleCancel"[, "time": ms]}`` (no time: unset the dead man's switch)."""
    action: dict[str, Any] = {"type": "scheduleCancel"}
    if time is not None:
        action["time"] = _u64(time, "time")
    return action


def usd_send_action(destination: str, amount: Any, time: int) -> dict[str, Any]:
    """A user-signed USDC transfer (``usdSend``); sign with :meth:`HyperliquidSigner.sign_user_action`."""
    return {"type": "usdSend", "destination": address(destination, "destination"),
            "amount": to_wire(amount, "amount"), "time": _u64(time, "time")}


def withdraw_action(destination: str, amount: Any, time: int) -> dict[str, Any]:
    """A user-signed bridge withdrawal (``withdraw3``)."""
    return {"type": "withdraw3", "destination": address(destination, "destination"),
            "amount": to_wire(amount, "amount"), "time": _u64(time, "time")}


def approve_agent_action(agent_address: str, nonce: int, agent_name: str = "") -> dict[str, Any]:
    """A user-signed agent (API wallet) approval (``approveAgent``). The SDK signs an absent name
    as "" and then leaves ``agentName`` out of the posted action."""
    if not isinstance(agent_name, str):
        raise ActionError("agent_name must be a string")
    return {"type": "approveAgent", "agentAddress": address(agent_address, "agentAddress"),
            "agentName": agent_name, "nonce": _u64(nonce, "nonce")}


# ----------------------------------------------------------------------------- hashing


def action_hash(action: Any, nonce: int, vault_address: str | None = None, expires_after: int | None = None) -> bytes:
    """The L1 action's connection id (32 bytes); see the module docstring for the layout."""
    try:
        data = msgpack.packb(action)
    except (TypeError, ValueError, OverflowError) as e:
        raise ActionError(f"action cannot be msgpack-encoded: {e}") from None
    data += _u64(nonce, "nonce").to_bytes(8, "big")
    if vault_address is None:
        data += b"\x00"
    else:
        data += b"\x01" + bytes.fromhex(address(vault_address, "vault address")[2:])
    if expires_after is not None:
        data += b"\x00" + _u64(expires_after, "expiresAfter").to_bytes(8, "big")
    return keccak(data)


def phantom_agent(connection_id: bytes, mainnet: bool) -> dict[str, Any]:
    return {"source": "a" if mainnet else "b", "connectionId": connection_id}


def l1_typed_data(connection_id: bytes, mainnet: bool) -> dict[str, Any]:
    """The EIP-712 message an L1 action's signature covers (eth-account's ``full_message`` form)."""
    return {
        "domain": {"chainId": L1_CHAIN_ID, "name": "Exchange", "verifyingContract": ZERO_ADDRESS, "version": "1"},
        "types": {"Agent": AGENT_TYPE, "EIP712Domain": EIP712_DOMAIN},
        "primaryType": "Agent",
        "message": phantom_agent(connection_id, mainnet),
    }


def user_signed_message(action: Mapping[str, Any], mainnet: bool,
                        signature_chain_id: str = DEFAULT_SIGNATURE_CHAIN_ID) -> dict[str, Any]:
    """The action as it is posted: the caller's fields plus ``signatureChainId`` and ``hyperliquidChain``."""
    if not isinstance(signature_chain_id, str) or not re.fullmatch(r"0x[0-9a-fA-F]{1,16}", signature_chain_id):
        raise ActionError(f"signatureChainId {signature_chain_id!r} is not a 0x-hex chain id")
    return {**action, "signatureChainId": signature_chain_id, "hyperliquidChain": "Mainnet" if mainnet else "Testnet"}


def user_typed_data(message: Mapping[str, Any], primary_type: str,
                    fields: Sequence[tuple[str, str]]) -> dict[str, Any]:
    """The EIP-712 message of a user-signed action (``message`` from :func:`user_signed_message`)."""
    missing = [n for n, _ in fields if n not in message]
    if missing:
        raise ActionError(f"{primary_type}: the action lacks {', '.join(missing)}")
    return {
        "domain": {"name": "HyperliquidSignTransaction", "version": "1",
                   "chainId": int(message["signatureChainId"], 16), "verifyingContract": ZERO_ADDRESS},
        "types": {primary_type: [{"name": n, "type": t} for n, t in fields], "EIP712Domain": EIP712_DOMAIN},
        "primaryType": primary_type,
        "message": dict(message),
    }


# ----------------------------------------------------------------------------- signatures


@dataclass(frozen=True, slots=True)
class Signature:
    r: int
    s: int
    v: int

    def to_wire(self) -> dict[str, Any]:
        """``{"r": "0x..", "s": "0x..", "v": 27|28}``, r and s without leading zeros (as the SDK)."""
        return {"r": hex(self.r), "s": hex(self.s), "v": self.v}


class HyperliquidSigner:
    """Signs Hyperliquid actions with one private key (the account's, or an approved agent's).

    The key is never shown: ``repr``/``str`` name the address only, the object cannot be pickled
    or copied, and a bad key is refused without echoing it."""

    __slots__ = ("_account", "address")

    def __init__(self, private_key: str | bytes) -> None:
        account = None
        try:
            account = Account.from_key(private_key)
        except Exception:  # noqa: BLE001 - whatever it was, its message may hold the key
            pass
        if account is None:  # raised outside the handler: no exception context carries the key
            raise ValueError("private key is not a valid secp256k1 key (32 bytes, hex or raw)")
        self._account = account
        self.address: str = account.address

    def __repr__(self) -> str:
        return f"HyperliquidSigner(address={self.address})"

    __str__ = __repr__

    def __reduce__(self) -> Any:
        raise TypeError("HyperliquidSigner holds a private key and is not picklable")

    def __copy__(self) -> Any:
        raise TypeError("HyperliquidSigner holds a private key and is not copyable")

    def __deepcopy__(self, memo: Any) -> Any:
        raise TypeError("HyperliquidSigner holds a private key and is not copyable")

    def _sign(self, typed: dict[str, Any]) -> Signature:
        signable = encode_typed_data(full_message=typed)
        signed = self._account.sign_message(signable)
        return Signature(int(signed.r), int(signed.s), int(signed.v))

    def sign_l1_action(self, action: Any, nonce: int, *, mainnet: bool, vault_address: str | None = None,
                       expires_after: int | None = None) -> Signature:
        """Sign an L1 action (order, cancel, ...) for ``nonce`` (ms), on behalf of ``vault_address``
        (a vault or sub-account) when given, rejected by the venue after ``expires_after`` (ms)."""
        return self._sign(l1_typed_data(action_hash(action, nonce, vault_address, expires_after), mainnet))

    def sign_user_action(self, action: Mapping[str, Any], *, mainnet: bool,
                         signature_chain_id: str = DEFAULT_SIGNATURE_CHAIN_ID,
                         kind: tuple[str, str, tuple[tuple[str, str], ...]] | None = None
                         ) -> tuple[dict[str, Any], Signature]:
        """Sign a user-signed action (its ``type`` one of :data:`USER_SIGNED`, or ``kind`` given).
        -> (the action to post, with ``signatureChainId``/``hyperliquidChain`` added; the signature)."""
        if kind is None:
            kind = USER_SIGNED.get(str(action.get("type")))
            if kind is None:
                raise ActionError(f"action type {action.get('type')!r} is not a known user-signed action "
                                  f"({', '.join(USER_SIGNED)}); pass kind=")
        _, primary_type, fields = kind
        message = user_signed_message(action, mainnet, signature_chain_id)
        return message, self._sign(user_typed_data(message, primary_type, fields))


def recover_l1_signer(action: Any, nonce: int, signature: Signature, *, mainnet: bool,
                      vault_address: str | None = None, expires_after: int | None = None) -> str:
    """The address that signed an L1 action (what the venue derives: the account or its agent)."""
    typed = l1_typed_data(action_hash(action, nonce, vault_address, expires_after), mainnet)
    return Account.recover_message(encode_typed_data(full_message=typed),
                                   vrs=(signature.v, signature.r, signature.s))


def recover_user_signer(posted: Mapping[str, Any], signature: Signature,
                        kind: tuple[str, str, tuple[tuple[str, str], ...]] | None = None) -> str:
    """The address that signed a user-signed action, from the action as posted (with its
    ``signatureChainId`` and ``hyperliquidChain``)."""
    kind = kind or USER_SIGNED.get(str(posted.get("type")))
    if kind is None or "signatureChainId" not in posted:
        raise ActionError("not a posted user-signed action (type unknown or no signatureChainId)")
    typed = user_typed_data(posted, kind[1], kind[2])
    return Account.recover_message(encode_typed_data(full_message=typed), vrs=(signature.v, signature.r, signature.s))


def exchange_payload(action: Mapping[str, Any], nonce: int, signature: Signature, *,
                     vault_address: str | None = None, expires_after: int | None = None) -> dict[str, Any]:
    """The body POSTed to ``/exchange``."""
    return {"action": dict(action), "nonce": nonce, "signature": signature.to_wire(),
            "vaultAddress": vault_address.lower() if vault_address else None, "expiresAfter": expires_after}
