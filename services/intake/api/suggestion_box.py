"""``POST /v1/suggestion-box/import``: transcribed suggestion cards as CSV."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, Field
from starlette.datastructures import UploadFile
from starlette.responses import Response

from services.intake import service
from services.intake.api.deps import ApiKey, Sink
from services.intake.api.errors import documented, error_response, json_response
from services.intake.suggestion_box import MAX_FILE_BYTES, CsvImportError, parse_csv
from shared.contracts import Channel, RatingScale

router = APIRouter(tags=["suggestion box"])

CHUNK = 1000  # cards per durable write


class AcceptedRow(BaseModel):
    line: int = Field(description="Line in the file where the card's row starts (the header is line 1).")
    id: str


class RejectedRowOut(BaseModel):
    line: int
    errors: list[str]


class ImportReport(BaseModel):
    import_id: str = Field(description="Names this file's content (same bytes, same id).")
    encoding: str = Field(description="How the file was read: utf-8, utf-8-sig (with BOM) or gbk.")
    rows: int = Field(description="Non-empty data rows read.")
    accepted: list[AcceptedRow]
    rejected: list[RejectedRowOut]
    ignored_columns: list[str] = Field(description="Header columns that are not recognised (check for typos).")


@router.post(
    "/v1/suggestion-box/import",
    summary="Import transcribed suggestion-box cards (CSV)",
    description=(
        "Send the CSV as `multipart/form-data` (field `file`) or as the raw body with `Content-Type: text/csv`. "
        "UTF-8, UTF-8 with BOM and GBK are detected. Columns (English or Chinese headers): `date`/日期, "
        "`location`/地点, `text`/内容, `touchpoint`/环节, `rating`/评分, `scale`/量表, `contact_name`/联系人, "
        "`contact_email`/邮箱, `contact_phone`/电话, `card_id`/卡号. Valid rows are accepted even when others "
        "fail; the report lists accepted rows with their ids and rejected rows with line numbers and reasons. "
        "Importing the same cards again returns the same ids and publishes nothing new."
    ),
    response_model=ImportReport,
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "text/csv": {"schema": {"type": "string"}, "example": "日期,地点,内容,评分\n2026-05-01,朝阳门支行,排队太久了,2\n"},
                "multipart/form-data": {
                    "schema": {"type": "object", "properties": {"file": {"type": "string", "format": "binary"}}, "required": ["file"]}
                },
            },
        }
    },
    responses=documented(401, 403, 413, 422, 429, 503),
)
async def import_suggestion_box(
    request: Request,
    principal: ApiKey,
    sink: Sink,
    timezone: Annotated[str, Query(max_length=64, description="IANA zone of dates written without offset, e.g. Asia/Shanghai")] = "UTC",
    default_scale: Annotated[RatingScale, Query(description="Scale of ratings when there is no scale column (4/5 is stars, 8/10 nps)")] = RatingScale.STARS,
) -> Response:
    principal.require_channel(Channel.SUGGESTION_BOX)
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type == "multipart/form-data":
        form = await request.form(max_files=1, max_fields=10)
        upload = form.get("file")
        if not isinstance(upload, UploadFile):
            return error_response(422, "multipart body needs a file field named 'file'",
                                  [{"path": "file", "message": "missing", "type": "missing"}])
        data = await upload.read(MAX_FILE_BYTES + 1)
    elif content_type in ("text/csv", "text/plain", "application/csv", "application/octet-stream"):
        data = await request.body()
    else:
        return error_response(415, "send the CSV as multipart/form-data (field 'file') or with Content-Type: text/csv")
    if len(data) > MAX_FILE_BYTES:
        return error_response(413, f"the file is larger than {MAX_FILE_BYTES} bytes; split it")
    try:
        parsed = parse_csv(data, source_key=principal.key_id, timezone=timezone, default_scale=default_scale)
    except CsvImportError as exc:
        return error_response(422, str(exc), [{"path": "file", "message": str(exc), "type": "csv"}])
    accepted: list[dict] = []
    for start in range(0, len(parsed.cards), CHUNK):
        cards = parsed.cards[start : start + CHUNK]
        ids = await service.accept_many(
            [c.feedback for c in cards], principal=principal, idempotency_keys=[c.idempotency_key for c in cards], sink=sink
        )
        accepted += [{"line": c.line, "id": i} for c, i in zip(cards, ids, strict=True)]
    report = ImportReport(
        import_id=parsed.import_id,
        encoding=parsed.encoding,
        rows=len(parsed.cards) + len(parsed.rejected),
        accepted=accepted,
        rejected=[{"line": r.line, "errors": r.errors} for r in parsed.rejected],
        ignored_columns=parsed.ignored_columns,
    )
    return json_response(200, report.model_dump())
