"""The signing key: from the environment or an eth-account keystore; never shown.

A planted key and password appear in no repr, str, format, error message or traceback text, and
the key object cannot be pickled; what it signs recovers to its address."""
from __future__ import annotations

import copy
import json
import pickle
import traceback

import pytest
from eth_account import Account
from eth_account.messages import encode_defunct

from tapedeck.live.keys import KeyUnavailable, SigningKey, key_from_env, key_from_keystore, load_key

SECRET = "0x" + "9a" * 31 + "17"  # planted: must never be echoed
PASSWORD = "correct horse battery staple 7781"


def _texts(obj: object) -> list[str]:
    return [repr(obj), str(obj), f"{obj}", f"{obj!r}", "%s" % (obj,)]


def _no_secret(text: str) -> None:
    for needle in (SECRET, SECRET[2:], SECRET[2:].upper(), PASSWORD):
        assert needle not in text


def test_key_from_env_signs_and_never_shows_itself() -> None:
    key = key_from_env("BOT_KEY", {"BOT_KEY": SECRET})
    assert key.address == Account.from_key(SECRET).address
    for t in _texts(key):
        _no_secret(t)
        assert key.address in t and "hidden" in t
    assert not hasattr(key, "__dict__")
    with pytest.raises(TypeError):
        pickle.dumps(key)
    assert copy.deepcopy(key) is key
    with pytest.raises(AttributeError):
        key.address = "x"  # type: ignore[misc]
    sig = key.sign_text("0xabc")
    assert Account.recover_message(encode_defunct(text="0xabc"), signature=sig) == key.address
    raw, h = key.sign_transaction({"type": 2, "chainId": 1, "nonce": 0, "gas": 21000, "maxFeePerGas": 2,
                                   "maxPriorityFeePerGas": 1, "to": key.address, "value": 0, "data": b""})
    assert h.startswith("0x") and len(h) == 66 and raw[0] == 2


@pytest.mark.parametrize("bad", [SECRET[:-2], SECRET + "00", SECRET[:-1] + "g", "0x" + "00" * 32])
def test_a_bad_key_is_refused_without_echoing_it(bad: str) -> None:
    with pytest.raises(KeyUnavailable) as info:
        key_from_env("BOT_KEY", {"BOT_KEY": bad})
    text = "".join(traceback.format_exception(info.value))
    assert "BOT_KEY" in text
    assert bad[2:] not in text and bad not in text
    assert info.value.__cause__ is None and (info.value.__context__ is None or info.value.__suppress_context__)


def test_missing_env_names_the_variable() -> None:
    with pytest.raises(KeyUnavailable, match="TAPEDECK_PRIVATE_KEY is not set"):
        load_key(environ={})


def test_keystore_with_password_from_env(tmp_path) -> None:
    store = tmp_path / "key.json"
    store.write_text(json.dumps(Account.encrypt(SECRET, PASSWORD, kdf="pbkdf2", iterations=2)))
    key = load_key(keystore=store, password_env="KS_PW", environ={"KS_PW": PASSWORD})
    assert isinstance(key, SigningKey) and key.address == Account.from_key(SECRET).address
    for t in _texts(key):
        _no_secret(t)
    assert str(store) in repr(key)
    with pytest.raises(KeyUnavailable) as info:
        key_from_keystore(store, "KS_PW", {"KS_PW": PASSWORD + "x"})
    text = "".join(traceback.format_exception(info.value))
    assert "wrong password in KS_PW" in text
    _no_secret(text)
    assert (PASSWORD + "x") not in text
    with pytest.raises(KeyUnavailable, match="KS_PW .* is not set"):
        key_from_keystore(store, "KS_PW", {})
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(KeyUnavailable, match="not a JSON keystore"):
        key_from_keystore(tmp_path / "bad.json", "KS_PW", {"KS_PW": PASSWORD})
    with pytest.raises(KeyUnavailable, match="cannot read"):
        key_from_keystore(tmp_path / "none.json", "KS_PW", {"KS_PW": PASSWORD})
