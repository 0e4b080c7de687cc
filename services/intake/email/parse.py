"""RFC 822 mail to feedback, as a mail client would read it.

Headers are decoded per RFC 2047 with forgiving charsets (GB2312 read as
GB18030, Big5 as Big5-HKSCS; 8-bit headers tried as UTF-8 then GB18030);
bodies are decoded from quoted-printable or base64; text/plain is preferred
and HTML turned into text; quoted replies and signatures are cut.
Auto-replies and delivery reports are recognised and never become feedback.
Attachments are measured, never kept. Nothing here raises on bad input: a
message that cannot be feedback comes back with ``status="rejected"`` and the
reason.
"""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass, field
from datetime import datetime
from email import message_from_bytes
from email.header import decode_header
from email.message import Message
from email.policy import compat32
from email.utils import getaddresses, parseaddr, parsedate_to_datetime

from services.intake.email.text import html_to_text, strip_reply, unflow
from services.intake.language import detect
from shared.contracts import MAX_TEXT_CHARS, Attachment, Channel, Customer, EmailDetails, FeedbackIn

logger = logging.getLogger(__name__)

FEEDBACK = "accepted"
AUTO_REPLY = "auto_reply"
REJECTED = "rejected"

# Labels that real mail uses for a narrower charset than it actually contains.
_CHARSET_ALIASES = {
    "gb2312": "gb18030", "gbk": "gb18030", "x-gbk": "gb18030", "cp936": "gb18030", "euc-cn": "gb18030",
    "csgb2312": "gb18030", "x-euc-cn": "gb18030", "gb_2312-80": "gb18030", "chinese": "gb18030",
    "big5": "big5hkscs", "x-big5": "big5hkscs", "cp950": "big5hkscs", "big5-hkscs": "big5hkscs",
    "ks_c_5601-1987": "cp949", "unknown-8bit": "utf-8", "x-unknown": "utf-8", "us-ascii": "utf-8", "ascii": "utf-8",
}
_AUTO_SUBJECTS = (
    "自动回复", "自動回覆", "自动答复", "automatic reply", "auto reply", "autoreply", "auto-reply", "out of office",
    "undeliverable", "undelivered mail", "delivery status notification", "mail delivery failed", "退信", "系统退信",
)
_BOUNCE_SENDERS = ("mailer-daemon", "postmaster")
_ADDRESS = re.compile(r"^[^@\s]{1,64}@[^@\s]{1,255}$")


def decode_bytes(data: bytes, charset: str | None) -> str:
    """Decode with the declared charset (widened to its real-world superset), falling back sensibly."""
    tried: list[str] = []
    if charset:
        name = charset.strip().strip('"').lower()
        tried.append(_CHARSET_ALIASES.get(name, name))
    tried += ["utf-8", "gb18030"]
    for codec in tried:
        try:
            return data.decode(codec)
        except (LookupError, UnicodeDecodeError):
            continue
    return data.decode(tried[0] if _known(tried[0]) else "utf-8", errors="replace")


def _known(codec: str) -> bool:
    try:
        b"".decode(codec)
        return True
    except LookupError:
        return False


def header(msg: Message, name: str) -> str:
    """The first ``name`` header decoded, raw 8-bit bytes included (``Message.get`` would mangle them)."""
    values = headers(msg, name)
    return values[0] if values else ""


def headers(msg: Message, name: str) -> list[str]:
    lowered = name.lower()
    return [decode_header_value(v) for k, v in msg.raw_items() if k.lower() == lowered]


def decode_header_value(value: object) -> str:
    """An RFC 2047 header as text; raw 8-bit headers are read as UTF-8, else GB18030."""
    if value is None:
        return ""
    raw = str(value)
    if any("\udc80" <= ch <= "\udcff" for ch in raw):  # 8-bit bytes smuggled through as surrogates
        raw = decode_bytes(raw.encode("ascii", "surrogateescape"), None)
    try:
        parts = decode_header(raw)
    except Exception:
        return " ".join(raw.split())
    out: list[str] = []
    for chunk, charset in parts:
        out.append(decode_bytes(chunk, charset) if isinstance(chunk, bytes) else chunk)
    return " ".join("".join(out).split())


@dataclass
class ParsedEmail:
    status: str  # accepted (it is feedback) | auto_reply | rejected
    key: str  # Message-ID, else a hash of the raw bytes: the dedupe key
    reason: str | None = None
    message_id: str | None = None
    sender_name: str | None = None
    sender_address: str | None = None
    recipients: list[str] = field(default_factory=list)
    subject: str | None = None
    text: str = ""
    truncated: bool = False
    language: str | None = None
    occurred_at: datetime | None = None
    attachments: list[Attachment] = field(default_factory=list)
    size: int = 0

    def to_feedback(self, *, recipient: str | None = None) -> FeedbackIn:
        """The canonical feedback for an accepted message."""
        customer = None
        email = self.sender_address if self.sender_address and _ADDRESS.match(self.sender_address) else None
        name = self.sender_name[:200] if self.sender_name else None
        if email or name:  # an address the contract cannot hold is dropped, the complaint is kept
            customer = Customer(name=name, email=email)
        attributes = {"email_truncated": True} if self.truncated else {}
        return FeedbackIn(
            channel=Channel.EMAIL,
            text=self.text,
            customer=customer,
            occurred_at=self.occurred_at,
            language=self.language,
            email=EmailDetails(
                message_id=self.message_id and self.message_id[:998],
                sender=self.sender_address and self.sender_address[:998],
                recipient=(recipient or (self.recipients[0] if self.recipients else None)),
                subject=self.subject and self.subject[:998],
                attachments=self.attachments[:100],
            ),
            attributes=attributes,
        )


