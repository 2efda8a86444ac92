"""The local object store, and the behaviour contract every ObjectStore backend must meet.

``StoreContract`` holds backend-independent tests; a backend's test class inherits it and provides three
fixtures: ``open_store`` (keyring -> a store over the same storage), ``raw`` (key -> the stored bytes,
read behind the store's back) and ``write_raw`` (key, bytes -> store bytes as they are).
``tests/integration/test_s3_storage.py`` runs the same contract against a real S3 server.
"""

from __future__ import annotations

import hashlib
import io
import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from connectors.ingest.decode import decode_chunks, probe
from connectors.storage import local as local_module
from connectors.storage.base import ObjectNotFound, ObjectStore, SyncStore, rotate_prefix
from connectors.storage.crypto import MAGIC, DecryptionError, Keyring, KeyringError, UnknownKeyError, parse_header
from connectors.storage.factory import make_store, new_master_key
from connectors.storage.local import LocalObjectStore
from connectors.storage.spool import decrypted

K1, K2 = os.urandom(32), os.urandom(32)
RING1 = Keyring({"k1": K1}, "k1")
RING2 = Keyring({"k1": K1, "k2": K2}, "k2")  # after rotation: k2 writes, k1 still reads
RING2_ONLY = Keyring({"k2": K2}, "k2")
BAD_KEYS = ["", "../escape", "a/../../escape", "/etc/passwd", "a//b", "a/./b", ".hidden", "a/.tmp",
            "a\\b", "a\x00b", "x.part"]

OpenStore = Callable[[Keyring], ObjectStore]
Raw = Callable[[str], Awaitable[bytes]]
WriteRaw = Callable[[str, bytes], Awaitable[None]]


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def header_key_id(blob: bytes) -> str:
    parsed = parse_header(blob)
    assert parsed is not None
    return parsed[0].key_id


def body(blob: bytes) -> bytes:
    parsed = parse_header(blob)
    assert parsed is not None
    return blob[parsed[1]:]


