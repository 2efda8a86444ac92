"""Materializer stage: transcripts, jobs.events, speaker.turns, speakers.profiles, analytics.calls and
analytics.windows -> PostgreSQL (``repositories.projection.Projection``).

A consumed batch is applied in one database transaction before its offsets are committed; every write is an
upsert, so a batch replayed after a crash changes nothing. A lost database connection is transient: the
worker exits without committing and is restarted to retry.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import asyncpg

from foundation.settings import Settings
from repositories.projection import TRANSIENT_DB_ERRORS, Projection
from streams.kafka.topics import (
    ANALYTICS_CALLS,
    ANALYTICS_WINDOWS,
    JOBS_EVENTS,
    SPEAKER_PROFILES,
    SPEAKER_TURNS,
    TRANSCRIPTS,
)
from streams.runtime.stage import BaseStage, Context, Record, StageSpec

KINDS = {JOBS_EVENTS: "job", TRANSCRIPTS: "transcript", SPEAKER_TURNS: "turns", SPEAKER_PROFILES: "profile",
         ANALYTICS_CALLS: "analytics_call", ANALYTICS_WINDOWS: "analytics_window"}


class MaterializerStage(BaseStage):
    transient_errors: tuple[type[BaseException], ...] = TRANSIENT_DB_ERRORS

    def __init__(self, database_url: str) -> None:
        self.loop = asyncio.new_event_loop()
        asyncio.set_event_loop(self.loop)
        self.pool: asyncpg.Pool = self.loop.run_until_complete(
            asyncpg.create_pool(database_url, min_size=1, max_size=2)
        )
        self.projection = Projection(self.pool)

    @staticmethod
    def _events(records: Sequence[Record]) -> list[tuple[str, dict[str, Any]]]:
        return [(KINDS[r.topic], r.value) for r in records]

    def handle_batch(self, records: Sequence[Record], ctx: Context) -> bool:
        self.loop.run_until_complete(self.projection.apply(self._events(records)))
        return True

    def handle(self, record: Record, ctx: Context) -> None:
        self.handle_batch([record], ctx)

    def close(self) -> None:
        self.loop.run_until_complete(self.pool.close())
        self.loop.close()


def build(settings: Settings) -> MaterializerStage:
    return MaterializerStage(settings.database_url)


SPEC = StageSpec(name="materializer", doc="projects transcripts, job events, speakers, profiles and analytics into "
                 "PostgreSQL", inputs=(TRANSCRIPTS, JOBS_EVENTS, SPEAKER_TURNS, SPEAKER_PROFILES, ANALYTICS_CALLS,
                                       ANALYTICS_WINDOWS), outputs=(), build=build, batch=500)
