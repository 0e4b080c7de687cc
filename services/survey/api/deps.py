"""Route dependencies: the service's context, the pool and who is calling."""

from __future__ import annotations

from typing import Annotated

import asyncpg
from fastapi import Depends, Path

from services.survey.service import Context
from shared.auth import Forbidden, Principal, requires
from shared.runtime import app_context, app_pool

SURVEYS_ADMIN = "surveys:admin"
"""The scope of the management API (the admin token holds every scope)."""
INVITATIONS_WRITE = "invitations:write"
"""Inviting customers: ``POST /v1/invitations`` and its bulk form."""
VISITS_WRITE = "visits:write"
"""Reporting visits for the surveys' visit triggers: ``POST /v1/visits``."""
SURVEY_SCOPE = "survey"
"""``survey:<id>`` scopes limit a token to those surveys; a token with none may use every survey."""

SurveyId = Annotated[str, Path(pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$", description="The survey's id.")]
RowId = Annotated[str, Path(min_length=1, max_length=200, pattern=r"^[^\x00-\x1f\x7f]+$",
                            description="An invitation's or token's id.")]

Ctx = Annotated[Context, Depends(app_context)]
Pool = Annotated[asyncpg.Pool, Depends(app_pool)]
Admin = Depends(requires(SURVEYS_ADMIN))
"""``Authorization: Bearer <ADMIN_TOKEN>``: 401 without a token or with a wrong one, 403 without the scope."""
Inviter = Annotated[Principal, Depends(requires(INVITATIONS_WRITE))]
VisitReporter = Annotated[Principal, Depends(requires(VISITS_WRITE))]


def check_survey(principal: Principal, survey_id: str) -> None:
    """403 when ``principal`` is limited to some surveys and ``survey_id`` is not one of them."""
    allowed = principal.values(SURVEY_SCOPE)
    if allowed and not principal.admin and survey_id not in allowed:
        raise Forbidden(f"{principal.subject} may not invite to survey {survey_id!r}", scope=f"survey:{survey_id}")
