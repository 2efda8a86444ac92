"""Real recordings in other containers, made in the tests from the shared speech with PyAV, and cut short."""

from __future__ import annotations

from pathlib import Path

import av

# name -> (container format, codec, channel layout, muxer options)
FORMATS: dict[str, tuple[str, str, str, dict[str, str]]] = {
    "mp3": ("mp3", "libmp3lame", "mono", {}),
    "flac": ("flac", "flac", "mono", {}),
    "wav": ("wav", "pcm_s16le", "mono", {}),
    "ogg": ("ogg", "vorbis", "stereo", {}),  # FFmpeg's own Vorbis encoder: stereo only
    "opus": ("ogg", "libopus", "mono", {}),
    "m4a": ("mp4", "aac", "mono", {}),
    "faststart.m4a": ("mp4", "aac", "mono", {"movflags": "faststart"}),
}


def convert(source: Path, target: Path, fmt: str, codec: str, layout: str, options: dict[str, str]) -> Path:
    rate = 48_000 if codec == "libopus" else 22_050
    with av.open(str(source)) as src, av.open(str(target), "w", format=fmt, options=options) as out:
        stream = out.add_stream(codec, rate=rate)
        stream.layout = layout
        if codec == "vorbis":
            stream.codec_context.options = {"strict": "experimental"}
        resampler = av.AudioResampler(format=stream.format.name, layout=layout, rate=rate)
        for frame in [*src.decode(audio=0), None]:
            for piece in resampler.resample(frame):
                out.mux(stream.encode(piece))
        out.mux(stream.encode(None))
    return target


def in_every_container(source: Path, folder: Path) -> dict[str, Path]:
    return {name: convert(source, folder / f"whole.{name}", *spec) for name, spec in FORMATS.items()}


def cut(path: Path, fraction: float) -> Path:
    """The first ``fraction`` of the file's bytes, as an interrupted upload or copy leaves it."""
    data = path.read_bytes()
    target = path.with_name(f"cut{int(fraction * 100)}-{path.name}")
    target.write_bytes(data[:int(len(data) * fraction)])
    return target
