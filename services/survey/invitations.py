"""Survey invitation mails: rendered when an invitation is decided and sent through the
shared mail queue (``shared/mail``, purpose ``survey_invitation``).

The invitation's bytes are built and queued in the transaction that records the
invitation, so a queued invitation always has its mail. Delivery — retries through
an SMTP outage of any length, per-recipient refusals, crash recovery, the uncertain
policy — is the queue's; the invitation's delivery state is its mail's state.
Every copy of one invitation has the same ``Message-ID`` and the same link, and a
link answers once, so a resent copy can never become a second response.

Every invitation carries ``List-Unsubscribe`` (an HTTPS link) and
``List-Unsubscribe-Post: List-Unsubscribe=One-Click`` (RFC 8058): a mail client's
unsubscribe button posts to the link, a person opening it gets a confirm page.
"""

from __future__ import annotations

import hashlib
import html
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

import asyncpg

from services.survey import repository, tokens
from services.survey.faces import COLOURS, INK
from services.survey.faces import NAMES as FACE_NAMES
from services.survey.metrics import DELIVERY_STATES, INVITATION_PURPOSE, SurveyMetrics
from services.survey.pages import lang_order
from services.survey.schemas import QuestionType, SurveyDefinition
from services.survey.settings import SurveySettings
from shared.clock import Clock
from shared.contracts import Customer
from shared.mail import queue
from shared.mail.message import InvalidAddress, build_message, make_message_id, normalize_address, sender_domain
from shared.mail.queue import MailStatus, OutgoingMail
from shared.signing import Signer

logger = logging.getLogger(__name__)

PURPOSE = INVITATION_PURPOSE


def invitation_mail_id(request_id: str) -> str:
    """The mail of a request's invitation (migration 0005 writes the same ids)."""
    return f"survey-invitation:{request_id}"


def usable_address(customer: Customer) -> str | None:
    """The customer's address as the mail queue sends to it; None when there is none we can send to."""
    if not customer.email:
        return None
    try:
        return normalize_address(customer.email)
    except InvalidAddress as exc:
        logger.warning("invitation unsendable", extra={"reason": str(exc).split(":")[0]})
        return None


def survey_link(settings: SurveySettings, signer: Signer, *, survey_id: str, request_id: str, now: datetime) -> str:
    token = tokens.sign(signer, survey_id=survey_id, request_id=request_id,
                        ttl=timedelta(days=settings.survey_link_ttl_days), now=now)
    return f"{settings.survey_public_base_url}/s/{survey_id}?t={token}"


def unsubscribe_link(settings: SurveySettings, signer: Signer, *, request_id: str, now: datetime) -> str:
    return f"{settings.survey_public_base_url}/u/{tokens.sign_unsubscribe(signer, request_id=request_id, now=now)}"


def message_id_for(request_id: str, sender: str) -> str:
    """The same Message-ID for every copy of one invitation (a resend after a crash)."""
    return make_message_id(f"survey.{hashlib.sha256(request_id.encode()).hexdigest()[:32]}", sender_domain(sender))


# Where a template takes the parts that differ per mail (private-use characters: never in a survey's text).
_LINK, _UNSUBSCRIBE, _GREETING = "\ue000", "\ue001", {"zh-CN": "\ue002", "en": "\ue003"}


@dataclass(frozen=True)
class Template:
    """The parts of an invitation that are the same for every customer of a survey version in one
    language order: rendered once per batch, then only the greeting and the links go in."""

    langs: tuple[str, str]
    subject: str
    plain: str
    html: str

    def fill(self, *, name: str, link: str, unsubscribe: str) -> tuple[str, str]:
        """The plain and HTML bodies for one customer."""
        greeting = {"zh-CN": f"{name}您好：" if name else "您好：", "en": f"Dear {name}," if name else "Hello,"}
        plain, body = self.plain, self.html
        for lang, mark in _GREETING.items():
            plain = plain.replace(mark, greeting[lang])
            body = body.replace(mark, html.escape(greeting[lang]))
        plain = plain.replace(_LINK, link).replace(_UNSUBSCRIBE, unsubscribe)
        body = body.replace(_LINK, html.escape(link)).replace(_UNSUBSCRIBE, html.escape(unsubscribe))
        return plain, body


