"""Configs just set may show their old value for a moment (a broker replays the metadata log): the check after
setting them asks again until they show, within a bound, and reports what is still off after it."""

from __future__ import annotations

from typing import Any

import pytest

from streams.kafka import admin as admin_module

CATALOGUE = {"t": {"retention.ms": "604800000"}}


def test_a_config_that_shows_after_a_moment_is_not_a_mismatch(monkeypatch: pytest.MonkeyPatch) -> None:
    answers = [{"t": {"retention.ms": ("-1", "604800000")}}, {"t": {"retention.ms": ("-1", "604800000")}}, {}]
    monkeypatch.setattr(admin_module, "topic_config_mismatches", lambda *_a, **_k: answers.pop(0))
    assert admin_module.settled_mismatches(Any, CATALOGUE, 5, wait=5, interval=0.01) == {}
    assert answers == []


def test_a_config_that_never_shows_is_reported_after_the_wait(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []

    def never(*_a: object, **_k: object) -> dict[str, dict[str, tuple[str, str]]]:
        calls.append(1)
        return {"t": {"retention.ms": ("-1", "604800000")}}

    monkeypatch.setattr(admin_module, "topic_config_mismatches", never)
    assert admin_module.settled_mismatches(Any, CATALOGUE, 5, wait=0.05, interval=0.01) == never()
    assert len(calls) >= 3
    calls.clear()
    admin_module.settled_mismatches(Any, CATALOGUE, 5, wait=0.0)
    assert len(calls) == 1  # nothing was set: asked once
