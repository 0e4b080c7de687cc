"""Shapes of the KPI API."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, Field


class GroupBy(StrEnum):
    CHANNEL = "channel"
    LOCATION = "location"
    TOUCHPOINT = "touchpoint"


class KpiRow(BaseModel):
    group: str | None = Field(None, description="The channel / location / touchpoint; null for the total or "
                                                "for feedback without one.")
    feedback: int = Field(description="Feedback received.")
    nps: float | None = Field(description="% promoters - % detractors among NPS answers (-100..100).")
    nps_responses: int
    promoters: int
    passives: int
    detractors: int
    csat: float | None = Field(description="Share of CSAT answers that are 4 or 5 (0..1).")
    csat_responses: int
    mot_mean: float | None = Field(description="Mean moment-of-truth score (-3..3).")
    scored: int = Field(description="Feedback with a moment-of-truth score.")
    negative: int = Field(description="Feedback scored as a negative moment of truth.")
    negative_rate: float | None = Field(description="negative / scored (0..1).")
    alerts_raised: int
    alerts_open: int = Field(description="Of the alerts raised in the period, those not resolved now.")
    sla_breaches: int = Field(description="Of the alerts raised in the period, those that breached their SLA.")
    ack_p50_seconds: float | None
    ack_p90_seconds: float | None
    resolve_p50_seconds: float | None
    resolve_p90_seconds: float | None


class KpiReport(BaseModel):
    start: datetime = Field(serialization_alias="from")
    end: datetime = Field(serialization_alias="to")
    group_by: GroupBy | None
    rows: list[KpiRow]


CSV_COLUMNS: tuple[str, ...] = tuple(KpiRow.model_fields)
