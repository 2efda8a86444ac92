"""Envelope encryption of stored audio: AES-256-GCM in fixed-size segments under a per-object data key.

Why this shape:
- **Envelope.** Every object gets its own random 256-bit data key; only that key is wrapped (RFC 3394 AES key
  wrap) by a master key from the keyring. Rotating a master key therefore rewrites a few hundred header
  bytes per object, never the recording itself, and a leaked data key exposes one object only.
- **Segments.** A multi-GB recording cannot be one GCM message (the whole plaintext would have to be held
  or released before its tag is checked). The body is cut into segments (1 MiB by default), each its own
  GCM message, so encryption and decryption stream with bounded memory.
- **Segment binding.** Each segment's nonce and associated data carry its index and whether it is the last
  one, plus the header's immutable prefix. Reordering, dropping, duplicating or appending segments, or
  truncating the object at a segment boundary, therefore fails authentication instead of yielding a
  shorter or shuffled recording (the construction of Hoang, Reyhanitabar, Rogaway and Vizár's "online
  authenticated encryption", as used by Tink's streaming AEAD).

Object layout, version 1 (all integers big-endian)::

    magic "SSAE" (4) | version (1) | segment size (4) | nonce prefix (7)      <- immutable prefix, 16 bytes
    key id length (1) | key id (ASCII) | wrapped key length (1) | wrapped key  <- rewritten by rotation
    segment 0 | segment 1 | ... | last segment                                  <- ciphertext || 16-byte tag

Every segment but the last holds exactly ``segment size`` plaintext bytes; the last holds 0 to ``segment
size`` bytes (an empty object is one empty last segment). Segment ``i`` uses nonce
``nonce prefix || i (4) || last flag (1)`` and associated data ``immutable prefix || i (4) || last flag (1)``.
The key id and wrapped key are not in the associated data (rotation changes them); tampering with them
fails the key unwrap instead.
"""

from __future__ import annotations

import io
import os
import re
import struct
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import BinaryIO

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.keywrap import InvalidUnwrap, aes_key_unwrap, aes_key_wrap

MAGIC = b"SSAE"
VERSION = 1
SEGMENT_SIZE = 1 << 20
TAG_SIZE = 16
KEY_SIZE = 32
NONCE_PREFIX_SIZE = 7
MAX_SEGMENT_SIZE = 64 << 20
MAX_SEGMENTS = 1 << 32
_FIXED = struct.Struct(">4sBI7s")  # magic, version, segment size, nonce prefix
_SEGMENT_INFO = struct.Struct(">IB")  # segment index, last flag
MAX_HEADER_SIZE = _FIXED.size + 1 + 255 + 1 + 255
_KEY_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")


class CryptoError(Exception):
    """Base of every error of this module."""


class KeyringError(CryptoError, ValueError):
    """The configured master keys are unusable (bad length, unknown current id, malformed id)."""


class DecryptionError(CryptoError):
    """The object cannot be decrypted: wrong master key, tampered, truncated, reordered or not encrypted."""


class UnknownKeyError(DecryptionError):
    """The object's data key is wrapped by a master key id that the keyring does not hold."""

    def __init__(self, key_id: str) -> None:
        super().__init__(f"the object is encrypted under master key {key_id!r}, which is not in the keyring")
        self.key_id = key_id


@dataclass(frozen=True, eq=False)
class Keyring:
    """Master keys by id; new objects are wrapped under ``current_id``, old ids stay for reading.

    The key bytes are excluded from ``repr`` so that logging a store or a settings object leaks nothing.
    """

    keys: Mapping[str, bytes] = field(repr=False)
    current_id: str

    def __post_init__(self) -> None:
        if not self.keys:
            raise KeyringError("the keyring holds no master key")
        for key_id, key in self.keys.items():
            check_key_id(key_id)
            if len(key) != KEY_SIZE:
                raise KeyringError(f"master key {key_id!r} has {len(key)} bytes; AES-256 needs {KEY_SIZE}")
        if self.current_id not in self.keys:
            raise KeyringError(f"the current master key id {self.current_id!r} is not in the keyring")
        object.__setattr__(self, "keys", dict(self.keys))

    def key(self, key_id: str) -> bytes:
        try:
            return self.keys[key_id]
        except KeyError:
            raise UnknownKeyError(key_id) from None

    @property
    def current_key(self) -> bytes:
        return self.keys[self.current_id]


