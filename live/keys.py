"""The signing key of a live run: from an environment variable or an eth-account encrypted keystore.

``load_key(env=..., keystore=..., password_env=...)`` returns a :class:`SigningKey`. The secret
(the private key, the keystore password) is read once and kept only inside the eth-account
``LocalAccount`` the key object holds privately: ``repr``/``str`` show the address and nothing
else, the object cannot be pickled or copied into a dict (``__slots__``, no ``__getstate__``),
and every error names the variable or file that was wrong, never its contents (exceptions from
eth-account, whose messages may quote the input, are not chained: ``from None``).

Signing (``sign_transaction``, ``sign_text``) is eth-account's; this module only guards the secret.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Mapping

from eth_account import Account
from eth_account.messages import encode_defunct

DEFAULT_KEY_ENV = "TAPEDECK_PRIVATE_KEY"
DEFAULT_PASSWORD_ENV = "TAPEDECK_KEYSTORE_PASSWORD"


class KeyUnavailable(ValueError):
    """No usable signing key; the message says which variable or file, never a secret."""


class SigningKey:
    """A private key that signs but never shows itself (see the module docstring)."""

    __slots__ = ("_account", "address", "origin")

    def __init__(self, account: Any, origin: str) -> None:
        object.__setattr__(self, "_account", account)
        object.__setattr__(self, "address", str(account.address))  # checksummed
        object.__setattr__(self, "origin", origin)  # "env:NAME" or "keystore:PATH" (no secret)

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("SigningKey is immutable")

    def __repr__(self) -> str:
        return f"SigningKey(address={self.address}, from={self.origin}, secret=<hidden>)"

    __str__ = __repr__

    def __format__(self, spec: str) -> str:
        return repr(self)

    def __reduce__(self) -> Any:
        raise TypeError("a SigningKey cannot be pickled (it would carry the secret)")

    def __copy__(self) -> "SigningKey":
        return self

    def __deepcopy__(self, memo: dict[int, Any]) -> "SigningKey":
        return self

    def sign_transaction(self, tx: Mapping[str, Any]) -> tuple[bytes, str]:
        """``(raw signed transaction, its hash "0x...")`` of a transaction dict (eth-account's signer)."""
        signed = self._account.sign_transaction(dict(tx))
        return bytes(signed.raw_transaction), "0x" + bytes(signed.hash).hex()

    def sign_text(self, text: str) -> bytes:
        """EIP-191 ``personal_sign`` of ``text`` (65 bytes r, s, v)."""
        return bytes(self._account.sign_message(encode_defunct(text=text)).signature)


def key_from_hex(secret: str, origin: str) -> SigningKey:
    text = secret.strip()
    body = text[2:] if text[:2].lower() == "0x" else text
    if len(body) != 64 or any(c not in "0123456789abcdefABCDEF" for c in body):
        raise KeyUnavailable(f"{origin}: not a private key (expected 64 hex digits, optionally after 0x; "
                             f"got {len(text)} characters)")
    try:
        account = Account.from_key("0x" + body)
    except Exception:  # noqa: BLE001 - eth-account's message may quote the key
        raise KeyUnavailable(f"{origin}: not a valid secp256k1 private key") from None
    return SigningKey(account, origin)


def key_from_env(name: str = DEFAULT_KEY_ENV, environ: Mapping[str, str] | None = None) -> SigningKey:
    env = os.environ if environ is None else environ
    secret = env.get(name)
    if not secret:
        raise KeyUnavailable(f"environment variable {name} is not set (the hex private key of the sending account)")
    return key_from_hex(secret, f"env:{name}")


def key_from_keystore(path: str | Path, password_env: str = DEFAULT_PASSWORD_ENV,
                      environ: Mapping[str, str] | None = None) -> SigningKey:
    env = os.environ if environ is None else environ
    p = Path(path)
    origin = f"keystore:{p}"
    try:
        data = json.loads(p.read_text())
    except OSError as e:
        raise KeyUnavailable(f"{origin}: cannot read the keystore ({e.strerror})") from None
    except ValueError:
        raise KeyUnavailable(f"{origin}: not a JSON keystore") from None
    password = env.get(password_env)
    if password is None:
        raise KeyUnavailable(f"{origin}: environment variable {password_env} (the keystore password) is not set")
    try:
        secret = Account.decrypt(data, password)
    except ValueError:
        raise KeyUnavailable(f"{origin}: wrong password in {password_env}, or a damaged keystore") from None
    except Exception as e:  # noqa: BLE001 - a malformed keystore: say what, not the contents
        raise KeyUnavailable(f"{origin}: not an eth-account keystore ({type(e).__name__})") from None
    try:
        account = Account.from_key(secret)
    finally:
        del secret
    return SigningKey(account, origin)


def load_key(*, env: str | None = None, keystore: str | Path | None = None, password_env: str | None = None,
             environ: Mapping[str, str] | None = None) -> SigningKey:
    """The run's key: from ``keystore`` (password in ``password_env``) when given, else from the
    environment variable ``env`` (default ``TAPEDECK_PRIVATE_KEY``)."""
    if keystore:
        return key_from_keystore(keystore, password_env or DEFAULT_PASSWORD_ENV, environ)
    return key_from_env(env or DEFAULT_KEY_ENV, environ)
