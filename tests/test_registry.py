"""Typed ids and the pool registry: the shipped pools, user files that extend it, errors by file and field."""
from __future__ import annotations

import pytest

from tapedeck.adapters.registry import V3_TICK_SPACING, RegistryError, load_registry
from tapedeck.domain.ids import Address, AssetId, ChainId, IdError, PoolId

USDC = "0xa0b86991c6218b36c1d19d4a2e9eb0ce3606eb48"
WETH = "0xc02aaa39b223fe8d0a0e5c4f27ead9083c756cc2"

# The pools the registry must ship: address -> (protocol, fee, tick spacing, token0, token1).
SHIPPED = {
    "0xb4e16d0168e52d35cacd2c6185b44281ec28c9dc": ("uniswap-v2", 30, None, "USDC", "WETH"),
    "0x0d4a11d5eeaac28ec3f61d100daf4d40471f1852": ("uniswap-v2", 30, None, "WETH", "USDT"),
    "0xa478c2975ab1ea89e8196811f51a7b7ade33eb11": ("uniswap-v2", 30, None, "DAI", "WETH"),
    "0x88e6a0c2ddd26feeb64f039a2c41296fcb3f5640": ("uniswap-v3", 500, 10, "USDC", "WETH"),
    "0x8ad599c3a0ff1de082011efddc58f1908eb6e6d8": ("uniswap-v3", 3000, 60, "USDC", "WETH"),
    "0x11b815efb8f581194ae79006d24e0d814b7697f6": ("uniswap-v3", 500, 10, "WETH", "USDT"),
    "0x4e68ccd3e89f51c3074ca5072bbac773960dfa36": ("uniswap-v3", 3000, 60, "WETH", "USDT"),
    "0x4585fe77225b41b697c938b018e2ac67ac5a20c0": ("uniswap-v3", 500, 10, "WBTC", "WETH"),
    "0xcbcdf9626bc03e24f779434178a73a0b4bad62ed": ("uniswap-v3", 3000, 60, "WBTC", "WETH"),
    "0x5777d92f208679db4b9778590fa3cab3ac9e2168": ("uniswap-v3", 100, 1, "DAI", "USDC"),
}
DECIMALS = {"USDC": 6, "USDT": 6, "WBTC": 8, "WETH": 18, "DAI": 18}


def test_ids_validate_and_normalise() -> None:
    a = Address.parse("0x88E6A0c2dDD26FEEb64F039a2c41296FcB3f5640")
    assert a.value == "0x88e6a0c2ddd26feeb64f039a2c41296fcb3f5640"
    p = PoolId.of("ethereum", a.value)
    assert str(p) == "ethereum:0x88e6a0c2ddd26feeb64f039a2c41296fcb3f5640" and p == PoolId(ChainId("ethereum"), a)
    for bad in ("0x123", "88e6a0c2ddd26feeb64f039a2c41296fcb3f5640", "0x" + "g" * 40, "", None):
        with pytest.raises(IdError):
            Address.parse(bad)  # type: ignore[arg-type]
    with pytest.raises(IdError):
        Address("0x88E6A0c2dDD26FEEb64F039a2c41296FcB3f5640")  # the constructor takes the normal form only
    with pytest.raises(IdError):
        ChainId("Ethereum Mainnet")
    with pytest.raises(IdError):
        AssetId(ChainId("ethereum"), Address(USDC), "USDC", -1)
    with pytest.raises(IdError):
        AssetId(ChainId("ethereum"), Address(USDC), "USDC", True)  # type: ignore[arg-type]


def test_shipped_registry_has_the_common_pools() -> None:
    r = load_registry()
    assert {addr for (_, addr) in r.pools} == set(SHIPPED)
    for address, (protocol, fee, spacing, sym0, sym1) in SHIPPED.items():
        spec = r.find(address.upper().replace("0X", "0x"))
        assert spec is not None and str(spec.id.chain) == "ethereum"
        assert (spec.protocol, spec.fee, spec.tick_spacing) == (protocol, fee, spacing)
        assert (spec.token0.symbol, spec.token1.symbol) == (sym0, sym1)
        assert (spec.token0.decimals, spec.token1.decimals) == (DECIMALS[sym0], DECIMALS[sym1])
        assert int(spec.token0.address.value, 16) < int(spec.token1.address.value, 16)
        if spacing is not None:
            assert V3_TICK_SPACING[fee] == spacing
    # the same token is the same address in every pool
    seen: dict[str, str] = {}
    for spec in r.pools.values():
        for t in (spec.token0, spec.token1):
            assert seen.setdefault(t.symbol, t.address.value) == t.address.value
    assert r.find("0x" + "12" * 20) is None
    eth = r.chain("ethereum")
    assert eth is not None and eth.chain_id == 1 and eth.anchors


POOL_TOML = """
[[pools]]
chain = "ethereum"
address = "{address}"
protocol = "uniswap-v3"
fee = {fee}
tick_spacing = {spacing}
token0 = {{ address = "{t0}", symbol = "USDC", decimals = 6 }}
token1 = {{ address = "{t1}", symbol = "WETH", decimals = 18 }}
"""


def pool_toml(address: str = "0x" + "ab" * 20, fee: int = 3000, spacing: int = 60, t0: str = USDC,
              t1: str = WETH) -> str:
    return POOL_TOML.format(address=address, fee=fee, spacing=spacing, t0=t0, t1=t1)


