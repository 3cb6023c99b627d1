"""Hyperliquid action building and signing equal the official SDK's own test vectors, exactly.

Every vector below is a value from ``tests/signing_test.py`` of hyperliquid-dex/hyperliquid-python-sdk
at commit 7ee976d123b1e04295e4a1e37a424ca6a13bef88 (tag 0.23.0; the file last changed in b7b70f7,
"Version 0.12.0"): the inputs each SDK test builds and the hash / r / s / v it asserts. Only the
values are embedded; the SDK's code is not used (it cannot be installed beside web3 8).
"""
from __future__ import annotations

import copy
import pickle
from decimal import Decimal

import pytest
from hypothesis import event, given, settings, strategies as st

from tapedeck.adapters import hyperliquid_signing as hs
from tapedeck.adapters.hyperliquid_signing import ActionError, HyperliquidSigner, Signature

# The SDK tests' wallet (a well-known test key, no funds).
KEY = "0x0123456789012345678901234567890123456789012345678901234567890123"
KEY_HEX = KEY[2:]
VAULT = "0x1719884eb866cb12b2287399b15f7db5e7d775ea"
DESTINATION = "0x5e9ee1089755c3435139848e47e6635505d5a13a"
SUB_ACCOUNT = "0x1d9470d4b963f552e6f671a81619d395877bf409"


def _sig(r: str, s: str, v: int) -> dict:
    return {"r": r, "s": s, "v": v}


# test_phantom_agent_creation_matches_production: ETH (asset 4) buy 0.0147 @ 1670.1 IOC, nonce 1677777606040.
PHANTOM_CONNECTION_ID = "0x0fcbeda5ae3c4950a548021552a4fea2226858c4453571bf3f24ba017eac2908"