class StoreContract:
    """Behaviour every backend must have; subclasses provide ``open_store``, ``raw`` and ``write_raw``."""

    @pytest.fixture
    def prefix(self) -> str:
        """A fresh namespace per test, so tests can share one bucket."""
        return f"t{uuid.uuid4().hex[:10]}"

    @pytest.fixture
    async def store(self, open_store: OpenStore) -> AsyncIterator[ObjectStore]:
        store = open_store(RING1)
        yield store
        await store.close()

    @pytest.fixture
    def audio(self, speech: Path) -> Path:
        """A real recording, read where it lives (never copied into the project)."""
        return speech / "calls" / "call_center_phone_call.mp3"

    async def test_real_audio_round_trip_is_encrypted_at_rest(self, store: ObjectStore, raw: Raw, prefix: str,
                                                              audio: Path, tmp_path: Path) -> None:
        key = f"{prefix}/uploads/job1/original.mp3"
        await store.put_file(key, audio, "audio/mpeg")
        stored = await raw(key)
        plaintext = audio.read_bytes()
        assert stored.startswith(MAGIC) and header_key_id(stored) == "k1"
        assert stored != plaintext and plaintext[:64] not in stored and plaintext[-64:] not in stored
        assert len(stored) > len(plaintext)
        out = tmp_path / "out" / "copy.mp3"
        await store.get_to_file(key, out)
        assert digest(out) == digest(audio)

    @pytest.mark.parametrize("size", [0, 1, (1 << 20) * 2 + 333])
    async def test_round_trip_sizes(self, store: ObjectStore, prefix: str, tmp_path: Path, size: int) -> None:
        src = write(tmp_path / "src.bin", os.urandom(size))
        await store.put_file(f"{prefix}/blob", src)
        await store.get_to_file(f"{prefix}/blob", tmp_path / "dst.bin")
        assert digest(tmp_path / "dst.bin") == digest(src)

    async def test_overwrite_replaces_the_object(self, store: ObjectStore, prefix: str, tmp_path: Path) -> None:
        key = f"{prefix}/a.wav"
        await store.put_file(key, write(tmp_path / "one", b"first version"))
        await store.put_file(key, write(tmp_path / "two", b"second"))
        await store.get_to_file(key, tmp_path / "out")
        assert (tmp_path / "out").read_bytes() == b"second"

    async def test_missing_key(self, store: ObjectStore, prefix: str, tmp_path: Path) -> None:
        key = f"{prefix}/nothing/here.wav"
        dest = tmp_path / "dest.wav"
        with pytest.raises(ObjectNotFound):
            await store.get_to_file(key, dest)
        assert not dest.exists()
        with pytest.raises(ObjectNotFound):
            await store.rotate(key)
        assert await store.exists(key) is False
        await store.delete(key)  # deleting a missing object is fine: deletes are retried

    async def test_exists_delete_list_and_delete_prefix(self, store: ObjectStore, prefix: str,
                                                        tmp_path: Path) -> None:
        src = write(tmp_path / "src", b"audio")
        keys = [f"{prefix}/a/1.wav", f"{prefix}/a/2.wav", f"{prefix}/a/b/3.wav", f"{prefix}/ab/4.wav",
                f"{prefix}/c.wav"]
        for key in keys:
            await store.put_file(key, src)
        assert await store.list_keys(prefix) == sorted(keys)
        assert await store.list_keys(f"{prefix}/a/") == keys[:3]
        assert await store.list_keys(f"{prefix}/a") == keys[:4]  # a string prefix, as in S3
        assert await store.list_keys(f"{prefix}/zzz/") == []

        assert await store.exists(keys[0])
        await store.delete(keys[0])
        assert not await store.exists(keys[0])
        assert await store.list_keys(f"{prefix}/a/") == keys[1:3]

        assert await store.delete_prefix(f"{prefix}/a/") == 2
        assert await store.list_keys(prefix) == [keys[3], keys[4]]
        assert await store.delete_prefix(f"{prefix}/a/") == 0
        with pytest.raises(ValueError):
            await store.delete_prefix("")
        await store.get_to_file(keys[4], tmp_path / "still-there")
        assert (tmp_path / "still-there").read_bytes() == b"audio"

    async def test_rotation_rewraps_and_old_objects_stay_readable(self, open_store: OpenStore, raw: Raw,
                                                                  prefix: str, tmp_path: Path) -> None:
        data = os.urandom((1 << 20) + 77)
        src = write(tmp_path / "src", data)
        old_store = open_store(RING1)
        rotated_key, untouched_key = f"{prefix}/rotated.wav", f"{prefix}/untouched.wav"
        try:
            await old_store.put_file(rotated_key, src, "audio/wav")
            await old_store.put_file(untouched_key, src)
        finally:
            await old_store.close()
        before = await raw(rotated_key)

        new_store, k2_only, k1_only = open_store(RING2), open_store(RING2_ONLY), open_store(RING1)
        try:
            assert await new_store.rotate(rotated_key) is True
            after = await raw(rotated_key)
            assert header_key_id(before) == "k1" and header_key_id(after) == "k2"
            assert body(after) == body(before)  # re-wrapped, not re-encrypted
            assert await new_store.rotate(rotated_key) is False  # already current
            assert await raw(rotated_key) == after

            await k2_only.get_to_file(rotated_key, tmp_path / "r")  # k1 no longer needed for it
            assert (tmp_path / "r").read_bytes() == data
            with pytest.raises(UnknownKeyError):
                await k1_only.get_to_file(rotated_key, tmp_path / "x")
            await new_store.get_to_file(untouched_key, tmp_path / "u")  # not rotated yet: k1 still reads it
            assert (tmp_path / "u").read_bytes() == data
            with pytest.raises(UnknownKeyError):
                await k2_only.get_to_file(untouched_key, tmp_path / "y")

            await new_store.put_file(f"{prefix}/fresh.wav", src)  # new writes use the current key
            assert header_key_id(await raw(f"{prefix}/fresh.wav")) == "k2"
            assert await rotate_prefix(new_store, prefix) == (1, 2)
            assert header_key_id(await raw(untouched_key)) == "k2"
        finally:
            for s in (new_store, k2_only, k1_only):
                await s.close()

    async def test_tampered_object_fails_and_leaves_no_file(self, store: ObjectStore, raw: Raw,
                                                            write_raw: WriteRaw, prefix: str,
                                                            tmp_path: Path) -> None:
        key = f"{prefix}/t.wav"
        await store.put_file(key, write(tmp_path / "src", os.urandom(3 << 20)))
        blob = bytearray(await raw(key))
        two_segments = len(blob) - len(body(bytes(blob))) + 2 * ((1 << 20) + 16)
        out_dir = tmp_path / "out"
        out_dir.mkdir()
        for name, bad in [("flipped", _flip(blob, len(blob) // 2)), ("truncated", bytes(blob[:-100])),
                          ("last segment dropped", bytes(blob[:two_segments])), ("plaintext", b"RIFF....WAVEfmt ")]:
            await write_raw(key, bad)
            with pytest.raises(DecryptionError):
                await store.get_to_file(key, out_dir / "dest.wav")
            assert list(out_dir.iterdir()) == [], name

    async def test_invalid_keys_are_rejected(self, store: ObjectStore, tmp_path: Path) -> None:
        src = write(tmp_path / "src", b"x")
        for key in BAD_KEYS:
            with pytest.raises(ValueError):
                await store.put_file(key, src)
            with pytest.raises(ValueError):
                await store.get_to_file(key, tmp_path / "dest")
            with pytest.raises(ValueError):
                await store.exists(key)
            with pytest.raises(ValueError):
                await store.delete(key)
        with pytest.raises(ValueError):
            await store.list_keys("../")

    def test_decoded_straight_from_storage_without_plaintext_on_disk(self, open_store: OpenStore, prefix: str,
                                                                    audio: Path, tmp_path: Path) -> None:
        """``open_decrypted``: the recording's bytes, seekable, decodable by PyAV, and no file left anywhere in
        the spool, not even while it is being read."""
        spool = tmp_path / "spool"
        with SyncStore(open_store(RING1)) as sync:
            sync.put_file(f"{prefix}/call.mp3", audio)
            with decrypted(sync, f"{prefix}/call.mp3", spool) as view:
                assert list(spool.iterdir()) == [] if spool.exists() else True
                plaintext = audio.read_bytes()
                assert view.read() == plaintext
                view.seek(-1000, io.SEEK_END)
                assert view.read(400) == plaintext[-1000:-600]
                info = probe(view)
                assert info.codec.startswith("mp3") and info.channels == 1
                assert sum(len(c.frames) for c in decode_chunks(view)) == sum(
                    len(c.frames) for c in decode_chunks(audio))
            assert list(spool.iterdir()) == [] if spool.exists() else True
            with pytest.raises(ObjectNotFound):
                sync.open_decrypted(f"{prefix}/missing.mp3", spool)

    def test_sync_adapter(self, open_store: OpenStore, prefix: str, tmp_path: Path) -> None:
        src = write(tmp_path / "src", b"worker audio")
        with SyncStore(open_store(RING1)) as sync:
            sync.put_file(f"{prefix}/w.wav", src)
            assert sync.exists(f"{prefix}/w.wav")
            assert sync.list_keys(prefix) == [f"{prefix}/w.wav"]
            sync.get_to_file(f"{prefix}/w.wav", tmp_path / "out")
            assert (tmp_path / "out").read_bytes() == b"worker audio"
            assert sync.rotate(f"{prefix}/w.wav") is False
            with pytest.raises(ObjectNotFound):
                sync.get_to_file(f"{prefix}/missing", tmp_path / "m")
            sync.delete(f"{prefix}/w.wav")
            assert sync.delete_prefix(prefix) == 0
            assert not sync.exists(f"{prefix}/w.wav")


def _flip(blob: bytearray, offset: int) -> bytes:
    copy = bytearray(blob)
    copy[offset] ^= 0x80
    return bytes(copy)


class TestLocalStore(StoreContract):
    @pytest.fixture
    def root(self, tmp_path: Path) -> Path:
        return tmp_path / "objects"

    @pytest.fixture
    def open_store(self, root: Path) -> OpenStore:
        return lambda keyring: LocalObjectStore(root, keyring)

    @pytest.fixture
    def raw(self, root: Path) -> Raw:
        async def read(key: str) -> bytes:
            return (root / key).read_bytes()
        return read

    @pytest.fixture
    def write_raw(self, root: Path) -> WriteRaw:
        async def put(key: str, data: bytes) -> None:
            (root / key).write_bytes(data)
        return put

    async def test_symlink_escape_is_rejected(self, store: ObjectStore, root: Path, tmp_path: Path) -> None:
        outside = tmp_path / "outside"
        outside.mkdir()
        (root / "link").symlink_to(outside)
        with pytest.raises(ValueError):
            await store.put_file("link/x.wav", write(tmp_path / "src", b"x"))
        assert list(outside.iterdir()) == []
        assert await store.list_keys() == []  # symlinks are not listed either

    async def test_failed_write_keeps_the_old_object_and_leaves_no_temp(
            self, store: ObjectStore, root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        await store.put_file("a/obj.wav", write(tmp_path / "v1", b"version one"))

        def crash(src: object, dst: object, *args: object) -> None:
            dst.write(b"partial")  # type: ignore[attr-defined]
            raise OSError("disk full")

        monkeypatch.setattr(local_module, "encrypt_stream", crash)
        with pytest.raises(OSError, match="disk full"):
            await store.put_file("a/obj.wav", write(tmp_path / "v2", b"version two"))
        monkeypatch.undo()
        assert sorted(p.name for p in (root / "a").iterdir()) == ["obj.wav"]
        await store.get_to_file("a/obj.wav", tmp_path / "out")
        assert (tmp_path / "out").read_bytes() == b"version one"
        with pytest.raises(FileNotFoundError):
            await store.put_file("a/new.wav", tmp_path / "no-such-source")
        assert sorted(p.name for p in (root / "a").iterdir()) == ["obj.wav"]

    async def test_rotation_does_not_undo_a_concurrent_put(self, root: Path, tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
        """A put landing while rotation copies the old body must win: rotation re-reads and starts over."""
        await LocalObjectStore(root, RING1).put_file("r.wav", write(tmp_path / "old", b"old audio"))
        newer = tmp_path / "newer.enc"
        with open(write(tmp_path / "new", b"newer audio"), "rb") as src, open(newer, "wb") as dst:
            local_module.encrypt_stream(src, dst, RING1)
        original_copy = local_module.shutil.copyfileobj
        fired: list[bool] = []

        def copy_then_concurrent_put(src: Any, dst: Any, length: int = 0) -> None:
            original_copy(src, dst, length)
            if not fired:
                fired.append(True)
                os.replace(newer, root / "r.wav")  # what another process's put does

        monkeypatch.setattr(local_module.shutil, "copyfileobj", copy_then_concurrent_put)
        store = LocalObjectStore(root, RING2)
        assert await store.rotate("r.wav") is True
        monkeypatch.undo()
        assert fired and header_key_id((root / "r.wav").read_bytes()) == "k2"
        await store.get_to_file("r.wav", tmp_path / "out")
        assert (tmp_path / "out").read_bytes() == b"newer audio"
        assert sorted(p.name for p in root.iterdir()) == ["r.wav"]

    async def test_objects_are_private_files_and_delete_prefix_prunes_dirs(self, store: ObjectStore, root: Path,
                                                                           tmp_path: Path) -> None:
        await store.put_file("uploads/job1/original.wav", write(tmp_path / "src", b"x"))
        assert (root / "uploads/job1/original.wav").stat().st_mode & 0o077 == 0
        assert await store.delete_prefix("uploads/job1/") == 1
        assert not (root / "uploads/job1").exists() and (root / "uploads").is_dir()

    def test_factory_builds_an_encrypted_local_store(self, tmp_path: Path) -> None:
        store = make_store(backend="local", root=tmp_path / "o", keys=f"k1:{new_master_key()}",
                           current_key_id="k1")
        assert isinstance(store, LocalObjectStore) and isinstance(store, ObjectStore)
        assert store.keyring.current_id == "k1"
        with pytest.raises(KeyringError):
            make_store(backend="local", root=tmp_path / "o", keys="", current_key_id="k1")
        with pytest.raises(ValueError):
            make_store(backend="ftp", root=tmp_path / "o", keys=f"k1:{new_master_key()}", current_key_id="k1")