def test_user_files_extend_and_override(tmp_path) -> None:
    extra = tmp_path / "mine.toml"
    extra.write_text(pool_toml() + pool_toml("0x88e6a0c2ddd26feeb64f039a2c41296fcb3f5640", 10000, 200))
    r = load_registry([extra])
    assert r.find("0x" + "ab" * 20).fee == 3000  # type: ignore[union-attr]
    assert r.find("0x88e6a0c2ddd26feeb64f039a2c41296fcb3f5640").fee == 10000  # type: ignore[union-attr]
    config = tmp_path / "config.toml"
    config.write_text("[risk]\nkill_switch = false\n[[strategies]]\nkind = 'spread'\n" + pool_toml("0x" + "cd" * 20))
    r = load_registry(configs=[config])
    assert r.find("0x" + "cd" * 20) is not None and r.find("0x" + "ab" * 20) is None


@pytest.mark.parametrize("text, where", [
    (pool_toml(spacing=10), "pools[0]: fee 3000 goes with tick spacing 60"),
    (pool_toml(address="0x1234"), "pools[0].address: "),
    (pool_toml(t0=WETH, t1=USDC), "pools[0]: token0 must be the lower address"),
    (pool_toml().replace("decimals = 6", "decimals = 99"), "pools[0].token0.decimals: "),
    (pool_toml().replace("decimals = 6", 'decimals = "6"'), "pools[0].token0.decimals: "),
    (pool_toml().replace('protocol = "uniswap-v3"', 'protocol = "curve"'), "pools[0].protocol: "),
    (pool_toml() + "colour = 'red'\n", "pools[0].colour: Extra inputs are not permitted"),
    ("[[pool]]\nchain = 'ethereum'\n", "pool: Extra inputs are not permitted"),
    (pool_toml().replace("tick_spacing = 60\n", "").replace("fee = 3000", "fee = 30").replace(
        "uniswap-v3", "uniswap-v2") + pool_toml().replace("tick_spacing = 60", "tick_spacing = 0")
        .replace("ab" * 20, "cd" * 20), "pools[1]: tick_spacing 0 is outside"),
    (pool_toml() + pool_toml(), "pools[1].address: pool 0xabab"),
    ("[[chains]]\nname = 'ethereum'\nchain_id = 1\nseconds_per_block = 12\nanchors = [[1, 5]]\n",
     "chains[0].anchors: anchor (1, 5)"),
    ("not toml [", "not valid TOML"),
])
def test_errors_name_the_file_and_the_field(tmp_path, text: str, where: str) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text(text)
    with pytest.raises(RegistryError) as info:
        load_registry([bad])
    msg = str(info.value)
    assert msg.startswith(f"{bad}: ") and where in msg, msg
    assert "\n" not in msg


def test_unreadable_registry_files(tmp_path) -> None:
    with pytest.raises(RegistryError, match="registry file not found"):
        load_registry([tmp_path / "absent.toml"])
    with pytest.raises(RegistryError, match="is a directory"):
        load_registry([tmp_path])
    binary = tmp_path / "bin.toml"
    binary.write_bytes(b"\xff\xfe[[pools]]")
    with pytest.raises(RegistryError, match="bin.toml"):
        load_registry([binary])


def test_same_address_on_two_chains_needs_the_chain(tmp_path) -> None:
    other = tmp_path / "poly.toml"
    other.write_text(pool_toml("0x88e6a0c2ddd26feeb64f039a2c41296fcb3f5640").replace('"ethereum"', '"polygon"'))
    r = load_registry([other])
    with pytest.raises(RegistryError, match="several chains"):
        r.find("0x88e6a0c2ddd26feeb64f039a2c41296fcb3f5640")
    assert r.find("0x88e6a0c2ddd26feeb64f039a2c41296fcb3f5640", "polygon").fee == 3000  # type: ignore[union-attr]
    assert r.find("0x88e6a0c2ddd26feeb64f039a2c41296fcb3f5640", "ethereum").fee == 500  # type: ignore[union-attr]


def test_arbitrage_pools_take_fee_spacing_and_profit_asset_from_the_registry() -> None:
    from tapedeck.domain.strategies import ConfigError
    from tapedeck.runtime.strategy_loader import build_engine, with_pool_identity

    v2, v3, v3_30 = ("0xb4e16d0168e52d35cacd2c6185b44281ec28c9dc", "0x88e6a0c2ddd26feeb64f039a2c41296fcb3f5640",
                     "0x8ad599c3a0ff1de082011efddc58f1908eb6e6d8")
    base = {"risk": {"default_max_notional": 1, "default_max_outstanding": 1}}
    entry = {"kind": "cross_pool_arb", "name": "a", "v2_pool": v2, "v3_pool": v3_30}
    done = with_pool_identity({**base, "strategies": [entry]})["strategies"][0]
    assert (done["v3_fee_pips"], done["v3_tick_spacing"], done["v2_fee_bps"], done["profit_token"]) == (3000, 60, 30, "USDC")
    assert build_engine({**base, "strategies": [entry]}).strategies[0].fee_pips == 3000  # not the 500 default
    with pytest.raises(ConfigError, match="v3_fee_pips = 500 contradicts the pool registry's 3000"):
        build_engine({**base, "strategies": [{**entry, "v3_fee_pips": 500}]})
    unknown = {**entry, "v3_pool": "pool-v3", "v3_fee_pips": 100, "v3_tick_spacing": 1}
    kept = with_pool_identity({**base, "strategies": [unknown]})["strategies"][0]
    assert (kept["v3_fee_pips"], kept["v3_tick_spacing"], kept["profit_token"]) == (100, 1, "USDC")  # the V2 pair's token0
    with pytest.raises(ConfigError, match="v3_pool 0xb4e1.* is a uniswap-v2 pool in the registry"):
        with_pool_identity({**base, "strategies": [{**entry, "v3_pool": v2}]})