def template(survey: SurveyDefinition, language: str | None, *, ttl_days: int) -> Template:
    """A bilingual (zh-CN / en) invitation's bodies, the customer's preferred language first.

    For a first MOT question the HTML offers the seven faces (coloured as the kiosk's, named
    in words: emoji render as empty boxes on some devices) as links that open the form with
    that face preselected; nothing is recorded until the customer submits (mail scanners
    follow links)."""
    langs = lang_order(language)
    ask = {
        "zh-CN": "请花一分钟告诉我们您的感受，只需点击下面的链接：",
        "en": "Please take a minute to tell us how you feel. Just follow the link below:",
    }
    button = {"zh-CN": "填写问卷", "en": "Answer the survey"}
    validity = {
        "zh-CN": f"此链接为您个人专用，{ttl_days} 天内有效。",
        "en": f"This link is personal to you and valid for {ttl_days} days.",
    }
    leave = {"zh-CN": "不想再收到问卷邀请？退订：", "en": "No more survey invitations? Unsubscribe:"}

    def intro(lang: str) -> str:
        return survey.intro.get(lang) if survey.intro else ""

    plain_parts = []
    for lang in langs:
        lines = [_GREETING[lang], "", survey.title.get(lang)]
        if intro(lang):
            lines += ["", intro(lang)]
        lines += ["", ask[lang], _LINK, "", validity[lang]]
        plain_parts.append("\n".join(lines))
    plain = "\n\n-----\n\n".join(plain_parts) + "\n\n" + "\n".join(leave[lang] for lang in langs)
    plain += "\n" + _UNSUBSCRIBE + "\n"

    e = html.escape
    first = survey.questions[0]
    faces = ""
    if first.type is QuestionType.MOT:
        cells = "".join(
            f'<a href="{_LINK}&amp;q.{e(first.id)}={value}" title="{e(labels["zh-CN"])} / {e(labels["en"])}" '
            f'style="display:inline-block;margin:2px;padding:6px 10px;border-radius:16px;font-size:14px;'
            f'text-decoration:none;background:{COLOURS[value]};color:{"#fff" if abs(value) >= 2 else INK}">'
            f'{e(labels[langs[0]])}</a>'
            for value, labels in sorted(FACE_NAMES.items())
        )
        faces = (
            f'<p style="margin:16px 0 4px">{e(first.label.get(langs[0]))}<br>'
            f'<span style="color:#555">{e(first.label.get(langs[1]))}</span></p><p>{cells}</p>'
        )
    blocks = []
    for lang in langs:
        blocks.append(
            f'<div lang="{lang}"><p>{_GREETING[lang]}</p><h1 style="font-size:20px">{e(survey.title.get(lang))}</h1>'
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
        + f'<p><a href="{_LINK}" style="display:inline-block;background:#0b57d0;color:#fff;padding:12px 20px;'
        f'border-radius:6px;text-decoration:none">{e(button[langs[0]])} / {e(button[langs[1]])}</a></p>'
        + f'<p style="color:#555;font-size:13px">{e(validity[langs[0]])}<br>{e(validity[langs[1]])}<br>'
        f'<a href="{_LINK}" style="color:#555;word-break:break-all">{_LINK}</a></p>'
        + f'<p style="color:#555;font-size:12px">{e(leave[langs[0]])} / {e(leave[langs[1]])} '
        f'<a href="{_UNSUBSCRIBE}" style="color:#555">{_UNSUBSCRIBE}</a></p></body></html>'
    )
    return Template(langs, f"{survey.title.get(langs[0])} / {survey.title.get(langs[1])}", plain, html_body)


def render_invitation(
    *, request_id: str, customer: Customer, address: str, language: str | None, survey: SurveyDefinition,
    link: str, unsubscribe: str, sender: str, ttl_days: int, date: datetime, form: Template | None = None,
) -> bytes:
    """A bilingual (zh-CN / en) invitation (:func:`template`): plain text and HTML, UTF-8, RFC 2047
    subject, ``List-Unsubscribe`` and ``List-Unsubscribe-Post`` (RFC 8058). ``form``: the
    survey's template for this language, when the caller made it already."""
    form = form or template(survey, language, ttl_days=ttl_days)
    name = (customer.name or "").strip()
    plain, html_body = form.fill(name=name, link=link, unsubscribe=unsubscribe)
    langs = form.langs
    return build_message(
        sender=sender,
        to=[(name, address)],
        subject=form.subject,
        text=plain,
        html=html_body,
        message_id=message_id_for(request_id, sender),
        date=date,
        language=", ".join(langs),
        headers=[("List-Unsubscribe", f"<{unsubscribe}>"), ("List-Unsubscribe-Post", "List-Unsubscribe=One-Click")],
    )


