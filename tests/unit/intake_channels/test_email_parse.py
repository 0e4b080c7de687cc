"""Mail as a mail client reads it: charsets, encodings, replies, auto-replies, garbage."""

from pathlib import Path

import pytest

from services.intake.email.parse import AUTO_REPLY, FEEDBACK, REJECTED, decode_header_value, parse_email
from services.intake.email.text import html_to_text, strip_reply
from shared.contracts import Channel

DATA = Path(__file__).resolve().parents[2] / "data" / "email"


def load(name: str) -> bytes:
    return (DATA / name).read_bytes()


def test_gbk_complaint_labelled_gb2312_with_base64_body_and_rfc2047_subject():
    mail = parse_email(load("gbk_complaint_base64.eml"))
    assert mail.status == FEEDBACK
    assert mail.subject == "投诉：朝阳门支行服务态度恶劣"
    assert (mail.sender_name, mail.sender_address) == ("王建国", "wangjg1978@163.com")
    assert mail.message_id == "<5f1c2a9e.3b2d.18f6a1c2e3d.Coremail.wangjg1978@163.com>"
    assert "排队等了两个多小时" in mail.text
    assert "朱镕" in mail.text  # a GBK-only character under a GB2312 label: decoded as GB18030
    assert "发自我的iPhone" not in mail.text  # signature cut
    assert mail.language == "zh"
    assert mail.occurred_at.isoformat() == "2026-05-11T09:12:40+08:00"
    [attachment] = mail.attachments
    assert (attachment.filename, attachment.content_type, attachment.size) == ("排队照片.jpg", "image/jpeg", 2048)


def test_gbk_complaint_becomes_email_feedback_with_customer_and_details():
    feedback = parse_email(load("gbk_complaint_base64.eml")).to_feedback(recipient="feedback@example.com")
    assert feedback.channel is Channel.EMAIL
    assert feedback.customer.name == "王建国" and feedback.customer.email == "wangjg1978@163.com"
    assert feedback.email.subject == "投诉：朝阳门支行服务态度恶劣"
    assert feedback.email.recipient == "feedback@example.com"
    assert feedback.email.attachments[0].size == 2048
    assert feedback.text.startswith("你好")


def test_big5_quoted_printable():
    mail = parse_email(load("big5_quoted_printable.eml"))
    assert mail.status == FEEDBACK
    assert mail.sender_name == "陳美玲"
    assert mail.subject == "手機螢幕刮痕，要求退換"
    assert "螢幕有刮痕" in mail.text and "陳小姐" in mail.text
    assert "傳送" not in mail.text
    assert mail.language == "zh"


def test_html_only_quoted_printable_reply_drops_quote_signature_script_and_style():
    mail = parse_email(load("utf8_html_only_reply.eml"))
    assert mail.status == FEEDBACK
    assert mail.subject == "Re: Delayed flight – lost luggage"
    assert "delayed four hours" in mail.text and "I’m really disappointed — this" in mail.text
    for gone in ("track()", "color: #333", "wrote:", "reference is 55-1234", "Senior Analyst"):
        assert gone not in mail.text
    assert mail.language == "en"


def test_auto_reply_is_recorded_not_feedback():
    mail = parse_email(load("auto_reply.eml"))
    assert mail.status == AUTO_REPLY
    assert "auto-replied" in mail.reason
    assert mail.text == ""


def test_dsn_bounce_is_recognised_even_without_auto_submitted():
    raw = load("dsn_bounce.eml").replace(b"Auto-Submitted: auto-replied\r\n", b"")
    mail = parse_email(raw)
    assert mail.status == AUTO_REPLY
    assert mail.reason == "delivery report (delivery-status)"