# (SDK test, how the action is built here, vault, {mainnet: signature})
L1_VECTORS = [
    ("test_l1_action_signing_matches", "dummy", None, {
        True: _sig("0x53749d5b30552aeb2fca34b530185976545bb22d0b3ce6f62e31be961a59298",
                   "0x755c40ba9bf05223521753995abb2f73ab3229be8ec921f350cb447e384d8ed8", 27),
        False: _sig("0x542af61ef1f429707e3c76c5293c80d01f74ef853e34b76efffcb57e574f9510",
                    "0x17b8b32f086e8cdede991f1e2c529f5dd5297cbe8128500e00cbaf766204a613", 28)}),
    ("test_l1_action_signing_order_matches", "order", None, {
        True: _sig("0xd65369825a9df5d80099e513cce430311d7d26ddf477f5b3a33d2806b100d78e",
                   "0x2b54116ff64054968aa237c20ca9ff68000f977c93289157748a3162b6ea940e", 28),
        False: _sig("0x82b2ba28e76b3d761093aaded1b1cdad4960b3af30212b343fb2e6cdfa4e3d54",
                    "0x6b53878fc99d26047f4d7e8c90eb98955a109f44209163f52d8dc4278cbbd9f5", 27)}),
    ("test_l1_action_signing_order_with_cloid_matches", "order_cloid", None, {
        True: _sig("0x41ae18e8239a56cacbc5dad94d45d0b747e5da11ad564077fcac71277a946e3",
                   "0x3c61f667e747404fe7eea8f90ab0e76cc12ce60270438b2058324681a00116da", 27),
        False: _sig("0xeba0664bed2676fc4e5a743bf89e5c7501aa6d870bdb9446e122c9466c5cd16d",
                    "0x7f3e74825c9114bc59086f1eebea2928c190fdfbfde144827cb02b85bbe90988", 28)}),
    ("test_l1_action_signing_matches_with_vault", "dummy", VAULT, {
        True: _sig("0x3c548db75e479f8012acf3000ca3a6b05606bc2ec0c29c50c515066a326239",
                   "0x4d402be7396ce74fbba3795769cda45aec00dc3125a984f2a9f23177b190da2c", 28),
        False: _sig("0xe281d2fb5c6e25ca01601f878e4d69c965bb598b88fac58e475dd1f5e56c362b",
                    "0x7ddad27e9a238d045c035bc606349d075d5c5cd00a6cd1da23ab5c39d4ef0f60", 27)}),
    ("test_l1_action_signing_tpsl_order_matches", "tpsl", None, {
        True: _sig("0x98343f2b5ae8e26bb2587daad3863bc70d8792b09af1841b6fdd530a2065a3f9",
                   "0x6b5bb6bb0633b710aa22b721dd9dee6d083646a5f8e581a20b545be6c1feb405", 27),
        False: _sig("0x971c554d917c44e0e1b6cc45d8f9404f32172a9d3b3566262347d0302896a2e4",
                    "0x206257b104788f80450f8e786c329daa589aa0b32ba96948201ae556d5637eac", 28)}),
    ("test_create_sub_account_action", "create_sub_account", None, {
        True: _sig("0x51096fe3239421d16b671e192f574ae24ae14329099b6db28e479b86cdd6caa7",
                   "0xb71f7d293af92d3772572afb8b102d167a7cef7473388286bc01f52a5c5b423", 27),
        False: _sig("0xa699e3ed5c2b89628c746d3298b5dc1cca604694c2c855da8bb8250ec8014a5b",
                    "0x53f1b8153a301c72ecc655b1c315d64e1dcea3ee58921fd7507e35818fcc1584", 28)}),
    ("test_sub_account_transfer_action", "sub_account_transfer", None, {
        True: _sig("0x43592d7c6c7d816ece2e206f174be61249d651944932b13343f4d13f306ae602",
                   "0x71a926cb5c9a7c01c3359ec4c4c34c16ff8107d610994d4de0e6430e5cc0f4c9", 28),
        False: _sig("0xe26574013395ad55ee2f4e0575310f003c5bb3351b5425482e2969fa51543927",
                    "0xefb08999196366871f919fd0e138b3a7f30ee33e678df7cfaf203e25f0a4278", 28)}),
    ("test_schedule_cancel_action (no time)", "schedule_cancel", None, {
        True: _sig("0x6cdfb286702f5917e76cd9b3b8bf678fcc49aec194c02a73e6d4f16891195df9",
                   "0x6557ac307fa05d25b8d61f21fb8a938e703b3d9bf575f6717ba21ec61261b2a0", 27),
        False: _sig("0xc75bb195c3f6a4e06b7d395acc20bbb224f6d23ccff7c6a26d327304e6efaeed",
                    "0x342f8ede109a29f2c0723bd5efb9e9100e3bbb493f8fb5164ee3d385908233df", 28)}),
    ("test_schedule_cancel_action (time 123456789)", "schedule_cancel_time", None, {
        True: _sig("0x609cb20c737945d070716dcc696ba030e9976fcf5edad87afa7d877493109d55",
                   "0x16c685d63b5c7a04512d73f183b3d7a00da5406ff1f8aad33f8ae2163bab758b", 28),
        False: _sig("0x4e4f2dbd4107c69783e251b7e1057d9f2b9d11cee213441ccfa2be63516dc5bc",
                    "0x706c656b23428c8ba356d68db207e11139ede1670481a9e01ae2dfcdb0e1a678", 27)}),
]

# test_sign_usd_transfer_action / test_sign_withdraw_from_bridge_action (testnet).
USER_VECTORS = [
    ("test_sign_usd_transfer_action", "usdSend",
     _sig("0x637b37dd731507cdd24f46532ca8ba6eec616952c56218baeff04144e4a77073",
          "0x11a6a24900e6e314136d2592e2f8d502cd89b7c15b198e1bee043c9589f9fad7", 27)),
    ("test_sign_withdraw_from_bridge_action", "withdraw3",
     _sig("0x8363524c799e90ce9bc41022f7c39b4e9bdba786e5f9c72b20e43e1462c37cf9",
          "0x58b1411a775938b83e29182e8ef74975f9054c8e97ebf5ec2dc8d51bfc893881", 28)),
]

# test_float_to_int_for_hashing: (input, expected) and the input that must be refused.
INT_FOR_HASHING = [(123123123123, 12312312312300000000), ("0.00001231", 1231), ("1.033", 103300000)]
INT_FOR_HASHING_REFUSED = "0.000012312312"


