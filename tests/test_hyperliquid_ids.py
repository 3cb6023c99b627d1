"""Hyperliquid coin names (HIP-3 ``dex:COIN``, spot ``@N`` / pairs, outcomes) and asset ids from meta data.

The meta shapes are the info endpoint's (``meta``, ``spotMeta``, ``perpDexs``); the example ids are
the docs' (``asset-ids.md``: BTC = 0 on mainnet, testnet ``test:ABC`` = 110000, PURR/USDC = 10000,
HYPE spot index 107 on mainnet)."""
from __future__ import annotations

import pytest

from tapedeck.adapters.hyperliquid_ids import (HIP3, OUTCOME, PERP, SPOT, AssetDirectory, Coin, CoinError,
                                               UnknownAsset, describe_asset_id, format_coin, hip3, parse_coin)

META = {"universe": [{"name": "BTC", "szDecimals": 5, "maxLeverage": 40}, {"name": "ETH", "szDecimals": 4},
                     {"name": "kPEPE", "szDecimals": 0}]}
SPOT_META = {
    "tokens": [{"name": "USDC", "szDecimals": 8, "weiDecimals": 8, "index": 0},
               {"name": "PURR", "szDecimals": 0, "weiDecimals": 5, "index": 1},
               {"name": "HYPE", "szDecimals": 2, "weiDecimals": 8, "index": 150}],
    "universe": [{"name": "PURR/USDC", "tokens": [1, 0], "index": 0, "isCanonical": True},
                 {"name": "@107", "tokens": [150, 0], "index": 107, "isCanonical": False}],
}
PERP_DEXS = [None, {"name": "test", "fullName": "test dex", "deployer": "0x" + "1" * 40},
             {"name": "xyz", "fullName": "XYZ", "deployer": "0x" + "2" * 40}]
DEX_METAS = {"test": {"universe": [{"name": "test:ABC", "szDecimals": 2}]},
             "xyz": {"universe": [{"name": "xyz:AAPL", "szDecimals": 3}, {"name": "NVDA", "szDecimals": 3}]}}


@pytest.fixture(scope="module")
def directory() -> AssetDirectory:
    return AssetDirectory(META, SPOT_META, PERP_DEXS, DEX_METAS)


@pytest.mark.parametrize("text,coin", [
    ("BTC", Coin(PERP, "", "BTC")), ("kPEPE", Coin(PERP, "", "kPEPE")), ("xyz:NVDA", Coin(HIP3, "xyz", "NVDA")),
    ("@107", Coin(SPOT, "", "107")), ("PURR/USDC", Coin(SPOT, "", "PURR/USDC")), ("#10", Coin(OUTCOME, "", "10")),
])
def test_coin_names_parse_and_format_back(text: str, coin: Coin) -> None:
    assert parse_coin(text) == coin
    assert format_coin(coin) == text == str(coin) == coin.name


@pytest.mark.parametrize("text,match", [
    ("", "empty"), ("xyz:", "coin ''"), (":NVDA", "dex ''"), ("XYZ:NVDA", "lowercase dex"), ("a:b:c", "coin 'b:c'"),
    ("@", "@<index>"), ("@01", "@<index>"), ("@-1", "@<index>"), ("#x", "outcome"), ("PURR/", "BASE/QUOTE"),
    ("BT C", "coin symbol"), ("x" * 65, "longer than 64"), (7, "string"),
])
def test_bad_coin_names_say_why(text: object, match: str) -> None:
    with pytest.raises(CoinError, match=match):
        parse_coin(text)


def test_hip3_helper_checks_both_parts() -> None:
    assert hip3("xyz", "NVDA").name == "xyz:NVDA"
    with pytest.raises(CoinError):
        hip3("xyz", "")


def test_asset_ids_follow_the_docs(directory: AssetDirectory) -> None:
    assert directory.asset_id("BTC") == 0 and directory.asset_id("ETH") == 1 and directory.asset_id("kPEPE") == 2
    assert directory.asset_id("PURR/USDC") == 10000
    assert directory.asset_id("@107") == 10107 == directory.asset_id("HYPE/USDC")  # token-name alias
    assert directory.asset_id("test:ABC") == 110000  # the docs' example
    assert directory.asset_id("xyz:AAPL") == 120000 and directory.asset_id("xyz:NVDA") == 120001  # bare NVDA prefixed
    assert directory.asset_id("#10") == 100000010
    assert directory.sz_decimals("BTC") == 5 and directory.sz_decimals("@107") == 2 and directory.sz_decimals("xyz:NVDA") == 3
    for coin in ("BTC", "ETH", "kPEPE", "PURR/USDC", "@107", "test:ABC", "xyz:AAPL", "xyz:NVDA"):
        assert directory.coin(directory.asset_id(coin)) == coin
    assert directory.coin(100000010) == "#10"
    assert [describe_asset_id(i) for i in (3, 10107, 120001, 100000010)] == [
        "perp index 3", "spot index 107", "HIP-3 dex 2 index 1", "outcome encoding 10"]


@pytest.mark.parametrize("coin,match", [
    ("SOL", "not in meta"), ("@5", "not in spotMeta"), ("xyz:TSLA", "the meta of dex 'xyz'"),
    ("abc:TSLA", "dex 'abc' unknown; known: test, xyz"), ("bad name", "coin symbol"),
])
def test_unknown_coins_are_clear_errors(directory: AssetDirectory, coin: str, match: str) -> None:
    with pytest.raises((UnknownAsset, CoinError), match=match):
        directory.asset_id(coin)


def test_unknown_asset_id(directory: AssetDirectory) -> None:
    with pytest.raises(UnknownAsset, match=r"unknown asset id 130000 \(HIP-3 dex 3 index 0\)"):
        directory.coin(130000)


@pytest.mark.parametrize("args,match", [
    (dict(meta={"universe": [{"name": "BTC"}]}), "missing 'szDecimals'"),
    (dict(meta={"universe": [{"name": "BTC", "szDecimals": "5"}]}), "szDecimals is str"),
    (dict(meta={"universe": [{"name": "BTC", "szDecimals": 5}, {"name": "BTC", "szDecimals": 5}]}), "listed twice"),
    (dict(meta={"universe": [{"name": "xyz:BTC", "szDecimals": 5}]}), "not a main-dex perp"),
    (dict(perp_dexs=[{"name": "a"}]), "perpDexs\\[0\\] must be null"),
    (dict(perp_dexs=[None, {"name": "a"}, {"name": "a"}]), "twice"),
    (dict(perp_dexs=[None, {"name": "a"}], dex_metas={"b": {"universe": []}}), "which perpDexs does not list"),
    (dict(perp_dexs=[None, {"name": "a"}], dex_metas={"a": {"universe": [{"name": "b:X", "szDecimals": 1}]}}),
     "not a coin of dex 'a'"),
    (dict(spot_meta={"tokens": [], "universe": [{"name": "@1", "tokens": [1, 0], "index": 1}]}), "two tokens"),
])
def test_malformed_meta_is_refused(args: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        AssetDirectory(**args)
