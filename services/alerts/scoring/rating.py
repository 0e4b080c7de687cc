"""Map explicit ratings onto the Carlzon moment-of-truth (MOT) scale -3..+3.

MOT levels: +3 delighted, +2 exceeded expectations, +1 met, 0 neutral,
-1 partly failed, -2 failed, -3 endangered the relationship.

A bare number tells us how satisfied someone is, not *why*; the two ends of
the MOT scale (+3 "delighted", -3 "endangered the relationship") therefore
need words, except on the ``nps`` scale whose 0..2 and 10 are already extreme
statements about recommending us.  The text scorer can still push any rating
to -3 (escalation cues) and the worse of rating and text wins.

``mot`` (-3..3): taken as given.

``nps`` (0..10, "how likely are you to recommend us"):

    value  0-2  3-4  5-6  7  8  9  10
    MOT     -3   -2   -1  0 +1 +2 +3

    Detractors (0-6) are all negative: 0-2 is an active "would warn others"
    (relationship at risk), 3-4 failed, 5-6 partly failed.  Passives split:
    7 is indifferent (neutral), 8 met expectations.  Promoters: 9 exceeded,
    10 is the top box, i.e. delighted.

``csat`` (1..5, very dissatisfied .. very satisfied):

    value   1   2  3   4   5
    MOT    -2  -1  0  +1  +2

    1 = the moment failed; 2 = partly failed; 3 = neither; 4 = satisfied (met);
    5 = very satisfied (exceeded).  ±3 need text evidence.

``stars`` (1..5 review stars):

    value   1   2  3   4   5
    MOT    -2  -1  0  +1  +2

    Same reading as CSAT: one star says the experience failed but not that
    the customer is leaving (that needs words), five stars says it exceeded
    expectations.  Half stars are allowed; a non-integer value rounds towards
    the worse level (3.5 stars -> 3), because an alert missed costs more than
    an alert raised.

Any other scale, a non-numeric value, or a value outside the scale's range
raises ``ValueError``.
"""

from __future__ import annotations

import math

RATING_TABLES: dict[str, dict[int, int]] = {
    "mot": {v: v for v in range(-3, 4)},
    "nps": {0: -3, 1: -3, 2: -3, 3: -2, 4: -2, 5: -1, 6: -1, 7: 0, 8: 1, 9: 2, 10: 3},
    "csat": {1: -2, 2: -1, 3: 0, 4: 1, 5: 2},
    "stars": {1: -2, 2: -1, 3: 0, 4: 1, 5: 2},
}


def rating_to_mot(scale: str, value: int | float) -> int:
    """MOT level (-3..3) for ``value`` on ``scale`` (mot, nps, csat, stars).

    Raises ``ValueError`` on an unknown scale or an out-of-range value.
    """
    if not isinstance(scale, str) or scale.strip().lower() not in RATING_TABLES:
        raise ValueError(f"unknown rating scale {scale!r}; expected one of {sorted(RATING_TABLES)}")
    table = RATING_TABLES[scale.strip().lower()]
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"rating value must be a number, got {value!r}")
    if not math.isfinite(value):
        raise ValueError(f"rating value must be finite, got {value!r}")
    lo, hi = min(table), max(table)
    if not lo <= value <= hi:
        raise ValueError(f"rating {value!r} out of range {lo}..{hi} for scale {scale!r}")
    return table[math.floor(value)]
