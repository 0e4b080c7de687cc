"""Texts for tests of a route's min_confidence, chosen by what the real scorer says of them now
(the model is retrained on its own branch): :func:`pick` takes the first candidate that scores
as a test needs, and the test sets its thresholds around that text's P(negative)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from services.alerts.scoring import Scorer, ScoreResult

NEGATIVE_TEXTS = [  # a text-only negative verdict, not a certain one
    "Check-in took a while, staff were okay.", "It was okay I guess.", "价格有点贵", "Delivery was late again.",
    "Not sure the upgrade was worth it.", "The queue was long.", "The app is slow sometimes.",
]
MILD_TEXTS = [  # not negative at the scorer's threshold, yet not clearly positive either
    "总体满意，停车有点难", "Good food, slow service.", "The flight landed on time.", "房间干净，就是有点小",
    "The room was clean and quiet.",
]


def pick(scorer: Scorer, texts: list[str], ok: Callable[[ScoreResult], bool]) -> tuple[str, ScoreResult]:
    for text in texts:
        result = scorer.score(text)
        if ok(result):
            return text, result
    pytest.fail("no candidate text scores as this test needs any more (the model changed): add one that does")


def uncertain_negative(scorer: Scorer) -> tuple[str, ScoreResult]:
    """A text the scorer calls negative on its own (no cue forcing it), short of certain."""
    return pick(scorer, NEGATIVE_TEXTS, lambda r: r.negative and r.forced_by is None and r.p_negative < 0.98)


def mild(scorer: Scorer) -> tuple[str, ScoreResult]:
    """A text the scorer scores 0 or above with a P(negative) some way above nothing."""
    return pick(scorer, MILD_TEXTS, lambda r: r.mot >= 0 and 0.1 < r.p_negative < scorer.alert_threshold)


def routes(*, strict: float, eager: float, default: float | None = None) -> str:
    """Teams ops (dm@example.com) and desk (desk@example.com); routes ``strict`` (locations
    strict-*) and ``eager`` (eager-*) to desk with those min_confidence; the rest to ops."""
    return f"""
{'' if default is None else f'min_confidence: {default}'}
teams:
  ops:
    delivery_manager: dm@example.com
  desk:
    delivery_manager: desk@example.com
routes:
  - name: strict
    match: {{location: "strict-*"}}
    team: desk
    min_confidence: {strict}
  - name: eager
    match: {{location: "eager-*"}}
    team: desk
    min_confidence: {eager}
default_route:
  team: ops
"""
