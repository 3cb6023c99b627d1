"""The simulated Aave v3 market's logs as the domain's input events, block by block.

Why: the core folds a borrower book from events only (issue 9), so the sim must say what the
chain said, in the chain's order, and nothing it guessed. :class:`AaveLogReader` decodes every
receipt of a block with the one shared decoder (``adapters.evm_logs.EventDecoder`` over
``adapters.evm_abis``) and maps each log, in log order, to one event:

=============================================  =============================================
log (emitter)                                  event
=============================================  =============================================
Pool ``ReserveDataUpdated``                    ``AaveReserveDataUpdated``
Pool ``Supply`` / ``Withdraw``                 ``AaveSupplied`` / ``AaveWithdrawn``
Pool ``Borrow`` / ``Repay``                    ``AaveBorrowed`` / ``AaveRepaid``
Pool ``ReserveUsedAsCollateralEnabled/...``    ``AaveCollateralToggled``
Pool ``FlashLoan`` / ``UserEModeSet``          ``AaveFlashLoaned`` / ``AaveEModeSet``
Pool ``LiquidationCall``                       ``AaveLiquidationObserved``
aToken ``BalanceTransfer``                     ``AaveATokenTransferred`` (scaled amount, index)
AaveOracle ``AssetSourceUpdated`` (a reserve)  ``AaveReserveConfigured`` (new ``price_feed``),
                                               then ``OracleUpdated`` (that feed's answer)
aggregator ``AnswerUpdated`` (a current feed)  ``OracleUpdated``
=============================================  =============================================

Other Pool logs (``MintedToTreasury``, ``IsolationModeTotalDebtUpdated``, ...) have no event in the
vocabulary and are skipped. The sim's oracle transmitter deploys a new ``MockAggregator`` per round
(it has no setter) and points ``AaveOracle.setAssetSources`` at it, so a price move on chain is an
``AssetSourceUpdated``: the reserve's snapshot is re-emitted with the new feed (its indexes and
rates as the last ``ReserveDataUpdated`` left them, no read), then the feed's answer (from its
constructor's ``AnswerUpdated`` in the same block). A book that keeps the latest
``AaveReserveConfigured`` per reserve therefore always maps ``OracleUpdated.feed`` to its reserve.

:meth:`AaveLogReader.snapshot` gives the start of a run: one ``AaveReserveConfigured`` per reserve
(``getReserveData`` + its configuration bitmap, ``AaveOracle.getSourceOfAsset``), one
``AaveEModeConfigured`` per e-mode category a reserve is in, and one ``OracleUpdated`` per feed
(``AaveOracle.getAssetPrice``, in the oracle's base-currency decimals: AaveOracle does not rescale
answers). ``OracleUpdated.decimals`` is always those base-currency decimals.

Events carry ``ts`` = the block's time (the sim's) and the sim's block number (0 for the set-up
before the sim's first block); ``tx``, ``log_index`` and ``block_ts`` (the chain block's timestamp,
seconds) are the chain's.
"""
from __future__ import annotations

from dataclasses import dataclass

from msgspec.structs import replace
from typing import Any, Iterable, Mapping

from tapedeck.adapters import evm_abis
from tapedeck.adapters.evm_logs import EventDecoder
from tapedeck.domain import aave_v3 as aave
from tapedeck.domain import events as ev

_POOL = EventDecoder(evm_abis.AAVE_V3_POOL)
_MARKET = EventDecoder(evm_abis.aave_sim_market_abi())


def _hex(value: Any) -> str:
    if isinstance(value, (bytes, bytearray)):
        return "0x" + bytes(value).hex()
    text = str(value)
    return text if text.startswith("0x") else "0x" + text


@dataclass
class _Reserve:
    """What the reader knows of a reserve between snapshots: its latest snapshot and the rates and
    indexes of its latest ``ReserveDataUpdated`` (with the chain time of that block)."""

    configured: ev.AaveReserveConfigured