def check_key_id(key_id: str) -> str:
    """Key ids go into headers and into ``id:key`` configuration strings, so they are short and plain."""
    if not _KEY_ID.fullmatch(key_id):
        raise KeyringError(f"master key id {key_id!r} must be 1-64 characters of A-Z a-z 0-9 . _ -")
    return key_id


@dataclass(frozen=True)
class Header:
    """The per-object header: how the body was cut, and the data key wrapped by one master key."""

    segment_size: int
    nonce_prefix: bytes
    key_id: str
    wrapped_key: bytes = field(repr=False)
    version: int = VERSION

    @property
    def fixed(self) -> bytes:
        """The immutable prefix, bound into every segment's associated data."""
        return _FIXED.pack(MAGIC, self.version, self.segment_size, self.nonce_prefix)

    def to_bytes(self) -> bytes:
        key_id = self.key_id.encode("ascii")
        return b"".join((self.fixed, bytes([len(key_id)]), key_id, bytes([len(self.wrapped_key)]),
                         self.wrapped_key))

    def unwrap(self, keyring: Keyring) -> bytes:
        """The object's data key; fails if the master key is wrong or the header was altered."""
        try:
            return aes_key_unwrap(keyring.key(self.key_id), self.wrapped_key)
        except InvalidUnwrap:
            raise DecryptionError(f"cannot unwrap the data key with master key {self.key_id!r}: "
                                  "wrong key or tampered header") from None


def parse_header(data: bytes | bytearray | memoryview) -> tuple[Header, int] | None:
    """The header at the start of ``data`` and its length, or None while more bytes are needed.

    Fails as soon as the fixed prefix is readable and wrong, so a non-encrypted object is rejected after a
    handful of bytes rather than after buffering it.
    """
    view = memoryview(data)
    if len(view) < _FIXED.size:
        if bytes(view[:len(MAGIC)]) != MAGIC[:len(view)]:
            raise DecryptionError("not an encrypted object (bad magic)")
        return None
    magic, version, segment_size, nonce_prefix = _FIXED.unpack_from(view)
    if magic != MAGIC:
        raise DecryptionError("not an encrypted object (bad magic)")
    if version != VERSION:
        raise DecryptionError(f"unsupported encryption format version {version}")
    if not 1 <= segment_size <= MAX_SEGMENT_SIZE:
        raise DecryptionError(f"invalid segment size {segment_size} in header")
    pos = _FIXED.size
    fields: list[bytes] = []
    for _ in range(2):
        if len(view) < pos + 1:
            return None
        size = view[pos]
        if len(view) < pos + 1 + size:
            return None
        fields.append(bytes(view[pos + 1:pos + 1 + size]))
        pos += 1 + size
    try:
        key_id = check_key_id(fields[0].decode("ascii"))
    except (UnicodeDecodeError, KeyringError):
        raise DecryptionError("invalid master key id in header") from None
    return Header(segment_size, nonce_prefix, key_id, fields[1], version), pos


def read_header(src: BinaryIO) -> tuple[Header, int]:
    """Read exactly the header from ``src``, leaving it positioned at the first segment."""
    data = b""
    while (missing := _header_missing(data)) > 0:
        chunk = src.read(missing)
        if not chunk:
            raise DecryptionError("truncated header" if data else "empty object")
        data += chunk
        parse_header(data)  # fails early on a wrong magic or version
    parsed = parse_header(data)
    assert parsed is not None
    return parsed


def _header_missing(data: bytes) -> int:
    """How many more bytes the partial header ``data`` certainly needs (reads never overshoot it)."""
    if len(data) < _FIXED.size:
        return _FIXED.size - len(data)
    pos = _FIXED.size
    for _ in range(2):
        if len(data) < pos + 1:
            return pos + 1 - len(data)
        end = pos + 1 + data[pos]
        if len(data) < end:
            return end - len(data)
        pos = end
    return 0


def new_header(keyring: Keyring, segment_size: int = SEGMENT_SIZE) -> tuple[Header, bytes]:
    """A header for a new object under the current master key, and the object's fresh data key."""
    if not 1 <= segment_size <= MAX_SEGMENT_SIZE:
        raise ValueError(f"segment size must be 1..{MAX_SEGMENT_SIZE}")
    data_key = AESGCM.generate_key(bit_length=256)
    header = Header(segment_size, os.urandom(NONCE_PREFIX_SIZE), keyring.current_id,
                    aes_key_wrap(keyring.current_key, data_key))
    return header, data_key


