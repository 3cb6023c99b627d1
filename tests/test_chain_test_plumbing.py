"""The contract tests' chain plumbing (tests/conftest.py) does on every backend what they rely on:
``revert_again`` restores one snapshot as often as asked (anvil's own ``evm_revert`` uses it up),
``time_travel(ts)`` mines one empty block stamped ``ts - 1`` and the next block is stamped ``ts``.
(anvil, a node process, is marked ``contract`` as in tests/test_chain_blocks.py.)"""
from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import CHAIN_BACKENDS, new_chain, revert_again, time_travel


@pytest.fixture(params=[pytest.param(b, marks=pytest.mark.contract) if b == "anvil" else b for b in CHAIN_BACKENDS])
def chain(request: Any) -> Any:
    return new_chain(request)


def send(chain: Any, value: int) -> Any:
    w3 = chain.w3
    a, b = chain.accounts[:2]
    return w3.eth.wait_for_transaction_receipt(w3.eth.send_transaction({"from": a, "to": b, "value": value,
                                                                        "gas": 21_000}))


def test_revert_again_restores_the_same_snapshot_every_time(chain: Any) -> None:
    w3, b = chain.w3, chain.accounts[1]
    base = chain.snapshot()
    before, height = w3.eth.get_balance(b), w3.eth.block_number
    for value in (1, 2, 3):
        send(chain, value)
        assert w3.eth.get_balance(b) == before + value
        revert_again(chain, base)
        assert (w3.eth.get_balance(b), w3.eth.block_number) == (before, height)


def test_time_travel_stamps_the_second_before_and_the_next_block_at_it(chain: Any) -> None:
    w3 = chain.w3
    to = w3.eth.get_block("latest")["timestamp"] + 3_600
    time_travel(chain, to)
    assert w3.eth.get_block("latest")["timestamp"] == to - 1
    send(chain, 1)
    assert w3.eth.get_block("latest")["timestamp"] == to