def build(kind: str) -> dict:
    """The SDK test's action, built through this module's builders where it has one."""
    if kind == "dummy":
        return {"type": "dummy", "num": hs.to_int_for_hashing(1000)}
    if kind == "order":
        return hs.order_action([hs.order_wire(1, True, "100", "100", tif="Gtc")])
    if kind == "order_cloid":
        return hs.order_action([hs.order_wire(1, True, "100", "100", tif="Gtc",
                                              client_order_id="0x00000000000000000000000000000001")])
    if kind == "tpsl":
        return hs.order_action([hs.order_wire(1, True, "100", "100",
                                              trigger={"trigger_px": "103", "is_market": True, "tpsl": "sl"})])
    if kind == "create_sub_account":
        return {"type": "createSubAccount", "name": "example"}
    if kind == "sub_account_transfer":
        return {"type": "subAccountTransfer", "subAccountUser": SUB_ACCOUNT, "isDeposit": True, "usd": 10}
    if kind == "schedule_cancel":
        return hs.schedule_cancel_action()
    if kind == "schedule_cancel_time":
        return hs.schedule_cancel_action(123456789)
    raise AssertionError(kind)


@pytest.fixture(scope="module")
def signer() -> HyperliquidSigner:
    return HyperliquidSigner(KEY)


def test_phantom_agent_connection_id_matches_the_sdk() -> None:
    action = hs.order_action([hs.order_wire(4, True, "1670.1", "0.0147", tif="Ioc")])
    assert action == {"type": "order", "grouping": "na", "orders": [
        {"a": 4, "b": True, "p": "1670.1", "s": "0.0147", "r": False, "t": {"limit": {"tif": "Ioc"}}}]}
    h = hs.action_hash(action, 1677777606040)
    agent = hs.phantom_agent(h, True)
    assert agent["source"] == "a" and "0x" + agent["connectionId"].hex() == PHANTOM_CONNECTION_ID


@pytest.mark.parametrize("name,kind,vault,expected", L1_VECTORS, ids=[v[0] for v in L1_VECTORS])
@pytest.mark.parametrize("mainnet", [True, False], ids=["mainnet", "testnet"])
def test_l1_signatures_match_the_sdk(signer: HyperliquidSigner, name: str, kind: str, vault: str | None,
                                     expected: dict, mainnet: bool) -> None:
    action = build(kind)
    sig = signer.sign_l1_action(action, 0, mainnet=mainnet, vault_address=vault)
    assert sig.to_wire() == expected[mainnet], name
    # and the venue's check: the signer recovers from the signature over the same action
    assert hs.recover_l1_signer(action, 0, sig, mainnet=mainnet, vault_address=vault) == signer.address
    # the other network's signature does not recover to it (the source byte is in the message)
    other = Signature(int(expected[not mainnet]["r"], 16), int(expected[not mainnet]["s"], 16),
                      expected[not mainnet]["v"])
    assert hs.recover_l1_signer(action, 0, other, mainnet=mainnet, vault_address=vault) != signer.address


@pytest.mark.parametrize("name,kind,expected", USER_VECTORS, ids=[v[0] for v in USER_VECTORS])
def test_user_signed_signatures_match_the_sdk(signer: HyperliquidSigner, name: str, kind: str, expected: dict) -> None:
    build_action = hs.usd_send_action if kind == "usdSend" else hs.withdraw_action
    action = build_action(DESTINATION, "1", 1687816341423)
    posted, sig = signer.sign_user_action(action, mainnet=False)
    assert sig.to_wire() == expected, name
    assert posted == {**action, "signatureChainId": "0x66eee", "hyperliquidChain": "Testnet"}
    assert action.get("signatureChainId") is None  # the caller's dict is not changed


def test_int_for_hashing_matches_the_sdk() -> None:
    for value, expected in INT_FOR_HASHING:
        assert hs.to_int_for_hashing(value) == expected
    with pytest.raises(ActionError, match="more than 8 decimal places"):
        hs.to_int_for_hashing(INT_FOR_HASHING_REFUSED)


def test_every_sdk_vector_is_covered() -> None:
    """The SDK file's tests, each named by a vector above (so a test added there shows up here
    only if it is added here too: this list is the file's at the commit named at the top)."""
    sdk_tests = {"test_phantom_agent_creation_matches_production", "test_l1_action_signing_matches",
                 "test_l1_action_signing_order_matches", "test_l1_action_signing_order_with_cloid_matches",
                 "test_l1_action_signing_matches_with_vault", "test_l1_action_signing_tpsl_order_matches",
                 "test_float_to_int_for_hashing", "test_sign_usd_transfer_action",
                 "test_sign_withdraw_from_bridge_action", "test_create_sub_account_action",
                 "test_sub_account_transfer_action", "test_schedule_cancel_action"}
    covered = {v[0].split(" ")[0] for v in L1_VECTORS} | {v[0] for v in USER_VECTORS} | {
        "test_phantom_agent_creation_matches_production", "test_float_to_int_for_hashing"}
    assert covered == sdk_tests
    assert sum(len(v[3]) for v in L1_VECTORS) + len(USER_VECTORS) == 20  # signatures compared