def rewrap(header: Header, keyring: Keyring) -> Header | None:
    """The header with its data key wrapped under the current master key; None if it already is.

    The data key, nonce prefix and segment size do not change, so the body stays valid as it is.
    """
    if header.key_id == keyring.current_id:
        return None
    data_key = header.unwrap(keyring)
    return Header(header.segment_size, header.nonce_prefix, keyring.current_id,
                  aes_key_wrap(keyring.current_key, data_key), header.version)


class _Segments:
    """Seal or open segment ``i`` of one object: nonce and associated data bind index and last flag."""

    def __init__(self, header: Header, data_key: bytes) -> None:
        self._aead = AESGCM(data_key)
        self._prefix = header.nonce_prefix
        self._fixed = header.fixed
        self.index = 0

    def _next(self, last: bool) -> tuple[bytes, bytes]:
        if self.index >= MAX_SEGMENTS:
            raise CryptoError("too many segments for one object")
        info = _SEGMENT_INFO.pack(self.index, 1 if last else 0)
        self.index += 1
        return self._prefix + info, self._fixed + info

    def seal(self, plaintext: bytes | memoryview, last: bool) -> bytes:
        nonce, aad = self._next(last)
        return self._aead.encrypt(nonce, plaintext, aad)

    def open_at(self, index: int, ciphertext: bytes | memoryview, last: bool) -> bytes:
        """Open segment ``index`` out of order (random access); the sequence counter is not used."""
        self.index = index
        return self.open(ciphertext, last)

    def open(self, ciphertext: bytes | memoryview, last: bool) -> bytes:
        index = self.index
        nonce, aad = self._next(last)
        try:
            return self._aead.decrypt(nonce, ciphertext, aad)
        except InvalidTag:
            raise DecryptionError(f"segment {index} failed authentication: wrong key, or tampered, truncated "
                                  "or reordered data") from None


def _take_segments(buf: bytearray, size: int, transform: Callable[[memoryview, bool], bytes]) -> bytes:
    """Seal or open every whole segment of ``size`` bytes at the front of ``buf`` except the last one (which
    may turn out to be the final, shorter segment), removing them from ``buf``."""
    out: list[bytes] = []
    view = memoryview(buf)
    pos = 0
    while len(buf) - pos > size:
        out.append(transform(view[pos:pos + size], False))
        pos += size
    view.release()
    del buf[:pos]
    return b"".join(out)


class Encryptor:
    """Incremental encryption of one object: ``header``, then ``update`` as data comes, then ``finalize``.

    A segment is sealed only once more data follows it, because the last one must carry the last flag.
    Memory stays at about one segment whatever the object's size.
    """

    def __init__(self, keyring: Keyring, segment_size: int = SEGMENT_SIZE) -> None:
        header, data_key = new_header(keyring, segment_size)
        self.header = header
        self._segments = _Segments(header, data_key)
        self._buf = bytearray()
        self._done = False

    def update(self, data: bytes | memoryview) -> bytes:
        if self._done:
            raise CryptoError("update after finalize")
        self._buf += data
        size = self.header.segment_size
        if len(self._buf) <= size:
            return b""
        return _take_segments(self._buf, size, self._segments.seal)

    def finalize(self) -> bytes:
        if self._done:
            raise CryptoError("finalize called twice")
        self._done = True
        last = self._segments.seal(bytes(self._buf), last=True)
        self._buf.clear()
        return last


class Decryptor:
    """Incremental decryption of one object: ``update`` with ciphertext as it comes, then ``finalize``.

    Plaintext is released segment by segment once each is authenticated, but the object as a whole is
    authentic only when ``finalize`` returns: callers write to a temporary file and publish it after that.
    """

    def __init__(self, keyring: Keyring) -> None:
        self._keyring = keyring
        self.header: Header | None = None
        self._segments: _Segments | None = None
        self._buf = bytearray()
        self._done = False

    def update(self, data: bytes | memoryview) -> bytes:
        if self._done:
            raise CryptoError("update after finalize")
        self._buf += data
        if self._segments is None and not self._start():
            return b""
        assert self.header is not None and self._segments is not None
        size = self.header.segment_size + TAG_SIZE
        if len(self._buf) <= size:
            return b""
        return _take_segments(self._buf, size, self._segments.open)

    def _start(self) -> bool:
        parsed = parse_header(self._buf)
        if parsed is None:
            return False
        self.header, length = parsed
        self._segments = _Segments(self.header, self.header.unwrap(self._keyring))
        del self._buf[:length]
        return True

    def finalize(self) -> bytes:
        if self._done:
            raise CryptoError("finalize called twice")
        self._done = True
        if self._segments is None and not self._start():
            raise DecryptionError("truncated header" if self._buf else "empty object")
        assert self.header is not None and self._segments is not None
        if not TAG_SIZE <= len(self._buf) <= self.header.segment_size + TAG_SIZE:
            raise DecryptionError(f"truncated object: {len(self._buf)} bytes cannot be the last segment")
        plaintext = self._segments.open(bytes(self._buf), last=True)
        self._buf.clear()
        return plaintext


