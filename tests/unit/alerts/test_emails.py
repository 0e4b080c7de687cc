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


def test_message_is_multipart_alternative_utf8_with_encoded_subject():
    mail = emails.render(kind="escalation", alert=_alert(escalation_level=2), feedback=FEEDBACK, history=CustomerHistory(),
                         links=[], level=2)
    raw = emails.build_message(
        sender="Keymoment <alerts@example.com>", recipients=["a@example.com", "b@example.com"],
        subject_line=mail.subject, text=mail.text, body_html=mail.html, msg_id=emails.message_id("n-1"),
        created_at=NOW, alert_id="a-1",
    )
    head = raw.split(b"\r\n\r\n", 1)[0]
    assert b"=?utf-8?" in head  # RFC 2047, never raw UTF-8 in the header
    assert head.isascii()
    parsed = email.message_from_bytes(raw, policy=email.policy.default)
    assert parsed.get_content_type() == "multipart/alternative"
    assert parsed["Subject"] == mail.subject and "升级/Escalated" in parsed["Subject"]
    assert parsed["Message-ID"] == "<n-1@alerts.keymoment>"
    assert parsed.get_body(("plain",)).get_content_charset() == "utf-8"
    assert "第 2 级 / level 2" in parsed.get_body(("plain",)).get_content()
    assert parsed.get_body(("html",)).get_content().replace("\r\n", "\n") == mail.html


def test_long_headers_fold_under_78_and_decode_back():
    subject = "[MOT -3 严重/critical] 北京首都国际机场T3航站楼 · 行李提取: " + "行李丢了三天没人回电话，" * 8
    recipients = [f"manager.{i}@very-long-subsidiary-name.example.com.cn" for i in range(12)]
    raw = emails.build_message(
        sender="客户体验中心 Keymoment <alerts@example.com>", recipients=recipients, subject_line=subject,
        text="第一行\n" + "很长的一行" * 200, body_html="<p>" + "好" * 3000 + "</p>", msg_id="<n-2@alerts.keymoment>",
        created_at=NOW, alert_id="a-2",
    )
    assert raw.isascii()
    assert max(len(line) for line in raw.split(b"\r\n")) <= 78
    assert b"\n" not in raw.replace(b"\r\n", b"")  # CRLF only
    parsed = email.message_from_bytes(raw, policy=email.policy.default)
    assert parsed["Subject"] == " ".join(subject.split())
    assert [a.addr_spec for a in parsed["To"].addresses] == recipients
    assert parsed["From"].addresses[0].display_name == "客户体验中心 Keymoment"
    assert parsed["From"].addresses[0].addr_spec == "alerts@example.com"
    assert parsed.get_body(("plain",)).get_content() == "第一行\n" + "很长的一行" * 200
    assert not parsed.defects and all(not part.defects for part in parsed.walk())


def test_same_notification_is_the_same_bytes():
    kwargs = dict(sender="k@example.com", recipients=["a@example.com"], subject_line="s", text="t",
                  body_html="<p>h</p>", msg_id="<n-3@alerts.keymoment>", created_at=NOW, alert_id="a-3")
    assert emails.build_message(**kwargs) == emails.build_message(**kwargs)
    assert emails.build_message(**kwargs) != emails.build_message(**{**kwargs, "msg_id": "<n-4@alerts.keymoment>"})
