"""The traders' and arbitrageurs' swaps (``sim.dex_agents.SwapCall``), their calldata written out, equal
``PreparedCall``'s (eth_abi's) byte for byte on generated arguments, and what eth_abi refuses is refused
the same way (an int out of range, a bool)."""
from __future__ import annotations

from typing import Any

import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from tapedeck.sim.chain.pyevm import PreparedCall
from tapedeck.sim.dex_agents import V2_SWAP_EXACT_IN, V3_EXACT_INPUT_SINGLE, SwapCall

_address = st.binary(min_size=20, max_size=20).map(lambda b: __import__("eth_utils").to_checksum_address(b))


def _uint(bits: int) -> Any:
    edge = st.sampled_from([0, 1, (1 << bits) - 1, 1 << bits, -1])  # the range's ends and just past them
    return st.one_of(edge, st.integers(min_value=0, max_value=(1 << bits) - 1))


def _same(fn_name: str, types: tuple[str, ...], args: tuple[Any, ...]) -> None:
    try:
        want = PreparedCall(None, fn_name, types, args)
    except Exception as e:  # noqa: BLE001 - refused: SwapCall refuses with the same error
        event("refused")
        with pytest.raises(type(e)):
            SwapCall(None, fn_name, types, args)
        return
    event("encoded")
    got = SwapCall(None, fn_name, types, args)
    assert got.data == want.data
    assert (got.fn_name, got.args, got.contract) == (want.fn_name, want.args, want.contract)


@settings(max_examples=300, deadline=None)
@given(_address, _address, _uint(24), _address, _uint(256), _uint(256), _uint(256), _uint(160))
def test_exact_input_single_calldata_equals_eth_abi_s(token_in: str, token_out: str, fee: int, recipient: str,
                                                      deadline: int, amount_in: int, min_out: int, limit: int) -> None:
    _same("exactInputSingle", (V3_EXACT_INPUT_SINGLE,),
          ((token_in, token_out, fee, recipient, deadline, amount_in, min_out, limit),))


@settings(max_examples=300, deadline=None)
@given(_uint(256), _uint(256), st.lists(_address, min_size=1, max_size=3), _address, _uint(256))
def test_swap_exact_tokens_for_tokens_calldata_equals_eth_abi_s(amount_in: int, min_out: int, path: list[str],
                                                                to: str, deadline: int) -> None:
    event(f"path of {len(path)}")
    _same("swapExactTokensForTokens", V2_SWAP_EXACT_IN, (amount_in, min_out, path, to, deadline))


def test_a_bool_is_refused_as_eth_abi_refuses_it() -> None:
    from eth_abi.exceptions import EncodingTypeError

    args = (True, 0, ["0x" + "11" * 20, "0x" + "22" * 20], "0x" + "33" * 20, 1)
    with pytest.raises(EncodingTypeError):
        PreparedCall(None, "swapExactTokensForTokens", V2_SWAP_EXACT_IN, args)
    with pytest.raises(EncodingTypeError):
        SwapCall(None, "swapExactTokensForTokens", V2_SWAP_EXACT_IN, args)
