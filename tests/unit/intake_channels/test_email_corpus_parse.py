"""Real-world mail (tests/data/email/corpus, see its PROVENANCE.md): what each becomes, the exact text of
the hand-checked ones, and no mojibake anywhere."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from services.intake.email.parse import AUTO_REPLY, FEEDBACK, REJECTED, parse_email

CORPUS = Path(__file__).resolve().parents[2] / "data" / "email" / "corpus"
MAILS = sorted(p.name for p in CORPUS.iterdir() if p.is_file() and p.name != "PROVENANCE.md" and p.name[0] != ".")
EXPECTED = sorted(p.name[:-4] for p in (CORPUS / "expected").glob("*.txt"))

NOT_FEEDBACK = {
    "SpamScope__mail_test_5": (AUTO_REPLY, "Precedence: bulk"),
    "nodemailer__large_text.eml": (AUTO_REPLY, "Precedence: bulk"),
    "nodemailer__delivery-status.eml": (AUTO_REPLY, "delivery report (delivery-status)"),
    "php-mime-mail-parser__failure.eml": (AUTO_REPLY, "delivery report (delivery-status)"),
    "zbateson__m4006.txt": (AUTO_REPLY, "auto-reply subject"),  # "Read: invitation", a receipt in TNEF
    "mailgun__iphone_reply_text": (REJECTED, "not an RFC 822 message: no header fields"),
    "zbateson__README.md": (REJECTED, "not an RFC 822 message: no header fields"),
    "nodemailer__base64encodedroot.eml": (REJECTED, "no text: empty body and subject"),  # one PNG, no subject
    "php-mime-mail-parser__issue116": (REJECTED, "no valid From address"),
    "php-mime-mail-parser__issue212": (REJECTED, "no valid From address"),
    "php-mime-mail-parser__issue250": (REJECTED, "no valid From address"),
    "php-mime-mail-parser__m0027": (REJECTED, "no valid From address"),
}

# Senders and subjects whose decoding was the hard part (RFC 2047 in Big5/GB2312/GBK/UTF-8, raw 8-bit,
# a quoted name made of two encoded words).
HEADERS = {
    "openbmc_big5_00_d398c7a5.eml": ("Litzung Chen (陳利琮)", "Litzung.Chen@quantatw.com", "Quanta CCLA Schedule A update - 20260128"),
    "openbmc_big5_02_8b109c85.eml": ("老蘇 粉", "twpeng50606@gmail.com", None),
    "openbmc_big5_06_5579ed83.eml": ("Jacky Chou", "jacky_chou@aspeedtech.com", "回覆: [PATCH v3 08/10] PCI: Add FMT and TYPE definition for TLP header"),
    "openbmc_big5_22_18c7bc30.eml": ("Jeff9 Chan(陳松儉_ASRockRack)", "Jeff9_Chan@asrockrack.com", "dbus-sensors issue"),
    "openbmc_gb18030_01_cb1a9ae5.eml": ("南野ムルシエラゴ", "1181052146@qq.com", None),
    "openbmc_gb18030_21_5ec621bf.eml": ("南野ムルシエラゴ", "1181052146@qq.com", "回复： how the openbmc running in qemu communicate with the operating system running in another qemu via KCS/BT?"),
    "openbmc_gb2312_02_b8ab3779.eml": ("Vantler Fan (范益)", "fanyi@ieisystem.com", None),
    "openbmc_gb2312_20_5796fb8d.eml": (None, "figo@byosoft.com.cn", "回覆: 回覆: Byosoft OpenBMC CLA application"),
    "openbmc_gbk_01_251ea372.eml": ("梁礼学", "lianglixuehao@126.com", None),
    "openbmc_gbk_17_59d943da.eml": ("宏", "xflyh1230@163.com", "How to use Virtual Media to mount folders to host？"),
    "SpamScope__mail_test_1": ("служба ФНС Даниил Суворов", "suvorov.s@nalg.ru", "письмо уведом-е"),
    "php-mime-mail-parser__m0019": ("sendeär", "sender@test.com", None),
    "php-mime-mail-parser__m0124": ('ФГУП "СибНИА им.С.А.Чаплыгина""', "user@domain.ru", "1234 / 1234"),
    "zbateson__github-102-02.txt": ("Doug Sauder", "doug@example.com", "Die Hasen und die Frösche (Microsoft Outlook 00)"),
}


def _mojibake(text: str) -> str | None:
    """What a misdecoding leaves behind, if any of it is in ``text``."""
    if "\ufffd" in text:
        return "a replacement character"
    if re.search(r"=\?[\w.-]+\?[bqBQ]\?", text):
        return "an undecoded RFC 2047 word"
    if re.search(r"[\x80-\x9f]", text):
        return "a C1 control (bytes read as Latin-1)"
    if re.search("[ÃÂâ][\x80-\xbf\u20ac\u201a-\u201e\u2018-\u201d\u2026\u2122\u0152\u0153\u0160\u0161\u0178\u017d\u017e]", text):
        return "UTF-8 read as Latin-1"
    if re.search(r"[\xa1-\xff]{4,}", text):
        return "multi-byte text read as Latin-1"
    for run in re.findall(r"[\u3400-\u9fff\uff00-\uffef]{2,}", text):
        # Chinese text read as GB18030 from UTF-8 bytes turns back into valid UTF-8 (bar a cut-off end);
        # real GBK text practically never does.
        again = run.encode("gb18030").decode("utf-8", "replace")
        if again.count("\ufffd") <= 1 and sum(1 for ch in again if "\u0080" <= ch != "\ufffd") >= 2:
            return f"UTF-8 read as GB18030 ({run[:10]})"
    return None


def test_the_corpus_is_all_there():
    assert len(MAILS) == 138
    assert len(EXPECTED) >= 50 and set(EXPECTED) <= set(MAILS)


@pytest.mark.parametrize("name", MAILS)
def test_every_mail_is_read_without_mojibake(name):
    mail = parse_email((CORPUS / name).read_bytes())
    assert (mail.status, mail.reason) == NOT_FEEDBACK.get(name, (FEEDBACK, None))
    for what, value in [("text", mail.text), ("subject", mail.subject), ("sender name", mail.sender_name),
                        *(("attachment name", a.filename) for a in mail.attachments)]:
        assert _mojibake(value or "") is None, f"{what}: {_mojibake(value)}: {value[:200]!r}"
    if mail.status == FEEDBACK:
        mail.to_feedback(recipient="feedback@example.com")  # the contract holds every accepted mail


@pytest.mark.parametrize("name", EXPECTED)
def test_extracted_text_is_what_a_mail_client_shows_as_new(name):
    expected = (CORPUS / "expected" / f"{name}.txt").read_text(encoding="utf-8").removesuffix("\n")
    assert parse_email((CORPUS / name).read_bytes()).text == expected


@pytest.mark.parametrize("name", sorted(HEADERS))
def test_senders_and_subjects(name):
    mail = parse_email((CORPUS / name).read_bytes())
    sender_name, address, subject = HEADERS[name]
    assert (mail.sender_name, mail.sender_address) == (sender_name, address)
    if subject is not None:
        assert mail.subject == subject


def test_the_mojibake_check_catches_misdecodings():
    text = "排队两个小时，服务态度很差。Frösche"
    assert _mojibake(text) is None
    assert _mojibake(text.encode("utf-8").decode("gb18030", "replace")) is not None
    assert _mojibake(text.encode("utf-8").decode("latin-1")) is not None
    assert _mojibake("排队两个小时".encode("gbk").decode("latin-1")) is not None
    assert _mojibake("服务态度很差，我要投诉".encode("utf-8").decode("gb18030", "ignore")) is not None
    assert _mojibake("=?UTF-8?B?5oqV6K+J?=") is not None
