"""Recognition stubbed out, for bench/stage_throughput.py only: with ``STREAMSCRIBE_BENCH_STUB_ASR=1`` in its
environment and this directory first on ``PYTHONPATH``, the asr worker (``streamscribe worker asr``) loads no model
and answers every speech window at once with one word. Everything else the worker does (consume, decode the
window's PCM, build and produce ``asr.segments``, job events, commit) is the real code. Never on in the product:
nothing outside bench/ puts this directory on the path."""

from __future__ import annotations

import os
import sys

if os.environ.get("STREAMSCRIBE_BENCH_STUB_ASR") == "1" and "worker" in sys.argv and "asr" in sys.argv:
    from collections.abc import Sequence

    from processors.asr import transcriber as _t

    def _warm_up(self: _t.Transcriber, name: str) -> None:
        return None

    def _transcribe(self: _t.Transcriber, requests: Sequence[_t.Request],
                    batch_size: int | None = None) -> list[_t.Result]:
        return [_t.Result(text="stub", words=[_t.Word(r.offset, r.offset + 0.5, "stub", 1.0)], language="en")
                for r in requests]

    _t.Transcriber.warm_up = _warm_up  # type: ignore[method-assign]
    _t.Transcriber.transcribe = _transcribe  # type: ignore[method-assign]
