"""Survey invitation emails: composing them and the background sender.

Delivery state lives in ``survey_requests.delivery_status``. The sender
claims one due invitation at a time (``pending`` -> ``sending``, attempts+1,
``FOR UPDATE SKIP LOCKED`` so replicas never share one), sends it over SMTP
and records ``sent`` — or reschedules it with exponential backoff after a
transient failure, or marks it ``failed`` after a permanent rejection or the
last attempt. A graceful shutdown lets the send in flight finish first.

Residual crash window: if the process dies after the SMTP relay accepted a
message and before ``sent`` was committed (a few milliseconds), the row stays
``sending``; once the lease (``SURVEY_INVITATION_LEASE_SECONDS``) has passed it
is sent again. That second copy has the same ``Message-ID`` and the same
link, and the link can only be answered once, so at worst the customer sees
a duplicate mail, never a duplicate response. We prefer that to losing the
invitation.
"""

from __future__ import annotations

import asyncio
import hashlib
import html
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import timedelta
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import formatdate, parseaddr

import aiosmtplib
import asyncpg

from services.survey import repository, tokens
from services.survey.metrics import DELIVERY_STATES, SurveyMetrics
from services.survey.pages import MOT_FACES, lang_order
from services.survey.repository import SurveyRequest
from services.survey.schemas import QuestionType, SurveyDefinition
from services.survey.settings import SurveySettings

logger = logging.getLogger(__name__)

MAX_BACKOFF_SECONDS = 3600.0


class SendFailed(Exception):
    def __init__(self, message: str, *, permanent: bool) -> None:
        super().__init__(message)
        self.permanent = permanent


Mailer = Callable[[EmailMessage], Awaitable[None]]


def survey_link(settings: SurveySettings, *, survey_id: str, request_id: str) -> str:
    token = tokens.sign(
        settings.link_signing_key.get_secret_value(),
        survey_id=survey_id,
        request_id=request_id,
        ttl=timedelta(days=settings.survey_link_ttl_days),
    )
    return f"{settings.survey_public_base_url}/s/{survey_id}?t={token}"


def message_id_for(request_id: str, sender: str) -> str:
    """The same Message-ID for every copy of one invitation (a resend after a crash)."""
    domain = parseaddr(sender)[1].rpartition("@")[2] or "keymoment.invalid"
    return f"<survey.{hashlib.sha256(request_id.encode()).hexdigest()[:32]}@{domain}>"


