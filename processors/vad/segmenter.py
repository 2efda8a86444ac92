"""Speech segmentation of one 16 kHz mono channel with webrtcvad.

Frames are classified by webrtcvad and smoothed: speech starts when most of a short window is voiced and ends
after a run of silence. Two ways to cut segments:

- ``merge`` (uploads): consecutive utterances are merged into windows holding up to ``max_segment_s`` of speech
  (each utterance with its padding), the unit Whisper reads at once, so recognition sees context and batches well.
  A window spans up to ``max_window_span_s`` of the stream, pauses included, and its audio is contiguous. One
  longer than ``max_segment_s`` also lists its ``pieces``: its utterances with the pauses between them shortened
  to fit ``max_segment_s`` (``shorten_pauses``), which a recogniser reads laid end to end, as faster-whisper's
  batched pipeline packs its VAD's speech: fewer, fuller windows;
- ``utterance`` (live): every utterance is a FINAL segment as soon as it ends, with growing PARTIAL segments
  while it lasts.

Either way an utterance longer than ``max_segment_s`` is cut at its quietest frame.

The segmenter's state is a small JSON-able dict plus the audio it still needs, so a stage can persist it and
rebuild the segmenter after a crash. Frame decisions use a fresh webrtcvad instance for every ``feed`` call,
which makes the output a pure function of the fed chunks: a restarted worker cuts exactly where the first
one would have.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from itertools import pairwise
from typing import Any, Literal

import numpy as np
import webrtcvad

RATE = 16_000
Mode = Literal["merge", "utterance"]


@dataclass(frozen=True)
class SegmenterConfig:
    aggressiveness: int = 2
    frame_ms: int = 30
    start_window_ms: int = 300
    start_ratio: float = 0.6
    end_silence_ms: int = 500
    end_ratio: float = 0.9
    pad_ms: int = 200
    max_segment_s: float = 28.0
    max_window_span_s: float = 28.0  # merge mode: a window's span, silences included (>= max_segment_s)
    partial_interval_s: float = 0.8
    first_partial_s: float = 0.4  # the first partial of an utterance comes this soon after speech starts
    mode: Mode = "merge"

    @property
    def frame_len(self) -> int:
        return RATE * self.frame_ms // 1000

    @property
    def pad(self) -> int:
        return RATE * self.pad_ms // 1000


@dataclass
class Cut:
    kind: Literal["PARTIAL", "FINAL"]
    start: int  # samples
    end: int
    audio: np.ndarray  # int16 mono
    # merge mode, a window too long to read whole: what to read of it (absolute samples, ordered, apart); None: all
    pieces: list[tuple[int, int]] | None = None

    @property
    def start_s(self) -> float:
        return self.start / RATE

    @property
    def end_s(self) -> float:
        return self.end / RATE


@dataclass
class SegmenterState:
    pos: int = 0  # samples already classified (frame aligned)
    total: int = 0  # samples fed
    flags: list[int] = field(default_factory=list)  # recent frame decisions, newest last
    in_speech: bool = False
    utt_start: int = 0
    last_voiced_end: int = 0
    win_start: int | None = None  # merge mode: open window of finished utterances
    win_end: int = 0
    win_pieces: list[list[int]] = field(default_factory=list)  # its utterances, [start, end) each, merged if touching
    emitted_end: int = 0  # end of the last FINAL: segments never overlap
    last_partial: int = 0
    finals: int = 0

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SegmenterState:
        return cls(**data)


class Segmenter:
    def __init__(self, config: SegmenterConfig, state: SegmenterState | None = None,
                 buffer: np.ndarray | None = None, buffer_start: int = 0) -> None:
        self.cfg = config
        self.st = state or SegmenterState()
        self.buf = buffer if buffer is not None else np.zeros(0, dtype=np.int16)
        self.buf_start = buffer_start
        self._start_frames = max(1, config.start_window_ms // config.frame_ms)
        self._end_frames = max(1, config.end_silence_ms // config.frame_ms)
        self._max_len = int(config.max_segment_s * RATE)
        self._max_span = max(self._max_len, int(config.max_window_span_s * RATE))
        if self.buf_start + len(self.buf) != self.st.total:
            raise ValueError(
                f"segmenter buffer covers [{self.buf_start}, {self.buf_start + len(self.buf)}) "
                f"but {self.st.total} samples were fed"
            )

    # -- input ---------------------------------------------------------------------------------------
    def feed(self, pcm: np.ndarray) -> list[Cut]:
        self.buf = np.concatenate([self.buf, pcm.astype(np.int16, copy=False)])
        self.st.total += len(pcm)
        vad = webrtcvad.Vad(self.cfg.aggressiveness)
        fl = self.cfg.frame_len
        cuts: list[Cut] = []
        while self.st.pos + fl <= self.st.total:
            frame = self._slice(self.st.pos, self.st.pos + fl)
            voiced = vad.is_speech(frame.tobytes(), RATE)
            self.st.pos += fl
            self._push(int(voiced))
            cuts += self._on_frame(bool(voiced))
        cuts = self._keep(cuts)
        if self.cfg.mode == "utterance" and self.st.in_speech:
            interval = int(self.cfg.partial_interval_s * RATE)
            if self.st.pos - self.st.last_partial >= interval:
                self.st.last_partial = self.st.pos
                start = self._utt_cut_start()
                cuts.append(Cut("PARTIAL", start, self.st.pos, self._slice(start, self.st.pos)))
        return cuts

    def finish(self) -> list[Cut]:
        """End of stream: close whatever is open, including the trailing partial frame."""
        cuts: list[Cut] = []
        end = self.st.total
        if self.st.in_speech:
            self.st.in_speech = False
            cuts += self._close_utterance(self.st.utt_start, end, at_end=True)
        if self.st.win_start is not None:
            cuts.append(self._emit_window())
        return self._keep(cuts)

    def _keep(self, cuts: list[Cut]) -> list[Cut]:
        """Drop FINAL cuts shorter than one frame (nothing left after overlap removal)."""
        kept = [c for c in cuts if c.kind == "PARTIAL" or c.end - c.start >= self.cfg.frame_len]
        self.st.finals += sum(1 for c in kept if c.kind == "FINAL")
        return kept

    # -- retention -----------------------------------------------------------------------------------
    def retain_from(self) -> int:
        """Earliest sample the segmenter may still need."""
        keep = self.st.pos - self._start_frames * self.cfg.frame_len - self.cfg.pad
        if self.st.in_speech:
            keep = min(keep, self._utt_cut_start())
        if self.st.win_start is not None:
            keep = min(keep, self.st.win_start)
        return max(0, min(keep, self.st.total))

    def trim(self, new_start: int) -> None:
        """Forget audio before ``new_start`` (which must not be after ``retain_from()``)."""
        if new_start > self.retain_from():
            raise ValueError("trim would drop audio the segmenter still needs")
        if new_start > self.buf_start:
            self.buf = self.buf[new_start - self.buf_start:].copy()
            self.buf_start = new_start

    # -- internals -----------------------------------------------------------------------------------
    def _slice(self, a: int, b: int) -> np.ndarray:
        a = max(a, self.buf_start)
        return self.buf[a - self.buf_start: b - self.buf_start]

    def _push(self, flag: int) -> None:
        self.st.flags.append(flag)
        keep = max(self._start_frames, self._end_frames)
        if len(self.st.flags) > keep:
            del self.st.flags[: len(self.st.flags) - keep]

    def _utt_cut_start(self) -> int:
        return max(self.st.utt_start - self.cfg.pad, self.st.emitted_end,
                   self.st.win_end if self.st.win_start is not None else 0)

    def _on_frame(self, voiced: bool) -> list[Cut]:
        fl = self.cfg.frame_len
        st = self.st
        cuts: list[Cut] = []
        if voiced:
            st.last_voiced_end = st.pos
        if not st.in_speech:
            recent = st.flags[-self._start_frames:]
            if len(recent) == self._start_frames and sum(recent) >= self.cfg.start_ratio * self._start_frames:
                st.in_speech = True
                # speech began at the first voiced frame of the window
                first = recent.index(1)
                st.utt_start = st.pos - (len(recent) - first) * fl
                st.last_partial = st.pos - int((self.cfg.partial_interval_s - self.cfg.first_partial_s) * RATE)
        else:
            recent = st.flags[-self._end_frames:]
            silent = len(recent) - sum(recent)
            if len(recent) == self._end_frames and silent >= self.cfg.end_ratio * self._end_frames:
                st.in_speech = False
                cuts += self._close_utterance(st.utt_start, st.last_voiced_end, at_end=False)
            else:
                cuts += self._cap_long_speech()
        # a merge window that has reached its span, or has no room for another utterance, is closed now, keeping
        # latency bounded
        if (self.cfg.mode == "merge" and st.win_start is not None and not st.in_speech
                and (st.pos - st.win_start >= self._max_span or self._content() > self._max_len - RATE)):
            cuts.append(self._emit_window())
        return cuts

    def _close_utterance(self, start: int, end: int, at_end: bool) -> list[Cut]:
        st = self.st
        pad = 0 if at_end else self.cfg.pad
        seg_end = min(end + pad, st.total)
        seg_start = self._utt_cut_start() if start == st.utt_start else start
        if self.cfg.mode == "utterance":
            return [self._final(seg_start, seg_end)]
        cuts: list[Cut] = []
        if st.win_start is not None and (self._content() + seg_end - seg_start > self._max_len
                                         or seg_end - st.win_start > self._max_span):
            cuts.append(self._emit_window())
            seg_start = max(seg_start, st.emitted_end)
        if st.win_start is None:
            st.win_start = st.win_end = seg_start
            st.win_pieces = []
        pieces = self._pieces()
        if pieces and seg_start <= pieces[-1][1]:
            pieces[-1][1] = max(pieces[-1][1], seg_end)
        else:
            pieces.append([seg_start, seg_end])
        st.win_pieces = pieces
        st.win_end = seg_end
        return cuts

    def _cap_long_speech(self) -> list[Cut]:
        st = self.st
        cuts: list[Cut] = []
        start = self._utt_cut_start()
        window_open = self.cfg.mode == "merge" and st.win_start is not None
        if not window_open and st.pos - start < self._max_len:
            return cuts
        if window_open and (self._content() + st.pos - start < self._max_len
                            and st.pos - (st.win_start or 0) < self._max_span):
            return cuts
        if window_open:
            # the open window plus this utterance would be too long: emit the window, keep the utterance
            cuts.append(self._emit_window())
            if st.pos - self._utt_cut_start() < self._max_len:
                return cuts
            start = self._utt_cut_start()
        cut = self._quietest(start, st.pos)
        cuts.append(self._final(start, cut))
        st.utt_start = cut + self.cfg.pad  # the next piece starts exactly at the cut
        st.last_partial = st.pos
        return cuts

    def _quietest(self, start: int, end: int) -> int:
        """Frame boundary of lowest energy in the last third of [start, end)."""
        fl = self.cfg.frame_len
        lo = start + (end - start) * 2 // 3
        lo -= (lo - start) % fl
        best, best_energy = end, float("inf")
        for a in range(lo, end - fl + 1, fl):
            frame = self._slice(a, a + fl).astype(np.float32)
            energy = float(np.mean(frame * frame)) if frame.size else 0.0
            if energy < best_energy:
                best, best_energy = a + fl // 2, energy
        return best

    def _pieces(self) -> list[list[int]]:
        """The open window's utterances; a state persisted before windows listed them holds one stretch."""
        st = self.st
        if st.win_start is None:
            return []
        return st.win_pieces or [[st.win_start, st.win_end]]

    def _content(self) -> int:
        """Samples of speech (utterances with their padding) in the open window."""
        return sum(b - a for a, b in self._pieces())

    def _emit_window(self) -> Cut:
        st = self.st
        assert st.win_start is not None
        pieces = self._pieces()
        cut = self._final(st.win_start, st.win_end)
        if cut.end - cut.start > self._max_len:  # too long to read whole: its pauses are shortened to fit
            kept = [(max(a, cut.start), min(b, cut.end)) for a, b in pieces]
            kept = shorten_pauses([(a, b) for a, b in kept if b > a], self._max_len)
            if len(kept) > 1:
                cut.pieces = kept
        st.win_start = None
        st.win_pieces = []
        return cut

    def _final(self, start: int, end: int) -> Cut:
        start = max(start, self.st.emitted_end)
        end = max(end, start)
        self.st.emitted_end = end
        return Cut("FINAL", start, end, self._slice(start, end))


def shorten_pauses(pieces: list[tuple[int, int]], room: int) -> list[tuple[int, int]]:
    """The pieces of speech (ordered, apart) widened into the pauses between them so that they fill up to ``room``
    samples: every pause is kept up to one common length, the longest that fits (short pauses whole, long ones
    shortened to it, half of what is kept on either side). Whisper reads pauses as cues (where one speaker stops,
    where a sentence ends); without them the tiny model ran utterances together."""
    gaps = [b[0] - a[1] for a, b in pairwise(pieces)]
    spare = room - sum(b - a for a, b in pieces)
    if not gaps or spare <= 0:
        return pieces
    cap, left = 0, spare
    for i, gap in enumerate(sorted(gaps)):  # water-filling: the common length every pause is cut to
        others = len(gaps) - i
        if (gap - cap) * others > left:
            cap += left // others
            break
        left -= (gap - cap) * others
        cap = gap
    out = [list(pieces[0])]
    for gap, (start, end) in zip(gaps, pieces[1:], strict=True):
        keep = min(gap, cap)
        if keep == gap:
            out[-1][1] = end
            continue
        out[-1][1] += keep // 2
        out.append([start - (keep - keep // 2), end])
    return [(a, b) for a, b in out]
