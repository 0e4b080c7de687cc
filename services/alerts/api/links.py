"""The signed links in alert emails: ``GET /l/{token}`` shows what the link will
do and asks who is acting; ``POST /l/{token}`` does it.

GET never changes anything: mail scanners (Outlook Safe Links, Gmail's
proxy) fetch every link in a mail, and an alert must not get acknowledged by
a robot. The token (HMAC-SHA256, expiring) names the notification, the alert
and the action; the person is one of that notification's recipients.
"""

from __future__ import annotations

import html
from urllib.parse import parse_qs

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from services.alerts import queries, recovery
from services.alerts.api.deps import Ctx, Pool
from services.alerts.context import Actor
from services.alerts.domain import SEVERITY_TEXT, STEP_TEXT, AlertNotFound, Forbidden, InvalidTransition
from services.alerts.links import LINK, TokenExpired, TokenInvalid
from services.alerts.repository import reading, unit_of_work
from shared.contracts import clean_text

_HTML = {"content": {"text/html": {}}}
router = APIRouter(tags=["email links"], responses={
    400: {**_HTML, "description": "Several recipients: the form must say which one is acting."},
    403: {**_HTML, "description": "The person is no longer on the alert's team."},
    404: {**_HTML, "description": "Not a valid link, or the alert no longer exists."},
    409: {**_HTML, "description": "Nothing to do: the alert is already past this step."},
    410: {**_HTML, "description": "The link has expired."},
})

ACTION_TEXT = {
    "ack": ("确认收到此警报", "Acknowledge this alert"),
    "resolve": ("标记为已解决（将向客户发送回访问卷）", "Mark as resolved (the customer gets a recovery survey)"),
    **{step: text for step, text in STEP_TEXT.items()},
}


def _page(title: str, body: str, status_code: int = 200) -> HTMLResponse:
    return HTMLResponse(
        f"""<!doctype html><html lang="zh-CN"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width,initial-scale=1"><meta name="robots" content="noindex">
<title>{html.escape(title)}</title></head>
<body style="font-family:-apple-system,'PingFang SC','Microsoft YaHei',Arial,sans-serif;max-width:560px;margin:40px auto;padding:0 16px;color:#222">
{body}</body></html>""",
        status_code=status_code,
        headers={"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"},
    )


def _problem(zh: str, en: str, status_code: int) -> HTMLResponse:
    return _page(en, f"<h2>{html.escape(zh)}</h2><p>{html.escape(en)}</p>", status_code)


async def _resolve_token(ctx: Ctx, pool: Pool, token: str) -> tuple[dict, dict] | HTMLResponse:
    try:
        payload = ctx.signer.verify(LINK, token, now=ctx.clock.now())
    except TokenExpired:
        return _problem("链接已过期", "This link has expired; use the alerts API or a newer email.", 410)
    except TokenInvalid:
        return _problem("链接无效", "This link is not valid.", 404)
    if payload.get("do") not in ACTION_TEXT:
        return _problem("链接无效", "This link is not valid.", 404)
    async with reading(pool) as repo:
        notification = await queries.link_target(repo, notification_id=payload.get("n", ""),
                                                 alert_id=payload.get("a", ""))
    if notification is None:
        return _problem("链接无效", "This link is not valid.", 404)
    return payload, notification


@router.get("/l/{token}", response_class=HTMLResponse, summary="Confirmation page of an email link")
async def confirm_page(token: str, ctx: Ctx, pool: Pool) -> HTMLResponse:
    resolved = await _resolve_token(ctx, pool, token)
    if isinstance(resolved, HTMLResponse):
        return resolved
    payload, notification = resolved
    async with reading(pool) as repo:
        alert = await queries.get_alert(repo, payload["a"])
    if alert is None:
        return _problem("警报不存在", "This alert no longer exists.", 404)
    zh, en = ACTION_TEXT[payload["do"]]
    sev_zh, sev_en = SEVERITY_TEXT[alert.severity]
    e = html.escape
    options = "".join(f'<option value="{e(r)}">{e(r)}</option>' for r in notification["recipients"])
    return _page(en, f"""
<h2 style="margin-bottom:4px">{e(zh)}</h2><div style="color:#555">{e(en)}</div>
<p><b>MOT {alert.severity:+d} {e(sev_zh)} / {e(sev_en)}</b> · {e(alert.location or alert.channel)}
{(' · ' + e(alert.touchpoint)) if alert.touchpoint else ''}<br>{e(alert.summary)}<br>
<span style="color:#555">状态 / Status: {e(alert.status)}</span></p>
<form method="post">
<label>我是 / I am<br><select name="who" style="width:100%;padding:6px">{options}</select></label><br><br>
<label>备注 / Note (可选 / optional)<br><textarea name="note" rows="3" style="width:100%"></textarea></label><br><br>
<button type="submit" style="padding:10px 18px;background:#1565c0;color:#fff;border:0;border-radius:4px">
{e(zh)} / {e(en)}</button></form>""")


@router.post("/l/{token}", response_class=HTMLResponse, summary="Carry out an email link's action")
async def do_action(token: str, request: Request, ctx: Ctx, pool: Pool) -> HTMLResponse:
    resolved = await _resolve_token(ctx, pool, token)
    if isinstance(resolved, HTMLResponse):
        return resolved
    payload, notification = resolved
    form = parse_qs((await request.body()).decode("utf-8", "replace"))
    who = clean_text((form.get("who") or [""])[0]).strip().lower()
    note = clean_text((form.get("note") or [""])[0]).strip()[:4000] or None
    recipients = {r.lower() for r in notification["recipients"]}
    if who not in recipients:
        if len(recipients) != 1:
            return _problem("请选择您的邮箱", "Choose which recipient you are.", 400)
        who = next(iter(recipients))
    actor = Actor(who)
    try:
        async with unit_of_work(pool) as uow:
            alert = await recovery.apply_action(uow, ctx, payload["a"], action=payload["do"], actor=actor,
                                                note=note and f"{note} (via email link)" or "via email link")
    except AlertNotFound:
        return _problem("警报不存在", "This alert no longer exists.", 404)
    except Forbidden:
        return _problem("无权操作", "You are no longer on this alert's team.", 403)
    except InvalidTransition as exc:
        async with reading(pool) as repo:
            current = await queries.get_alert(repo, payload["a"])
        by = f" ({current.acknowledged_by})" if current and current.acknowledged_by else ""
        return _problem(
            f"无需操作：警报当前状态为 {exc.status}{by}",
            f"Nothing to do: the alert is already {exc.status}{by}.", 409,
        )
    step = alert.next_step
    step_zh, step_en = STEP_TEXT[step] if step else ("无", "none")
    e = html.escape
    return _page("Done", f"""<h2>已完成 / Done</h2>
<p>警报状态 / Alert status: <b>{e(alert.status)}</b> ({e(who)})</p>
<p>下一步 / Next step:<br>{e(step_zh)}<br>{e(step_en)}</p>""")