@pytest.mark.parametrize(
    ("header", "subject"),
    [
        ("X-Autoreply: yes", "Thanks"),
        ("X-Autorespond: Out of office", "Thanks"),
        ("Precedence: bulk", "Newsletter"),
        ("Precedence: auto_reply", "Thanks"),
        ("X-Mailer: x", "=?UTF-8?B?6Ieq5Yqo5Zue5aSNOiDmiJHkvJHlgYfkuoY=?="),  # 自动回复: 我休假了
        ("X-Mailer: x", "Automatic reply: Away"),
    ],
)
def test_auto_reply_signals(header, subject):
    raw = (
        f"From: a@example.com\r\nTo: feedback@example.com\r\nSubject: {subject}\r\n{header}\r\n"
        "Message-ID: <x@example.com>\r\n\r\nI am away.\r\n"
    ).encode()
    assert parse_email(raw).status == AUTO_REPLY


def test_auto_submitted_no_is_a_person():
    raw = b"From: a@example.com\r\nAuto-Submitted: no\r\nSubject: Hi\r\n\r\nThe staff was very rude to me.\r\n"
    assert parse_email(raw).status == FEEDBACK


def test_garbage_is_rejected_with_reason_and_a_stable_key():
    raw = load("garbage.eml")
    mail = parse_email(raw)
    assert mail.status == REJECTED
    assert mail.reason == "not an RFC 822 message: no header fields"
    assert mail.key.startswith("sha256:") and mail.key == parse_email(raw).key


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"Subject: hi\r\n\r\nno sender here\r\n", "no valid From address"),
        (b"From: a@example.com\r\nSubject:\r\n\r\n\r\n", "no text: empty body and subject"),
        (b"From: not an address\r\n\r\nhello\r\n", "no valid From address"),
    ],
)
def test_rejections(raw, reason):
    mail = parse_email(raw)
    assert (mail.status, mail.reason) == (REJECTED, reason)


def test_subject_only_mail_uses_subject_as_text():
    raw = b"From: a@example.com\r\nSubject: Toilets at gate 12 are dirty\r\n\r\n\r\n"
    mail = parse_email(raw)
    assert (mail.status, mail.text) == (FEEDBACK, "Toilets at gate 12 are dirty")


def test_raw_8bit_utf8_and_gbk_headers():
    assert decode_header_value("=?gb2312?B?" + "1tDOxA==" + "?=") == "中文"
    raw = "From: 张三 <z@example.cn>\r\nSubject: 服务很好\r\n\r\n谢谢\r\n".encode("gbk")
    mail = parse_email(raw)
    assert mail.sender_name == "张三" and mail.subject == "服务很好"


def test_unknown_charset_falls_back_without_crashing():
    raw = b"From: a@example.com\r\nContent-Type: text/plain; charset=x-klingon\r\n\r\nThe food was cold.\r\n"
    assert parse_email(raw).text == "The food was cold."


def test_oversized_text_is_truncated_and_marked():
    raw = b"From: a@example.com\r\nSubject: long\r\n\r\n" + b"bad service. " * 3000
    mail = parse_email(raw)
    assert len(mail.text) == 20_000 and mail.truncated
    assert mail.to_feedback().attributes == {"email_truncated": True}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Thanks, great.\n\nOn Mon, 4 May 2026 at 09:00, Care <c@example.com> wrote:\n> old", "Thanks, great."),
        ("好的\n\n在 2026年5月4日 上午9:00，客服 <c@example.com> 写道：\n> 旧", "好的"),
        ("新问题\n\n------------------ 原始邮件 ------------------\n发件人: 客服", "新问题"),
        ("New issue\n\n-----Original Message-----\nFrom: Care", "New issue"),
        ("New issue\n________________________________\nFrom: Care\nSent: Monday", "New issue"),
        ("Text\nFrom: my experience, staff are rude\nreally", "Text\nFrom: my experience, staff are rude\nreally"),
        ("内容\n发件人: 客服中心\n发送时间: 2026", "内容"),
        ("Body\n-- \nJohn Smith\nACME", "Body"),
        ("Body\n\nSent from my iPhone", "Body"),
        ("Reply\n> quoted\n> more\nmine", "Reply\nmine"),
        ("Still broken.\n\nOn Fri, May 8, 2026 at 10:02 AM Customer Care <\ncare@example.com> wrote:\n> Dear", "Still broken."),
        ("还是没修好\n\n在 2026年5月8日 10:02，客服中心 <care@example.com>\n写道：\n> 您好", "还是没修好"),
        ("On time and friendly.\nThe crew wrote: nothing", "On time and friendly.\nThe crew wrote: nothing"),
    ],
)
def test_strip_reply(text, expected):
    assert strip_reply(text) == expected


