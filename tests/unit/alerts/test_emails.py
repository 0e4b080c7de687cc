"""The manager's mail: bilingual multipart/alternative, UTF-8, RFC 2047 subject, escaped HTML."""

from __future__ import annotations

import email
import email.policy
from datetime import UTC, datetime

from services.alerts import emails
from services.alerts.domain import Alert, CustomerHistory, FeedbackLink, Moment

NOW = datetime(2026, 5, 1, 9, 30, tzinfo=UTC)


def _alert(**overrides) -> Alert:
    values = dict(
        alert_id="a-1", feedback_id="f-1", severity=-3, status="open", channel="email", location="上海门店",
        touchpoint="收银台", customer_key="id:c-1", customer={"id": "c-1"}, language="zh-CN",
        summary="你们把我的行李弄丢了", route="stores", team="retail-stores", recipients=["m@example.com"],
        silence_id=None, raised_at=NOW, sla_due_at=NOW, escalation_level=1, sla_breached=False,
        acknowledged_at=None, acknowledged_by=None, resolved_at=None, resolved_by=None, reopen_count=0,
        feedback_count=1, last_feedback_at=NOW, last_notified_at=None, updated_at=NOW,
    )
    return Alert(**{**values, **overrides})


FEEDBACK = [FeedbackLink(
    feedback_id="f-1", alert_id="a-1", role="raised", channel="email", received_at=NOW, mot=-3, confidence=0.99,
    cues=["escalation:regulator:'12315'"], escalation=["regulator"], text="<script>alert(1)</script> 我要打12315投诉",
    location="上海门店", touchpoint="收银台", rating=None, language="zh-CN", occurred_at=None, linked_at=NOW,
)]


def test_rendered_mail_is_bilingual_with_history_step_and_links():
    history = CustomerHistory(
        last=Moment(customer_key="id:c-1", feedback_id="f-0", mot=2, at=NOW, location="store-1", touchpoint=None,
                    channel="kiosk"),
        worst=Moment(customer_key="id:c-1", feedback_id="f-00", mot=-2, at=NOW, location=None, touchpoint=None,
                     channel="web"),
        count=4,
    )
    links = [emails.Link("确认收到", "Acknowledge", "https://alerts.example/l/tok&x")]
    mail = emails.render(kind="raised", alert=_alert(), feedback=FEEDBACK, history=history, links=links, level=1)
    assert mail.subject == "[MOT -3 严重/critical] 上海门店 · 收银台: 你们把我的行李弄丢了"
    assert "最近一次 / Last: MOT +2" in mail.text and "最差一次 / Worst: MOT -2" in mail.text
    assert "下一步 / Next step: 了解" in mail.text and "Explore" in mail.text
    assert "确认收到 / Acknowledge: https://alerts.example/l/tok&x" in mail.text
    assert "&lt;script&gt;" in mail.html and "<script>" not in mail.html
    assert 'href="https://alerts.example/l/tok&amp;x"' in mail.html


def _mail(rendered, *, recipient="a@example.com", notification_id="n-1", sender="Keymoment <alerts@example.com>",
          **overrides) -> emails.AlertMail:
    values = dict(
        mail_id=emails.mail_id(notification_id, recipient), notification_id=notification_id, alert_id="a-1",
        message_id=emails.message_id(notification_id, recipient, sender=sender), recipient=recipient, sender=sender,
        subject=rendered.subject, text=rendered.text, html=rendered.html, date=NOW,
    )
    return emails.AlertMail(**{**values, **overrides})


def test_message_is_multipart_alternative_utf8_with_encoded_subject():
    mail = emails.render(kind="escalation", alert=_alert(escalation_level=2), feedback=FEEDBACK, history=CustomerHistory(),
                         links=[], level=2)
    alert_mail = _mail(mail)
    raw = alert_mail.message()
    head = raw.split(b"\r\n\r\n", 1)[0]
    assert b"=?utf-8?" in head  # RFC 2047, never raw UTF-8 in the header
    assert head.isascii()
    parsed = email.message_from_bytes(raw, policy=email.policy.default)
    assert parsed.get_content_type() == "multipart/alternative"
    assert parsed["Subject"] == mail.subject and "升级/Escalated" in parsed["Subject"]
    # one mail per recipient: each has a Message-ID of its own, in the sender's domain
    assert parsed["Message-ID"] == alert_mail.message_id and alert_mail.message_id.startswith("<n-1.")
    assert alert_mail.message_id.endswith("@example.com>")
    assert emails.message_id("n-1", "b@example.com", sender=alert_mail.sender) != alert_mail.message_id
    assert [a.addr_spec for a in parsed["To"].addresses] == ["a@example.com"]
    assert parsed["X-Keymoment-Alert"] == "a-1"
    assert parsed.get_body(("plain",)).get_content_charset() == "utf-8"
    assert "第 2 级 / level 2" in parsed.get_body(("plain",)).get_content()
    assert parsed.get_body(("html",)).get_content().replace("\r\n", "\n") == mail.html


def test_long_headers_fold_under_78_and_decode_back():
    subject = "[MOT -3 严重/critical] 北京首都国际机场T3航站楼 · 行李提取: " + "行李丢了三天没人回电话，" * 8
    recipient = "manager.11@very-long-subsidiary-name.example.com.cn"
    rendered = emails.Rendered(subject, "第一行\n" + "很长的一行" * 200, "<p>" + "好" * 3000 + "</p>")
    raw = _mail(rendered, recipient=recipient, notification_id="n-2",
                sender="客户体验中心 Keymoment <alerts@example.com>").message()
    assert raw.isascii()
    assert max(len(line) for line in raw.split(b"\r\n")) <= 78
    assert b"\n" not in raw.replace(b"\r\n", b"")  # CRLF only
    parsed = email.message_from_bytes(raw, policy=email.policy.default)
    assert parsed["Subject"] == " ".join(subject.split())
    assert [a.addr_spec for a in parsed["To"].addresses] == [recipient]
    assert parsed["From"].addresses[0].display_name == "客户体验中心 Keymoment"
    assert parsed["From"].addresses[0].addr_spec == "alerts@example.com"
    assert parsed.get_body(("plain",)).get_content() == "第一行\n" + "很长的一行" * 200
    assert not parsed.defects and all(not part.defects for part in parsed.walk())


def test_same_notification_is_the_same_bytes():
    rendered = emails.Rendered("s", "t", "<p>h</p>")
    assert _mail(rendered, notification_id="n-3").message() == _mail(rendered, notification_id="n-3").message()
    assert _mail(rendered, notification_id="n-3").message() != _mail(rendered, notification_id="n-4").message()
