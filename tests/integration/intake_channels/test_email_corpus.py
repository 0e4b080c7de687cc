"""Every real-world mail of the corpus through the real intake: POST /v1/email answers 202/200/422
(never 5xx) and the SMTP listener 250 or a permanent 5xx (never 451 or a 421 for the mail itself)."""

from __future__ import annotations

from pathlib import Path

import aiosmtplib
import pytest

from keymoment.devstack.ports import free_port
from services.intake.app import create_app
from tests.integration.intake_channels.support import dev_key, intake_settings
from tests.support.services import running

pytestmark = pytest.mark.integration

CORPUS = Path(__file__).resolve().parents[2] / "data" / "email" / "corpus"
MAILS = sorted(p for p in CORPUS.iterdir() if p.is_file() and p.name != "PROVENANCE.md" and p.name[0] != ".")
FEEDBACK_BOX = "feedback@example.com"
HTTP_STATUS = {"accepted": 202, "auto_reply": 200, "rejected": 422}


async def test_every_corpus_mail_over_http(service_env):
    settings = intake_settings(service_env, intake_email_max_bytes=4 * 1024 * 1024)
    answers: dict[str, int] = {}
    async with running(create_app(settings)) as intake, intake.client(headers={"X-API-Key": dev_key(intake)}) as http:
        for path in MAILS:
            response = await http.post("/v1/email", content=path.read_bytes(), headers={"Content-Type": "message/rfc822"})
            answers[path.name] = response.status_code
            assert response.status_code < 500, (path.name, response.text)
            body = response.json()
            if body.get("status") != "duplicate":  # some test suites reuse a Message-ID and sender
                assert response.status_code == HTTP_STATUS[body["status"]], (path.name, body)
        rows = await intake.runtime.pool.fetchval("SELECT count(*) FROM email_messages")
    assert len(answers) == 138
    assert sorted(set(answers.values())) == [200, 202, 422]
    assert rows == len(MAILS) - _repeats()  # each mail recorded once


def _repeats() -> int:
    """Mails that repeat an earlier one's Message-ID and sender (recorded once)."""
    from services.intake.email.parse import parse_email

    seen, repeats = set(), 0
    for path in MAILS:
        mail = parse_email(path.read_bytes())
        key = (mail.key, mail.key_sender)
        repeats += key in seen
        seen.add(key)
    return repeats


async def test_every_corpus_mail_over_smtp(service_env):
    port = free_port()
    settings = intake_settings(service_env, intake_smtp_port=port, intake_email_addresses=FEEDBACK_BOX,
                               intake_smtp_trusted_relays="127.0.0.1", intake_email_max_bytes=4 * 1024 * 1024)
    codes: dict[str, int] = {}
    async with running(create_app(settings)):
        client = aiosmtplib.SMTP(hostname="127.0.0.1", port=port, timeout=60)
        await client.connect()
        for path in MAILS:
            try:
                errors, reply = await client.sendmail("relay@example.com", [FEEDBACK_BOX], path.read_bytes())
                codes[path.name] = 250
            except aiosmtplib.SMTPDataError as refused:
                codes[path.name] = refused.code
        await client.quit()
    assert len(codes) == 138
    assert all(code == 250 or code >= 500 for code in codes.values()), codes
    assert sorted(set(codes.values())) == [250, 554]
