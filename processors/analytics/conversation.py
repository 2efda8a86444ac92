"""The shape of a conversation from who spoke when: talk time and share, turns, monologues, interruptions,
overlap and silences (definitions in docs/analytics.md).

- **Talk time** of a speaker: the length of the union of their speech. **Talk share**: their talk time over
  the sum of every speaker's talk time (shares add up to 1; overlapped time counts for each speaker in it).
- **Speech time**: the length of the union of everybody's speech.
- **Overlap**: time in which two or more speakers talk at once; per speaker, time they talk while someone
  else does.
- **Turns**: every speaker's speech in order of start time; consecutive stretches of the same speaker form
  one turn unless they are more than ``turn_pause`` apart (another speaker starting in between always ends
  the turn). **Longest monologue**: the longest turn.
- **Interruption**: a turn that starts while another speaker is talking (strictly inside one of their
  stretches of speech): one interruption of each speaker talking at that moment, by the turn's speaker.
- **Silence**: the gaps between consecutive stretches of anybody's speech (not before the first word nor
  after the last); the total, the longest, and each gap of at least ``silence_threshold`` with its times.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from processors.analytics.timeline import Span, Speech, concurrency, gaps, measure, talking_at, union


@dataclass(frozen=True)
class Turn:
    speaker: str
    start: int
    end: int

    @property
    def length(self) -> int:
        return self.end - self.start


@dataclass(frozen=True)
class Interruption:
    at: int
    by: str
    of: str


@dataclass
class SpeakerShape:
    talk: int = 0
    overlap: int = 0
    turns: int = 0
    longest_turn: Turn | None = None
    interruptions_made: int = 0
    interrupted: int = 0


@dataclass
class Shape:
    """The timing metrics of one call, in milliseconds."""

    speech: int
    overlap: int
    silence: int
    longest_silence: Span | None
    silences: list[Span]  # gaps of at least the threshold
    turns: list[Turn]
    interruptions: list[Interruption]
    speakers: dict[str, SpeakerShape] = field(default_factory=dict)

    @property
    def talk_total(self) -> int:
        return sum(s.talk for s in self.speakers.values())

    def share(self, speaker: str) -> float:
        total = self.talk_total
        return self.speakers[speaker].talk / total if total else 0.0

    @property
    def longest_turn(self) -> Turn | None:
        return max(self.turns, key=lambda t: (t.length, -t.start), default=None)


def merged_by_speaker(speech: Sequence[Speech]) -> dict[str, list[Span]]:
    spans: dict[str, list[Span]] = {}
    for s in speech:
        spans.setdefault(s.speaker, []).append((s.start, s.end))
    return {speaker: union(v) for speaker, v in spans.items()}


def turns_of(by_speaker: dict[str, list[Span]], turn_pause: int) -> list[Turn]:
    stretches = sorted((start, end, speaker) for speaker, spans in by_speaker.items() for start, end in spans)
    out: list[Turn] = []
    for start, end, speaker in stretches:
        last = out[-1] if out else None
        if last is not None and last.speaker == speaker and start - last.end <= turn_pause:
            out[-1] = Turn(speaker, last.start, max(last.end, end))
        else:
            out.append(Turn(speaker, start, end))
    return out


def interruptions_of(turns: Sequence[Turn], by_speaker: dict[str, list[Span]]) -> list[Interruption]:
    return [Interruption(t.start, t.speaker, other) for t in turns for other in sorted(by_speaker)
            if other != t.speaker and talking_at(by_speaker[other], t.start)]


def shape(speech: Sequence[Speech], *, turn_pause: int, silence_threshold: int) -> Shape:
    """The timing metrics of the speech of one call."""
    by_speaker = merged_by_speaker(speech)
    everyone = union(span for spans in by_speaker.values() for span in spans)
    pieces = concurrency(by_speaker)
    quiet = gaps(everyone)
    turns = turns_of(by_speaker, turn_pause)
    interruptions = interruptions_of(turns, by_speaker)
    speakers = {name: SpeakerShape(talk=measure(spans)) for name, spans in sorted(by_speaker.items())}
    for start, end, who in pieces:
        if len(who) > 1:
            for name in who:
                speakers[name].overlap += end - start
    for t in turns:
        s = speakers[t.speaker]
        s.turns += 1
        if s.longest_turn is None or t.length > s.longest_turn.length:
            s.longest_turn = t
    for i in interruptions:
        speakers[i.by].interruptions_made += 1
        speakers[i.of].interrupted += 1
    return Shape(
        speech=measure(everyone),
        overlap=sum(end - start for start, end, who in pieces if len(who) > 1),
        silence=measure(quiet),
        longest_silence=max(quiet, key=lambda g: (g[1] - g[0], -g[0]), default=None),
        silences=[g for g in quiet if g[1] - g[0] >= silence_threshold],
        turns=turns, interruptions=interruptions, speakers=speakers)