def test_html_to_text_blocks_entities_and_broken_markup():
    assert html_to_text("<p>A&amp;B</p><p>C<br>D</p>") == "A&B\n\nC\nD"
    assert html_to_text("<div>unclosed <b>bold") == "unclosed bold"
    assert html_to_text("<style>x{}</style><script>alert(1)</script>ok") == "ok"


def test_an_address_the_contract_cannot_hold_is_dropped_not_the_complaint():
    raw = f'From: "Zhang" <{"z" * 400}@example.cn>\r\nSubject: hi\r\n\r\nThe room was dirty.\r\n'.encode()
    mail = parse_email(raw)
    feedback = mail.to_feedback()
    assert feedback.text == "The room was dirty." and feedback.customer.name == "Zhang" and feedback.customer.email is None


@pytest.mark.parametrize(("flowed", "delsp", "expected"), [
    # soft breaks (trailing space) join; a hard break stays
    ("The bag was lost on the way to \nShanghai and nobody called me \nback.\nThanks", False,
     "The bag was lost on the way to Shanghai and nobody called me back.\nThanks"),
    # DelSp=yes: the trailing space was added by the wrapping (CJK text has no spaces)
    ("行李丢了三天， \n没人回电话。", True, "行李丢了三天，没人回电话。"),
    # space-stuffing removed; the signature separator is never a soft break
    ("  indented \nline\n-- \nLi Wei", False, " indented line\n-- \nLi Wei"),
    # quoted paragraphs join within their depth and keep their markers
    ("My reply.\n> quoted line one \n> continues\n>> deeper", False,
     "My reply.\n> quoted line one continues\n> > deeper"),
])
def test_format_flowed_paragraphs_are_rejoined(flowed, delsp, expected):
    from services.intake.email.text import unflow

    assert unflow(flowed, delsp=delsp) == expected


def test_flowed_mail_becomes_one_paragraph_of_feedback_without_the_quote():
    raw = (
        "From: Li Wei <li.wei@example.cn>\r\nTo: feedback@example.com\r\nSubject: Lost bag\r\n"
        "Message-ID: <flowed-1@example.cn>\r\nMIME-Version: 1.0\r\n"
        "Content-Type: text/plain; charset=utf-8; format=flowed; delsp=yes\r\n"
        "Content-Transfer-Encoding: 8bit\r\n\r\n"
        "My bag was lost on flight MU5101 and nobody has called me back in three  \r\n"
        "days. I will complain to the regulator.\r\n\r\n"
        "> Dear customer, thank you for  \r\n> contacting us.\r\n"
    ).encode()
    mail = parse_email(raw)
    assert mail.text == ("My bag was lost on flight MU5101 and nobody has called me back in three "
                         "days. I will complain to the regulator.")


# --- issue 13 item 6: text as a mail client shows it ------------------------------------------------------------

def _mail(body: bytes, *, headers: str = "", content_type: str = "text/plain; charset=utf-8",
          sender: str = "Li Wei <li.wei@example.cn>") -> bytes:
    head = (f"From: {sender}\r\nTo: feedback@example.com\r\nSubject: 投诉\r\nMessage-ID: <t-1@example.cn>\r\n"
            f"MIME-Version: 1.0\r\nContent-Type: {content_type}\r\n{headers}\r\n")
    return head.encode() + body


def test_one_bad_byte_in_utf8_is_one_replacement_character_not_gb18030_mojibake():
    text = "排队两个小时，没有人管。服务态度非常差，我要求退款。".encode()
    broken = text[:9] + b"\xff" + text[9:]
    for content_type in ("text/plain; charset=utf-8", "text/plain"):  # declared, and undeclared
        mail = parse_email(_mail(broken, content_type=content_type))
        assert mail.text == "排队两\ufffd个小时，没有人管。服务态度非常差，我要求退款。"