# ----------------------------------------------------------------------------- beyond the SDK's vectors


def test_expires_after_is_appended_as_the_spec_says(signer: HyperliquidSigner) -> None:
    """No SDK vector has expiresAfter: its bytes (0x00 ‖ u64 BE after the vault byte) change the hash,
    and a signature made with it recovers only with it."""
    action = build("order")
    plain = hs.action_hash(action, 5)
    with_expiry = hs.action_hash(action, 5, expires_after=1_700_000_000_000)
    assert plain != with_expiry
    import msgpack
    from eth_utils import keccak

    expected = keccak(msgpack.packb(action) + (5).to_bytes(8, "big") + b"\x00" + b"\x00"
                      + (1_700_000_000_000).to_bytes(8, "big"))
    assert with_expiry == expected
    sig = signer.sign_l1_action(action, 5, mainnet=True, expires_after=1_700_000_000_000)
    assert hs.recover_l1_signer(action, 5, sig, mainnet=True, expires_after=1_700_000_000_000) == signer.address
    assert hs.recover_l1_signer(action, 5, sig, mainnet=True) != signer.address


def test_cancel_and_reduce_only_actions_have_the_wire_shape() -> None:
    assert hs.cancel_action([(0, 123)]) == {"type": "cancel", "cancels": [{"a": 0, "o": 123}]}
    assert hs.cancel_by_cloid_action([(110000, "0x000000000000000000000000000000AB")]) == {
        "type": "cancelByCloid", "cancels": [{"asset": 110000, "cloid": "0x000000000000000000000000000000ab"}]}
    w = hs.order_wire(3, False, Decimal("2.5"), "10.00", tif="alo", reduce_only=True)
    assert w == {"a": 3, "b": False, "p": "2.5", "s": "10", "r": True, "t": {"limit": {"tif": "Alo"}}}
    assert list(w) == ["a", "b", "p", "s", "r", "t"]  # msgpack hashes keys in this order
    assert hs.order_wire(3, True, "1", "1", tif="")["t"] == {"limit": {"tif": "Ioc"}}  # domain default IOC
    act = hs.order_action([w], builder={"b": "0x" + "AB" * 20, "f": 10})
    assert list(act) == ["type", "orders", "grouping", "builder"] and act["builder"] == {"b": "0x" + "ab" * 20, "f": 10}
    agent = hs.approve_agent_action("0x" + "12" * 20, 1, "bot")
    assert list(agent) == ["type", "agentAddress", "agentName", "nonce"]


@pytest.mark.parametrize("bad,match", [
    (dict(price=1670.1), "float"), (dict(price="0.123456789"), "more than 8 decimal places"),
    (dict(size="1e5"), "plain decimal"), (dict(price="NaN"), "plain decimal"), (dict(size="0"), "> 0"),
    (dict(price="-1"), "> 0"), (dict(tif="FOK"), "tif"), (dict(client_order_id="0x01"), "cloid"),
    (dict(asset=-1), "asset"), (dict(asset=True), "asset"),
    (dict(trigger={"trigger_px": "1", "is_market": True, "tpsl": "x"}), "tpsl"),
])
def test_order_building_refuses_what_it_cannot_send_exactly(bad: dict, match: str) -> None:
    args = dict(asset=1, is_buy=True, price="100", size="1")
    args.update(bad)
    with pytest.raises(ActionError, match=match):
        hs.order_wire(args.pop("asset"), args.pop("is_buy"), args.pop("price"), args.pop("size"), **args)


@settings(deadline=None)  # no timing in tests: a loaded box must not fail it
@given(st.decimals(min_value=Decimal("-1e12"), max_value=Decimal("1e12"), places=12, allow_nan=False,
                   allow_infinity=False))
def test_to_wire_is_exact_or_refuses(d: Decimal) -> None:
    """Every value within 8 places comes back as a string equal to it (no exponent, no trailing
    zeros); every finer value is refused: never rounded."""
    try:
        text = hs.to_wire(d)
    except ActionError:
        event("refused")
        assert d != d.quantize(Decimal("1e-8"))
        return
    event("wired")
    assert Decimal(text) == d and "e" not in text.lower()
    assert text == "0" or not (("." in text) and text.endswith("0"))


