"""Human edits of a transcript, kept as revisions: an edit copies a completed revision (its segments,
speakers and turns) into a new one with the corrected words. The revision it was made from stays as it was,
so every edit can be compared with what the model heard, and nothing is overwritten.

A new revision number is taken under a lock on the job's row, so two edits saved at once get two revisions.
The job's own ``revision`` (the run its stages describe) does not move: an edit is not a pipeline run, and
the transcript endpoints serve the latest completed revision, which is the edit.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from typing import Any

import asyncpg

EDIT_MODEL_SUFFIX = "+edited"


class RevisionNotEditable(LookupError):
    """The revision an edit names does not exist or is not completed."""


class NotInRevision(LookupError):
    """A segment or a word an edit names is not in the revision edited."""


def apply_word_edits(words: list[dict[str, Any]], edits: Mapping[int, str]) -> list[dict[str, Any]]:
    """The segment's words with the text of the words at the given indices replaced. Timings are kept; an
    edited word gets probability 1.0 (a person confirmed it); an empty replacement removes the word. A word
    keeps the leading space the recogniser gave it, so the segment's text joins as before."""
    out: list[dict[str, Any]] = []
    for i, word in enumerate(words):
        if i not in edits:
            out.append(dict(word))
            continue
        text = " ".join(edits[i].split())
        if not text:
            continue
        lead = " " if str(word.get("word", "")).startswith(" ") else ""
        out.append({**word, "word": lead + text, "probability": 1.0})
    return out


def segment_text(words: list[dict[str, Any]]) -> str:
    """A segment's text from its words, as the post stage joins them."""
    return "".join(str(w["word"]) for w in words).strip()


class EditStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def save_edit(self, job_id: str, base: int, edits: Mapping[str, Mapping[int, str]],
                        author: str) -> tuple[int, int]:
        """Copy revision ``base`` of ``job_id`` into a new revision with ``edits`` (segment id -> word index ->
        new text) applied. Returns (new revision, words changed). ``NotInRevision`` names a segment or word the
        revision does not have; ``RevisionNotEditable`` a base that is not a completed revision."""
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.execute("SELECT 1 FROM jobs WHERE job_id = $1 FOR UPDATE", job_id)
            t = await conn.fetchrow("SELECT * FROM transcripts WHERE job_id = $1 AND revision = $2", job_id, base)
            if t is None or t["status"] != "completed":
                raise RevisionNotEditable(f"revision {base} of job {job_id} has no completed transcript")
            segs = await conn.fetch(
                "SELECT * FROM transcript_segments WHERE job_id = $1 AND revision = $2 ORDER BY start_s, idx",
                job_id, base)
            known = {s["segment_id"] for s in segs}
            missing = sorted(set(edits) - known)
            if missing:
                raise NotInRevision(f"revision {base} has no segment {missing[0]!r}")
            revision = int(await conn.fetchval(
                "SELECT COALESCE(max(revision), 0) + 1 FROM revisions WHERE job_id = $1", job_id))
            base_rev = await conn.fetchrow("SELECT * FROM revisions WHERE job_id = $1 AND revision = $2",
                                           job_id, base)
            options = {**(json.loads(base_rev["options"]) if base_rev else {}), "edited_from": str(base),
                       "edited_by": author}
            model = str(t["model"]).removesuffix(EDIT_MODEL_SUFFIX) + EDIT_MODEL_SUFFIX
            await conn.execute(
                "INSERT INTO revisions (job_id, revision, model, options, request_key, status, completed_at) "
                "VALUES ($1, $2, $3, $4::jsonb, $5, 'completed', now())",
                job_id, revision, model, json.dumps(options), f"edit:{uuid.uuid4().hex}")
            await conn.execute(
                "INSERT INTO transcripts (job_id, revision, stream_id, status, model, pipeline_version, language, "
                "duration, segment_count, text, completed_at) "
                "SELECT job_id, $3, stream_id, 'completed', $4, pipeline_version, language, duration, "
                "segment_count, text, now() FROM transcripts WHERE job_id = $1 AND revision = $2",
                job_id, base, revision, model)
            changed = 0
            rows = []
            for s in segs:
                words = json.loads(s["words"])
                text = s["text"]
                wanted = edits.get(s["segment_id"])
                if wanted:
                    bad = [i for i in wanted if not 0 <= i < len(words)]
                    if bad:
                        raise NotInRevision(f"segment {s['segment_id']!r} has no word {bad[0]}")
                    changed += sum(1 for i, new in wanted.items()
                                   if " ".join(new.split()) != str(words[i]["word"]).strip())
                    words = apply_word_edits(words, wanted)
                    text = segment_text(words)
                rows.append((job_id, revision, s["segment_id"], s["idx"], s["start_s"], s["end_s"], text,
                             s["speaker"], s["channel"], _confidence(words, s["confidence"]), json.dumps(words),
                             model, s["pipeline_version"], s["original_text"],
                             s["original_words"], s["redactions"]))
            await conn.executemany(
                "INSERT INTO transcript_segments (job_id, revision, segment_id, idx, start_s, end_s, text, speaker, "
                "channel, confidence, words, model, pipeline_version, original_text, original_words, redactions) "
                "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11::jsonb, $12, $13, $14, $15::jsonb, $16::jsonb)",
                rows)
            await conn.execute(
                "UPDATE transcripts SET text = (SELECT string_agg(text, ' ' ORDER BY start_s, idx) "
                "FROM transcript_segments s WHERE s.job_id = $1 AND s.revision = $2) "
                "WHERE job_id = $1 AND revision = $2", job_id, revision)
            await conn.execute(
                "INSERT INTO transcript_speakers (job_id, revision, speaker_id, label, name, renamed, channel, "
                "talk_time, identified_as, similarity) "
                "SELECT job_id, $3, speaker_id, label, name, renamed, channel, talk_time, identified_as, similarity "
                "FROM transcript_speakers WHERE job_id = $1 AND revision = $2", job_id, base, revision)
            await conn.execute(
                "INSERT INTO speaker_turns (job_id, revision, idx, start_s, end_s, speaker_id) "
                "SELECT job_id, $3, idx, start_s, end_s, speaker_id FROM speaker_turns "
                "WHERE job_id = $1 AND revision = $2", job_id, base, revision)
            return revision, changed


def _confidence(words: list[dict[str, Any]], fallback: float | None) -> float | None:
    if not words:
        return fallback
    return round(sum(float(w.get("probability") or 0.0) for w in words) / len(words), 4)