def test_each_part_is_decoded_with_its_own_charset():
    body = (
        b'--B\r\nContent-Type: text/plain; charset=gb2312\r\n\r\n' + "第一部分：排队太久".encode("gbk")
        + b'\r\n--B\r\nContent-Type: image/png\r\nContent-Disposition: inline; filename="a.png"\r\n\r\nPNG\r\n'
        + b'--B\r\nContent-Type: text/plain; charset=big5\r\n\r\n' + "第二部分：態度很差".encode("big5")
        + b'\r\n--B\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n' + "第三部分：\xff坏字节".encode("utf-8", "surrogateescape") + b"\r\n--B--\r\n"
    )
    mail = parse_email(_mail(body, content_type='multipart/mixed; boundary="B"'))
    assert mail.text == "第一部分：排队太久\n\n第二部分：態度很差\n\n第三部分：ÿ坏字节"


def test_undeclared_latin1_is_not_read_as_gb18030():
    mail = parse_email(_mail("Die Frösche sind grün, das Essen war kalt.".encode("latin-1"), content_type="text/plain"))
    assert mail.text == "Die Frösche sind grün, das Essen war kalt."


@pytest.mark.parametrize(("name", "encoded"), [
    ("Wang, Fang (王芳)", "=?UTF-8?B?V2FuZywgRmFuZyAo546L6IqzKQ==?="),
    ("Müller, Hans", "=?ISO-8859-1?Q?M=FCller=2C_Hans?="),
    ("Müller, Hans", '"=?UTF-8?B?TcO8bGxlciwgSGFucw==?="'),
    ("Müller, Hans", '"Müller, Hans"'),
    ("Müller, Hans", "Müller, Hans"),  # unquoted comma, raw 8-bit: invalid, but clients show it
])
def test_display_names_with_commas_are_one_sender(name, encoded):
    raw = _mail("The room was dirty.".encode(), sender=f"{encoded} <hans@example.de>")
    mail = parse_email(raw)
    assert (mail.status, mail.sender_name, mail.sender_address) == (FEEDBACK, name, "hans@example.de")


@pytest.mark.parametrize(("text", "expected"), [
    ("还是没修好。\n\n-----原始郵件-----\n寄件者: 客服\n主旨: Re: 報修", "还是没修好。"),
    ("还是没修好。\n\n-----原始邮件-----\n发件人: 客服", "还是没修好。"),
    ("还是没修好。\n\n------------------ Original ------------------\nFrom: care@example.com", "还是没修好。"),
    ("还是没修好。\n\n---- 回复的原邮件 ----\n| 发件人 | 客服 |", "还是没修好。"),
    ("退款还没到账。\n\n从 Windows 版邮件发送\n\n发件人: 客服中心", "退款还没到账。"),
    ("退款还没到账。\n\n发自我的iPhone", "退款还没到账。"),
    ("退款还没到账。\n\n发自我的华为手机", "退款还没到账。"),
    ("退款还没到账。\n来自网易邮箱大师", "退款还没到账。"),
    ("Refund still missing.\n\nSent from Mail for Windows", "Refund still missing."),
    ("Refund still missing.\n\nGet Outlook for Android", "Refund still missing."),
    ("好的\n\n张三 <zhang@example.cn> 于2026年5月8日周五 上午10:02写道：\n> 您好", "好的"),
    ("Refund still missing.\n\nOn Fri, May 8, 2026 at 10:02 AM Care <care@example.com> wrote:\n> Dear", "Refund still missing."),
    # a name | title | phone | address block at the end
    ("门店服务太差，要求回电。\n\n张三 | 采购部 | 138 0000 0000\n北京市朝阳区建国路88号", "门店服务太差，要求回电。"),
    ("门店服务太差。\n\n王芳\n电话：13800138000\n地址：上海市浦东新区世纪大道100号", "门店服务太差。\n\n王芳"),
    ("The bag is lost.\n\nJohn Smith | Sales Manager\nTel: +44 20 7946 0958", "The bag is lost."),
    # ... but a sentence with a phone number in it is the customer's, and stays
    ("门店服务太差。\n请尽快联系我，电话：13800138000", "门店服务太差。\n请尽快联系我，电话：13800138000"),
    # a bottom-posted (Thunderbird) reply keeps the customer's text below the quote
    ("On 08.05.2026 10:02, Customer Care wrote:\n> Dear customer,\n> we are sorry.\n\nStill broken! I want a refund.\n\n-- \nLi Wei",
     "Still broken! I want a refund."),
    ("在 2026/5/8 10:02, 客服中心 写道:\n> 您好\n\n还是没修好，我要退货。", "还是没修好，我要退货。"),
    # quotes escaped as &gt; are quotes
    ("Still broken.\n\n&gt; Dear customer,\n&gt; thank you for writing.", "Still broken."),
])
def test_chinese_and_english_replies_and_signatures(text, expected):
    assert strip_reply(text) == expected


