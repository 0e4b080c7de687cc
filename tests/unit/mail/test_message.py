"""The shared mail builder: bytes any mail parser reads back without defects,
Chinese subjects and names, folded headers, and the same bytes for the same input."""

from __future__ import annotations

import email
import email.policy
from datetime import UTC, datetime
from email.header import decode_header, make_header

import pytest

from shared.mail.message import InvalidAddress, build_message, make_message_id, normalize_address

WHEN = datetime(2025, 3, 14, 9, 26, 53, tzinfo=UTC)
TEXT = "王芳您好：\n\n请花一分钟告诉我们您的感受。\nPlease take a minute.\n"
HTML = "<p>王芳您好：</p><p><a href=\"https://survey.example.cn/s/recovery?t=abc\">填写问卷</a></p>"


def build(**overrides) -> bytes:
    args = dict(
        sender="Keymoment 客户关怀 <care@keymoment.example>",
        to=[("王芳", "wang.fang@example.cn")],
        subject="我们解决了您的问题吗？ / Did we put it right?",
        text=TEXT, html=HTML, message_id="<survey.0123abcd@keymoment.example>", date=WHEN, language="zh-CN, en",
    )
    return build_message(**(args | overrides))


def parse(raw: bytes) -> email.message.EmailMessage:
    return email.message_from_bytes(raw, policy=email.policy.default)


def defects(message: email.message.Message) -> list:
    found = list(message.defects)
    for part in message.walk():
        found += part.defects
    for name, value in message.items():
        found += getattr(value, "defects", ())
    return found


def test_parses_back_without_defects_with_chinese_subject_names_and_bodies():
    raw = build()
    message = parse(raw)
    assert defects(message) == []
    assert message["Subject"] == "我们解决了您的问题吗？ / Did we put it right?"
    assert message["From"].addresses[0].display_name == "Keymoment 客户关怀"
    assert message["From"].addresses[0].addr_spec == "care@keymoment.example"
    assert message["To"].addresses[0].display_name == "王芳"
    assert message["To"].addresses[0].addr_spec == "wang.fang@example.cn"
    assert message["Message-ID"] == "<survey.0123abcd@keymoment.example>"
    assert message["Date"].datetime == WHEN
    assert message["Content-Language"] == "zh-CN, en"
    assert message["Auto-Submitted"] == "auto-generated"
    assert message.get_content_type() == "multipart/alternative"
    assert message.get_body(("plain",)).get_content() == TEXT
    assert message.get_body(("html",)).get_content() == HTML
    assert message.get_body(("plain",))["Content-Type"].params["charset"] == "utf-8"


def test_every_line_is_crlf_terminated_ascii_within_78_characters():
    long_subject = "【严重投诉】" + "行李在浦东机场二号航站楼丢失，客服没有回电话，" * 6 + " / Lost luggage"
    raw = build(subject=long_subject, to=[("欧阳娜娜" * 8, "nana@example.cn"), "li.wei@example.cn",
                                          ("Wang, Fang (王芳)", "wf@example.cn"), ("Müller, Hans", "hans@example.de")])
    assert raw.isascii()
    assert b"\n" not in raw.replace(b"\r\n", b"")
    for line in raw.split(b"\r\n"):
        assert len(line) <= 78, line
    message = parse(raw)
    assert defects(message) == []
    assert message["Subject"] == " ".join(long_subject.split())
    names = [a.display_name for a in message["To"].addresses]
    assert names[1:] == ["", "Wang, Fang (王芳)", "Müller, Hans"]
    # A name longer than one encoded-word takes several. RFC 2047 6.2 ignores the space between
    # them, as decode_header does; the header registry keeps it (its own generator's output of
    # this name reads back the same way), so compare the long name through decode_header.
    to_header = raw.split(b"\r\nTo: ", 1)[1].split(b"\r\nDate: ", 1)[0].decode()
    assert str(make_header(decode_header(to_header))).startswith("欧阳娜娜" * 8 + " <nana@example.cn>, li.wei@")
    assert [a.addr_spec for a in message["To"].addresses] == [
        "nana@example.cn", "li.wei@example.cn", "wf@example.cn", "hans@example.de"]


def test_same_input_same_bytes_and_the_boundary_follows_the_message_id():
    assert build() == build()
    other = build(message_id="<survey.ffff@keymoment.example>")
    assert other != build()
    boundary = parse(build()).get_content_type() and parse(build()).get_boundary()
    assert boundary.startswith("=_km_") and boundary != parse(other).get_boundary()


def test_extra_headers_list_unsubscribe_and_a_plain_text_only_mail():
    unsubscribe = "<https://survey.example.cn/u/" + "x" * 90 + ">, <mailto:unsubscribe@keymoment.example?subject=u>"
    raw = build(html=None, headers=[("List-Unsubscribe", unsubscribe),
                                    ("List-Unsubscribe-Post", "List-Unsubscribe=One-Click"),
                                    ("X-Keymoment-Alert", "alert-7f3a")], auto_submitted=None)
    message = parse(raw)
    assert defects(message) == []
    assert message.get_content_type() == "text/plain" and message.get_content() == TEXT
    assert message["List-Unsubscribe"] == unsubscribe, "a long URI list is folded at spaces, never encoded"
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert message["X-Keymoment-Alert"] == "alert-7f3a"
    assert message["Auto-Submitted"] is None


def test_header_values_cannot_inject_headers_and_reserved_headers_are_refused():
    message = parse(build(subject="Hello\r\nBcc: victim@example.com", headers=[("X-Note", "a\nb")]))
    assert message["Bcc"] is None
    assert message["Subject"] == "Hello Bcc: victim@example.com" and message["X-Note"] == "a b"
    with pytest.raises(ValueError):
        build(headers=[("Subject", "again")])
    with pytest.raises(ValueError):
        build(headers=[("X Bad", "name")])
    with pytest.raises(ValueError):
        build(to=[])


def test_addresses_are_normalized_or_refused():
    assert normalize_address("Li.Wei@Example.CN") == "Li.Wei@example.cn"
    assert normalize_address("kefu@例子.中国") == "kefu@xn--fsqu00a.xn--fiqs8s"
    for bad in ("李伟@example.cn", "a<b>@example.cn", "no-at-sign", "a@", "a..b@example.cn", 'x"@example.cn',
                "a@exa mple.cn", "a@-bad.cn"):
        with pytest.raises(InvalidAddress):
            normalize_address(bad)
    with pytest.raises(InvalidAddress):
        build(to=["a,b@example.cn"])


def test_message_ids_are_checked():
    assert make_message_id("survey.0123", "keymoment.example") == "<survey.0123@keymoment.example>"
    with pytest.raises(ValueError):
        make_message_id("a b", "example.cn")
    with pytest.raises(ValueError):
        build(message_id="no-brackets@example.cn")
