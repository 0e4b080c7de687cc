"""The funnel of an invitation as events: one ``survey.invitation.v1`` per step.

Each step happens at most once per invitation (its ``*_at`` column is set once), and
its event id derives from the invitation and the step, so a consumer counts it once
even if it were written twice.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Protocol

from services.survey.settings import SurveySettings
from shared.contracts import FunnelStep, SurveyInvitationStep
from shared.events import SURVEY_INVITATION, Envelope

NAMESPACE = uuid.UUID("6f1c1d2e-4c0b-5b8e-9a55-3e8f0a4b7c21")
"""Of the ids survey derives (invitations from idempotency keys, funnel events)."""


class Invitation(Protocol):
    request_id: str
    survey_id: str
    alert_id: str | None
    location: str | None
    touchpoint: str | None


def step_event(settings: SurveySettings, invitation: Invitation, step: FunnelStep, *, at: datetime,
               reason: str | None = None) -> tuple[str, Envelope]:
    """``(topic, event)`` of one step of ``invitation``."""
    data = SurveyInvitationStep(
        invitation_id=invitation.request_id, survey_id=invitation.survey_id, step=step, reason=reason,
        recovery=invitation.alert_id is not None, location=invitation.location, touchpoint=invitation.touchpoint,
        at=at,
    )
    envelope = Envelope.new(
        SURVEY_INVITATION, data, source=settings.event_source, key=f"invitation:{invitation.request_id}",
        subject=invitation.request_id, id=str(uuid.uuid5(NAMESPACE, f"{invitation.request_id}\x00{step.value}")),
        time=at,
    )
    return settings.topic(SURVEY_INVITATION.topic), envelope
