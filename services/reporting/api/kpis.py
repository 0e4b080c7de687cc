"""GET /v1/kpis: the KPIs of any past period from PostgreSQL, as JSON or CSV."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta
from typing import Annotated, Literal

from fastapi import APIRouter, Query
from fastapi.responses import Response

from services.reporting import service
from services.reporting.api.deps import Ctx, KpiReader, Pool
from services.reporting.schemas import CSV_COLUMNS, GroupBy, KpiReport
from shared.auth import AUTH_RESPONSES
from shared.contracts import QueryTime
from shared.runtime import invalid_request

router = APIRouter(prefix="/v1", tags=["kpis"], dependencies=[KpiReader], responses=AUTH_RESPONSES)

From = Annotated[QueryTime | None, Query(alias="from", description="Start (inclusive), ISO 8601 (UTC without an "
                                       "offset); default: 7 days before `to`.")]
To = Annotated[QueryTime | None, Query(alias="to", description="End (exclusive), ISO 8601; default: now.")]
Group = Annotated[GroupBy | None, Query(description="One row per channel, location or touchpoint; default: one total.")]


def _period(ctx: Ctx, start: datetime | None, end: datetime | None) -> tuple[datetime, datetime]:
    max_days = ctx.settings.reporting_kpi_max_days
    end = _aware(end) if end else datetime.now(UTC)
    start = _aware(start) if start else end - timedelta(days=7)
    if start >= end:
        raise invalid_request(("query", "from"), "`from` must be before `to`")
    if end - start > timedelta(days=max_days):
        raise invalid_request(("query", "to"), f"the period may cover at most {max_days} days")
    return start, end


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)  # a time without offset is read as UTC


# What makes a spreadsheet read a cell as a formula (OWASP "CSV Injection"): = + - @, tab and
# carriage return first, also after leading spaces, and the full-width forms CJK input methods type.
FORMULA_START = ("=", "+", "-", "@", "\t", "\r", "\uff1d", "\uff0b", "\uff0d", "\uff20")


def csv_cell(value: object) -> object:
    """A value as a CSV cell a spreadsheet shows, never evaluates: text that could start a
    formula gets a leading ``'`` (shown as text by Excel and LibreOffice); numbers stay numbers;
    None is empty. Locations and touchpoints come from anyone holding an intake key."""
    if value is None:
        return ""
    if isinstance(value, str) and value.lstrip(" ").startswith(FORMULA_START):
        return "'" + value
    return value


def _csv(rows: list[dict], start: datetime, end: datetime, group_by: GroupBy | None) -> Response:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\r\n")
    writer.writerow(["from", "to", "group_by", *CSV_COLUMNS])
    for row in rows:
        writer.writerow([start.isoformat(), end.isoformat(), group_by.value if group_by else "",
                         *(csv_cell(row[c]) for c in CSV_COLUMNS)])
    name = f"kpis_{start:%Y%m%dT%H%M%SZ}_{end:%Y%m%dT%H%M%SZ}.csv"
    # UTF-8 with BOM: Excel (the usual reader of an export) then shows Chinese location names correctly.
    return Response("\ufeff" + buf.getvalue(), media_type="text/csv; charset=utf-8",
                    headers={"Content-Disposition": f'attachment; filename="{name}"'})


@router.get("/kpis", response_model=KpiReport, response_model_by_alias=True,
            summary="KPIs of a period (NPS, CSAT, mean MOT, negative-MOT rate, alerts)")
async def kpis(pool: Pool, ctx: Ctx, start: From = None, end: To = None, group_by: Group = None,
               format: Annotated[Literal["json", "csv"], Query()] = "json"):  # noqa: A002 - the query name
    start, end = _period(ctx, start, end)
    rows = await service.kpi_report(pool, start=start, end=end, group_by=group_by.value if group_by else None)
    if format == "csv":
        return _csv(rows, start, end, group_by)
    return KpiReport(start=start, end=end, group_by=group_by, rows=rows)


@router.get("/kpis.csv", summary="The same KPIs as CSV", response_class=Response)
async def kpis_csv(pool: Pool, ctx: Ctx, start: From = None, end: To = None, group_by: Group = None):
    start, end = _period(ctx, start, end)
    rows = await service.kpi_report(pool, start=start, end=end, group_by=group_by.value if group_by else None)
    return _csv(rows, start, end, group_by)
