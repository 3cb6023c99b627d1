"""The sim's calldata codec (sim.chain.pyevm._CODEC, eth_abi with a memoised address encoder) and the
revm backend's keccak encode exactly what eth_abi and eth_utils do, and refuse what they refuse."""

import eth_abi
import pytest
from eth_abi.exceptions import EncodingError
from eth_utils import keccak

from tapedeck.sim.chain import pyevm, revm

A = "0x5B38Da6a701c568545dCfcB03FcB875f56beddC4"
B = "0x" + "ab" * 20
CASES = [
    (["address", "uint256"], [A, 5]),
    (["address", "uint256"], [B.upper().replace("0X", "0x"), 2**256 - 1]),
    (["address"], [bytes.fromhex("ab" * 20)]),
    (["address[]", "address[]"], [[A, B], [B]]),
    (["(address,address,uint24,address,uint256,uint256,uint160)"], [(A, B, 3000, A, 1, 2, 0)]),
    (["uint256", "uint256", "address[]", "address", "uint256"], [10**18, 0, [A, B], A, 1_700_000_000]),
    (["address", "address", "address", "uint256", "bool"], [A, B, A, 2**255, False]),
]


@pytest.mark.parametrize(("types", "args"), CASES)
def test_same_bytes_as_eth_abi(types, args):
    for _ in range(2):  # the second time from the memoised conversion and validation
        assert pyevm._CODEC.encode(types, args) == eth_abi.encode(types, args)


@pytest.mark.parametrize("bad", ["0xzz", "0x" + "ab" * 19, 1, None, [1], b"\x01" * 19])
def test_refuses_what_eth_abi_refuses(bad):
    with pytest.raises(EncodingError) as ours:
        pyevm._CODEC.encode(["address"], [bad])
    with pytest.raises(EncodingError) as theirs:
        eth_abi.encode(["address"], [bad])
    assert type(ours.value) is type(theirs.value) and str(ours.value) == str(theirs.value)
    with pytest.raises(EncodingError):  # a refused value is not remembered as valid
        pyevm._CODEC.encode(["address"], [bad])


def test_prepared_call_data_is_eth_abi_encoding():
    call = pyevm.PreparedCall(None, "liquidationCall", ("address", "address", "address", "uint256", "bool"),
                              (A, B, A, 7, True))
    assert call.data == keccak(text="liquidationCall(address,address,address,uint256,bool)")[:4] + eth_abi.encode(
        ["address", "address", "address", "uint256", "bool"], [A, B, A, 7, True])


@pytest.mark.parametrize("data", [b"", b"\x00", b"x" * 135, b"x" * 136, b"y" * 1000])
def test_revm_keccak_is_eth_utils_keccak(data):
    assert revm._keccak(data) == keccak(data)
