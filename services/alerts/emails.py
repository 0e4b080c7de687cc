"""The manager's email: bilingual (zh-CN / en), plain text + HTML, UTF-8, one per recipient
(each with links in that recipient's name).

Rendered when the notification is decided (inside that transaction) and queued on the
shared mail queue as bytes (``shared.mail.message``), so every attempt sends the same
bytes with the same Message-ID.
"""

from __future__ import annotations

import hashlib
import html
from dataclasses import dataclass
from datetime import datetime

from services.alerts.domain import SEVERITY_TEXT, STEP_TEXT, Alert, CustomerHistory, FeedbackLink, Moment
from shared.mail.message import build_message, make_message_id, sender_domain

KIND_TEXT = {
    "raised": ("新警报", "New alert"),
    "escalation": ("升级：未在时限内确认", "Escalated: not acknowledged in time"),
    "update": ("更新：又有负面反馈", "Update: more negative feedback"),
    "reopened": ("重新打开：回访仍不满意", "Reopened: the recovery survey is still negative"),
}


VERDICT_QUESTION = ("警报对吗？请判断最新一条负面反馈（帮助改进评分）",
                    "Was this rightly alerted? Judge the newest negative feedback (it improves the scoring)")


@dataclass(frozen=True)
class Link:
    label_zh: str
    label_en: str
    url: str


@dataclass(frozen=True)
class Rendered:
    subject: str
    text: str
    html: str


