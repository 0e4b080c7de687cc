"""The recovery loop end to end, every component a real process (``keymoment.devstack.Stack``
on free ports: Tansu, PostgreSQL, the SMTP sink, the four services):

negative feedback -> alert mail -> resolved through the mail's signed link -> recovery
invitation mailed -> a negative answer reopens the alert -> resolved again -> a positive
answer -> reporting's cx_recovery_answers_total shows both answers against the MOT that
raised the alert, and the recovery survey's funnel.
"""

from __future__ import annotations

import re
import time
from email.message import EmailMessage
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from keymoment.devstack.stack import Stack

pytestmark = pytest.mark.e2e

API_KEY = "km_dev_e2e-recovery-loop-key"
ADMIN_TOKEN = "kmadmin_e2e-recovery-loop-token"
CUSTOMER = "li.wei@example.cn"
TIMEOUT = 60.0


def wait_for(predicate, what: str, timeout: float = TIMEOUT):  # noqa: ANN001, ANN201
    deadline = time.monotonic() + timeout
    while True:
        found = predicate()
        if found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(0.2)


def mails(stack: Stack, to: str, subject_part: str = "") -> list[EmailMessage]:
    return [m.message() for m in stack.mailbox.messages()
            if to in m.rcpt_tos and subject_part in str(m.message()["Subject"])]


def plain(message: EmailMessage) -> str:
    return message.get_body(("plain",)).get_content()


def link(message: EmailMessage, pattern: str) -> str:
    match = re.search(pattern, plain(message))
    assert match, f"no link {pattern!r} in:\n{plain(message)}"
    return match.group(1) if match.groups() else match.group(0)


def answer_recovery(http: httpx.Client, invitation: EmailMessage, *, mot: int, comment: str) -> None:
    url = link(invitation, r"https?://\S+/s/recovery\?t=[A-Za-z0-9_.\-]+")
    page = http.get(url)
    assert page.status_code == 200 and "<svg" in page.text
    token = re.search(r'name="t" value="([^"]+)"', page.text).group(1)
    parts = urlsplit(url)
    done = http.post(f"{parts.scheme}://{parts.netloc}/s/recovery/responses",
                     data={"t": token, "lang": "zh-CN", "q.satisfaction": str(mot), "q.comment": comment})
    assert done.status_code == 200 and "感谢" in done.text, done.text


def resolve_by_mail(http: httpx.Client, alert_mail: EmailMessage, recipient: str) -> None:
    url = link(alert_mail, r"/ Resolve: (https?://\S+/l/\S+)")
    assert http.get(url).status_code == 200  # the confirmation page changes nothing
    done = http.post(url, data={"who": recipient})
    assert done.status_code == 200 and "resolved" in done.text, done.text


def recovery_series(url: str) -> dict[tuple[str, str], float]:
    text = httpx.get(f"{url}/metrics", timeout=10).text
    return {(s.labels["severity"], s.labels["score"]): s.value
            for family in text_string_to_metric_families(text) for s in family.samples
            if s.name == "cx_recovery_answers_total" and s.labels["location"] == "store-12"
            and s.labels["team"] == "retail-stores"}


def test_negative_feedback_to_a_measured_recovery(tmp_path: Path):
    env = {"INTAKE_DEV_API_KEY": API_KEY, "ADMIN_TOKEN": ADMIN_TOKEN, "SURVEY_QUIET_HOURS": "",
           "LOG_LEVEL": "WARNING", "MAIL_POLL_SECONDS": "0.5", "REPORTING_REFRESH_SECONDS": "0.2"}
    with Stack(tmp_path, smtp=True, services=("intake", "survey", "alerts", "reporting"), env=env,
               ready_timeout=120) as stack, httpx.Client(timeout=15) as http:
        admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
        sent = http.post(f"{stack.url('intake')}/v1/feedback", headers={"X-API-Key": API_KEY}, json={
            "channel": "web", "location": "store-12", "touchpoint": "checkout",
            "rating": {"scale": "mot", "value": -3}, "text": "排队四十分钟，收银员还很不耐烦，再也不来了",
            "customer": {"id": "C-42", "name": "李伟", "email": CUSTOMER}, "language": "zh"})
        assert sent.status_code in (200, 202), sent.text

        # the alert mail to the store team; the manager resolves it through its link
        alert_mail = wait_for(lambda: next((m for m in stack.mailbox.messages() if CUSTOMER not in m.rcpt_tos), None),
                              "the alert mail")
        alert_id = alert_mail.message()["X-Keymoment-Alert"]
        manager = alert_mail.rcpt_tos[0]
        resolve_by_mail(http, alert_mail.message(), manager)

        # the recovery invitation; the customer is still unhappy: the alert reopens
        first = wait_for(lambda: mails(stack, CUSTOMER), "the recovery invitation")[0]
        answer_recovery(http, first, mot=-2, comment="行李还是没找到，客服也没回电话")

        def alert_status() -> str:
            return http.get(f"{stack.url('alerts')}/v1/alerts/{alert_id}", headers=admin).json()["status"]

        wait_for(lambda: alert_status() == "reopened", "the alert reopened by the negative answer")

        # resolved again (through the API this time); the second invitation gets a happy answer
        again = http.post(f"{stack.url('alerts')}/v1/alerts/{alert_id}/resolve", headers=admin,
                          json={"note": "refund made, bag delivered"})
        assert again.status_code == 200, again.text
        second = wait_for(lambda: (lambda found: found[1] if len(found) > 1 else None)(mails(stack, CUSTOMER)),
                          "the second recovery invitation")
        answer_recovery(http, second, mot=2, comment="已经解决了，谢谢！")
        wait_for(lambda: alert_status() == "resolved", "the alert staying resolved")

        # reporting: both answers against the -3 that raised the alert, for the store team at store-12
        def counted():  # noqa: ANN202
            series = recovery_series(stack.url("reporting"))
            return series if sum(series.values()) == 2 else None

        series = wait_for(counted, "the recovery answers in cx_recovery_answers_total")
        # alerts scores each answer (its rating with its words): the first is negative, the second recovered
        assert {severity for (severity, _), n in series.items() if n} == {"-3"}, series  # what raised the alert
        scores = sorted(int(score) for (_, score), n in series.items() for _ in range(int(n)))
        assert scores[0] < 0 and scores[1] >= 1, series
        assert len(series) == 21  # every severity and score of the team and location exposed
        metrics = httpx.get(f"{stack.url('reporting')}/metrics", timeout=10).text
        funnel = {s.labels["step"]: s.value for f in text_string_to_metric_families(metrics) for s in f.samples
                  if s.name == "cx_survey_invitations_total" and s.labels["survey"] == "recovery"}
        assert funnel["invited"] == 2 and funnel["completed"] == 2 and funnel["delivered"] == 2
        assert len(mails(stack, CUSTOMER)) == 2
