"""Route dependencies: the service's context, the pool, and who is calling."""

from __future__ import annotations

from typing import Annotated

import asyncpg
from fastapi import Depends

from services.reporting.service import Context
from shared.auth import requires
from shared.runtime import app_context, app_pool

KPIS_READ = "kpis:read"
"""The scope of the KPI API: company-internal figures (the admin token holds every scope)."""

Ctx = Annotated[Context, Depends(app_context)]
Pool = Annotated[asyncpg.Pool, Depends(app_pool)]
KpiReader = Depends(requires(KPIS_READ))
"""``Authorization: Bearer <ADMIN_TOKEN>``: 401 without a token or with a wrong one, 403 without the scope."""
