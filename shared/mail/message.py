"""The RFC 5322 bytes of an outgoing mail, written out directly.

One builder for every mail the system sends (alert notifications, survey
invitations): plain text and optional HTML as ``multipart/alternative``,
UTF-8 bodies in base64, CRLF line ends, non-ASCII headers and display names
as RFC 2047 encoded-words, every header line folded within 78 characters.

Written out directly rather than through ``email.message.EmailMessage``: the
standard library's header registry and generator cost ~1.5 ms per mail, this
is the same structure for ~0.03 ms. The MIME boundary derives from the
Message-ID, so the same input is always the same bytes (a resend is the same
mail).
"""

from __future__ import annotations

import base64
import functools
import hashlib
import re
from collections.abc import Sequence
from datetime import datetime
from email.utils import format_datetime, parseaddr

MAX_LINE = 78
# RFC 2047: an encoded-word is at most 75 characters; "=?utf-8?b?" + "?=" take 12.
_WORD_BYTES = (75 - 12) // 4 * 3

# Headers the builder writes itself: callers may not add them again.
RESERVED_HEADERS = frozenset(
    h.lower() for h in ("Subject", "From", "To", "Cc", "Bcc", "Date", "Message-ID", "MIME-Version",
                        "Content-Type", "Content-Transfer-Encoding", "Content-Language", "Auto-Submitted")
)
_HEADER_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9-]{0,75}$")
_ATEXT_LOCAL = re.compile(r"^[A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]+$")
_DOMAIN = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*$")
_MSG_ID_PART = re.compile(r"^[A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]+$")
# A display name that can stand as it is (RFC 5322 atoms and spaces); others are quoted.
_PLAIN_PHRASE = re.compile(r"^[A-Za-z0-9!#$%&'*+/=?^_`{|}~ -]+$")

# A recipient: an address, or (display name, address).
Recipient = str | tuple[str, str]


class InvalidAddress(ValueError):
    """An address this builder cannot put in a header or an SMTP envelope."""


def normalize_address(address: str) -> str:
    """``local@domain`` as it goes into headers and the SMTP envelope: a non-ASCII
    domain in IDNA (punycode), the local part unchanged. Raises :class:`InvalidAddress`
    for what would need SMTPUTF8 (a non-ASCII local part) or is no plain address."""
    local, at, domain = address.strip().rpartition("@")
    if not at or not local or not domain or len(address) > 320:
        raise InvalidAddress(f"not an address: {address!r}")
    if local.startswith(".") or local.endswith(".") or ".." in local or not _ATEXT_LOCAL.match(local):
        raise InvalidAddress(f"unsupported local part in {address!r} (ASCII dot-atom only)")
    if not domain.isascii():
        try:
            domain = domain.encode("idna").decode("ascii")
        except UnicodeError as exc:
            raise InvalidAddress(f"invalid domain in {address!r}") from exc
    if not _DOMAIN.match(domain) or len(domain) > 253:
        raise InvalidAddress(f"invalid domain in {address!r}")
    return f"{local}@{domain.lower()}"


def make_message_id(local: str, domain: str) -> str:
    """``<local@domain>``; derive ``local`` from the mail's identity so every copy has the same one."""
    if not _MSG_ID_PART.match(local) or not _MSG_ID_PART.match(domain):
        raise ValueError(f"invalid Message-ID parts: {local!r} @ {domain!r}")
    return f"<{local}@{domain}>"


@functools.lru_cache(maxsize=64)
def sender_domain(sender: str) -> str:
    """The domain of a From value such as ``Keymoment <care@example.cn>``."""
    return parseaddr(sender)[1].rpartition("@")[2] or "keymoment.invalid"


