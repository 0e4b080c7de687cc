"""The SMTP handler's answers, with a fake receive: 550, 554, 451, 250."""

from types import SimpleNamespace

from services.intake.email.service import EmailOutcome
from services.intake.email.smtp import FeedbackMailHandler


def envelope(rcpts=("feedback@example.com",), content=b"From: a@example.com\r\n\r\nhi\r\n"):
    return SimpleNamespace(rcpt_tos=list(rcpts), original_content=content, content=content)


async def test_only_configured_mailboxes_case_insensitively():
    handler = FeedbackMailHandler({"Feedback@Example.com"}, receive=None)
    env = envelope(rcpts=())
    assert (await handler.handle_RCPT(None, None, env, "ceo@example.com", [])).startswith("550 ")
    assert (await handler.handle_RCPT(None, None, env, "FEEDBACK@example.com", [])).startswith("250 ")
    assert env.rcpt_tos == ["FEEDBACK@example.com"]


async def test_outcomes_to_smtp_replies():
    async def receive(raw, recipient):
        assert recipient == "feedback@example.com"
        return outcomes.pop(0)

    outcomes = [
        EmailOutcome("accepted", "<1@x>", feedback_id="f-1"),
        EmailOutcome("rejected", "sha256:ab", reason="no valid From address"),
        EmailOutcome("auto_reply", "<2@x>", reason="Auto-Submitted: auto-replied"),
        EmailOutcome("duplicate", "<1@x>", feedback_id="f-1", first_status="accepted"),
        EmailOutcome("duplicate", "sha256:ab", reason="no valid From address", first_status="rejected"),
    ]
    handler = FeedbackMailHandler({"feedback@example.com"}, receive)
    assert await handler.handle_DATA(None, None, envelope()) == "250 2.0.0 OK accepted f-1"
    assert await handler.handle_DATA(None, None, envelope()) == "554 5.6.0 Message rejected: no valid From address"
    assert await handler.handle_DATA(None, None, envelope()) == "250 2.0.0 OK auto_reply"
    assert await handler.handle_DATA(None, None, envelope()) == "250 2.0.0 OK duplicate f-1"
    # A rejected mail sent again is rejected again (not "OK duplicate").
    assert await handler.handle_DATA(None, None, envelope()) == "554 5.6.0 Message rejected: no valid From address"


async def test_database_away_asks_the_sender_to_retry():
    async def receive(raw, recipient):
        raise ConnectionRefusedError("database down")

    handler = FeedbackMailHandler({"feedback@example.com"}, receive)
    assert (await handler.handle_DATA(None, None, envelope())).startswith("451 4.3.0")