def _when(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M UTC") if value else "-"


def _place(alert: Alert) -> str:
    return " · ".join(p for p in (alert.location, alert.touchpoint) if p) or alert.channel


def _moment_line(moment: Moment | None) -> tuple[str, str]:
    if moment is None:
        return ("无", "none")
    where = " · ".join(p for p in (moment.location, moment.touchpoint) if p) or moment.channel
    at = _when(moment.at)
    return (f"MOT {moment.mot:+d}，{at}，{where}", f"MOT {moment.mot:+d} on {at} at {where}")


def subject(kind: str, alert: Alert) -> str:
    zh, en = SEVERITY_TEXT[alert.severity]
    prefix = {"raised": "", "escalation": "升级/Escalated ", "update": "更新/Update ", "reopened": "重开/Reopened "}[kind]
    return f"[MOT {alert.severity:+d} {zh}/{en}] {prefix}{_place(alert)}: {alert.summary}"


def render(
    *, kind: str, alert: Alert, feedback: list[FeedbackLink], history: CustomerHistory, links: list[Link], level: int,
    verdicts: list[Link] | None = None,
) -> Rendered:
    """The mail for one notification; ``feedback`` newest last, ``history`` from the customer's moments;
    ``verdicts``: the links judging its newest negative feedback (correct / false alarm)."""
    sev_zh, sev_en = SEVERITY_TEXT[alert.severity]
    kind_zh, kind_en = KIND_TEXT[kind]
    step = alert.next_step
    step_zh, step_en = STEP_TEXT[step] if step else ("无", "none")
    last_zh, last_en = _moment_line(history.last)
    worst_zh, worst_en = _moment_line(history.worst)
    shown = feedback[-5:]
    sla = _when(alert.sla_due_at) if alert.sla_due_at else "-"

    lines = [
        f"{kind_zh} / {kind_en}" + (f" (第 {level} 级 / level {level})" if level > 1 else ""),
        "",
        f"严重程度 / Severity: MOT {alert.severity:+d} ({sev_zh} / {sev_en})",
        f"地点 / Where: {_place(alert)}   渠道 / Channel: {alert.channel}",
        f"负责团队 / Team: {alert.team}   状态 / Status: {alert.status}",
        f"反馈条数 / Feedback in this alert: {alert.feedback_count}",
        f"确认时限 / Acknowledge by: {sla}",
        "",
    ]
    for item in shown:
        lines += [
            f"--- 反馈 / Feedback {item.feedback_id} ({item.channel}, {_when(item.received_at)}) ---",
            f"MOT {item.mot:+d}  置信度 / confidence {item.confidence:.2f}",
            f"线索 / Cues: {', '.join(item.cues[:8]) or '-'}",
            (item.text or "(无文字 / no text)"),
            "",
        ]
    if alert.customer_key:
        lines += [
            f"客户近期接触 / Customer's recent contacts ({history.count} 次 / contacts):",
            f"  最近一次 / Last: {last_zh} | {last_en}",
            f"  最差一次 / Worst: {worst_zh} | {worst_en}",
        ]
    else:
        lines.append("客户近期接触 / Customer's recent contacts: 匿名反馈 / anonymous feedback")
    lines += ["", f"下一步 / Next step: {step_zh} | {step_en}", ""]
    for link in links:
        lines.append(f"{link.label_zh} / {link.label_en}: {link.url}")
    if verdicts:
        lines += ["", f"{VERDICT_QUESTION[0]} / {VERDICT_QUESTION[1]}"]
        lines += [f"{link.label_zh} / {link.label_en}: {link.url}" for link in verdicts]
    lines += ["", "Keymoment — 每个关键时刻都值得挽回 / every moment of truth is worth recovering"]
    text = "\n".join(lines) + "\n"

    e = html.escape
    colour = {-3: "#b71c1c", -2: "#e65100", -1: "#f9a825"}[alert.severity]
    items_html = "".join(
        f"""<div style="border-left:4px solid {colour};padding:6px 10px;margin:10px 0;background:#fafafa">
<div style="color:#555;font-size:12px">{e(item.channel)} · {e(_when(item.received_at))} · MOT {item.mot:+d}
 · 置信度 confidence {item.confidence:.2f}</div>
<div style="white-space:pre-wrap;margin:6px 0">{e(item.text or '(无文字 / no text)')}</div>
<div style="color:#555;font-size:12px">线索 / Cues: {e(', '.join(item.cues[:8]) or '-')}</div></div>"""
        for item in shown
    )
    if alert.customer_key:
        history_html = (
            f"<li>最近一次 / Last: {e(last_zh)} | {e(last_en)}</li>"
            f"<li>最差一次 / Worst: {e(worst_zh)} | {e(worst_en)}</li>"
            f"<li>近期接触 / Recent contacts: {history.count}</li>"
        )
    else:
        history_html = "<li>匿名反馈 / anonymous feedback</li>"
    links_html = " ".join(
        f'<a href="{e(link.url)}" style="display:inline-block;margin:4px 6px 4px 0;padding:8px 14px;'
        f'background:#1565c0;color:#fff;text-decoration:none;border-radius:4px">{e(link.label_zh)} / {e(link.label_en)}</a>'
        for link in links
    )
    verdicts_html = "" if not verdicts else (
        f'<p style="font-size:13px;color:#555">{e(VERDICT_QUESTION[0])} / {e(VERDICT_QUESTION[1])}<br>'
        + " ".join(f'<a href="{e(link.url)}" style="display:inline-block;margin:4px 6px 4px 0;padding:6px 12px;'
                   f'border:1px solid #1565c0;color:#1565c0;text-decoration:none;border-radius:4px">'
                   f'{e(link.label_zh)} / {e(link.label_en)}</a>' for link in verdicts)
        + "</p>"
    )
    body_html = f"""<!doctype html>
<html lang="zh-CN"><head><meta charset="utf-8"><title>{e(subject(kind, alert))}</title></head>
<body style="font-family:-apple-system,'PingFang SC','Microsoft YaHei',Arial,sans-serif;color:#222;max-width:680px">
<h2 style="color:{colour};margin-bottom:4px">MOT {alert.severity:+d} · {e(sev_zh)} / {e(sev_en)}</h2>
<div style="font-size:15px"><b>{e(kind_zh)}</b> / {e(kind_en)}{f' — 第 {level} 级 / level {level}' if level > 1 else ''}</div>
<table style="margin:10px 0;border-collapse:collapse;font-size:14px">
<tr><td style="padding:2px 10px 2px 0;color:#555">地点 / Where</td><td>{e(_place(alert))}</td></tr>
<tr><td style="padding:2px 10px 2px 0;color:#555">渠道 / Channel</td><td>{e(alert.channel)}</td></tr>
<tr><td style="padding:2px 10px 2px 0;color:#555">团队 / Team</td><td>{e(alert.team)}</td></tr>
<tr><td style="padding:2px 10px 2px 0;color:#555">状态 / Status</td><td>{e(alert.status)}</td></tr>
<tr><td style="padding:2px 10px 2px 0;color:#555">反馈条数 / Feedback</td><td>{alert.feedback_count}</td></tr>
<tr><td style="padding:2px 10px 2px 0;color:#555">确认时限 / Acknowledge by</td><td>{e(sla)}</td></tr>
</table>
{items_html}
<h3 style="margin-bottom:4px">客户近期接触 / Customer's recent contacts</h3><ul style="margin-top:4px">{history_html}</ul>
<h3 style="margin-bottom:4px">下一步 / Next step</h3><p style="margin-top:4px">{e(step_zh)}<br>{e(step_en)}</p>
<p>{links_html}</p>
{verdicts_html}
<p style="color:#888;font-size:12px">Keymoment — 每个关键时刻都值得挽回 / every moment of truth is worth recovering.
链接个人专用，请勿转发 / These links act in your name; do not forward this mail.</p>
</body></html>
"""
    return Rendered(subject(kind, alert), text, body_html)


PURPOSE = "alert_notification"
"""The mail queue purpose of alert mails (``keymoment_mail_*{purpose="alert_notification"}``)."""


def mail_id(notification_id: str, recipient: str) -> str:
    """The queue id of one recipient's mail of a notification (the same for every attempt)."""
    return f"alert-notification:{notification_id}:{recipient}"


def message_id(notification_id: str, recipient: str, *, sender: str) -> str:
    """The Message-ID of one recipient's mail of a notification, in the sender's domain."""
    digest = hashlib.sha256(recipient.encode()).hexdigest()[:12]
    return make_message_id(f"{notification_id}.{digest}", sender_domain(sender))


@dataclass(frozen=True, slots=True)
class AlertMail:
    """One recipient's mail of a notification, rendered when it was decided; its bytes
    are written out when the unit of work is flushed (:meth:`message`)."""

    mail_id: str
    notification_id: str
    alert_id: str
    message_id: str
    recipient: str
    sender: str
    subject: str
    text: str
    html: str
    date: datetime

    def message(self) -> bytes:
        """The RFC 5322 bytes (the same every time: a resend is the same mail)."""
        return build_message(
            sender=self.sender, to=[self.recipient], subject=self.subject, text=self.text, html=self.html,
            message_id=self.message_id, date=self.date, language="zh-CN, en",
            headers=[("X-Keymoment-Alert", self.alert_id)],
        )
