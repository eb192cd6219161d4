"""Benchmark of Hotline's cryptography, printed as `name: value` lines.

What is measured, and why:

* The hotline handshake (Noise_KKpsk0+hfs_25519+MLKEM768_ChaChaPoly_SHA256), both sides in one
  process: building the Initiator and the Responder, message 1, message 2, and the finish. A
  station runs it on every (re)connection, so its median must stay small (target: <= 3 ms). The
  sizes of messages 1 and 2 are printed too: the ML-KEM-768 exchange makes them large.
* Transport throughput of `Session.seal` and `Session.open` on the largest frame a session
  accepts (MAX_PLAINTEXT = 65519 bytes, i.e. a 64 KiB Noise message less the 16-byte tag),
  against the bare ChaCha20-Poly1305 call on the same size. The ratio shows what the session
  layer (counter, header, copies) costs over the AEAD itself (target: seal/bare >= 0.5).
* Hybrid signatures (Ed25519 + ML-DSA-65) per second, with each half alone for comparison:
  cards, rotations and receipts are all signed this way.
* Unsealing the keystore with the default Argon2id cost: what an operator waits for at start-up.

Every figure is a median over repeated timed runs (time.perf_counter) after a warm-up: of single
handshakes and unseals, of batches of 20 frames, of batches of 10 signatures. Every loop has a
fixed count. The full run takes well under a minute; `--quick` runs a few iterations
of everything, only to check that the script still works (its figures are not meaningful).
MB means 10**6 bytes.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

import cryptography
from cryptography.hazmat.primitives.asymmetric import ed25519, mldsa
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

from hotline.crypto.identity import StationIdentity
from hotline.crypto.keystore import KdfParams, seal, unseal
from hotline.crypto.noise.functions import DH_FUNCTIONS
from hotline.crypto.session import (
    MAX_PLAINTEXT,
    REKEY_INTERVAL,
    Initiator,
    LinkKeys,
    Responder,
    Session,
)

HANDSHAKE_TARGET_MS = 3.0
SEAL_RATIO_TARGET = 0.5
SIGNED_MESSAGE_LEN = 2048  # about a card's size: it carries the 1952-byte ML-DSA-65 public key
MLDSA_CONTEXT = b"hotline"  # as in hotline.crypto.identity
SIGN_BATCH = 10  # signatures or verifications timed together


@dataclass(frozen=True, slots=True)
class Plan:
    """How many times each thing runs; warm-up runs come first and are not counted."""

    warmup: int
    handshakes: int
    frame_batches: int
    frames_per_batch: int
    signatures: int
    unseals: int


FULL = Plan(
    warmup=20, handshakes=200, frame_batches=50, frames_per_batch=20, signatures=2000, unseals=9
)
QUICK = Plan(warmup=2, handshakes=5, frame_batches=3, frames_per_batch=2, signatures=5, unseals=1)


def emit(name: str, value: object) -> None:
    print(f"{name}: {value}", flush=True)


def timed(fn: Callable[[], object]) -> float:
    """Seconds one call of `fn` takes."""
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def samples(fn: Callable[[], object], warmup: int, count: int) -> list[float]:
    """Seconds per call for `count` calls, after `warmup` discarded calls."""
    for _ in range(warmup):
        fn()
    return [timed(fn) for _ in range(count)]


def p90(values: list[float]) -> float:
    return statistics.quantiles(values, n=10)[-1] if len(values) > 1 else values[0]


# -- handshake ------------------------------------------------------------------------------------


def link_keys() -> tuple[LinkKeys, LinkKeys]:
    """Both sides' keys for one link, with fresh X25519 statics, link id and PSK."""
    dh = DH_FUNCTIONS["25519"]
    a, b = os.urandom(32), os.urandom(32)
    link_id, psk = os.urandom(32), os.urandom(32)
    return (
        LinkKeys(link_id, a, dh.keypair(b).public, psk),
        LinkKeys(link_id, b, dh.keypair(a).public, psk),
    )


def handshake(keys: tuple[LinkKeys, LinkKeys]) -> tuple[Session, Session, bytes, bytes]:
    """One full handshake; a fresh Responder each time, so the replay guard starts from 0."""
    initiator = Initiator(keys[0], rng=os.urandom)
    message1 = initiator.start(time.time_ns())
    responded, message2 = Responder(keys[1], rng=os.urandom).respond(message1, time.time_ns())
    finished = initiator.finish(message2, time.time_ns())
    if finished.session.handshake_hash != responded.session.handshake_hash:
        raise SystemExit("bench: the two sides of the handshake disagree")
    return finished.session, responded.session, message1, message2