class DecryptedView(io.RawIOBase):
    """The plaintext of an encrypted object, readable and seekable without ever being written anywhere.

    ``src`` is the object as stored (seekable ciphertext). Each read decrypts and authenticates only the
    segments it touches (one is kept for the next read), so a decoder that seeks (an MP4 whose index is at the
    end) works and memory stays at one segment. The segment count follows from the object's size, so the
    last segment is opened as the last one: a truncated object fails when its end is read, and every segment
    read is authentic. ``DecryptionError`` comes out of ``read`` for a tampered segment.
    """

    def __init__(self, src: BinaryIO, keyring: Keyring) -> None:
        super().__init__()
        self._src = src
        src.seek(0)
        header, self._start = read_header(src)
        self._segments = _Segments(header, header.unwrap(keyring))
        self._size = header.segment_size
        body = src.seek(0, io.SEEK_END) - self._start
        stride = self._size + TAG_SIZE
        self._count = max(1, -(-body // stride))
        last = body - (self._count - 1) * stride
        if last < TAG_SIZE:
            raise DecryptionError(f"truncated object: {last} bytes cannot be the last segment")
        self.length = (self._count - 1) * self._size + last - TAG_SIZE
        self._pos = 0
        self._cached: tuple[int, bytes] = (-1, b"")

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self.length}[whence]
        if base + offset < 0:
            raise ValueError("negative seek position")
        self._pos = base + offset
        return self._pos

    def _segment(self, index: int) -> bytes:
        if self._cached[0] != index:
            stride = self._size + TAG_SIZE
            self._src.seek(self._start + index * stride)
            ciphertext = self._src.read(stride)
            self._cached = (index, self._segments.open_at(index, ciphertext, index == self._count - 1))
        return self._cached[1]

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        view = memoryview(buffer).cast("B")
        done = 0
        while done < len(view) and self._pos < self.length:
            index, offset = divmod(self._pos, self._size)
            piece = self._segment(index)[offset:offset + len(view) - done]
            view[done:done + len(piece)] = piece
            done += len(piece)
            self._pos += len(piece)
        return done

    def close(self) -> None:
        self._cached = (-1, b"")
        self._src.close()
        super().close()


def encrypt_stream(src: BinaryIO, dst: BinaryIO, keyring: Keyring, segment_size: int = SEGMENT_SIZE) -> int:
    """Encrypt all of ``src`` into ``dst``; returns the bytes written."""
    written = 0
    for chunk in iter_encrypted(src, keyring, segment_size):
        dst.write(chunk)
        written += len(chunk)
    return written


def iter_encrypted(src: BinaryIO, keyring: Keyring, segment_size: int = SEGMENT_SIZE,
                   chunk_size: int = 0) -> Iterator[bytes]:
    """The encrypted object as a sequence of chunks (header first), for writers that upload in parts.

    With ``chunk_size`` set, chunks are gathered until at least that many bytes (the last may be smaller),
    which is what S3 multipart uploads need; memory stays at about ``chunk_size`` plus one segment.
    """
    enc = Encryptor(keyring, segment_size)
    pending = bytearray(enc.header.to_bytes())
    while block := src.read(segment_size):
        pending += enc.update(block)
        if len(pending) >= max(chunk_size, 1):
            yield bytes(pending)
            pending.clear()
    pending += enc.finalize()
    yield bytes(pending)


def decrypt_stream(src: BinaryIO, dst: BinaryIO, keyring: Keyring, read_size: int = SEGMENT_SIZE) -> int:
    """Decrypt all of ``src`` into ``dst``; returns the plaintext bytes written.

    Raises ``DecryptionError`` after possibly writing the authenticated segments that came before the bad
    one: ``dst`` must be a temporary file that is discarded on error.
    """
    dec = Decryptor(keyring)
    written = 0
    while block := src.read(read_size):
        plaintext = dec.update(block)
        dst.write(plaintext)
        written += len(plaintext)
    plaintext = dec.finalize()
    dst.write(plaintext)
    return written + len(plaintext)
