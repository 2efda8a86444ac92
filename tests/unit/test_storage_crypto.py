"""Envelope encryption: round trips, and loud failures for every way stored bytes can go wrong."""

from __future__ import annotations

import io
import os
import tracemalloc
from pathlib import Path

import pytest

from connectors.storage.crypto import (
    MAGIC,
    MAX_HEADER_SIZE,
    SEGMENT_SIZE,
    TAG_SIZE,
    DecryptionError,
    Decryptor,
    Encryptor,
    Header,
    Keyring,
    KeyringError,
    UnknownKeyError,
    decrypt_stream,
    encrypt_stream,
    iter_encrypted,
    parse_header,
    read_header,
    rewrap,
)
from connectors.storage.factory import new_master_key, parse_keyring

SEG = 64  # small segments keep multi-segment cases cheap; one test uses the real 1 MiB size
K1, K2 = os.urandom(32), os.urandom(32)


@pytest.fixture
def ring1() -> Keyring:
    return Keyring({"k1": K1}, "k1")


@pytest.fixture
def ring2() -> Keyring:
    """After a rotation: k2 wraps new objects, k1 still reads old ones."""
    return Keyring({"k1": K1, "k2": K2}, "k2")


def encrypt(data: bytes, ring: Keyring, seg: int = SEG) -> bytes:
    out = io.BytesIO()
    encrypt_stream(io.BytesIO(data), out, ring, seg)
    return out.getvalue()


def decrypt(blob: bytes, ring: Keyring) -> bytes:
    out = io.BytesIO()
    decrypt_stream(io.BytesIO(blob), out, ring, read_size=37)  # odd reads cross segment boundaries
    return out.getvalue()


def header_of(blob: bytes) -> Header:
    parsed = parse_header(blob)
    assert parsed is not None
    return parsed[0]


def segments(blob: bytes, seg: int = SEG) -> tuple[bytes, list[bytes]]:
    """Split an object into its header and its segments (each ciphertext plus tag)."""
    parsed = parse_header(blob)
    assert parsed is not None
    _, length = parsed
    body = blob[length:]
    size = seg + TAG_SIZE
    return blob[:length], [body[i:i + size] for i in range(0, len(body), size)]


