from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from connectors.ingest.decode import DecodeError, decode_chunks, probe
from processors.audio.pcm import AudioFormatError, StreamResampler, decode_pcm, mix_down


def test_decode_pcm_shapes_and_errors() -> None:
    frames = decode_pcm(np.arange(8, dtype="<i2").tobytes(), 2)
    assert frames.shape == (4, 2) and frames[1].tolist() == [2, 3]
    with pytest.raises(AudioFormatError, match="even byte count"):
        decode_pcm(b"\x00\x01\x02", 1)
    with pytest.raises(AudioFormatError, match="split into 3 channels"):
        decode_pcm(np.zeros(4, dtype="<i2").tobytes(), 3)
    with pytest.raises(AudioFormatError, match="channel count"):
        decode_pcm(b"", 0)


def test_mulaw_expands_to_the_g711_table() -> None:
    out = decode_pcm(bytes([0xFF, 0x7F, 0x00, 0x80]), 1, "MULAW")[:, 0].tolist()
    assert out == [0, 0, -32124, 32124]


def test_mix_and_resample() -> None:
    stereo = np.array([[100, 300], [-100, -300]], dtype=np.int16)
    assert mix_down(stereo).tolist() == [200, -200]
    tone = (np.sin(np.arange(8000) / 8000 * 2 * np.pi * 440) * 10000).astype(np.int16)
    up = StreamResampler(8000, 16000)(tone, last=True)
    assert len(up) == 16000 and abs(int(np.abs(up).max()) - 10000) < 600
    # fed chunk by chunk, as the VAD stage does: the same signal, no edge effects at the chunk boundaries
    resample = StreamResampler(8000, 16000)
    chunked = np.concatenate([resample(tone[i:i + 800], last=i + 800 == len(tone)) for i in range(0, len(tone), 800)])
    assert len(chunked) == 16000 and int(np.abs(chunked.astype(np.int32) - up).max()) <= 1


def test_decode_keeps_channels_and_chunks_a_second(speech: Path) -> None:
    path = speech / "calls" / "stereo_two_party.wav"
    info = probe(path)
    assert info.channels == 2 and info.sample_rate == 16000
    chunks = list(decode_chunks(path))
    assert all(c.frames.shape == (16000, 2) for c in chunks[:-1])
    assert [c.start_sample for c in chunks] == [i * 16000 for i in range(len(chunks))]
    left, right = (np.abs(np.concatenate([c.frames[:, i] for c in chunks]).astype(float)).mean() for i in (0, 1))
    assert left > 0 and right > 0


def test_decode_resamples_mp3_to_16k(speech: Path) -> None:
    chunks = list(decode_chunks(speech / "calls" / "call_center_phone_call.mp3"))
    total = sum(len(c.frames) for c in chunks) / 16000
    assert total == pytest.approx(113.08, abs=0.1)


@pytest.mark.parametrize("content, reason", [
    (b"", "empty file"),
    (b"\x00\x01garbage" * 300, "unsupported or corrupt"),
])
def test_decode_errors_are_worded_for_users(tmp_path: Path, content: bytes, reason: str) -> None:
    path = tmp_path / "bad.wav"
    path.write_bytes(content)
    with pytest.raises(DecodeError, match=reason):
        list(decode_chunks(path))
