"""The sim's py-evm hashes with safe-pysha3 when it is installed (``sim.chain.pyevm``): the same
digests as eth-hash's pycryptodome backend, which it replaces as eth-hash's automatic choice."""
from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

import tapedeck.sim.chain.pyevm as pyevm


def test_keccak_is_pysha3s_when_it_is_installed() -> None:
    pytest.importorskip("sha3")
    from eth_hash.auto import keccak
    from eth_hash.backends.pysha3 import backend

    assert pyevm.KECCAK_FROM_PYSHA3
    assert keccak.hasher == backend.keccak256


@given(st.binary(max_size=600))
def test_keccak_gives_pycryptodomes_digests(data: bytes) -> None:
    from eth_hash.auto import keccak
    from eth_hash.backends.pycryptodome import keccak256
    from eth_utils import keccak as utils_keccak

    assert keccak(data) == keccak256(data) == utils_keccak(data)
    pre = keccak.new(data[:7])
    pre.update(data[7:])
    assert pre.digest() == keccak256(data)