def bench_handshake(plan: Plan, keys: tuple[LinkKeys, LinkKeys]) -> None:
    times = samples(lambda: handshake(keys), plan.warmup, plan.handshakes)
    _, _, message1, message2 = handshake(keys)
    median_ms = statistics.median(times) * 1e3
    emit("handshake_runs", plan.handshakes)
    emit("handshake_median_ms", f"{median_ms:.3f}")
    emit("handshake_p90_ms", f"{p90(times) * 1e3:.3f}")
    emit("handshake_per_s", f"{1e3 / median_ms:.0f}")
    emit("handshake_message1_bytes", len(message1))
    emit("handshake_message2_bytes", len(message2))
    emit("handshake_target_met", "yes" if median_ms <= HANDSHAKE_TARGET_MS else "no")


# -- transport ------------------------------------------------------------------------------------


def mb_per_s(seconds: float, frames: int, size: int) -> float:
    return frames * size / seconds / 1e6


def batch_seconds(fn: Callable[[bytes], object], inputs: list[bytes]) -> float:
    """Seconds to run `fn` over every input in order, dropping each output as a link does.

    Keeping the outputs alive instead makes glibc hand the freed memory back to the system
    between batches and fault it in again, which costs ~40% here and hides what is measured.
    """
    start = time.perf_counter()
    for item in inputs:
        fn(item)
    return time.perf_counter() - start


def batches(
    fn: Callable[[bytes], object], inputs: Callable[[], list[bytes]], plan: Plan
) -> list[float]:
    """Seconds per batch of `fn`; each batch's inputs are made before its clock starts."""
    times = [batch_seconds(fn, inputs()) for _ in range(plan.warmup + plan.frame_batches)]
    return times[plan.warmup :]


def session_batches(plan: Plan, plaintext: bytes) -> tuple[list[float], list[float]]:
    """Seconds per batch for seal and for open; frames are opened in order, as a link does."""
    sender, _, _, _ = handshake(link_keys())
    peer, receiver, _, _ = handshake(link_keys())
    frames = [plaintext] * plan.frames_per_batch
    seal_times = batches(sender.seal, lambda: frames, plan)
    open_times = batches(receiver.open, lambda: [peer.seal(item) for item in frames], plan)
    if receiver.open(peer.seal(plaintext)) != plaintext:
        raise SystemExit("bench: a transport frame did not round-trip")
    return seal_times, open_times


def bare_batches(plan: Plan, plaintext: bytes) -> tuple[list[float], list[float]]:
    """Seconds per batch for the bare AEAD (a fixed nonce is fine for timing, never for use)."""
    aead, nonce = ChaCha20Poly1305(os.urandom(32)), os.urandom(12)
    frames = [plaintext] * plan.frames_per_batch
    sealed = [aead.encrypt(nonce, plaintext, b"")] * plan.frames_per_batch
    encrypt_times = batches(lambda data: aead.encrypt(nonce, data, b""), lambda: frames, plan)
    decrypt_times = batches(lambda data: aead.decrypt(nonce, data, b""), lambda: sealed, plan)
    return encrypt_times, decrypt_times


def bench_transport(plan: Plan) -> None:
    if (plan.warmup + plan.frame_batches) * plan.frames_per_batch >= REKEY_INTERVAL:
        raise SystemExit("bench: too many frames; a REKEY would fall inside the timed runs")
    plaintext, count = os.urandom(MAX_PLAINTEXT), plan.frames_per_batch
    seal_t, open_t = session_batches(plan, plaintext)
    encrypt_t, decrypt_t = bare_batches(plan, plaintext)
    rates = {
        name: mb_per_s(statistics.median(times), count, MAX_PLAINTEXT)
        for name, times in (
            ("seal", seal_t),
            ("open", open_t),
            ("encrypt", encrypt_t),
            ("decrypt", decrypt_t),
        )
    }
    ratio = rates["seal"] / rates["encrypt"]
    emit("frame_plaintext_bytes", MAX_PLAINTEXT)
    emit("frames_timed", plan.frame_batches * count)
    emit("session_seal_MB_per_s", f"{rates['seal']:.0f}")
    emit("bare_aead_encrypt_MB_per_s", f"{rates['encrypt']:.0f}")
    emit("seal_vs_bare_ratio", f"{ratio:.3f}")
    emit("session_open_MB_per_s", f"{rates['open']:.0f}")
    emit("bare_aead_decrypt_MB_per_s", f"{rates['decrypt']:.0f}")
    emit("open_vs_bare_ratio", f"{rates['open'] / rates['decrypt']:.3f}")
    emit("seal_ratio_target_met", "yes" if ratio >= SEAL_RATIO_TARGET else "no")


