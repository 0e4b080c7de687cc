"""Shapes of the KPI API."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Literal, Self

from pydantic import BaseModel, Field, model_validator

from shared.contracts import Key, Strict


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


# --- the erasure register (POST/GET /v1/privacy/erasures) -------------------------------------------------------
Email = Annotated[Key, Field(max_length=320, pattern=r"^[^@\s]+@[^@\s]+$")]
Phone = Annotated[str, Field(max_length=40, pattern=r"^\+?[0-9 ()\-.]{3,40}$")]
CustomerId = Annotated[Key, Field(min_length=1, max_length=200)]


class ErasureIn(Strict):
    """Whom to erase: every contact you know of the customer (each is matched on its own, and rows
    found by one lead to the others they name). Contacts are compared as the channels record them:
    email case-insensitively, phone numbers by their digits (and a leading +), ids exactly."""

    emails: list[Email] = Field(default_factory=list, max_length=10)
    phones: list[Phone] = Field(default_factory=list, max_length=10)
    customer_ids: list[CustomerId] = Field(default_factory=list, max_length=10)

    @model_validator(mode="after")
    def _names_someone(self) -> Self:
        if not (self.emails or self.phones or self.customer_ids):
            raise ValueError("name at least one email, phone or customer id")
        return self


class ServiceErasure(BaseModel):
    applied_at: datetime
    erased: dict[str, int] = Field(description="Rows deleted or anonymised, per table.")


class ErasureOut(BaseModel):
    id: str
    status: Literal["pending", "done"] = Field(description="done: every service has applied it.")
    requested_at: datetime
    requested_by: str
    contacts: dict[str, int] = Field(description="Which kinds of contact the request named, and how many (never the "
                                                 "contacts themselves).")
    services: dict[str, ServiceErasure] = Field(description="What each service erased, once it has.")
    waiting_for: list[str] = Field(description="Services that have not reported yet.")
