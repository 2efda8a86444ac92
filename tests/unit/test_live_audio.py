"""gateway.live_audio.LiveAudio alone: a chunk's publication is not awaited before the next frame is read (up to
its bound), chunks are published in order, ``end`` waits for every one, and a failed publication is raised."""

from __future__ import annotations

import asyncio
import wave
from pathlib import Path
from typing import Any

import pytest

from gateway.live_audio import LiveAudio

FRAME = b"\x01\x00" * 1600  # 100 ms of 16 kHz mono PCM


class SlowPublisher:
    """Acknowledges a publication only when the test releases it (a broker that takes a while to confirm)."""

    def __init__(self) -> None:
        self.produced: list[tuple[int, bool]] = []  # (seq, end_of_stream) in the order produced
        self.confirmed = 0
        self.release = asyncio.Event()
        self.fail_seq: int | None = None

    async def publish(self, topic: str, event: Any) -> None:
        self.produced.append((event.seq, event.end_of_stream))
        await self.release.wait()
        if event.seq == self.fail_seq:
            raise RuntimeError("the broker refused it")
        self.confirmed += 1


class NullStore:
    def __init__(self) -> None:
        self.frames: dict[str, tuple[int, bytes]] = {}  # key -> (frames its header says, the frames read)

    async def put_file(self, key: str, source: Path, content_type: str | None = None) -> None:
        with wave.open(str(source), "rb") as wav:
            self.frames[key] = (wav.getnframes(), wav.readframes(wav.getnframes() + 1000))


def audio(publisher: SlowPublisher, tmp_path: Path, max_unconfirmed_s: float = 0.5,
          store: NullStore | None = None) -> LiveAudio:
    return LiveAudio(publisher, store or NullStore(), stream_id="s", job_id="s", sample_rate=16000,  # type: ignore[arg-type]
                     channels=1, encoding="PCM_S16LE", options={}, source="live", object_key="k", spool=tmp_path,
                     max_unconfirmed_s=max_unconfirmed_s)


def test_frames_are_read_on_while_their_chunks_wait_for_the_broker(tmp_path: Path) -> None:
    async def run() -> None:
        pub = SlowPublisher()
        live = audio(pub, tmp_path)
        for _ in range(5):  # five chunks unconfirmed: within the bound of 0.5 s, no write waits
            await asyncio.wait_for(live.write(FRAME), 1)
        await asyncio.sleep(0)
        assert [seq for seq, _ in pub.produced] == [0, 1, 2, 3, 4] and pub.confirmed == 0
        sixth = asyncio.ensure_future(live.write(FRAME))  # past the bound: waits for the oldest
        await asyncio.sleep(0.05)
        assert not sixth.done()
        pub.release.set()
        await asyncio.wait_for(sixth, 1)
        await asyncio.wait_for(live.end(), 1)
        assert pub.produced == [(0, False), (1, False), (2, False), (3, False), (4, False), (5, False), (6, True)]
        assert pub.confirmed == 7, "end waits for every chunk"

    asyncio.run(run())


def test_a_failed_publication_fails_the_session(tmp_path: Path) -> None:
    async def run() -> None:
        pub = SlowPublisher()
        pub.fail_seq = 1
        live = audio(pub, tmp_path)
        await live.write(FRAME)
        await live.write(FRAME)
        pub.release.set()
        await asyncio.sleep(0.01)
        with pytest.raises(RuntimeError, match="refused"):
            await live.write(FRAME)

    asyncio.run(run())


def test_the_archive_holds_every_frame_and_its_header_says_so(tmp_path: Path) -> None:
    """Frames are spooled without rewriting the WAV header each time; it is written once, when the session ends."""
    async def run() -> None:
        pub, store = SlowPublisher(), NullStore()
        pub.release.set()
        live = audio(pub, tmp_path, store=store)
        for i in range(7):
            await live.write(bytes([i, 0]) * 1000)  # 1000 samples each, 7000 in all; the last 40 ms at end()
        await live.end()
        header, frames = store.frames["k"]
        assert header == 7000 and frames == b"".join(bytes([i, 0]) * 1000 for i in range(7))
        assert not list(tmp_path.iterdir()), "the spooled plaintext is gone"

    asyncio.run(run())
