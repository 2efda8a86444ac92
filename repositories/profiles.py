"""Enrolled voice profiles, read by the diarization workers when a stream's speakers are identified.

The diarization stage is synchronous (one record at a time between Kafka polls), so it reads with psycopg,
one short connection per identification (once per diarized stream, at its end).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import psycopg

from processors.diarization.identify import Profile

# errors that mean the database is unreachable for now: the worker stops without committing and is restarted
TRANSIENT_PROFILE_ERRORS: tuple[type[BaseException], ...] = (psycopg.OperationalError,)

ProfileSource = Callable[[str], list[Profile]]


def profile_source(database_url: str) -> ProfileSource:
    """The ready voice profiles of an organisation, read from PostgreSQL when a stream is diarized."""

    def load(org_id: str) -> list[Profile]:
        with psycopg.connect(database_url, connect_timeout=5) as conn:
            rows = conn.execute(
                "SELECT profile_id, name, embedding FROM speaker_profiles WHERE org_id = %s AND status = 'ready'",
                (org_id,),
            ).fetchall()
        return [Profile(pid, name, np.asarray(emb, dtype=np.float32)) for pid, name, emb in rows if emb]

    return load
