"""The Noise engine's own rules: turns, rollback on refusal, explicit nonces, rekey, modifiers."""

from __future__ import annotations

import os

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hotline.crypto.noise.functions import CIPHERS, DH_FUNCTIONS, KEMS, AeadFailure
from hotline.crypto.noise.handshake import HandshakeState
from hotline.crypto.noise.patterns import BASE_PATTERNS, modified_pattern, parse_protocol_name
from hotline.crypto.noise.state import MAX_NONCE, CipherState
from hotline.errors import HandshakeError, NoiseStateError, UnsupportedError
from tests.conftest import counter_rng


def _pair(name: str, label: str = "pair") -> tuple[HandshakeState, HandshakeState]:
    """Both sides of any pattern, with every key the pattern may need."""
    dh = DH_FUNCTIONS[parse_protocol_name(name).dh]
    rng = counter_rng(label)
    init_s, resp_s = dh.keypair(rng(dh.dhlen)), dh.keypair(rng(dh.dhlen))
    pattern = parse_protocol_name(name).pattern
    psks = [rng(32) for _ in range(pattern.psk_count)]
    init = HandshakeState(
        name, initiator=True, s=init_s, rs=resp_s.public, psks=psks, rng=counter_rng(label + "i")
    )
    resp = HandshakeState(
        name, initiator=False, s=resp_s, rs=init_s.public, psks=psks, rng=counter_rng(label + "r")
    )
    return init, resp


def _run(init: HandshakeState, resp: HandshakeState) -> None:
    sender, receiver = init, resp
    while not (init.complete and resp.complete):
        receiver.read_message(sender.write_message(b"payload"))
        if not init.pattern.one_way:
            sender, receiver = receiver, sender


@st.composite
def protocol_names(draw: st.DrawFn) -> str:
    pattern = draw(st.sampled_from(sorted(BASE_PATTERNS)))
    psk_choices = ["", "psk0", "psk1"] + ([] if BASE_PATTERNS[pattern].one_way else ["psk0+psk2"])
    psk = draw(st.sampled_from(psk_choices))
    dh = draw(st.sampled_from(["25519", "448"]))
    cipher = draw(st.sampled_from(["ChaChaPoly", "AESGCM"]))
    hash_name = draw(st.sampled_from(["SHA256", "SHA512", "BLAKE2s", "BLAKE2b"]))
    return f"Noise_{pattern}{psk}_{dh}_{cipher}_{hash_name}"


@given(protocol_names())
def test_any_protocol_completes_with_agreement(name: str) -> None:
    init, resp = _pair(name)
    _run(init, resp)
    assert init.handshake_hash == resp.handshake_hash
    i_send, _ = init.split()
    r_recv, _ = resp.split()
    assert r_recv.decrypt_with_ad(b"ad", i_send.encrypt_with_ad(b"ad", b"hello")) == b"hello"


def test_psk_past_the_last_message_is_refused() -> None:
    with pytest.raises(UnsupportedError, match="psk2 is past the last message"):
        parse_protocol_name("Noise_Npsk2_25519_ChaChaPoly_SHA256")


@given(st.integers(min_value=0), st.integers(min_value=0, max_value=7))
def test_a_refused_message_changes_nothing(position: int, bit: int) -> None:
    """Flip one bit anywhere in message 2 of an HFS handshake: the reader refuses it, and can
    then still read the genuine message."""
    init, resp = _pair("Noise_XXhfs_25519+MLKEM768_ChaChaPoly_BLAKE2b", "flip")
    resp.read_message(init.write_message(b"one"))
    genuine = resp.write_message(b"two")
    position %= len(genuine)
    altered = bytearray(genuine)
    altered[position] ^= 1 << bit
    with pytest.raises(HandshakeError):
        init.read_message(bytes(altered))
    assert init.read_message(genuine) == b"two"


def test_truncated_message_is_refused_and_changes_nothing() -> None:
    init, resp = _pair("Noise_IKpsk2_25519_ChaChaPoly_SHA256", "cut")
    message = init.write_message(b"hello")
    for cut in (0, 1, 31, 32, 47, len(message) - 1):
        with pytest.raises(HandshakeError, match=r"truncated|authentication"):
            resp.read_message(message[:cut])
    assert resp.read_message(message) == b"hello"


def test_turns_are_enforced() -> None:
    init, resp = _pair("Noise_NN_25519_ChaChaPoly_SHA256")
    with pytest.raises(NoiseStateError):
        resp.write_message(b"")
    with pytest.raises(NoiseStateError):
        init.read_message(b"\x00" * 48)
    with pytest.raises(NoiseStateError, match="not complete"):
        init.split()


