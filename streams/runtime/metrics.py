"""Prometheus metrics of the pipeline workers (each worker serves them on its /metrics)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

EVENTS = Counter("streamscribe_stage_events_total", "Events handled", ["stage", "topic"])
DEAD_LETTERS = Counter("streamscribe_dead_letters_total", "Events sent to a dead-letter topic", ["stage", "topic"])
BATCH_SECONDS = Histogram("streamscribe_stage_batch_seconds", "Time to handle and commit one batch", ["stage"])
EVENT_AGE = Histogram("streamscribe_stage_event_age_seconds",
                      "From an event's production to its handling by the stage (per-stage latency)", ["stage"],
                      buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300))
LAG = Gauge("streamscribe_consumer_lag", "Events behind the end of the log", ["stage", "topic", "partition"])
AUDIO_SECONDS = Counter("streamscribe_audio_seconds_total", "Seconds of audio processed", ["stage"])
REAL_TIME_FACTOR = Histogram("streamscribe_asr_real_time_factor", "Recognition time / audio duration", ["kind"],
                             buckets=(0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2))
LANE_PAUSES = Counter("streamscribe_lane_pauses_total",
                      "Input partitions paused because a higher-priority lane had events waiting", ["stage", "topic"])
PAUSED_PARTITIONS = Gauge("streamscribe_paused_partitions", "Input partitions paused for a higher lane now",
                          ["stage", "topic"])
DIARIZATION_SECONDS = Histogram("streamscribe_diarization_seconds",
                                "Diarization work per speech window (step=embed) and per stream end (step=cluster)",
                                ["backend", "step"], buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30))
