"""Searchers that read the public mempool: a copycat that re-bids every liquidation it sees.

A ``Copycat`` watches the transactions reaching a chain's public mempool (``ChainSide.watch``).
When one is a liquidation -- a direct ``Pool.liquidationCall`` or a call of tapedeck's executor
(``AaveLiquidator.liquidate``) -- it sends its own ``liquidationCall`` of the same borrower (asking
for as much as the close factor allows) paid from its own funds, with the seen tip raised by
``outbid_bps`` (+1 wei), arriving after its own latency. If it reaches the mempool before the block
is built, the builder's priority-fee order puts it first and the original reverts or gets the
rest. Bundles are never shown to it: private submission is what defeats it.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import eth_abi
from eth_utils import keccak

from tapedeck.sim.chain.pyevm import ChainTx, call_data, to_checksum_address
from tapedeck.sim.inclusion import PendingTx
from tapedeck.sim.onchain import BlockResult, ChainSide

COPY_GAS = 900_000
MAX_UINT = 2**256 - 1
LIQUIDATION_CALL = bytes.fromhex("00a718a9")  # liquidationCall(address,address,address,uint256,bool)
EXECUTOR_LIQUIDATE = keccak(text="liquidate(address,address,address,uint256,(address,bool)[],uint256)")[:4]
# the argument types of the calls a copycat reads, by selector: both start (collateral, debt, user)
_LIQUIDATIONS = {
    LIQUIDATION_CALL: ("address", "address", "address", "uint256", "bool"),  # Pool.liquidationCall
    EXECUTOR_LIQUIDATE: ("address", "address", "address", "uint256", "(address,bool)[]", "uint256"),  # AaveLiquidator
}


@dataclass
class Copycat:
    name: str
    side: ChainSide
    market: Any  # sim.chain.aave_v3.AaveV3Market
    address: str  # funded with the debt asset and approved for the pool (see ``fund``)
    latency_ns: int = 50_000_000
    outbid_bps: int = 1000
    copied: int = 0
    won: int = 0
    lost: int = 0
    copied_from: dict[str, int] = field(default_factory=dict)  # sender of a copied liquidation -> copies
    _seen: set[tuple[str, str]] = field(default_factory=set)  # (user, collateral) copied and not yet mined
    _mine: dict[str, tuple[str, str]] = field(default_factory=dict)  # tx id -> (user, collateral)

    def __post_init__(self) -> None:
        self.side.watch(self.on_public_tx)
        self.side.subscribe(self.on_block)

    def fund(self, amount: int, asset: str = "USDC") -> None:
        self.market.mint(asset, self.address, amount)
        self.market.approve(asset, self.address)

    def on_public_tx(self, tx: PendingTx) -> None:
        if tx.sender == self.address or not isinstance(tx.payload, ChainTx):
            return
        seen = self._decode(tx.payload.data)
        if seen is None:
            return
        collateral, debt, user = seen
        key = (user.lower(), collateral.lower())
        if key in self._seen:
            return
        self._seen.add(key)
        fn = self.market.pool.functions.liquidationCall(collateral, debt, user, MAX_UINT, False)
        tip = tx.max_priority_fee * (10_000 + self.outbid_bps) // 10_000 + 1
        now = self.side.clock.now_ns
        mine = self.side.submit(self.address, to=self.market.pool.address, data=call_data(fn), gas=COPY_GAS,
                                max_priority_fee=tip, max_fee=max(tx.max_fee, 2 * self.side.producer.base_fee) + tip,
                                arrival_ns=now + self.latency_ns, tag=self.name, call=fn)
        self._mine[mine.id] = key
        self.copied += 1
        sender = tx.sender.lower()
        self.copied_from[sender] = self.copied_from.get(sender, 0) + 1

    @staticmethod
    def _decode(data: bytes) -> tuple[str, str, str] | None:
        """(collateral, debt, user) of a liquidation's calldata (checksummed), else None. Decoded by
        eth_abi from the call's argument types (web3's ``decode_function_input`` hashed every function
        of the ABI to find the selector: ~9 ms a call, ~3% of a revm eth-crash run)."""
        types = _LIQUIDATIONS.get(bytes(data[:4]))
        if types is None:
            return None
        try:
            collateral, debt, user = eth_abi.decode(types, bytes(data[4:]))[:3]
        except Exception:  # noqa: BLE001 - not decodable: not a liquidation
            return None
        return to_checksum_address(collateral), to_checksum_address(debt), to_checksum_address(user)

    def on_block(self, result: BlockResult) -> None:
        for out in result.outcomes + result.dropped:
            key = self._mine.pop(out.tx.id, None)
            if key is None:
                continue
            self._seen.discard(key)
            ok = out.status == "success" and any(str(log["user"]).lower() == key[0]
                                                 for log in self.market.liquidation_logs(out.receipt))
            if ok:
                self.won += 1
            else:
                self.lost += 1


def add_copycats(side: ChainSide, market: Any, funder: str, count: int, *, latency_ns: int = 50_000_000,
                 outbid_bps: int = 1000, capital: int = 10**9 * 10**6) -> list[Copycat]:
    """``count`` copycats on ``side``, each a fixed simulation account (``sim_key("copycat", i)``)
    given gas by ``funder`` and ``capital`` of the market's USDC: what a scenario's
    ``copycats`` setting wires (one line in the run's set-up)."""
    from tapedeck.sim.onchain import add_account, sim_key

    out = []
    for i in range(count):
        acct = sim_key("copycat", i)
        add_account(side, acct, funder)
        cat = Copycat(f"copycat-{i + 1}", side, market, acct.address, latency_ns=latency_ns, outbid_bps=outbid_bps)
        cat.fund(capital)
        out.append(cat)
    return out
