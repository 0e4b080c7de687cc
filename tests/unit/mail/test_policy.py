"""The delivery policy of one attempt (issue 13): transient failures are retried with a
capped delay and no attempt limit, permanent refusals give up only the refused
recipients, an unknown outcome follows MAIL_UNCERTAIN_POLICY."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from shared.mail.queue import ClaimedMail, MailState
from shared.mail.sender import decide
from shared.mail.settings import MailSettings
from shared.mail.smtp import Delivery, NotSent, OutcomeUnknown

NOW = datetime(2025, 5, 1, 12, 0, tzinfo=UTC)
SETTINGS = MailSettings(mail_retry_initial_seconds=5, mail_retry_max_seconds=300)


def claimed(attempts: int = 1, delivered_to: tuple[str, ...] = ()) -> ClaimedMail:
    return ClaimedMail(mail_id="m", purpose="alert_notification", ref="n-1", message_id="<n-1@alerts.keymoment>",
                       targets=("a@example.cn", "b@example.cn"), delivered_to=delivered_to, message=b"x",
                       attempts=attempts)


def delay(outcome) -> float:
    return (outcome.next_attempt_at - NOW).total_seconds()


@pytest.mark.parametrize("attempts", [1, 2, 6, 12, 13, 50, 1000])
def test_a_transient_failure_is_retried_with_a_capped_delay_whatever_the_attempt(attempts):
    outcome = decide(claimed(attempts), NotSent("SMTP unreachable"), settings=SETTINGS, now=NOW)
    expected = min(5 * 2 ** (attempts - 1), 300)
    assert outcome.state is MailState.PENDING and outcome.counter == "retries"
    assert 0.8 * expected <= delay(outcome) <= 1.2 * expected


def test_every_recipient_taken_is_sent_and_a_partial_refusal_still_sends():
    assert decide(claimed(), Delivery(accepted=("a@example.cn", "b@example.cn")), settings=SETTINGS,
                  now=NOW).state is MailState.SENT
    partial = decide(claimed(), Delivery(accepted=("a@example.cn",), refused={"b@example.cn": "550 no such user"}),
                     settings=SETTINGS, now=NOW)
    assert (partial.state, partial.delivered, partial.counter) == (MailState.SENT, ("a@example.cn",), "sent")
    assert partial.refused == {"b@example.cn": "550 no such user"} and "550 no such user" in partial.error


def test_refused_by_everyone_fails_unless_delivered_to_someone_before():
    refused = Delivery(refused={"a@example.cn": "550 no", "b@example.cn": "550 no"})
    failed = decide(claimed(), refused, settings=SETTINGS, now=NOW)
    assert (failed.state, failed.counter) == (MailState.FAILED, "failed") and "550 no (x2)" in failed.error
    earlier = decide(claimed(delivered_to=("c@example.cn",)), refused, settings=SETTINGS, now=NOW)
    assert earlier.state is MailState.SENT


def test_deferred_recipients_keep_the_mail_pending_with_what_was_delivered():
    outcome = decide(claimed(3), Delivery(accepted=("a@example.cn",), deferred={"b@example.cn": "450 busy"}),
                     settings=SETTINGS, now=NOW)
    assert (outcome.state, outcome.delivered, outcome.counter) == (MailState.PENDING, ("a@example.cn",), "retries")
    assert 16 <= delay(outcome) <= 24


def test_an_unknown_outcome_follows_the_policy():
    resend = decide(claimed(), OutcomeUnknown("DATA broke off"), settings=SETTINGS, now=NOW)
    assert (resend.state, resend.counter) == (MailState.PENDING, "uncertain")
    assert timedelta(0) < resend.next_attempt_at - NOW <= timedelta(seconds=6)
    hold = decide(claimed(), OutcomeUnknown("DATA broke off"),
                  settings=MailSettings(mail_uncertain_policy="hold"), now=NOW)
    assert (hold.state, hold.next_attempt_at, hold.counter) == (MailState.UNCERTAIN, None, "uncertain")


def test_settings_refuse_a_cap_below_the_first_delay():
    with pytest.raises(ValueError):
        MailSettings(mail_retry_initial_seconds=60, mail_retry_max_seconds=10)