def test_a_quote_with_literal_gt_entities_is_dropped_from_a_plain_part():
    body = "还是没修好。\r\n\r\n&gt; 您好，&nbsp;感谢您的反馈。\r\n&gt; 客服中心\r\n".encode()
    assert parse_email(_mail(body)).text == "还是没修好。"


def test_html_quote_and_signature_containers_are_dropped():
    html = ('<div>Still broken.</div><div class="gmail_signature">Li Wei | 138 0000 0000</div>'
            '<div class="gmail_quote"><div>On Fri, Care wrote:</div><blockquote>Dear</blockquote></div>'
            '<div class="moz-cite-prefix">On 08.05.2026, Care wrote:</div><blockquote type="cite">old</blockquote>'
            '<p>P.S. the receipt is attached.</p>')
    assert html_to_text(html) == "Still broken.\n\nP.S. the receipt is attached."


def test_a_nul_in_the_message_id_is_a_permanent_rejection_keyed_by_the_bytes():
    raw = b"From: a@example.com\r\nMessage-ID: <bad\x00id@example.com>\r\nSubject: x\r\n\r\nThe food was cold.\r\n"
    mail = parse_email(raw)
    assert mail.status == REJECTED and "U+0000" in mail.reason
    assert mail.key.startswith("sha256:") and mail.message_id is None


def test_header_values_the_contract_refuses_are_dropped_not_the_complaint():
    raw = (b"From: =?UTF-8?B?546L\x00?= <wang@example.cn>\r\nTo: bad\x01@example.com, feedback@example.com\r\n"
           b"Subject: =?UTF-8?Q?=E6=8A=95=E8=AF=89=00?=\r\nDate: Fri, 31 Dec 9999 23:59:59 -1400\r\n\r\nThe food was cold.\r\n")
    feedback = parse_email(raw).to_feedback()
    assert feedback.text == "The food was cold." and feedback.occurred_at is None
    assert feedback.email.subject == "投诉" and feedback.email.recipient == "feedback@example.com"


def test_duplicates_are_keyed_by_message_id_and_sender():
    def mail(sender: str) -> bytes:
        return f"From: {sender}\r\nMessage-ID: <same@example.com>\r\nSubject: x\r\n\r\nThe food was cold.\r\n".encode()

    def key(sender: str) -> tuple[str, str]:
        parsed = parse_email(mail(sender))
        return parsed.key, parsed.key_sender

    assert key("a@example.com") == key("A@Example.com") == ("<same@example.com>", "a@example.com")
    assert key("a@example.com") != key("b@example.com")


def test_uuencoded_files_in_a_plain_body_are_attachments_not_text():
    body = b"See the photo.\r\n\r\nbegin 644 photo.jpg\r\nM_]C_X``02D9)1@`!`0$`2`!(``#_VP!#``,\"`@,\"`@,#`P,$`P,$!0@%!00$\r\n`\r\nend\r\n"
    assert parse_email(_mail(body)).text == "See the photo."


def test_work_on_a_huge_html_body_is_bounded():
    import time

    html = b"<div><p>bad <b>service</b> &amp; rude</p></div>\r\n" * 200_000  # 9.8 MB
    started = time.process_time()
    mail = parse_email(_mail(html, content_type="text/html; charset=utf-8"))
    assert mail.truncated and len(mail.text) == 20_000
    assert time.process_time() - started < 10  # unbounded, html.parser took ~17 s here