def test_tick_rules() -> None:
    hs.check_tick("105055", "0.00001", 5)  # an integer price always passes
    hs.check_tick("1234.5", "1", 0)
    with pytest.raises(ActionError, match="5 significant"):
        hs.check_tick("1234.56", "1", 0)
    with pytest.raises(ActionError, match="decimals"):
        hs.check_tick("0.0012345", "1", 2)  # perps: 6 - 2 = 4 decimals
    hs.check_tick("0.0012345", "1", 0, spot=True)  # spot: 8 - 0
    with pytest.raises(ActionError, match="size decimals"):
        hs.check_tick("100", "0.001", 2)


def test_the_key_never_shows(signer: HyperliquidSigner, capsys: pytest.CaptureFixture[str]) -> None:
    shown = [repr(signer), str(signer), f"{signer}", repr([signer]), repr(vars(type(signer)))]
    with pytest.raises(TypeError) as e1:
        pickle.dumps(signer)
    with pytest.raises(TypeError) as e2:
        copy.deepcopy(signer)
    with pytest.raises(TypeError):
        copy.copy(signer)
    shown += [str(e1.value), str(e2.value)]
    for bad in (KEY[:-2] + "zz", KEY + "00", KEY[:20], b"\x00" * 32, 12345):
        with pytest.raises(ValueError) as e:
            HyperliquidSigner(bad)  # type: ignore[arg-type]
        assert e.value.__context__ is None and e.value.__cause__ is None
        shown.append(str(e.value))
        shown.append(repr(e.value))
    # an action error raised while signing names the field, not the key
    with pytest.raises(ActionError) as e3:
        signer.sign_l1_action({"type": "x"}, -1, mainnet=True)
    shown.append(str(e3.value))
    shown.append(capsys.readouterr().out + capsys.readouterr().err)
    assert signer.address == "0x14791697260E4c9A71f18484C9f997B308e59325"
    for text in shown:
        assert KEY_HEX not in text.lower() and KEY_HEX[:16] not in text.lower(), text
    assert not hasattr(signer, "__dict__")  # nothing but the account and the address is kept


def test_signed_payload_holds_no_key(signer: HyperliquidSigner) -> None:
    action = build("order")
    sig = signer.sign_l1_action(action, 7, mainnet=True)
    body = hs.exchange_payload(action, 7, sig)
    assert KEY_HEX not in repr(body).lower()
    assert body["signature"] == sig.to_wire() and body["vaultAddress"] is None and body["expiresAfter"] is None


def test_user_signed_actions_recover_to_the_signer_and_bind_the_network(signer: HyperliquidSigner) -> None:
    """approveAgent has no SDK vector: it must recover to the signer, and a mainnet signature must
    not pass for the testnet message (``hyperliquidChain`` is signed) nor another chain id."""
    agent = hs.approve_agent_action("0x" + "12" * 20, 1_700_000_000_000, "bot")
    posted, sig = signer.sign_user_action(agent, mainnet=True)
    assert posted["hyperliquidChain"] == "Mainnet" and hs.recover_user_signer(posted, sig) == signer.address
    assert hs.recover_user_signer({**posted, "hyperliquidChain": "Testnet"}, sig) != signer.address
    assert hs.recover_user_signer({**posted, "signatureChainId": "0xa4b1"}, sig) != signer.address
    usd = hs.usd_send_action(DESTINATION, "1", 1687816341423)
    posted, sig = signer.sign_user_action(usd, mainnet=False)
    assert sig.to_wire() == USER_VECTORS[0][2] and hs.recover_user_signer(posted, sig) == signer.address
    with pytest.raises(ActionError, match="not a known user-signed action"):
        signer.sign_user_action({"type": "order"}, mainnet=True)


def test_signing_logs_nothing_of_the_key(signer: HyperliquidSigner, caplog: pytest.LogCaptureFixture) -> None:
    import logging

    with caplog.at_level(logging.DEBUG):
        signer.sign_l1_action(build("order"), 1, mainnet=True)
        signer.sign_user_action(hs.usd_send_action(DESTINATION, "2", 1), mainnet=True)
        with pytest.raises(ValueError):
            HyperliquidSigner(KEY[:-1] + "g")
    assert all(KEY_HEX not in r.getMessage().lower() for r in caplog.records)
