"""The sim's USDC and WETH: one pair of test tokens shared by the Aave market and the DEX pools.

Why: a liquidation's executor sells the seized collateral through the scenario's pools, so the
pools must trade the market's own tokens. Their addresses must also be known before the chain
exists, so a sim config can name them (``sim.liquidator_config``). Both tokens are deployed by a
fixed simulation account (``sim_key("sim-tokens")``) at its nonces 0 and 1, USDC at the lower of
the two addresses: it is token0 of every pool, as on mainnet, which the DEX agents' price
arithmetic relies on. The addresses follow from the key alone: the same on every backend and run.
"""
from __future__ import annotations

from typing import Any

from tapedeck.sim.chain.pyevm import create_address

TOKENS = (("USD Coin", "USDC", 6), ("Wrapped Ether", "WETH", 18))


def _deployer() -> Any:
    from tapedeck.sim.onchain import sim_key

    return sim_key("sim-tokens")


def token_addresses() -> dict[str, str]:
    """Symbol -> checksummed address of the sim's tokens (USDC below WETH), without a chain."""
    me = _deployer().address
    low, high = sorted((create_address(me, 0), create_address(me, 1)), key=lambda a: int(a, 16))
    return {"USDC": low, "WETH": high}


def deploy_tokens(side: Any, funder: str) -> dict[str, Any]:
    """Deploy the two tokens (``MintableERC20`` of ``@aave/core-v3``) on ``side`` at the addresses
    ``token_addresses`` names; symbol -> web3 contract. Raises if the account was used before."""
    from tapedeck.sim.chain.artifacts import load
    from tapedeck.sim.chain.pyevm import deploy
    from tapedeck.sim.onchain import add_account

    acct = _deployer()
    add_account(side, acct, funder)
    w3 = side.w3
    if w3.eth.get_transaction_count(acct.address) != 0:
        raise RuntimeError("the sim token account has sent before: its token addresses would differ")
    want = token_addresses()
    first = "USDC" if want["USDC"] == create_address(acct.address, 0) else "WETH"
    art = load("@aave/core-v3", "MintableERC20")
    made = {}
    for name, sym, dec in (TOKENS if first == "USDC" else TOKENS[::-1]):
        made[sym] = deploy(w3, art, name, sym, dec, sender=acct.address, gas=2_000_000)
    assert {s: c.address for s, c in made.items()} == want
    return {"USDC": made["USDC"], "WETH": made["WETH"]}
