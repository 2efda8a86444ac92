"""One policy for truncated recordings, the same in every container: real speech converted with PyAV to MP3,
FLAC, WAV, Ogg Vorbis, Ogg Opus and M4A (index at the end and at the start), then cut short. The gateway's
probe refuses every cut file with a reason that says it is truncated, and decoding (what ingest runs) fails
with the same kind of reason; the whole files pass both."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from connectors.ingest.decode import TARGET_RATE, DecodeError, check_complete, decode_chunks
from gateway.probe import probe_path
from tests.recordings import FORMATS, convert, cut, in_every_container


@pytest.fixture(scope="module")
def recordings(speech: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("containers")
    return in_every_container(speech / "read" / "LJ001-0001.wav", folder)


def decoded_seconds(path: Path) -> float:
    samples = 0
    for chunk in decode_chunks(path):
        samples = chunk.start_sample + len(chunk.frames)
    return samples / TARGET_RATE


@pytest.mark.parametrize("name", FORMATS)
def test_a_whole_recording_passes_the_probe_and_decodes_to_its_end(recordings: dict[str, Path], name: str) -> None:
    found = probe_path(recordings[name])
    assert found.error is None, found.error
    assert found.duration is not None and abs(decoded_seconds(recordings[name]) - found.duration) < 0.1


@pytest.mark.parametrize("fraction", [0.5, 0.9])
@pytest.mark.parametrize("name", FORMATS)
def test_a_truncated_recording_is_refused_with_the_reason(recordings: dict[str, Path], name: str,
                                                          fraction: float) -> None:
    truncated = cut(recordings[name], fraction)
    found = probe_path(truncated)
    assert found.error is not None and "truncated" in found.error, (name, found.error)
    with pytest.raises(DecodeError, match="truncated"):
        decoded_seconds(truncated)


def test_an_mp3_without_a_vbr_header_cut_at_a_frame_is_a_shorter_recording(speech: Path, tmp_path: Path) -> None:
    """The documented limit: nothing in such a file says how long it was, so its cut is not seen (and no
    duration FFmpeg merely estimates makes a whole file look truncated)."""
    plain = convert(speech / "read" / "LJ001-0001.wav", tmp_path / "plain.mp3", "mp3", "libmp3lame", "mono",
                    {"write_xing": "0"})
    assert probe_path(plain).error is None
    frames = plain.read_bytes()
    # cut at the start of a frame (a frame sync) about halfway, so no partial frame is left
    middle = next(i for i in range(len(frames) // 2, len(frames) - 1)
                  if frames[i] == 0xFF and frames[i + 1] & 0xE0 == 0xE0)
    shorter = tmp_path / "shorter.mp3"
    shorter.write_bytes(frames[:middle])
    assert probe_path(shorter).error is None
    assert 3.0 < decoded_seconds(shorter) < 6.5


@pytest.mark.parametrize("name", FORMATS)
def test_the_checks_read_a_file_object_as_they_read_a_file(recordings: dict[str, Path], name: str) -> None:
    """Stored objects may be decoded from a file object (decrypted as it is read), not only from a path."""
    check_complete(io.BytesIO(recordings[name].read_bytes()))
    with pytest.raises(DecodeError, match="truncated"):
        check_complete(io.BytesIO(cut(recordings[name], 0.5).read_bytes()))