def build_message(
    *,
    sender: str,
    to: Sequence[Recipient],
    subject: str,
    text: str,
    html: str | None = None,
    message_id: str,
    date: datetime,
    language: str | None = None,
    auto_submitted: str | None = "auto-generated",
    headers: Sequence[tuple[str, str]] = (),
) -> bytes:
    """The wire bytes of one mail.

    ``sender`` is a From value (``Name <addr>`` or an address); ``to`` lists the
    header recipients (the SMTP envelope is the queue's business). ``language``
    becomes ``Content-Language`` (e.g. ``zh-CN, en``); ``auto_submitted`` the RFC
    3834 ``Auto-Submitted`` header (None: none). ``headers`` are extra headers in
    order, e.g. ``List-Unsubscribe`` / ``List-Unsubscribe-Post`` (RFC 8058) or an
    ``X-`` header: ASCII values are folded at spaces, others encoded.
    """
    if not to:
        raise ValueError("a mail needs at least one recipient")
    if not (message_id.startswith("<") and message_id.endswith(">")) or len(message_id.split()) != 1:
        raise ValueError(f"invalid Message-ID {message_id!r}")
    boundary = "=_km_" + hashlib.sha256(message_id.encode()).hexdigest()[:32]
    lines = [
        _unstructured("Subject", subject),
        _from_header(sender),
        _address_list("To", to),
        "Date: " + format_datetime(date),
        "Message-ID: " + message_id,
    ]
    if auto_submitted:
        lines.append(_unstructured("Auto-Submitted", auto_submitted))
    for header, value in headers:
        if not _HEADER_NAME.match(header) or header.lower() in RESERVED_HEADERS:
            raise ValueError(f"header {header!r} may not be added")
        lines.append(_unstructured(header, value))
    if language:
        lines.append(_unstructured("Content-Language", language))
    lines.append("MIME-Version: 1.0")
    if html is None:
        lines += _part("plain", text)
    else:
        lines += [f'Content-Type: multipart/alternative;\r\n boundary="{boundary}"', ""]
        for subtype, body in (("plain", text), ("html", html)):
            lines += ["--" + boundary, *_part(subtype, body)]
        lines += ["--" + boundary + "--", ""]
    return "\r\n".join(lines).encode("ascii")


def _part(subtype: str, body: str) -> list[str]:
    encoded = base64.encodebytes(body.replace("\r\n", "\n").encode("utf-8")).decode("ascii")
    return [
        f'Content-Type: text/{subtype}; charset="utf-8"',
        "Content-Transfer-Encoding: base64",
        "",
        encoded.rstrip("\n").replace("\n", "\r\n"),
    ]


def _encoded_words(value: str, first_room: int) -> list[str]:
    """RFC 2047 base64 encoded-words of ``value``, whole characters each; the first fits in
    ``first_room`` characters, the others on continuation lines of their own."""
    budget = max(min((first_room - 12) // 4 * 3, _WORD_BYTES), 3)
    whole = value.encode("utf-8")
    if len(whole) <= budget:
        return [f"=?utf-8?b?{base64.b64encode(whole).decode()}?="]
    words: list[str] = []
    chunk = b""
    for char in value:
        encoded = char.encode("utf-8")
        if chunk and len(chunk) + len(encoded) > budget:
            words.append(f"=?utf-8?b?{base64.b64encode(chunk).decode()}?=")
            chunk, budget = b"", _WORD_BYTES
        chunk += encoded
    if chunk or not words:
        words.append(f"=?utf-8?b?{base64.b64encode(chunk).decode()}?=")
    return words


def _fold(name: str, tokens: list[str]) -> str:
    """``Name: tok tok ...`` folded before a token whenever the line would pass 78 characters."""
    line = f"{name}:"
    lines = []
    for token in tokens:
        if line != f"{name}:" and len(line) + 1 + len(token) > MAX_LINE:
            lines.append(line)
            line = ""
        line += " " + token
    lines.append(line)
    return "\r\n".join(lines)


def _unstructured(name: str, value: str) -> str:
    """A text header: ASCII words as they are (folded at spaces), anything else encoded-words.
    No line break of ``value`` survives (header injection)."""
    value = " ".join(value.split())
    if value.isascii():
        return _fold(name, value.split(" ") if value else [""])
    return _fold(name, _encoded_words(value, MAX_LINE - len(name) - 2))


def _phrase(display: str) -> list[str]:
    """A display name as header tokens: atoms, a quoted string, or encoded-words."""
    display = " ".join(display.split())
    if not display:
        return []
    if not display.isascii():
        return _encoded_words(display, MAX_LINE - len("From: "))
    if _PLAIN_PHRASE.match(display):
        return display.split(" ")
    return ['"' + display.replace("\\", "\\\\").replace('"', '\\"') + '"']


@functools.lru_cache(maxsize=64)
def _from_header(sender: str) -> str:
    """The From header of a configured sender value (a handful per process: cached)."""
    name, address = parseaddr(sender)
    return _address_list("From", [(name, address or sender)])


def _address_list(name: str, recipients: Sequence[Recipient]) -> str:
    tokens: list[str] = []
    for i, recipient in enumerate(recipients):
        display, address = ("", recipient) if isinstance(recipient, str) else recipient
        address = normalize_address(address)
        comma = "," if i < len(recipients) - 1 else ""
        phrase = _phrase(display)
        tokens += [*phrase, f"<{address}>{comma}"] if phrase else [address + comma]
    return _fold(name, tokens)
