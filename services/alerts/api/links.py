"""The signed links in alert emails: ``GET /l/{token}`` shows what the link will
do; ``POST /l/{token}`` does it.

GET never changes anything: mail scanners (Outlook Safe Links, Gmail's
proxy) fetch every link in a mail, and an alert must not get acknowledged by
a robot. The token (``links.ActionLink``, expiring) names the notification,
the alert, the action, the one recipient the mail went to — the page shows
that person only, and acts as them — and the alert's state version it was made
for: once the alert has moved on (acknowledged by someone else, resolved,
reopened), the link is refused with 409 and the current state.

A verdict link (correct / false alarm) names the feedback it judges; it records the
recipient's verdict on it and changes nothing of the alert, so it is taken whatever state
the alert has reached since the mail (a later verdict replaces an earlier one).
"""

from __future__ import annotations

import html
from urllib.parse import parse_qs

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from services.alerts import queries, recovery, verdicts
from services.alerts.api.deps import Ctx, Pool
from services.alerts.context import Actor, Context
from services.alerts.domain import (SEVERITY_TEXT, STEP_TEXT, UNACKNOWLEDGED, Alert, AlertNotFound, FeedbackLink,
                                   Forbidden, InvalidTransition, InvalidVerdict)
from services.alerts.links import ActionLink, OldLink
from services.alerts.notify import action_links
from services.alerts.repository import reading, unit_of_work
from shared.contracts import clean_text
from shared.signing import TokenExpired, TokenInvalid

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


def _moved_on(alert: Alert) -> HTMLResponse:
    """409: the link was made for an earlier state of the alert (or there is nothing to do)."""
    who = alert.resolved_by if alert.status == "resolved" else (
        None if alert.status in UNACKNOWLEDGED else alert.acknowledged_by)
    by = f" ({who})" if who else ""
    return _problem(
        f"此链接已失效：警报当前状态为 {alert.status}{by}。请使用关于此警报的最新邮件或警报 API。",
        f"Nothing to do with this link: the alert is already {alert.status}{by}, a state this link was not made "
        "for. Use the newest mail about it or the alerts API.", 409,
    )


async def _resolve_token(ctx: Context, pool: Pool, token: str) -> tuple[ActionLink, Alert] | HTMLResponse:
    try:
        link = ActionLink.verify(ctx.signer, token, now=ctx.clock.now())
    except TokenExpired:
        return _problem("链接已过期", "This link has expired; use the alerts API or a newer email.", 410)
    except OldLink:
        return _problem("此链接来自旧版邮件，已不能使用", "This link comes from a mail sent before links named "
                        "their recipient and the alert's state; use a newer mail about the alert or the alerts API.", 410)
    except TokenInvalid:
        return _problem("链接无效", "This link is not valid.", 404)
    async with reading(pool) as repo:
        notification = await queries.link_target(repo, notification_id=link.notification_id, alert_id=link.alert_id,
                                                 recipient=link.recipient)
        alert = await queries.get_alert(repo, link.alert_id) if notification else None
    if notification is None:
        return _problem("链接无效", "This link is not valid.", 404)
    if alert is None:
        return _problem("警报不存在", "This alert no longer exists.", 404)
    return link, alert


def _alert_line(alert: Alert) -> str:
    e = html.escape
    sev_zh, sev_en = SEVERITY_TEXT[alert.severity]
    return (f"<b>MOT {alert.severity:+d} {e(sev_zh)} / {e(sev_en)}</b> · {e(alert.location or alert.channel)}"
            f"{(' · ' + e(alert.touchpoint)) if alert.touchpoint else ''}")


def _verdict_page(link: ActionLink, alert: Alert, judged: FeedbackLink) -> HTMLResponse:
    """What a verdict link will record, on which feedback, as whom (GET: nothing is recorded)."""
    zh, en = verdicts.VERDICT_TEXT[link.action]
    e = html.escape
    said = f"MOT {judged.mot:+d}" + (f" · P(negative) {judged.p_negative:.2f}" if judged.p_negative is not None else "")
    return _page(en, f"""
<h2 style="margin-bottom:4px">{e(zh)}</h2><div style="color:#555">{e(en)}</div>
<p>{_alert_line(alert)}<br><span style="color:#555">状态 / Status: {e(alert.status)}</span></p>
<p>被判断的反馈 / The feedback judged ({e(said)}):</p>
<blockquote style="white-space:pre-wrap;border-left:4px solid #ccc;margin:0;padding:6px 10px">{e(judged.text or '(无文字 / no text)')}</blockquote>
<form method="post">
<p>以此身份判断 / Judging as: <b>{e(link.recipient)}</b></p>
<label>备注 / Note (可选 / optional)<br><textarea name="note" rows="3" style="width:100%"></textarea></label><br><br>
<button type="submit" style="padding:10px 18px;background:#1565c0;color:#fff;border:0;border-radius:4px">
{e(zh)} / {e(en)}</button></form>
<p style="color:#888;font-size:12px">判断不改变警报状态；之后的判断会替换此判断。/ A verdict changes nothing of the alert's state;
a later verdict replaces this one.</p>""")


