"""Managers' verdicts on alerted feedback: "correct" (a negative moment, rightly alerted) or
"false_alarm" (not negative), through the API or an email link, and the labelled rows they make
for the scorer's trainer (``keymoment scoring export-verdicts``, the JSONL format of
``services/alerts/scoring/verdicts.py``).

A verdict judges one feedback of an alert (by default the one that raised it), never the
alert's state: it moves no status and no state version. The feedback's text, language and the
scorer's result the alert rested on are kept with it. One verdict is current per feedback; a
later one by anyone allowed to act on the alert replaces it, the earlier ones stay as history.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

from services.alerts.context import Actor, Context, history_step
from services.alerts.domain import VERDICTS, AlertNotFound, FeedbackLink, Forbidden, InvalidVerdict, Verdict
from services.alerts.unit_of_work import UnitOfWork

logger = logging.getLogger(__name__)

LABELS = {"correct": "negative", "false_alarm": "not_negative"}
"""A verdict as the trainer's ``label``."""

VERDICT_LABELS = {"correct": ("确实负面", "Correct alert"), "false_alarm": ("误报", "False alarm")}
"""Each verdict's button in a mail (zh, en)."""

VERDICT_TEXT = {
    "correct": ("确实负面：警报正确", "Correct alert: a negative moment of truth"),
    "false_alarm": ("误报：这条反馈并非负面", "False alarm: this feedback is not negative"),
}
"""What the email-link page says a verdict means (zh, en)."""


def judgeable(links: list[FeedbackLink]) -> list[FeedbackLink]:
    """The alert's feedback a verdict may judge: what it holds as negative (raised, grouped, a
    negative recovery answer)."""
    return [link for link in links if link.mot <= -1]


def newest_judgeable(links: list[FeedbackLink]) -> FeedbackLink | None:
    """The feedback an alert mail's verdict links judge: the newest negative one it shows."""
    found = judgeable(links)
    return found[-1] if found else None


def _score_of(link: FeedbackLink) -> dict[str, Any]:
    return {"mot": link.mot, "confidence": link.confidence, "p_negative": link.p_negative,
            "forced_by": link.forced_by, "cues": list(link.cues), "escalation": list(link.escalation)}


async def record(uow: UnitOfWork, ctx: Context, alert_id: str, *, verdict: str, actor: Actor,
                 feedback_id: str | None = None, note: str | None = None, via: str = "api") -> Verdict:
    """Record ``actor``'s verdict on a feedback of the alert (default: the one that raised it);
    it replaces the current verdict on that feedback. Raises :class:`AlertNotFound`,
    :class:`Forbidden` (not an alert of the actor's teams) or :class:`InvalidVerdict`."""
    alert = await uow.alert(alert_id)  # locked: verdicts on one alert are recorded one at a time
    if alert is None:
        raise AlertNotFound(alert_id)
    if not actor.may_act_on(alert):
        raise Forbidden(f"{actor.name} is not on the team of alert {alert_id}")
    if verdict not in VERDICTS:
        raise InvalidVerdict(f"verdict must be one of {', '.join(VERDICTS)}, not {verdict!r}")
    target_id = feedback_id or alert.feedback_id
    link = next((f for f in judgeable(await uow.alert_feedback(alert_id)) if f.feedback_id == target_id), None)
    if link is None:
        raise InvalidVerdict(f"feedback {target_id} is not a negative feedback of alert {alert_id}")
    now = ctx.clock.now()
    made = Verdict(
        verdict_id=str(uuid.uuid4()), feedback_id=link.feedback_id, alert_id=alert_id, verdict=verdict,
        decided_by=actor.name, decided_at=now, via=via, note=note, text=link.text, language=link.language,
        score=_score_of(link),
    )
    uow.add_verdict(made)
    uow.add_event(history_step(alert, action="verdict", actor=actor.name, at=now, previous=alert.status,
                               note=f"{verdict} on feedback {link.feedback_id}" + (f": {note}" if note else "")))
    await uow.flush()
    ctx.metrics.verdicts.labels(verdict).inc()
    logger.info("verdict recorded", extra={"alert_id": alert_id, "feedback_id": link.feedback_id,
                                           "verdict": verdict, "via": via})
    return made


def _language(value: str | None) -> str | None:
    """zh / en for the trainer; anything else is left for it to detect from the text."""
    head = (value or "").split("-")[0].lower()
    return head if head in ("zh", "en") else None


def training_row(verdict: Verdict, *, source: str, industry: str | None = None) -> dict[str, Any]:
    """One line of the trainer's labelled JSONL (``services/alerts/scoring/verdicts.py``): ``text``,
    ``label``, ``language`` (zh / en, else left out), ``source``, ``industry`` (if given), and for
    the record the verdict, its ids and time and what the scorer said (the trainer ignores them)."""
    row: dict[str, Any] = {"text": verdict.text, "label": LABELS[verdict.verdict]}
    if (language := _language(verdict.language)) is not None:
        row["language"] = language
    row["source"] = source
    if industry:
        row["industry"] = industry
    row |= {"verdict": verdict.verdict, "feedback_id": verdict.feedback_id, "alert_id": verdict.alert_id,
            "decided_at": verdict.decided_at.isoformat(), "via": verdict.via,
            "scored": {k: verdict.score.get(k) for k in ("mot", "p_negative", "forced_by")}}
    return row