def message_key(raw: bytes, message_id: str | None) -> str:
    return message_id if message_id else "sha256:" + hashlib.sha256(raw).hexdigest()


def parse_email(raw: bytes) -> ParsedEmail:
    """Read one raw message; never raises."""
    try:
        return _parse(raw)
    except Exception as exc:  # the email package is lenient, but a listener must survive anything
        logger.warning("unparseable mail", extra={"size": len(raw), "error": type(exc).__name__})
        return ParsedEmail(status=REJECTED, key=message_key(raw, None), reason=f"unparseable message: {type(exc).__name__}", size=len(raw))


def _parse(raw: bytes) -> ParsedEmail:
    msg = message_from_bytes(raw, policy=compat32)
    message_id = header(msg, "Message-ID").strip() or None
    if message_id and len(message_id) > 998:
        message_id = message_id[:998]
    parsed = ParsedEmail(status=FEEDBACK, key=message_key(raw, message_id), message_id=message_id, size=len(raw))

    if not msg.keys():
        return _reject(parsed, "not an RFC 822 message: no header fields")
    name, address = parseaddr(header(msg, "From"))
    if not address or "@" not in address or any(c.isspace() for c in address):
        return _reject(parsed, "no valid From address")
    parsed.sender_name = name.strip() or None
    parsed.sender_address = address.strip()
    parsed.recipients = [a for _, a in getaddresses(headers(msg, "To")) if a]
    parsed.subject = header(msg, "Subject") or None
    if date := msg.get("Date"):
        try:
            when = parsedate_to_datetime(str(date))
            parsed.occurred_at = when if when.tzinfo is not None else None
        except (TypeError, ValueError, IndexError):
            parsed.occurred_at = None

    if reason := auto_reply_reason(msg, parsed):
        parsed.status = AUTO_REPLY
        parsed.reason = reason
        return parsed

    plain, html = _bodies(msg, parsed.attachments)
    body = strip_reply(plain) if plain and plain.strip() else strip_reply(html_to_text(html)) if html else ""
    text = body or (parsed.subject or "")
    if not text.strip():
        return _reject(parsed, "no text: empty body and subject")
    if len(text) > MAX_TEXT_CHARS:
        text, parsed.truncated = text[:MAX_TEXT_CHARS], True
    parsed.text = text
    parsed.language = detect(f"{parsed.subject or ''}\n{text}")  # the same detector as every channel
    return parsed


def _reject(parsed: ParsedEmail, reason: str) -> ParsedEmail:
    parsed.status = REJECTED
    parsed.reason = reason
    return parsed


def auto_reply_reason(msg: Message, parsed: ParsedEmail) -> str | None:
    """Why this message is machine-sent (an auto-reply, a bounce), or None."""
    auto = str(msg.get("Auto-Submitted", "")).strip().lower()
    if auto and auto != "no":
        return f"Auto-Submitted: {auto[:60]}"
    for name in ("X-Autoreply", "X-Autorespond", "X-Autoresponder"):
        if msg.get(name) is not None:
            return f"{name} present"
    precedence = str(msg.get("Precedence", "")).strip().lower()
    if precedence in ("auto_reply", "bulk", "junk"):
        return f"Precedence: {precedence}"
    if msg.get_content_type() == "multipart/report":
        return f"delivery report ({msg.get_param('report-type') or 'unknown'})"
    local = (parsed.sender_address or "").split("@")[0].lower()
    if local in _BOUNCE_SENDERS:
        return f"sent by {local}"
    subject = (parsed.subject or "").strip().lower()
    if any(subject.startswith(s) for s in _AUTO_SUBJECTS):
        return "auto-reply subject"
    return None


def _bodies(msg: Message, attachments: list[Attachment]) -> tuple[str, str]:
    """The first text/plain and the first text/html body; everything else is an attachment."""
    plain: str | None = None
    html: str | None = None
    for part in msg.walk():
        if part.is_multipart():
            continue
        ctype = part.get_content_type()
        disposition = str(part.get("Content-Disposition", "")).split(";")[0].strip().lower()
        filename = part.get_filename()
        if filename is not None:
            filename = decode_header_value(filename)
        is_body = ctype in ("text/plain", "text/html") and disposition != "attachment" and not filename
        payload = part.get_payload(decode=True)
        if payload is None:  # message/rfc822 and friends: measure the raw text
            raw = part.get_payload()
            payload = raw.encode("utf-8", "surrogateescape") if isinstance(raw, str) else b""
        if is_body and ctype == "text/plain" and plain is None:
            plain = decode_bytes(payload, part.get_content_charset())
            if str(part.get_param("format", "")).lower() == "flowed":
                plain = unflow(plain, delsp=str(part.get_param("delsp", "no")).lower() == "yes")
        elif is_body and ctype == "text/html" and html is None:
            html = decode_bytes(payload, part.get_content_charset())
        elif not is_body:
            attachments.append(Attachment(filename=filename[:300] if filename else None, content_type=ctype[:200], size=len(payload)))
    return plain or "", html or ""
