"""Plain text from mail bodies: HTML to text, quoted replies and signatures cut.

Pure functions, no I/O; what a mail client shows as "the new part" of a reply,
for the clients Chinese and English speaking customers use: Outlook, Foxmail,
QQ Mail, NetEase (163/126) Mail, Apple Mail, Gmail, Thunderbird and the
mobile apps. Work is bounded: HTML is parsed only until enough text came out,
so a huge body costs no more than a small one.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser

_BLOCK_TAGS = {
    "address", "article", "aside", "blockquote", "br", "dd", "div", "dl", "dt", "footer", "form", "h1", "h2",
    "h3", "h4", "h5", "h6", "header", "hr", "li", "main", "nav", "ol", "p", "pre", "section", "table", "td",
    "th", "tr", "ul",
}
_SKIP_TAGS = {"script", "style", "head", "title", "noscript", "template"}
_VOID_TAGS = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}
# Containers clients put the quoted original or the signature in (class or id, compared lower-cased).
_QUOTE_CONTAINERS = re.compile(
    r"(^|\s)(gmail_quote|gmail_signature|gmail_extra|moz-cite-prefix|moz-signature|yahoo_quoted|"
    r"protonmail_quote|protonmail_signature_block|applemailsignature|ox-signature|"
    r"x_gmail_quote|x_moz-cite-prefix|mail-signature|signature)(\s|$)"
)
HTML_FEED_CHUNK = 64 * 1024


class _TextExtractor(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.size = 0
        self._skip = 0
        self._quote = 0  # inside <blockquote>: a quoted reply in HTML mail
        self._hidden: list[str] = []  # open tags of a skipped quote/signature container

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if self._hidden:
            if tag == self._hidden[0] and tag not in _VOID_TAGS:
                self._hidden.append(tag)
            return
        marks = " ".join(v or "" for k, v in attrs if k in ("class", "id")).lower()
        if marks and tag not in _VOID_TAGS and _QUOTE_CONTAINERS.search(marks):
            self._hidden.append(tag)
            self.parts.append("\n")
            return
        if tag in _SKIP_TAGS:
            self._skip += 1
        elif tag == "blockquote":
            self._quote += 1
        if tag in _BLOCK_TAGS:
            self.parts.append("\n")

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if not self._hidden and tag in _BLOCK_TAGS:
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if self._hidden:
            if tag == self._hidden[0]:
                self._hidden.pop()
            return
        if tag in _SKIP_TAGS:
            self._skip = max(0, self._skip - 1)
        elif tag == "blockquote":
            self._quote = max(0, self._quote - 1)
        if tag in _BLOCK_TAGS:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if self._skip or self._quote or self._hidden:
            return
        text = re.sub(r"\s+", " ", data)
        self.parts.append(text)
        self.size += len(text)


def html_to_text(html: str, *, enough: int | None = None) -> str:
    """Visible text of an HTML body; scripts, styles, <blockquote> replies and the quote and signature
    containers of common clients dropped. With ``enough``, parsing stops once that many characters of
    text came out (the rest could not be kept anyway)."""
    parser = _TextExtractor()
    try:
        for start in range(0, len(html), HTML_FEED_CHUNK):
            parser.feed(html[start:start + HTML_FEED_CHUNK])
            if enough is not None and parser.size >= enough:
                break
        parser.close()
    except Exception:  # html.parser is lenient; never let a broken body take the listener down
        pass
    lines = [line.strip() for line in "".join(parser.parts).replace("\xa0", " ").splitlines()]
    text = "\n".join(lines)
    return re.sub(r"\n{3,}", "\n\n", text).strip()


# --- quoted replies --------------------------------------------------------------------------------------------

# A line after which everything is the quoted (or forwarded) original, in the header-block style of
# Outlook, Foxmail, QQ Mail and NetEase Mail (no "> " markers follow).
_SEPARATORS = [
    re.compile(r"^\s*-{2,}\s*(Original Message|Original|Forwarded message|Forwarded Message)\s*-{2,}\s*$", re.I),
    re.compile(r"^\s*-+\s*(原始邮件|原始郵件|原始信件|原邮件|原郵件|回复的原邮件|回覆的原郵件|转发的邮件|轉寄的郵件|"
               r"转发邮件信息|轉寄郵件資訊)\s*-+\s*$"),
    re.compile(r"^\s*Begin forwarded message:\s*$", re.I),
    re.compile(r"^\s*_{10,}\s*$"),  # Outlook's rule above its From:/Sent: block
]
# The first line of a quoted header block: "From: ..." followed by Sent/Date/To/Subject lines.
_HEADER_FIELD = re.compile(
    r"^\s*\**\s*(From|Sent|Date|To|Cc|Subject|发件人|發件人|寄件者|寄件人|发送时间|發送時間|寄件日期|日期|时间|時間|"
    r"收件人|收件者|抄送|副本|主题|主題|主旨)\s*\**\s*[:：]", re.I,
)
_HEADER_START = re.compile(r"^\s*\**\s*(From|发件人|發件人|寄件者|寄件人)\s*\**\s*[:：]", re.I)
_CHINESE_HEADER_START = re.compile(r"^\s*\**\s*(发件人|發件人|寄件者|寄件人)\s*\**\s*[:：]")

# An attribution line ("On <date>, <name> wrote:"), possibly wrapped over up to three lines.
_ATTRIBUTION_END = re.compile(
    r"(wrote|writes|schrieb|a écrit|escribió|ha scritto|skrev|написал|написала|написал\(а\)|写道|寫道)\s*[:：]?\s*$",
    re.I,
)
_ATTRIBUTION_START = re.compile(
    r"^\s*(On\s|At\s|Am\s|Le\s|El\s|Il\s|在\s?|於\s?|\d{1,4}[./-]\d{1,2}[./-]\d{1,4}|\S.{0,120}\s?于\s?\d{4})", re.I
)


def _is_quote_line(line: str) -> bool:
    stripped = line.lstrip()
    return stripped.startswith(">") or stripped.startswith("&gt;")


def _attribution(lines: list[str], index: int) -> int:
    """How many lines (1-3) from ``index`` form an attribution line, else 0."""
    if not _ATTRIBUTION_START.match(lines[index]):
        return 0
    joined = ""
    for count in range(1, 4):
        if index + count > len(lines):
            break
        joined = f"{joined} {lines[index + count - 1].strip()}".strip()
        if len(joined) > 300:
            break
        if _ATTRIBUTION_END.search(joined) and re.search(r"\d", joined):  # a date or time in it
            return count
    return 0


def _header_block(lines: list[str], index: int) -> bool:
    """``From: ...`` followed by more header fields (else it could be the customer's own words)."""
    if not _HEADER_START.match(lines[index]):
        return False
    if _CHINESE_HEADER_START.match(lines[index]):
        return True  # 发件人: never starts a customer's sentence
    following = [ln for ln in lines[index + 1:index + 5] if ln.strip()][:3]
    return any(_HEADER_FIELD.match(ln) for ln in following)


# --- signatures ------------------------------------------------------------------------------------------------

_SIGNATURE_LINES = [
    re.compile(r"^-- ?$"),  # RFC 3676 "-- " delimiter (trailing space often lost)
    re.compile(r"^\s*(Sent from|Sent with|Sent via|Sent using|Get Outlook for)\s.{1,60}$", re.I),
    re.compile(r"^\s*Sent from my \S.{0,40}$", re.I),
    # 发自我的iPhone, 发自我的华为手机, 來自我的 iPad, 发自网易邮箱大师, 来自 163邮箱, 发自 QQ邮箱, 发自 Foxmail
    re.compile(r"^\s*(发自|發自|来自|來自|发送自|發送自|寄自)\s?(我的)?\s?.{0,25}"
               r"(iPhone|iPad|Android|手机|手機|邮箱|郵箱|邮件|郵件|客户端|用戶端|Foxmail|Outlook|Mail|平板|版)"
               r".{0,12}$", re.I),
    # 从 Windows 版邮件发送, 從我的 iPhone 傳送, 从我的 iPhone 发送
    re.compile(r"^\s*(从|從)\s?.{1,30}(发送|傳送|發送)\s*$"),
]
# A trailing contact block: "张三 | 客户经理 | 138 0000 0000", "电话：...", "Tel: ...", "T: ...", "地址：...".
_CONTACT_LABEL = re.compile(
    r"^\s*(电话|電話|手机|手機|座机|座機|办公|辦公|传真|傳真|邮箱|郵箱|邮件|郵件|地址|微信|网址|網址|Tel|Telephone|"
    r"Phone|Mobile|Mob|Cell|Office|Fax|E-?mail|Address|Addr|WeChat|Web|Website|Skype|[TMEFP])\s*[:：]\s*(?P<value>.*)$",
    re.I,
)
_CONTACT_VALUE = re.compile(r"\+?\d[\d\s\-()]{5,}\d|[^\s@|<>]+@[^\s@|<>]+|https?://|www\.|\S+[路街道号號区區市省]")
_TITLE_OR_COMPANY = re.compile(
    r"\b(Inc|Ltd|LLC|GmbH|Co|Corp|Corporation|Company|Limited|Group|Director|Manager|Engineer|Officer|President|"
    r"Division|Department|Dept|Team|Head)\b\.?|公司|集团|集團|有限|经理|經理|总监|總監|主管|部门|部門|工程师|工程師|专员|專員",
    re.I,
)
_NOT_SIGNATURE = re.compile(r"[。！？!?；;，]")


def _signature_line(line: str) -> bool:
    return any(p.match(line) for p in _SIGNATURE_LINES)


def _bar_line(line: str) -> bool:
    fields = [f for f in re.split(r"\s*[|｜]\s*", line.strip()) if f]
    return len(fields) >= 2 and all(len(f) <= 40 for f in fields)


def _contact_line(line: str) -> bool:
    """A labelled contact field with a value ("电话：138...", "T: 150..."), or a ``|`` line holding one."""
    if (labelled := _CONTACT_LABEL.match(line)) and _CONTACT_VALUE.search(labelled["value"]):
        return True
    return _bar_line(line) and bool(_CONTACT_VALUE.search(line))


def _drop_contact_block(lines: list[str]) -> list[str]:
    """Remove a trailing name | title | phone | address block (its lines possibly blank-separated).

    The block is the run of short lines at the end without sentence punctuation, from its first
    ``|`` line or contact field on (and the title or company lines right above that); it must hold a
    contact field with a value, and text must remain before it. A sentence ("请尽快联系我，电话：...") is never part of one."""
    run_start = len(lines)
    while run_start:
        line = lines[run_start - 1].strip()
        if line and (len(line) > 80 or _NOT_SIGNATURE.search(line)):
            break
        run_start -= 1
    anchor = next((i for i in range(run_start, len(lines)) if _bar_line(lines[i]) or _contact_line(lines[i])), None)
    if anchor is None or not any(_contact_line(ln) for ln in lines[anchor:]):
        return lines
    while anchor > run_start and _TITLE_OR_COMPANY.search(lines[anchor - 1]):  # "Senior Director", "ACME Inc."
        anchor -= 1
    if not any(ln.strip() for ln in lines[:anchor]):
        return lines
    return lines[:anchor]


# --- the new part of a message ----------------------------------------------------------------------------------


_UUENCODED = re.compile(r"^begin [0-7]{3,4} [^\n]+\n(?:[^\n]*\n)*?end[ \t]*$", re.M)


def drop_uuencoded(text: str) -> str:
    """Remove uuencoded files from a plain-text body (clients show them as attachments)."""
    if "begin " not in text:
        return text
    return _UUENCODED.sub("", text.replace("\r\n", "\n"))


def unflow(text: str, *, delsp: bool = False) -> str:
    """Undo ``format=flowed`` (RFC 3676): join soft-broken lines back into paragraphs.

    A line ending in a space continues on the next line of the same quote depth
    (with ``delsp=yes`` that space belongs to the wrapping and is dropped);
    space-stuffing is removed; ``-- `` (the signature separator) is never a soft
    break. Quoted lines keep their ``>`` markers so quotes can still be cut.
    """
    out: list[str] = []
    paragraph: list[str] = []
    depth_of_paragraph = 0
    for raw in text.replace("\r\n", "\n").replace("\r", "\n").split("\n"):
        depth = len(raw) - len(raw.lstrip(">"))
        line = raw[depth:]
        if line.startswith(" "):  # space-stuffed (or the space after the quote markers)
            line = line[1:]
        if paragraph and depth != depth_of_paragraph:  # a quote depth change ends a paragraph
            out.append("> " * depth_of_paragraph + "".join(paragraph))
            paragraph = []
        depth_of_paragraph = depth
        if line.endswith(" ") and line != "-- ":
            paragraph.append(line[:-1] if delsp else line)
            continue
        out.append("> " * depth + "".join(paragraph) + line)
        paragraph = []
    if paragraph:
        out.append("> " * depth_of_paragraph + "".join(paragraph))
    return "\n".join(out)


def strip_reply(text: str) -> str:
    """The new part of a message: no quoted original, no quote markers, no signature.

    * Header-block clients (Outlook, Foxmail, QQ, NetEase) put the original below a separator or a
      ``From:``/``发件人:`` block: everything from there is cut.
    * An attribution ("On ... wrote:", "在 ... 写道：", "... 于2026年5月8日 写道：") with at most a
      greeting before it and a ``>`` quote after it is dropped with the quote, and the text after the
      quote is kept: a bottom-posted or interleaved reply (Thunderbird, mailing lists) keeps the
      customer's words. After a whole message (top-posting) or without a quote, it ends the message.
    * Quoted lines (``>``, and ``&gt;`` from clients that escaped them) are dropped anywhere.
    * Signatures end the message: the ``-- `` delimiter, "Sent from my iPhone"/"发自我的iPhone"/
      "从 Windows 版邮件发送" lines, and a trailing name | phone | address block.
    """
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    kept: list[str] = []
    index = 0
    while index < len(lines):
        line = lines[index]
        if any(p.match(line) for p in _SEPARATORS) or _header_block(lines, index):
            break
        if span := _attribution(lines, index):
            after = index + span
            while after < len(lines) and not lines[after].strip():
                after += 1
            # Only a greeting (or nothing) before a ">" quote: a bottom-posted or interleaved reply,
            # whose new text follows the quote. A whole message before it: top-posted, the rest is old.
            greeting_only = sum(1 for kept_line in kept if kept_line.strip()) <= 1
            if greeting_only and after < len(lines) and _is_quote_line(lines[after]):
                index = after  # the quote is skipped below; what follows it is kept
                continue
            break
        if _signature_line(line):
            break
        if not _is_quote_line(line):
            kept.append(line.rstrip())
        index += 1
    kept = _drop_contact_block(kept)
    result = "\n".join(kept).strip()
    return re.sub(r"\n{3,}", "\n\n", result)