class AaveLogReader:
    """Decodes one Aave v3 market's logs (pool, aTokens, oracle, feeds) into input events."""

    def __init__(self, market: Any, chain: str, source: str):
        self.market, self.chain, self.source = market, chain, source
        self.pool = market.pool.address.lower()
        self.oracle = market.oracle.address.lower()
        self.atokens = {t.address.lower(): a.lower() for a, t in market.atokens.items()}
        self.reserves: dict[str, _Reserve] = {}
        self.feeds: dict[str, list[str]] = {}  # price feed -> reserves reading it
        self.answers: dict[str, tuple[int, int]] = {}  # aggregator -> (answer, round) of its last AnswerUpdated
        self.rounds: dict[str, int] = {}  # aggregator -> the sim oracle round it carries (set by the transmitter)
        self.base_decimals = len(str(market.oracle.functions.BASE_CURRENCY_UNIT().call())) - 1

    # ------------------------------------------------------------------ the snapshot at the start

    def snapshot(self, block: int, ts: int, *, prices: bool = True) -> list[ev.Event]:
        """Every reserve, e-mode category and (``prices``) price of the market as its getters give them now."""
        m = self.market
        out: list[ev.Event] = []
        emodes: list[int] = []
        for asset in m.pool.functions.getReservesList().call():
            d = m.pool.functions.getReserveData(asset).call()
            cfg = aave.decode_reserve_configuration(d[0][0])
            feed = m.oracle.functions.getSourceOfAsset(asset).call().lower()
            e = ev.AaveReserveConfigured(
                ts=ts, source=self.source, chain=self.chain, pool=self.pool, block=block, reserve=asset.lower(),
                reserve_id=d[7], decimals=cfg.decimals, ltv=cfg.ltv, liquidation_threshold=cfg.liquidation_threshold,
                liquidation_bonus=cfg.liquidation_bonus, reserve_factor=cfg.reserve_factor,
                liquidation_protocol_fee=cfg.liquidation_protocol_fee, emode_category=cfg.emode_category,
                active=cfg.active, frozen_reserve=cfg.frozen, borrowing_enabled=cfg.borrowing_enabled,
                a_token=d[8].lower(), variable_debt_token=d[10].lower(), price_feed=feed, liquidity_index=d[1],
                variable_borrow_index=d[3], liquidity_rate=d[2], variable_borrow_rate=d[4],
                last_update_timestamp=d[6])
            self._configure(e)
            out.append(e)
            if cfg.emode_category and cfg.emode_category not in emodes:
                emodes.append(cfg.emode_category)
        for category in sorted(emodes):
            c = m.pool.functions.getEModeCategoryData(category).call()
            out.append(ev.AaveEModeConfigured(ts=ts, source=self.source, chain=self.chain, pool=self.pool,
                                              block=block, category=category, ltv=c[0], liquidation_threshold=c[1],
                                              liquidation_bonus=c[2], price_source=c[3].lower(), label=c[4]))
        for feed, reserves in self.feeds.items() if prices else ():
            price = m.oracle.functions.getAssetPrice(m.w3.to_checksum_address(reserves[0])).call()
            out.append(self._oracle(feed, price, self.rounds.get(feed, 0), ts))
        return out

    def _configure(self, e: ev.AaveReserveConfigured) -> None:
        old = self.reserves.get(e.reserve)
        if old is not None and old.configured.price_feed in self.feeds:
            readers = self.feeds[old.configured.price_feed]
            readers.remove(e.reserve)
            if not readers:
                del self.feeds[old.configured.price_feed]
        self.reserves[e.reserve] = _Reserve(e)
        self.feeds.setdefault(e.price_feed, []).append(e.reserve)

    def _oracle(self, feed: str, answer: int, round_id: int, ts: int) -> ev.OracleUpdated:
        return ev.OracleUpdated(ts=ts, source=self.source, feed=feed, chain=self.chain, round_id=round_id,
                                answer=answer, decimals=self.base_decimals)

    # ------------------------------------------------------------------ a block's logs

    def block_events(self, receipts: Iterable[Mapping[str, Any]], block: int, ts: int,
                     chain_time: int) -> list[ev.Event]:
        """The events of ``receipts`` (one block's, in block order); ``block`` is the sim's number,
        ``ts`` its time (ns), ``chain_time`` the chain block's timestamp (s: reserves' last update)."""
        out: list[ev.Event] = []
        for receipt in receipts:
            for log in receipt["logs"]:
                topics = log["topics"]
                if not topics:
                    continue
                emitter = str(log["address"]).lower()
                if emitter == self.pool:
                    if _POOL.knows(topics[0]):
                        self._pool_log(_POOL.decode(topics, log["data"]), log, block, ts, chain_time, out)
                elif _MARKET.knows(topics[0]):
                    self._market_log(emitter, _MARKET.decode(topics, log["data"]), log, block, ts, chain_time, out)
        return out

    def _where(self, log: Mapping[str, Any], block: int, ts: int, chain_time: int) -> dict[str, Any]:
        return {"ts": ts, "source": self.source, "chain": self.chain, "block": block,
                "tx": _hex(log["transactionHash"]), "log_index": int(log["logIndex"]), "block_ts": chain_time}

    def _pool_log(self, d: Any, log: Mapping[str, Any], block: int, ts: int, chain_time: int,
                  out: list[ev.Event]) -> None:
        a, w = d.args, self._where(log, block, ts, chain_time)
        name = d.event
        if name == "ReserveDataUpdated":
            out.append(ev.AaveReserveDataUpdated(
                **w, reserve=a["reserve"], liquidity_rate=a["liquidityRate"], stable_borrow_rate=a["stableBorrowRate"],
                variable_borrow_rate=a["variableBorrowRate"], liquidity_index=a["liquidityIndex"],
                variable_borrow_index=a["variableBorrowIndex"]))
            r = self.reserves.get(a["reserve"])
            if r is not None:
                r.configured = replace(r.configured, liquidity_index=a["liquidityIndex"],
                                       variable_borrow_index=a["variableBorrowIndex"],
                                       liquidity_rate=a["liquidityRate"], variable_borrow_rate=a["variableBorrowRate"],
                                       last_update_timestamp=chain_time)
        elif name == "Supply":
            out.append(ev.AaveSupplied(**w, reserve=a["reserve"], user=a["user"], on_behalf_of=a["onBehalfOf"],
                                       amount=a["amount"], referral=a["referralCode"]))
        elif name == "Withdraw":
            out.append(ev.AaveWithdrawn(**w, reserve=a["reserve"], user=a["user"], to=a["to"], amount=a["amount"]))
        elif name == "Borrow":
            out.append(ev.AaveBorrowed(**w, reserve=a["reserve"], user=a["user"], on_behalf_of=a["onBehalfOf"],
                                       amount=a["amount"], rate_mode=a["interestRateMode"],
                                       borrow_rate=a["borrowRate"], referral=a["referralCode"]))
        elif name == "Repay":
            out.append(ev.AaveRepaid(**w, reserve=a["reserve"], user=a["user"], repayer=a["repayer"],
                                     amount=a["amount"], use_atokens=a["useATokens"]))
        elif name in ("ReserveUsedAsCollateralEnabled", "ReserveUsedAsCollateralDisabled"):
            out.append(ev.AaveCollateralToggled(**w, reserve=a["reserve"], user=a["user"],
                                                enabled=name.endswith("Enabled")))
        elif name == "FlashLoan":
            out.append(ev.AaveFlashLoaned(**w, target=a["target"], initiator=a["initiator"], asset=a["asset"],
                                          amount=a["amount"], rate_mode=a["interestRateMode"], premium=a["premium"],
                                          referral=a["referralCode"]))
        elif name == "UserEModeSet":
            out.append(ev.AaveEModeSet(**w, user=a["user"], category=a["categoryId"]))
        elif name == "LiquidationCall":
            out.append(ev.AaveLiquidationObserved(
                **w, collateral_asset=a["collateralAsset"], debt_asset=a["debtAsset"], user=a["user"],
                debt_to_cover=a["debtToCover"], liquidated_collateral=a["liquidatedCollateralAmount"],
                liquidator=a["liquidator"], receive_atoken=a["receiveAToken"]))

    def _market_log(self, emitter: str, d: Any, log: Mapping[str, Any], block: int, ts: int, chain_time: int,
                    out: list[ev.Event]) -> None:
        a = d.args
        if d.event == "BalanceTransfer":
            reserve = self.atokens.get(emitter)
            if reserve is not None:
                out.append(ev.AaveATokenTransferred(**self._where(log, block, ts, chain_time), reserve=reserve,
                                                    sender=a["from"],
                                                    recipient=a["to"], scaled_amount=a["value"], index=a["index"]))
        elif d.event == "AssetSourceUpdated" and emitter == self.oracle:
            r = self.reserves.get(a["asset"])
            if r is None:
                return
            self._configure(replace(r.configured, ts=ts, block=block, price_feed=a["source"]))
            out.append(self.reserves[a["asset"]].configured)
            known = self.answers.get(a["source"])
            if known is None:  # a feed that has not logged in this run: ask the oracle
                price = self.market.oracle.functions.getAssetPrice(self.market.w3.to_checksum_address(a["asset"])).call()
                known = (price, 0)
            out.append(self._oracle(a["source"], known[0], self.rounds.get(a["source"], known[1]), ts))
        elif d.event == "AnswerUpdated":
            self.answers[emitter] = (a["current"], a["roundId"])
            if emitter in self.feeds:  # a feed in use moved its answer
                out.append(self._oracle(emitter, a["current"], self.rounds.get(emitter, a["roundId"]), ts))
