"""The EVM gateway built from a config table: errors name the key, ``execute`` refuses to build
without a key, secrets come only from the environment or a keystore and never show in the
gateway's repr or health."""
from __future__ import annotations

import json

import pytest
from eth_account import Account

from tapedeck.live.evm_gateway import EvmGatewayConfigError, build_evm_gateway
from tapedeck.live.keys import KeyUnavailable

SECRET = "0x" + "3e" * 32
AUTH = "0x" + "6f" * 32
TABLE = {"chain": "anvil", "rpc_url": "http://127.0.0.1:1", "liquidator": "0x" + "11" * 20,
         "aave_pool": "0x" + "22" * 20, "fees": {"max_priority_fee_cap": 10**10}}


def test_unknown_and_missing_keys_are_named() -> None:
    with pytest.raises(EvmGatewayConfigError, match=r"\[gateways\.evm\]: unknown key\(s\) colour"):
        build_evm_gateway({**TABLE, "colour": 1}, execute=False, flush=None, environ={}, where="[gateways.evm]")
    with pytest.raises(EvmGatewayConfigError, match="rpc_url is required"):
        build_evm_gateway({"chain": "x"}, execute=False, flush=None, environ={})
    with pytest.raises(EvmGatewayConfigError, match="fees: .*headroom_bps"):
        build_evm_gateway({**TABLE, "fees": {"headroom_bps": 5}}, execute=False, flush=None, environ={})
    with pytest.raises(EvmGatewayConfigError, match="sender is required in paper mode"):
        build_evm_gateway(TABLE, execute=False, flush=None, environ={})


def test_execute_needs_a_key_and_the_flush() -> None:
    with pytest.raises(KeyUnavailable, match="TAPEDECK_PRIVATE_KEY is not set"):
        build_evm_gateway(TABLE, execute=True, flush=lambda: None, environ={})
    with pytest.raises(EvmGatewayConfigError, match="flush"):
        build_evm_gateway(TABLE, execute=True, flush=None, environ={"TAPEDECK_PRIVATE_KEY": SECRET})


def test_secrets_from_env_and_keystore_never_show(tmp_path) -> None:
    env = {"BOT": SECRET, "FB": AUTH}
    gw = build_evm_gateway({**TABLE, "key_env": "BOT", "relay_url": "http://127.0.0.1:2/?auth=TOKEN",
                            "relay_name": "local", "relay_auth_env": "FB"}, execute=True, flush=lambda: None,
                           environ=env)
    assert gw.key is not None and gw.key.address == Account.from_key(SECRET).address
    assert gw.relay is not None and gw.relay.auth_key.address == Account.from_key(AUTH).address
    assert gw.source == "live:evm:anvil" and gw.sender == gw.key.address
    shown = repr(gw) + repr(gw.key) + repr(gw.relay) + json.dumps(gw.health(), default=str)
    for needle in (SECRET[2:], AUTH[2:], "TOKEN"):
        assert needle not in shown
    store = tmp_path / "k.json"
    store.write_text(json.dumps(Account.encrypt(SECRET, "pw", kdf="pbkdf2", iterations=2)))
    gw2 = build_evm_gateway({**TABLE, "keystore": str(store), "password_env": "PW"}, execute=True,
                            flush=lambda: None, environ={"PW": "pw"})
    assert gw2.key is not None and gw2.key.address == gw.key.address
    paper = build_evm_gateway({**TABLE, "sender": gw.key.address, "relay_url": "http://127.0.0.1:2/"},
                              execute=False, flush=None, environ={})
    assert paper.key is None and paper.relay is not None and paper.relay.auth_key.origin == "ephemeral"
    assert paper.source == "paper:evm:anvil"