@router.get("/l/{token}", response_class=HTMLResponse, summary="Confirmation page of an email link")
async def confirm_page(token: str, ctx: Ctx, pool: Pool) -> HTMLResponse:
    resolved = await _resolve_token(ctx, pool, token)
    if isinstance(resolved, HTMLResponse):
        return resolved
    link, alert = resolved
    if link.is_verdict:
        async with reading(pool) as repo:
            judged = await queries.linked_feedback(repo, link.alert_id, str(link.feedback_id))
        if judged is None:
            return _problem("链接无效", "This link is not valid.", 404)
        return _verdict_page(link, alert, judged)
    if alert.state_version != link.version:
        return _moved_on(alert)
    zh, en = ACTION_TEXT[link.action]
    e = html.escape
    return _page(en, f"""
<h2 style="margin-bottom:4px">{e(zh)}</h2><div style="color:#555">{e(en)}</div>
<p>{_alert_line(alert)}<br>{e(alert.summary)}<br>
<span style="color:#555">状态 / Status: {e(alert.status)}</span></p>
<form method="post">
<p>以此身份操作 / Acting as: <b>{e(link.recipient)}</b></p>
<label>备注 / Note (可选 / optional)<br><textarea name="note" rows="3" style="width:100%"></textarea></label><br><br>
<button type="submit" style="padding:10px 18px;background:#1565c0;color:#fff;border:0;border-radius:4px">
{e(zh)} / {e(en)}</button></form>""")


@router.post("/l/{token}", response_class=HTMLResponse, summary="Carry out an email link's action")
async def do_action(token: str, request: Request, ctx: Ctx, pool: Pool) -> HTMLResponse:
    resolved = await _resolve_token(ctx, pool, token)
    if isinstance(resolved, HTMLResponse):
        return resolved
    link, current = resolved
    form = parse_qs((await request.body()).decode("utf-8", "replace"))
    note = clean_text((form.get("note") or [""])[0]).strip()[:4000] or None
    actor = Actor(link.recipient, teams=frozenset(ctx.router.teams_of(link.recipient)))
    if link.is_verdict:
        return await _record_verdict(ctx, pool, link, current, actor=actor, note=note)
    try:
        async with unit_of_work(pool) as uow:
            alert = await recovery.apply_action(uow, ctx, link.alert_id, action=link.action, actor=actor,
                                                note=note and f"{note} (via email link)" or "via email link",
                                                expected_version=link.version)
    except AlertNotFound:
        return _problem("警报不存在", "This alert no longer exists.", 404)
    except Forbidden:
        return _problem("无权操作", "You are no longer on this alert's team.", 403)
    except InvalidTransition:  # StateChanged too: the link was made for an earlier state
        async with reading(pool) as repo:
            current = await queries.get_alert(repo, link.alert_id)
        return _moved_on(current) if current else _problem("警报不存在", "This alert no longer exists.", 404)
    return _page("Done", f"""<h2>已完成 / Done</h2>
<p>警报状态 / Alert status: <b>{html.escape(alert.status)}</b> ({html.escape(link.recipient)})</p>
{_next_steps(ctx, link, alert)}""")


def _next_steps(ctx: Context, link: ActionLink, alert: Alert) -> str:
    """The next step and what this person may do next, signed for the state the alert is in now."""
    step = alert.next_step
    step_zh, step_en = STEP_TEXT[step] if step else ("无", "none")
    e = html.escape
    following = " ".join(
        f'<a href="{e(item.url)}" style="display:inline-block;margin:4px 6px 4px 0;padding:8px 14px;'
        f'background:#1565c0;color:#fff;text-decoration:none;border-radius:4px">{e(item.label_zh)} / {e(item.label_en)}</a>'
        for item in action_links(ctx, alert, notification_id=link.notification_id, recipient=link.recipient,
                                 now=ctx.clock.now())
    )
    return f"""<p>下一步 / Next step:<br>{e(step_zh)}<br>{e(step_en)}</p>
<p>{following}</p>"""


async def _record_verdict(ctx: Context, pool: Pool, link: ActionLink, alert: Alert, *, actor: Actor,
                          note: str | None) -> HTMLResponse:
    """Record the link's verdict as its recipient; the alert's state stays as it is."""
    try:
        async with unit_of_work(pool) as uow:
            made = await verdicts.record(uow, ctx, link.alert_id, verdict=link.action, actor=actor,
                                         feedback_id=link.feedback_id, note=note, via="email_link")
    except AlertNotFound:
        return _problem("警报不存在", "This alert no longer exists.", 404)
    except Forbidden:
        return _problem("无权操作", "You are no longer on this alert's team.", 403)
    except InvalidVerdict:
        return _problem("链接无效", "This link is not valid.", 404)
    zh, en = verdicts.VERDICT_TEXT[made.verdict]
    e = html.escape
    return _page("Verdict recorded", f"""<h2>已记录判断 / Verdict recorded</h2>
<p><b>{e(zh)}</b><br>{e(en)}<br><span style="color:#555">({e(made.decided_by)}; 反馈 / feedback {e(made.feedback_id)})</span></p>
<p>警报状态 / Alert status: <b>{e(alert.status)}</b></p>
{_next_steps(ctx, link, alert)}""")
