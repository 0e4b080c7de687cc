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


# --- per-peer limits and trusted relays -------------------------------------------------------------------------

from services.intake.email.smtp import NOT_A_RELAY, SERVER_BUSY, TOO_MANY_CONNECTIONS, TOO_MANY_MESSAGES, PeerLimits, parse_networks  # noqa: E402


def test_connections_are_limited_per_peer_and_in_total():
    limits = PeerLimits(max_connections=3, max_connections_per_peer=2)
    assert limits.admit("192.0.2.1") is None and limits.admit("192.0.2.1") is None
    assert limits.admit("192.0.2.1") == TOO_MANY_CONNECTIONS
    assert limits.admit("192.0.2.2") is None
    assert limits.admit("192.0.2.3") == SERVER_BUSY
    limits.release("192.0.2.1")
    assert limits.admit("192.0.2.1") is None


def test_trusted_relays_only_and_exempt_from_per_peer_limits():
    limits = PeerLimits(max_connections=100, max_connections_per_peer=1, messages_per_minute_per_peer=1,
                        trusted_relays=parse_networks("10.0.0.0/8, 2001:db8::1"))
    assert limits.admit("203.0.113.9") == NOT_A_RELAY
    assert [limits.admit("10.1.2.3") for _ in range(5)] == [None] * 5
    assert limits.admit("2001:db8::1") is None
    assert all(limits.allow_message("10.1.2.3") for _ in range(100))


def test_messages_per_minute_per_peer():
    limits = PeerLimits(messages_per_minute_per_peer=3)
    assert [limits.allow_message("192.0.2.1") for _ in range(4)] == [True, True, True, False]
    assert limits.allow_message("192.0.2.2")  # another peer has its own bucket


def test_bad_relay_setting_is_refused_at_start():
    import pytest
    from pydantic import ValidationError

    from services.intake.settings import IntakeSettings

    with pytest.raises(ValidationError, match="INTAKE_SMTP_TRUSTED_RELAYS"):
        IntakeSettings(keymoment_env="test", intake_smtp_trusted_relays="10.0.0.0/8, not-a-network")


async def test_mail_from_over_the_rate_is_451():
    handler = FeedbackMailHandler({"feedback@example.com"}, receive=None, limits=PeerLimits(messages_per_minute_per_peer=1))
    session = SimpleNamespace(peer=("192.0.2.1", 40000))
    env = SimpleNamespace(mail_from=None, mail_options=[])
    assert await handler.handle_MAIL(None, session, env, "a@example.com", []) == "250 OK"
    assert env.mail_from == "a@example.com"
    assert await handler.handle_MAIL(None, session, env, "a@example.com", []) == TOO_MANY_MESSAGES
    assert TOO_MANY_MESSAGES.startswith("451 4.7.1")
