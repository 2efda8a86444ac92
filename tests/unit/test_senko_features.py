"""processors.diarization.senko_features: senko's filter-bank features without its AVX-512 library, laid out as
senko's ``_extract_fbank_features`` lays them out, and the diarizer that uses them."""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np

from processors.diarization.senko_features import senko_diarizer, subsegment_features
from processors.diarization.speaker_embedding import MEL_BINS, fbank, frame_count

RATE = 16_000


def noise(seconds: float, seed: int = 0) -> np.ndarray:
    return (np.random.default_rng(seed).standard_normal(int(seconds * RATE)) * 0.1).astype(np.float32)


def test_each_subsegment_is_sliced_padded_and_laid_end_to_end() -> None:
    audio = noise(4.0)
    subs = [(0.0, 1.5), (1.0, 2.5), (3.99, 3.995), (3.5, 5.0)]  # a sliver, and one past the end of the audio
    flat, frames, offsets, dim = subsegment_features(audio, subs)
    assert dim == MEL_BINS
    assert frames.tolist() == [frame_count(24_000), frame_count(24_000), 1, frame_count(8_000)]
    assert offsets.tolist() == [0, *np.cumsum(frames[:-1] * dim).tolist()]
    assert flat.dtype == np.float32 and len(flat) == frames.sum() * dim
    second = flat[offsets[1]:offsets[1] + frames[1] * dim].reshape(-1, dim)
    np.testing.assert_array_equal(second, fbank(audio[16_000:40_000]))
    sliver = flat[offsets[2]:offsets[2] + dim]  # 80 samples, padded with zeros to one 25 ms frame
    np.testing.assert_array_equal(sliver, fbank(np.pad(audio[63_840:63_920], (0, 320)))[0])
    last = flat[offsets[3]:].reshape(-1, dim)
    np.testing.assert_array_equal(last, fbank(audio[56_000:]))
    assert np.allclose(last.mean(axis=0), 0, atol=1e-4), "mean-normalised per subsegment"


def test_a_sample_offset_places_the_audio_in_recording_time(tmp_path: Path) -> None:
    audio = noise(3.0, seed=1)
    whole = subsegment_features(audio, [(2.0, 3.0)])
    tail = subsegment_features(audio[RATE:], [(2.0, 3.0)], sample_offset=RATE)
    np.testing.assert_array_equal(whole[0], tail[0])
    path = tmp_path / "a.wav"
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(RATE)
        w.writeframes((audio * 32767).astype(np.int16).tobytes())
    from_file = subsegment_features(str(path), [(2.0, 3.0)])
    assert from_file[1].tolist() == whole[1].tolist()
    assert np.abs(from_file[0] - whole[0]).max() < 0.05  # the same audio through 16-bit PCM


def test_no_subsegment_gives_empty_features() -> None:
    flat, frames, offsets, dim = subsegment_features(noise(1.0), [])
    assert len(flat) == len(frames) == len(offsets) == 0 and dim == MEL_BINS


def test_the_diarizer_embeds_with_these_features() -> None:
    """senko's own extraction would die here with SIGILL on a CPU without AVX-512 (and with it, the test run)."""
    diarizer = senko_diarizer()
    audio = noise(3.0, seed=2)
    subs = [(0.0, 1.5), (1.5, 3.0)]
    got = diarizer._extract_fbank_features(audio, subs)
    want = subsegment_features(audio, subs)
    for a, b in zip(got, want, strict=True):
        np.testing.assert_array_equal(a, b)
    embeddings = diarizer._generate_embeddings(*got)
    assert embeddings.shape == (2, 192) and np.isfinite(embeddings).all()