def compose_invitation(
    request: SurveyRequest, survey: SurveyDefinition, *, link: str, sender: str, ttl_days: int
) -> EmailMessage:
    """A bilingual (zh-CN / en) invitation: plain text and HTML, UTF-8, RFC 2047 subject.

    The customer's preferred language comes first. For a first MOT question the
    HTML offers the seven faces as links that open the form with that face
    preselected; nothing is recorded until the customer submits (mail scanners
    follow links)."""
    langs = lang_order(request.language)
    name = (request.customer.name or "").strip()
    greeting = {"zh-CN": f"{name}您好：" if name else "您好：", "en": f"Dear {name}," if name else "Hello,"}
    ask = {
        "zh-CN": "请花一分钟告诉我们您的感受，只需点击下面的链接：",
        "en": "Please take a minute to tell us how you feel. Just follow the link below:",
    }
    button = {"zh-CN": "填写问卷", "en": "Answer the survey"}
    validity = {
        "zh-CN": f"此链接为您个人专用，{ttl_days} 天内有效。",
        "en": f"This link is personal to you and valid for {ttl_days} days.",
    }

    def intro(lang: str) -> str:
        return survey.intro.get(lang) if survey.intro else ""

    plain_parts = []
    for lang in langs:
        lines = [greeting[lang], "", survey.title.get(lang)]
        if intro(lang):
            lines += ["", intro(lang)]
        lines += ["", ask[lang], link, "", validity[lang]]
        plain_parts.append("\n".join(lines))
    plain = "\n\n-----\n\n".join(plain_parts) + "\n"

    e = html.escape
    first = survey.questions[0]
    faces = ""
    if first.type is QuestionType.MOT:
        cells = "".join(
            f'<a href="{e(link)}&amp;q.{e(first.id)}={value}" title="{e(labels["zh-CN"])} / {e(labels["en"])}" '
            f'style="font-size:28px;text-decoration:none;padding:4px">{emoji}</a>'
            for value, emoji, labels in MOT_FACES
        )
        faces = (
            f'<p style="margin:16px 0 4px">{e(first.label.get(langs[0]))}<br>'
            f'<span style="color:#555">{e(first.label.get(langs[1]))}</span></p><p>{cells}</p>'
        )
    blocks = []
    for lang in langs:
        blocks.append(
            f'<div lang="{lang}"><p>{e(greeting[lang])}</p><h1 style="font-size:20px">{e(survey.title.get(lang))}</h1>'
            + (f"<p>{e(intro(lang))}</p>" if intro(lang) else "")
            + f"<p>{e(ask[lang])}</p></div>"
        )
    html_body = (
        '<!doctype html><html><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1"></head>'
        '<body style="font-family:-apple-system,\'PingFang SC\',\'Microsoft YaHei\',Arial,sans-serif;'
        'max-width:560px;margin:0 auto;padding:16px;color:#1a1a1a;line-height:1.5">'
        + "".join(blocks)
        + faces
        + f'<p><a href="{e(link)}" style="display:inline-block;background:#0b57d0;color:#fff;padding:12px 20px;'
        f'border-radius:6px;text-decoration:none">{e(button[langs[0]])} / {e(button[langs[1]])}</a></p>'
        + f'<p style="color:#555;font-size:13px">{e(validity[langs[0]])}<br>{e(validity[langs[1]])}<br>'
        f'<a href="{e(link)}" style="color:#555;word-break:break-all">{e(link)}</a></p></body></html>'
    )

    msg = EmailMessage()
    msg["Subject"] = f"{survey.title.get(langs[0])} / {survey.title.get(langs[1])}"
    msg["From"] = sender
    msg["To"] = Address(display_name=name, addr_spec=request.customer.email) if name else request.customer.email
    msg["Date"] = formatdate(localtime=False, usegmt=True)
    msg["Message-ID"] = message_id_for(request.request_id, sender)
    msg["Content-Language"] = ", ".join(langs)
    msg["Auto-Submitted"] = "auto-generated"
    msg.set_content(plain, charset="utf-8")
    msg.add_alternative(html_body, subtype="html", charset="utf-8")
    return msg


def smtp_mailer(settings: SurveySettings) -> Mailer:
    """Send through the configured relay; classify failures as permanent or transient."""

    async def send(message: EmailMessage) -> None:
        try:
            await aiosmtplib.send(
                message,
                hostname=settings.smtp_host,
                port=settings.smtp_port,
                username=settings.smtp_username,
                password=settings.smtp_password.get_secret_value() if settings.smtp_password else None,
                start_tls=settings.smtp_starttls,
                timeout=settings.smtp_timeout_seconds,
            )
        except aiosmtplib.SMTPRecipientsRefused as exc:
            permanent = all(r.code >= 500 for r in exc.recipients)
            raise SendFailed(f"recipient refused ({', '.join(str(r.code) for r in exc.recipients)})",
                             permanent=permanent) from exc
        except aiosmtplib.SMTPDataError as exc:
            raise SendFailed(f"message refused: {exc.code}", permanent=exc.code >= 500) from exc
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
            raise SendFailed(f"{type(exc).__name__}: {exc}", permanent=False) from exc

    return send