def invitation(
    settings: SurveySettings, signer: Signer, *, request_id: str, customer: Customer, address: str,
    language: str | None, survey: SurveyDefinition, now: datetime, send_at: datetime | None = None,
    form: Template | None = None,
) -> OutgoingMail:
    """The complete invitation mail of one request, ready to queue (not sent before ``send_at``).
    The link's validity counts from when it is sent. ``form``: the survey's :func:`template` for
    this language, shared by a batch."""
    sent = max(now, send_at) if send_at else now
    message = render_invitation(
        request_id=request_id, customer=customer, address=address, language=language, survey=survey,
        link=survey_link(settings, signer, survey_id=survey.id, request_id=request_id, now=sent),
        unsubscribe=unsubscribe_link(settings, signer, request_id=request_id, now=sent),
        sender=settings.smtp_from, ttl_days=settings.survey_link_ttl_days, date=sent, form=form,
    )
    return OutgoingMail(
        mail_id=invitation_mail_id(request_id), purpose=PURPOSE, ref=request_id,
        message_id=message_id_for(request_id, settings.smtp_from), recipients=(address,), message=message,
        not_before=send_at,
    )


# --- the upgrade backlog (migration 0005) ---------------------------------------------------
async def queue_backlog(pool: asyncpg.Pool, settings: SurveySettings, signer: Signer, clock: Clock, *,
                        batch: int = 200) -> int:
    """Render and queue the invitations the sender before the mail queue had not delivered
    (same Message-ID as its attempts); replicas starting together share the work."""
    done = 0
    surveys: dict[str, SurveyDefinition | None] = {}
    while True:
        async with pool.acquire() as conn, conn.transaction():
            requests = await repository.claim_backlog(conn, limit=batch)
            if not requests:
                break
            now = clock.now()
            mails: list[OutgoingMail] = []
            settled: dict[str, str | None] = {}
            for request in requests:
                if request.survey_id not in surveys:
                    surveys[request.survey_id] = await repository.survey_definition(conn, request.survey_id)
                survey, address = surveys[request.survey_id], usable_address(request.customer)
                if survey is None or address is None:
                    settled[request.request_id] = None
                    continue
                mails.append(invitation(settings, signer, request_id=request.request_id, customer=request.customer,
                                        address=address, language=request.language, survey=survey, now=now))
                settled[request.request_id] = mails[-1].mail_id
            await queue.enqueue(conn, mails, now=now)
            await repository.settle_backlog(conn, settled)
        done += len(requests)
    if done:
        logger.info("invitations from before the mail queue queued", extra={"requests": done})
    return done


# --- delivery state (the mail's) ----------------------------------------------------------
@dataclass(frozen=True)
class InvitationDelivery:
    state: str  # a mail state, or unsendable
    mail: MailStatus | None  # None: unsendable, or not rendered yet (upgrade backlog)


async def delivery(conn: asyncpg.Connection, request_id: str) -> InvitationDelivery | None:
    """The delivery state of a request's invitation; None for an unknown request."""
    request = await repository.get_request(conn, request_id)
    if request is None:
        return None
    if request.mail_id is None:
        if request.status == "queued":  # the customer unsubscribed before it was sent
            return InvitationDelivery("withdrawn", None)
        return InvitationDelivery("unsendable" if request.skip_reason == "no_address" else "skipped", None)
    mail = (await queue.statuses(conn, [request.mail_id])).get(request.mail_id)
    return InvitationDelivery(mail.state.value if mail else "pending", mail)


async def refresh_gauge(pool: asyncpg.Pool, metrics: SurveyMetrics) -> None:
    """``keymoment_survey_invitations{state}`` from the mail queue (at scrape time)."""
    async with pool.acquire() as conn:
        counts = await queue.state_counts(conn, purpose=PURPOSE)
        outside = await repository.invitations_outside_the_queue(conn)
    for state in DELIVERY_STATES:
        metrics.invitations.labels(state).set(counts.get(state, 0) + outside.get(state, 0))