# -- signatures -----------------------------------------------------------------------------------


def rate(fn: Callable[[], object], plan: Plan) -> str:
    """Operations per second, from the median time of a batch of SIGN_BATCH operations.

    Batches, not single calls: ML-DSA signing loops a random number of times (rejection
    sampling), so the median of single calls jumps between loop counts from run to run.
    """

    def run_batch() -> None:
        for _ in range(SIGN_BATCH):
            fn()

    batch_count = max(1, plan.signatures // SIGN_BATCH)
    times = samples(run_batch, max(1, plan.warmup // SIGN_BATCH), batch_count)
    return f"{SIGN_BATCH / statistics.median(times):.0f}"


def bench_hybrid(plan: Plan, message: bytes) -> None:
    identity = StationIdentity.from_random(os.urandom(96))
    public, signature = identity.public, identity.sign("bench", message)
    if not public.verify("bench", message, signature):
        raise SystemExit("bench: a hybrid signature did not verify")
    emit("signed_message_bytes", len(message))
    emit("hybrid_signature_bytes", len(signature))
    emit("hybrid_sign_per_s", rate(lambda: identity.sign("bench", message), plan))
    emit("hybrid_verify_per_s", rate(lambda: public.verify("bench", message, signature), plan))


def bench_ed25519(plan: Plan, message: bytes) -> None:
    key = ed25519.Ed25519PrivateKey.generate()
    public, signature = key.public_key(), key.sign(message)
    emit("ed25519_sign_per_s", rate(lambda: key.sign(message), plan))
    emit("ed25519_verify_per_s", rate(lambda: public.verify(signature, message), plan))


def bench_mldsa65(plan: Plan, message: bytes) -> None:
    key = mldsa.MLDSA65PrivateKey.generate()
    public, signature = key.public_key(), key.sign(message, MLDSA_CONTEXT)
    emit("mldsa65_sign_per_s", rate(lambda: key.sign(message, MLDSA_CONTEXT), plan))
    emit(
        "mldsa65_verify_per_s",
        rate(lambda: public.verify(signature, message, MLDSA_CONTEXT), plan),
    )


# -- keystore -------------------------------------------------------------------------------------


def bench_keystore(plan: Plan) -> None:
    params, passphrase = KdfParams(), b"correct horse battery staple"
    identity = StationIdentity.from_random(os.urandom(96))
    blob = seal(identity, 0, passphrase, salt=os.urandom(16), nonce=os.urandom(12), params=params)
    times = samples(lambda: unseal(blob, passphrase), min(plan.warmup, 1), plan.unseals)
    emit("keystore_argon2id", f"m={params.memory_kib}KiB,t={params.iterations},p={params.lanes}")
    emit("keystore_unseal_runs", plan.unseals)
    emit("keystore_unseal_median_ms", f"{statistics.median(times) * 1e3:.1f}")


# -- main -----------------------------------------------------------------------------------------


def environment() -> None:
    emit("python", platform.python_version())
    emit("cryptography", cryptography.__version__)
    emit("cpus", os.cpu_count())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="a few runs of each, to check it runs")
    plan = QUICK if parser.parse_args(argv).quick else FULL
    start = time.perf_counter()
    message = os.urandom(SIGNED_MESSAGE_LEN)
    environment()
    emit("mode", "quick" if plan is QUICK else "full")
    bench_handshake(plan, link_keys())
    bench_transport(plan)
    bench_hybrid(plan, message)
    bench_ed25519(plan, message)
    bench_mldsa65(plan, message)
    bench_keystore(plan)
    emit("bench_runtime_s", f"{time.perf_counter() - start:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
