"""Moment-of-truth (MOT) scoring: rating and/or bilingual text -> MOT -3..+3.

Public API (stable, imported by the alerts service)::

    from services.alerts.scoring import Scorer, ScoreResult, rating_to_mot
    scorer = Scorer.load()                     # once per process
    result = scorer.score("服务很差", rating={"scale": "csat", "value": 4})
"""

from .rating import RATING_TABLES, rating_to_mot
from .scorer import Scorer, ScoreResult

__all__ = ["RATING_TABLES", "Scorer", "ScoreResult", "rating_to_mot"]
