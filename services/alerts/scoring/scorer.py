"""MOT scoring of one piece of feedback: text and/or rating -> ScoreResult.

The text side combines three layers:

1. curated bilingual lexicons with negation, intensifier/downtoner, contrast
   and concessive rules (``features.analyse``) -> human-readable cues;
2. a compact logistic-regression model over Chinese character n-grams,
   English word n-grams (negation-marked) and the lexicon scores, trained on
   all development sources (``build_model.py``) -> calibrated P(negative);
3. escalation cues (``escalation.py``) that force MOT -3.

Construct the ``Scorer`` once (``Scorer.load()`` reads the shipped model) and
call ``score`` per event; it is pure Python and takes tens of microseconds
for typical feedback.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .cues import model_cue, phrase_cues
from .escalation import EscalationDetector
from .features import Analysis, Lexicon, analyse, detect_lang, en_tokens, lexicon_features, ngrams, normalise
from .model import DEFAULT_ALERT_THRESHOLD, LinearModel, sigmoid
from .rating import rating_to_mot

_LANGS = ("zh", "en", "mixed", "unknown")
_LATIN = re.compile("[a-z]")
_MAX_CHARS = 20_000  # longer texts are scored on their first 20k characters
FORCED_BY = ("escalation", "rating")


@dataclass(frozen=True, slots=True)
class ScoreResult:
    """One scored feedback.

    ``negative`` is the verdict at the model's default threshold.  Why it is
    negative: ``forced_by`` is ``"escalation"`` (an escalation cue, MOT -3) or
    ``"rating"`` (the rating alone is negative); both always alert.  When
    ``forced_by`` is None a negative verdict rests on the text alone and
    ``p_negative`` (calibrated P(text is negative)) says how sure it is:
    ``alerts_at(threshold)`` is the decision for a routing rule that asks for
    more (or less) confidence than the default.
    """

    negative: bool
    mot: int
    confidence: float
    cues: list[str] = field(default_factory=list)
    lang: str = "unknown"
    escalation: list[str] = field(default_factory=list)
    reasons: list[str] = field(default_factory=list)
    text_mot: int | None = None
    rating_mot: int | None = None
    forced_by: str | None = None
    p_negative: float | None = None

    def to_dict(self) -> dict[str, Any]:
        # by hand: dataclasses.asdict deep-copies recursively and costs more than the JSON encoding
        return {"negative": self.negative, "mot": self.mot, "confidence": self.confidence, "cues": list(self.cues),
                "lang": self.lang, "escalation": list(self.escalation), "reasons": list(self.reasons),
                "text_mot": self.text_mot, "rating_mot": self.rating_mot, "forced_by": self.forced_by,
                "p_negative": self.p_negative}

    def alerts_at(self, threshold: float) -> bool:
        """Should this feedback raise an alert when text-only alerts need
        ``P(negative) >= threshold``?  Escalation cues and negative ratings
        always do."""
        if self.forced_by is not None:
            return True
        return self.p_negative is not None and self.p_negative >= threshold


@dataclass(frozen=True, slots=True)
class TextScore:
    """Intermediate result for the text alone (also used by the benchmark)."""

    p_negative: float
    mot: int
    has_opinion: bool
    analysis: Analysis
    escalation: list[tuple[str, str]]
    lang: str
    norm: str


class Scorer:
    def __init__(self, model: LinearModel, lexicon: Lexicon | None = None,
                 detector: EscalationDetector | None = None) -> None:
        self.model = model
        self.lexicon = lexicon or Lexicon()
        self.detector = detector or EscalationDetector()

    @classmethod
    def load(cls, model_path: str | Path | None = None) -> Scorer:
        """Load the shipped model, or the model file at ``model_path``
        (``SCORING_MODEL_PATH``, written by ``keymoment scoring train``), once;
        reuse the instance."""
        return cls(LinearModel.from_file(model_path))

    @property
    def alert_threshold(self) -> float:
        """The default P(negative) a text-only verdict needs to be negative
        (stored in the model file; 0.5 unless a build chose otherwise)."""
        return self.model.threshold

    # ------------------------------------------------------------------ text
    def score_text(self, text: str, *, lang: str | None = None) -> TextScore:
        norm = normalise(text[:_MAX_CHARS])
        detected = detect_lang(norm)
        if lang:
            lang = lang.lower()
            lang = "zh" if lang.startswith("zh") else "en" if lang.startswith("en") else lang
            if lang not in _LANGS:
                raise ValueError(f"unsupported lang {lang!r}; expected zh, en or mixed")
        else:
            lang = detected
        tokens = en_tokens(norm) if detected != "zh" or _LATIN.search(norm) else []
        an = analyse(norm, self.lexicon, tokens)
        z = self.model.calibrated(self.model.raw(ngrams(norm, tokens), lexicon_features(an)), detected)
        p = sigmoid(z)
        esc = self.detector.detect(norm, has_cjk=detected in ("zh", "mixed"),
                                   has_latin=detected in ("en", "mixed") or bool(tokens))
        has_opinion = bool(an.hits) or abs(z) >= 1.4
        mot = self._text_mot(p, an, has_opinion, bool(esc))
        return TextScore(p, mot, has_opinion or bool(esc), an, esc, lang, norm)

    def _text_mot(self, p: float, an: Analysis, has_opinion: bool, escalated: bool) -> int:
        if escalated:
            return -3
        if p >= self.model.threshold:
            mixed = an.pos >= 0.8 and an.neg > 0
            if p >= 0.85 and not (mixed and p < 0.95):
                return -2
            return -1
        if not has_opinion or (an.pos < 0.3 and p > 0.15):
            return 0  # no positive evidence: "not negative" is not "met expectations"
        if p > 0.15:
            return 1
        strongest = max((h.value for h in an.hits), default=0.0)
        if p < 0.05 and (strongest >= 2.5 or an.pos >= 4.0):
            return 3
        return 2

    # ------------------------------------------------------------------ public
    def score(self, text: str | None, *, lang: str | None = None, rating: dict | None = None) -> ScoreResult:
        """Score one feedback. Raises ``ValueError`` on an invalid rating/lang
        or when there is neither text nor rating."""
        reasons: list[str] = []
        cues: list[str] = []
        rating_mot: int | None = None
        if rating is not None:
            if not isinstance(rating, dict) or "scale" not in rating or "value" not in rating:
                raise ValueError("rating must be an object with 'scale' and 'value'")
            rating_mot = rating_to_mot(rating["scale"], rating["value"])
            reasons.append(f"rating {rating['scale']}={rating['value']} maps to {rating_mot:+d}")
            cues.append(f"rating:{rating['scale']}={rating['value']}")
        if text is not None and not isinstance(text, str):
            raise ValueError("text must be a string or null")
        has_text = bool(text and text.strip())
        if not has_text and rating_mot is None:
            raise ValueError("nothing to score: empty text and no rating")

        text_mot: int | None = None
        p_negative: float | None = None
        lang_out = "unknown"
        escalation: list[str] = []
        text_conf = 0.0
        text_counts = False
        if has_text:
            ts = self.score_text(text, lang=lang)  # type: ignore[arg-type]
            lang_out = ts.lang
            text_mot = ts.mot
            text_counts = ts.has_opinion
            p = p_negative = round(ts.p_negative, 4)
            text_conf = p if ts.mot <= -1 else 1.0 - p
            cues.extend(f"escalation:{c}:'{w}'" for c, w in ts.escalation)
            cues.extend(phrase_cues(ts.norm, ts.analysis))
            cues.append(model_cue(p))
            if ts.escalation:
                for cat, what in ts.escalation:
                    if cat not in escalation:
                        escalation.append(cat)
                reasons.append("text cue " + ", ".join(f"'{w}' ({c})" for c, w in ts.escalation) + " forces -3")
                text_conf = max(text_conf, 0.9)
            elif ts.has_opinion:
                reasons.append(f"text scores {ts.mot:+d} (P(negative)={p:.2f})")
            else:
                reasons.append(f"text carries no clear opinion (P(negative)={p:.2f}); scored 0")

        if rating_mot is not None and text_mot is not None and text_counts:
            mot = min(rating_mot, text_mot)
            if rating_mot != text_mot:
                src = "rating" if rating_mot < text_mot else "text"
                reasons.append(f"rating ({rating_mot:+d}) and text ({text_mot:+d}) disagree; worse wins: {src} ({mot:+d})")
            r_conf = 0.95 if rating_mot != 0 else 0.7
            rn, tn = rating_mot <= -1, text_mot <= -1
            conf = max(r_conf if rn == (mot <= -1) else 0.0, text_conf if tn == (mot <= -1) else 0.0)
        elif rating_mot is not None:
            mot = rating_mot
            if text_mot is not None:
                reasons.append("rating decides (text has no clear opinion)")
            conf = 0.95 if rating_mot != 0 else 0.7
        else:
            mot = text_mot if text_mot is not None else 0
            conf = text_conf
        forced_by = "escalation" if escalation else "rating" if rating_mot is not None and rating_mot <= -1 else None
        conf = round(min(max(conf, 0.0), 1.0), 3)
        return ScoreResult(negative=mot <= -1, mot=mot, confidence=conf, cues=cues, lang=lang_out,
                           escalation=escalation, reasons=reasons, text_mot=text_mot, rating_mot=rating_mot,
                           forced_by=forced_by, p_negative=p_negative)