@pytest.mark.parametrize("size", [0, 1, SEG - 1, SEG, SEG + 1, 3 * SEG, 3 * SEG + 7, 1000])
def test_round_trip_sizes(ring1: Keyring, size: int) -> None:
    data = os.urandom(size)
    blob = encrypt(data, ring1)
    assert decrypt(blob, ring1) == data
    header, segs = segments(blob)
    # one segment per full or partial chunk, and always one (possibly empty) last segment
    assert len(segs) == max(1, -(-size // SEG))
    assert len(blob) == len(header) + size + len(segs) * TAG_SIZE


def test_round_trip_real_segment_size_multi_segment(ring1: Keyring) -> None:
    data = os.urandom(2 * SEGMENT_SIZE + 12345)
    blob = encrypt(data, ring1, SEGMENT_SIZE)
    assert len(segments(blob, SEGMENT_SIZE)[1]) == 3
    assert decrypt(blob, ring1) == data


def test_same_plaintext_encrypts_differently_and_hides_it(ring1: Keyring) -> None:
    data = b"the quick brown fox " * 20
    a, b = encrypt(data, ring1), encrypt(data, ring1)
    assert a != b  # fresh data key and nonce prefix per object
    assert b"quick brown" not in a


def test_header_carries_magic_version_and_key_id(ring1: Keyring, ring2: Keyring) -> None:
    blob = encrypt(b"hello", ring2)
    assert blob.startswith(MAGIC)
    parsed = parse_header(blob)
    assert parsed is not None
    header, length = parsed
    assert header.key_id == "k2" and header.version == 1 and header.segment_size == SEG
    assert len(header.wrapped_key) == 40  # RFC 3394 wrap of a 32-byte key
    assert header.to_bytes() == blob[:length]
    assert read_header(io.BytesIO(blob)) == (header, length)


def test_wrong_master_key_fails(ring1: Keyring) -> None:
    blob = encrypt(b"secret audio", ring1)
    with pytest.raises(DecryptionError, match="unwrap"):
        decrypt(blob, Keyring({"k1": K2}, "k1"))


def test_unknown_key_id_fails_with_its_name(ring1: Keyring) -> None:
    blob = encrypt(b"secret audio", Keyring({"k2": K2}, "k2"))
    with pytest.raises(UnknownKeyError) as info:
        decrypt(blob, ring1)
    assert info.value.key_id == "k2"


@pytest.mark.parametrize("where", ["magic", "segment_size", "nonce_prefix", "key_id", "wrapped_key",
                                   "first_segment", "last_segment", "last_tag"])
def test_tampered_byte_fails(ring1: Keyring, where: str) -> None:
    data = os.urandom(3 * SEG + 5)
    blob = bytearray(encrypt(data, ring1))
    header_len = len(segments(bytes(blob))[0])
    offset = {"magic": 0, "segment_size": 7, "nonce_prefix": 10, "key_id": 17, "wrapped_key": 20,
              "first_segment": header_len + 3, "last_segment": len(blob) - TAG_SIZE - 2,
              "last_tag": len(blob) - 1}[where]
    blob[offset] ^= 0x01
    with pytest.raises(DecryptionError):
        decrypt(bytes(blob), ring1)


def test_truncation_at_every_point_fails(ring1: Keyring) -> None:
    blob = encrypt(os.urandom(2 * SEG + 9), ring1)
    for cut in range(len(blob)):
        with pytest.raises(DecryptionError):
            decrypt(blob[:cut], ring1)


def test_dropping_the_last_segment_fails(ring1: Keyring) -> None:
    """A cut exactly at a segment boundary leaves a valid-looking object: the last flag catches it."""
    header, segs = segments(encrypt(os.urandom(3 * SEG), ring1))
    assert len(segs) == 3
    with pytest.raises(DecryptionError, match="segment 1"):
        decrypt(header + segs[0] + segs[1], ring1)


@pytest.mark.parametrize("order", [(1, 0, 2), (0, 2, 1), (2, 1, 0)])
def test_reordered_segments_fail(ring1: Keyring, order: tuple[int, int, int]) -> None:
    header, segs = segments(encrypt(os.urandom(3 * SEG), ring1))
    with pytest.raises(DecryptionError):
        decrypt(header + b"".join(segs[i] for i in order), ring1)


def test_duplicated_or_appended_segments_fail(ring1: Keyring) -> None:
    header, segs = segments(encrypt(os.urandom(2 * SEG + 3), ring1))
    with pytest.raises(DecryptionError):
        decrypt(header + segs[0] + segs[0] + segs[1] + segs[2], ring1)
    with pytest.raises(DecryptionError):
        decrypt(header + b"".join(segs) + segs[2], ring1)


def test_segments_from_another_object_fail(ring1: Keyring) -> None:
    """Same key, same layout, other object: its data key differs, so nothing can be spliced in."""
    data = os.urandom(2 * SEG)
    header_a, segs_a = segments(encrypt(data, ring1))
    _, segs_b = segments(encrypt(data, ring1))
    with pytest.raises(DecryptionError):
        decrypt(header_a + segs_a[0] + segs_b[1], ring1)


def test_plaintext_is_rejected_after_a_few_bytes(ring1: Keyring) -> None:
    dec = Decryptor(ring1)
    with pytest.raises(DecryptionError, match="magic"):
        dec.update(b"RIFF")  # a WAV file, not an encrypted object
    with pytest.raises(DecryptionError):
        decrypt(b"", ring1)


def test_incremental_api_matches_stream_api(ring1: Keyring) -> None:
    data = os.urandom(5 * SEG + 1)
    enc = Encryptor(ring1, SEG)
    pieces = [enc.header.to_bytes()]
    for i in range(0, len(data), 50):
        pieces.append(enc.update(data[i:i + 50]))
    pieces.append(enc.finalize())
    blob = b"".join(pieces)
    dec = Decryptor(ring1)
    out = b"".join(dec.update(blob[i:i + 1]) for i in range(len(blob))) + dec.finalize()
    assert out == data


def test_iter_encrypted_gathers_parts_of_at_least_chunk_size(ring1: Keyring) -> None:
    data = os.urandom(20 * SEG)
    parts = list(iter_encrypted(io.BytesIO(data), ring1, SEG, chunk_size=5 * SEG))
    assert len(parts) > 2
    assert all(len(p) >= 5 * SEG for p in parts[:-1])
    assert decrypt(b"".join(parts), ring1) == data


def test_rotation_rewraps_header_and_keeps_body(ring1: Keyring, ring2: Keyring) -> None:
    data = os.urandom(3 * SEG + 1)
    old = encrypt(data, ring1)
    header, header_size = read_header(io.BytesIO(old))
    rewrapped = rewrap(header, ring2)
    assert rewrapped is not None
    new = rewrapped.to_bytes() + old[header_size:]  # what both backends write: new header, the same body
    assert rewrapped.to_bytes() != old[:header_size] and header_of(new).key_id == "k2"
    assert header_of(new).nonce_prefix == header_of(old).nonce_prefix
    # readable with k2 alone: the data key really is wrapped by k2 now
    assert decrypt(new, Keyring({"k2": K2}, "k2")) == data
    with pytest.raises(UnknownKeyError):
        decrypt(new, ring1)
    # old objects stay readable while k1 is in the keyring
    assert decrypt(old, ring2) == data
    # already current: nothing to do
    assert rewrap(header_of(new), ring2) is None


def test_keyring_validation_and_repr_hides_keys() -> None:
    with pytest.raises(KeyringError):
        Keyring({"k1": b"short"}, "k1")
    with pytest.raises(KeyringError):
        Keyring({"k1": K1}, "k2")
    with pytest.raises(KeyringError):
        Keyring({"bad id": K1}, "bad id")
    ring = Keyring({"k1": K1}, "k1")
    assert K1.hex() not in repr(ring) and repr(K1) not in repr(ring)


def test_parse_keyring_string() -> None:
    a, b = new_master_key(), new_master_key()
    ring = parse_keyring(f"k1:{a}, k2:{b.rstrip('=')}", "k2")
    assert ring.current_id == "k2" and set(ring.keys) == {"k1", "k2"}
    for bad in ["", "k1", f"k1:{a},k1:{b}", "k1:not-base64!", "k1:" + "QUJD"]:
        with pytest.raises(KeyringError):
            parse_keyring(bad, "k1")
    with pytest.raises(KeyringError):
        parse_keyring(f"k1:{a}", "k9")


def test_header_size_is_bounded() -> None:
    ring = Keyring({"k" * 64: K1}, "k" * 64)
    blob = encrypt(b"", ring)
    assert len(segments(blob)[0]) <= MAX_HEADER_SIZE


def test_file_streaming_memory_stays_bounded(ring1: Keyring, tmp_path: Path) -> None:
    """A recording is never held whole: peak Python allocations stay near a few segments, not 48 MiB."""
    size = 48 << 20
    plain, sealed, back = tmp_path / "plain", tmp_path / "sealed", tmp_path / "back"
    with open(plain, "wb") as fh:
        for _ in range(size >> 20):
            fh.write(os.urandom(1 << 20))
    tracemalloc.start()
    try:
        with open(plain, "rb") as src, open(sealed, "wb") as dst:
            encrypt_stream(src, dst, ring1)
        with open(sealed, "rb") as src, open(back, "wb") as dst:
            assert decrypt_stream(src, dst, ring1) == size
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 8 * SEGMENT_SIZE, f"peak {peak} bytes"
    with open(plain, "rb") as a, open(back, "rb") as b:
        while chunk := a.read(1 << 20):
            assert chunk == b.read(1 << 20)
