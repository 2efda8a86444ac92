"""Transient audio: private per-process spool directories that nothing outlives, and decryption that never
writes plaintext (``connectors.storage.spool``, ``connectors.storage.crypto.DecryptedView``)."""

from __future__ import annotations

import io
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from connectors.storage import spool
from connectors.storage.crypto import DecryptedView, DecryptionError, Keyring, encrypt_stream

RING = Keyring({"k1": os.urandom(32)}, "k1")


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_process_dir_is_private_and_per_process(tmp_path: Path) -> None:
    root = tmp_path / "tmp"
    root.mkdir(mode=0o755)
    mine = spool.process_dir(root, "ingest")
    assert mine.parent == root and mode(root) == 0o700 and mode(mine) == 0o700
    assert spool.owner(mine) is not None and spool.owner(mine)[1] == os.getpid()  # type: ignore[index]
    assert spool.process_dir(root, "ingest") == mine


def test_files_are_removed_on_every_path(tmp_path: Path) -> None:
    directory = spool.process_dir(tmp_path / "tmp", "gateway")
    with spool.spooled(directory, "upload-", ".wav") as path:
        path.write_bytes(b"RIFF....")
        assert mode(path) == 0o600
    assert not path.exists()
    with pytest.raises(RuntimeError), spool.spooled(directory, "upload-") as path:
        path.write_bytes(b"audio")
        raise RuntimeError("the client went away")
    assert list(directory.iterdir()) == []


def test_what_a_killed_process_left_is_removed_by_the_next_one(tmp_path: Path) -> None:
    """A child creates its spool and a file, then dies with SIGKILL; the next process to open a spool in the
    same root removes the dead one's directory (and a stray file), never a live process's."""
    root = tmp_path / "tmp"
    code = ("import os, signal, sys; from pathlib import Path; from connectors.storage import spool; "
            "d = spool.process_dir(Path(sys.argv[1]), 'ingest'); (d / 'fetch-x.wav').write_bytes(b'RIFF'); "
            "print(d, flush=True); os.kill(os.getpid(), signal.SIGKILL)")
    out = subprocess.run([sys.executable, "-c", code, str(root)], capture_output=True, text=True,
                         env={**os.environ, "PYTHONPATH": os.getcwd()})
    dead = Path(out.stdout.strip())
    assert out.returncode == -9 and (dead / "fetch-x.wav").exists()
    (root / "upload-old.wav").write_bytes(b"RIFF")  # left by a version without per-process directories
    live = root / f"gateway.{dead.name.split('.')[1]}.1"  # pid 1 is alive
    live.mkdir(mode=0o700)
    spool.process_dir(root, "vad")
    assert not dead.exists() and not (root / "upload-old.wav").exists() and live.exists()


def test_remove_dead_by_pid_and_clear_root(tmp_path: Path) -> None:
    root = spool.private_root(tmp_path / "tmp")
    host = spool.process_dir(root, "x").name.split(".")[1]
    for pid in (1, 2):
        (root / f"asr.{host}.{pid}").mkdir()
    (root / f"asr.otherhost.{99999}").mkdir()
    assert spool.remove_dead(root, {2}) == [root / f"asr.{host}.2"]
    assert (root / f"asr.{host}.1").exists() and (root / "asr.otherhost.99999").exists()
    assert spool.clear_root(root) == 3
    assert list(root.iterdir()) == [] and mode(root) == 0o700


def _encrypted(tmp_path: Path, data: bytes, segment: int = 64) -> Path:
    src, dst = tmp_path / "plain", tmp_path / "enc"
    src.write_bytes(data)
    with open(src, "rb") as a, open(dst, "wb") as b:
        encrypt_stream(a, b, RING, segment)
    src.unlink()
    return dst


@pytest.mark.parametrize("size", [0, 1, 63, 64, 65, 64 * 5, 1000])
def test_decrypted_view_reads_and_seeks_like_the_plaintext(tmp_path: Path, size: int) -> None:
    data = os.urandom(size)
    view = DecryptedView(open(_encrypted(tmp_path, data), "rb"), RING)  # noqa: SIM115 - the view closes it
    assert view.length == size and view.read() == data
    for pos in sorted({0, size // 3, max(0, size - 1), size}):
        view.seek(pos)
        assert view.read(70) == data[pos:pos + 70]
    view.seek(-min(size, 10), io.SEEK_END)
    assert view.read() == data[-min(size, 10):] if size else view.read() == b""
    assert io.BufferedReader(view).read() == b""  # at the end: nothing more
    view.close()


def test_decrypted_view_refuses_tampering_and_truncation(tmp_path: Path) -> None:
    enc = _encrypted(tmp_path, os.urandom(64 * 4 + 10))
    blob = bytearray(enc.read_bytes())
    blob[-5] ^= 1  # inside the last segment
    enc.write_bytes(blob)
    view = DecryptedView(open(enc, "rb"), RING)  # noqa: SIM115 - the view closes it
    assert len(view.read(64 * 4)) == 64 * 4  # untouched segments are served
    with pytest.raises(DecryptionError):
        view.read()
    whole = bytes(_encrypted(tmp_path, os.urandom(64 * 4)).read_bytes())
    enc.write_bytes(whole[: len(whole) - (64 + 16)])  # drop the last segment: the new last one is not "last"
    view = DecryptedView(open(enc, "rb"), RING)  # noqa: SIM115 - the view closes it
    with pytest.raises(DecryptionError):
        view.read()