def test_psk_count_and_length_are_checked() -> None:
    with pytest.raises(NoiseStateError, match="needs 1 PSKs, got 0"):
        HandshakeState("Noise_NNpsk0_25519_ChaChaPoly_SHA256", initiator=True)
    with pytest.raises(NoiseStateError, match="32 bytes"):
        HandshakeState("Noise_NNpsk0_25519_ChaChaPoly_SHA256", initiator=True, psks=[b"short"])


def test_missing_random_source_is_a_local_error() -> None:
    state = HandshakeState("Noise_NN_25519_ChaChaPoly_SHA256", initiator=True)
    with pytest.raises(NoiseStateError, match="no random source"):
        state.write_message()


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("Noise_QQ_25519_ChaChaPoly_SHA256", "unsupported handshake pattern 'QQ'"),
        ("Noise_NN_25519_ChaChaPoly_MD5", None),
        ("Noise_NNhfs_25519_ChaChaPoly_SHA256", "go together"),
        ("Noise_NN_25519+MLKEM768_ChaChaPoly_SHA256", "go together"),
        ("Noise_Nhfs_25519+MLKEM768_ChaChaPoly_SHA256", "needs an interactive pattern"),
        ("Noise_NNfallback_25519_ChaChaPoly_SHA256", "unsupported pattern modifier"),
        ("Noise_NN_25519_ChaChaPoly", "not a Noise protocol name"),
    ],
)
def test_unsupported_names_are_refused_clearly(name: str, message: str | None) -> None:
    with pytest.raises(UnsupportedError, match=message):
        HandshakeState(name, initiator=True)


def test_hfs_modifier_places_kem_tokens_by_the_rule() -> None:
    assert modified_pattern("KKpsk0+hfs").messages == (
        ("psk", "e", "es", "e1", "ss"),
        ("e", "ee", "ekem1", "se"),
    )
    assert modified_pattern("XXhfs").messages[:2] == (("e", "e1"), ("e", "ee", "ekem1", "s", "es"))
    assert modified_pattern("IKhfs").messages[0] == ("e", "es", "e1", "s", "ss")


def test_kem_secret_is_mixed_into_the_keys() -> None:
    """If the two sides disagree on the KEM output alone, the handshake must fail."""
    kem = KEMS["MLKEM768"]
    name = "Noise_NNhfs_25519+MLKEM768_ChaChaPoly_SHA256"

    def wrong_secret(public: bytes) -> tuple[bytes, bytes]:
        ciphertext, _shared = kem.encapsulate(public)
        return ciphertext, os.urandom(32)

    init = HandshakeState(name, initiator=True, rng=os.urandom)
    resp = HandshakeState(name, initiator=False, rng=os.urandom, encapsulate=wrong_secret)
    resp.read_message(init.write_message())
    with pytest.raises(HandshakeError, match="authentication"):
        init.read_message(resp.write_message(b"x"))


def test_invalid_kem_public_key_is_refused() -> None:
    name = "Noise_NNhfs_25519+MLKEM768_ChaChaPoly_SHA256"
    init = HandshakeState(name, initiator=True, rng=os.urandom)
    resp = HandshakeState(name, initiator=False, rng=os.urandom)
    message = bytearray(init.write_message())
    message[32 : 32 + 1184] = b"\xff" * 1184  # coefficients out of range (FIPS 203, 7.2)
    resp.read_message(bytes(message))
    with pytest.raises(HandshakeError, match="invalid ML-KEM-768 public key"):
        resp.write_message()
    assert not resp.complete


def test_explicit_nonces_allow_out_of_order_delivery() -> None:
    key = os.urandom(32)
    send, receive = CipherState(CIPHERS["ChaChaPoly"], key), CipherState(CIPHERS["ChaChaPoly"], key)
    sealed = {n: send.encrypt_at(n, b"", f"message {n}".encode()) for n in range(5)}
    for n in (3, 0, 4, 1, 2):
        assert receive.decrypt_at(n, b"", sealed[n]) == f"message {n}".encode()
    with pytest.raises(AeadFailure):
        receive.decrypt_at(2, b"", sealed[3])
    with pytest.raises(NoiseStateError, match="exhausted"):
        send.encrypt_at(MAX_NONCE, b"", b"")


@pytest.mark.parametrize("cipher", ["ChaChaPoly", "AESGCM"])
def test_rekey_changes_the_key_and_keeps_the_nonce(cipher: str) -> None:
    key = os.urandom(32)
    a, b = CipherState(CIPHERS[cipher], key), CipherState(CIPHERS[cipher], key)
    a.encrypt_with_ad(b"", b"x")
    a.rekey()
    assert a.k != key
    assert a.n == 1
    b.set_nonce(1)
    with pytest.raises(AeadFailure):
        b.decrypt_with_ad(b"", a.encrypt_with_ad(b"", b"z"))
    b.rekey()
    b.set_nonce(2)
    a.set_nonce(2)
    assert b.decrypt_with_ad(b"", a.encrypt_with_ad(b"", b"z")) == b"z"
