"""The analytics stage: conversation analytics of every call and live aggregates, hosted by faust-streaming
(``app``: the declaration, topics and tables; ``calls`` and ``aggregates``: its two agents)."""

from streams.stages.analytics.app import SPEC

__all__ = ["SPEC"]