class InvitationSender:
    """Background task sending due invitations; one per process (replicas coordinate via the database)."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        settings: SurveySettings,
        metrics: SurveyMetrics,
        mailer: Mailer,
        *,
        stop_timeout: float = 10.0,
    ) -> None:
        self._pool = pool
        self._settings = settings
        self._metrics = metrics
        self._mailer = mailer
        self._wake = asyncio.Event()
        self._stopping = False
        self._stop_timeout = stop_timeout
        self._surveys: dict[str, SurveyDefinition] = {}  # immutable once created: safe to cache
        self.task: asyncio.Task | None = None
        self.last_error: str | None = None

    def wake(self, *_: object) -> None:
        self._wake.set()

    async def stop(self) -> None:
        """Let the send in flight finish (bounded), then return; the runtime cancels what is left."""
        self._stopping = True
        self._wake.set()
        if self.task is not None and not self.task.done():
            try:
                await asyncio.wait_for(asyncio.shield(self.task), self._stop_timeout)
            except (TimeoutError, asyncio.CancelledError):
                logger.warning("invitation sender did not stop in time", extra={"timeout_s": self._stop_timeout})
            except Exception:  # its failure is logged by the runtime's done-callback
                pass

    async def run(self) -> None:
        backoff = 0.2
        while not self._stopping:
            try:
                async with self._pool.acquire() as conn:
                    await conn.add_listener(repository.INVITATION_CHANNEL, self.wake)
                    try:
                        await self._loop(conn)
                    finally:
                        await conn.remove_listener(repository.INVITATION_CHANNEL, self.wake)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # database down: back off and retry, never give up
                self.last_error = repr(exc)
                logger.warning("invitation sender failed; retrying", extra={"error": repr(exc), "backoff_s": backoff})
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)

    async def _loop(self, conn: asyncpg.Connection) -> None:
        s = self._settings
        while not self._stopping:
            self._wake.clear()
            while not self._stopping and await self._send_one(conn):
                pass
            await self._refresh_gauge(conn)
            self.last_error = None
            due = await repository.next_invitation_due_in(conn)
            timeout = s.survey_invitation_poll_seconds if due is None else min(due, s.survey_invitation_poll_seconds)
            if self._stopping:
                return
            try:
                await asyncio.wait_for(self._wake.wait(), max(timeout, 0.01))
            except TimeoutError:
                pass

    async def _refresh_gauge(self, conn: asyncpg.Connection) -> None:
        counts = await repository.delivery_counts(conn)
        for state in DELIVERY_STATES:
            self._metrics.invitations.labels(state).set(counts.get(state, 0))

    async def _survey(self, conn: asyncpg.Connection, survey_id: str) -> SurveyDefinition | None:
        if survey_id not in self._surveys:
            stored = await repository.get_survey(conn, survey_id)
            if stored is None:
                return None
            self._surveys[survey_id] = stored.definition
        return self._surveys[survey_id]

    async def _send_one(self, conn: asyncpg.Connection) -> bool:
        """Claim and send one due invitation; False when none is due."""
        s = self._settings
        claimed = await repository.claim_due_invitations(
            conn, limit=1, lease_seconds=s.survey_invitation_lease_seconds
        )
        if not claimed:
            return False
        request = claimed[0]
        log = {"request_id": request.request_id, "survey_id": request.survey_id, "attempt": request.attempts}
        survey = await self._survey(conn, request.survey_id)
        if survey is None or not request.customer.email:  # not reachable via the handler; kept safe
            await repository.mark_failed(conn, request.request_id, error="no survey or no email address")
            self._metrics.invitations_failed.labels("rejected").inc()
            return True
        link = survey_link(s, survey_id=survey.id, request_id=request.request_id)
        message = compose_invitation(request, survey, link=link, sender=s.smtp_from, ttl_days=s.survey_link_ttl_days)
        started = time.perf_counter()
        try:
            await self._mailer(message)
        except SendFailed as exc:
            if exc.permanent:
                await repository.mark_failed(conn, request.request_id, error=str(exc))
                self._metrics.invitations_failed.labels("rejected").inc()
                logger.warning("invitation rejected", extra={**log, "error": str(exc)})
            elif request.attempts >= s.survey_invitation_max_attempts:
                await repository.mark_failed(conn, request.request_id, error=str(exc))
                self._metrics.invitations_failed.labels("retries_exhausted").inc()
                logger.error("invitation failed; giving up", extra={**log, "error": str(exc)})
            else:
                delay = min(s.survey_invitation_retry_seconds * 2 ** (request.attempts - 1), MAX_BACKOFF_SECONDS)
                await repository.mark_retry(conn, request.request_id, delay_seconds=delay, error=str(exc))
                self._metrics.invitation_retries.inc()
                logger.warning("invitation send failed; will retry", extra={**log, "error": str(exc), "retry_in_s": delay})
            return True
        self._metrics.send_seconds.observe(time.perf_counter() - started)
        await repository.mark_sent(conn, request.request_id, message_id=message["Message-ID"])
        self._metrics.invitations_sent.inc()
        logger.info("invitation sent", extra=log)
        return True
