"""Plain text from mail bodies: HTML to text, quoted replies and signatures cut.

Pure functions, no I/O; what a mail client shows as "the new part" of a reply.
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


class _TextExtractor(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skip = 0
        self._quote = 0  # inside <blockquote>: a quoted reply in HTML mail

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _SKIP_TAGS:
            self._skip += 1
        elif tag == "blockquote":
            self._quote += 1
        if tag in _BLOCK_TAGS:
            self.parts.append("\n")

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _BLOCK_TAGS:
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in _SKIP_TAGS:
            self._skip = max(0, self._skip - 1)
        elif tag == "blockquote":
            self._quote = max(0, self._quote - 1)
        if tag in _BLOCK_TAGS:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if self._skip or self._quote:
            return
        self.parts.append(re.sub(r"\s+", " ", data))


def html_to_text(html: str) -> str:
    """Visible text of an HTML body; scripts, styles and <blockquote> replies dropped."""
    parser = _TextExtractor()
    try:
        parser.feed(html)
        parser.close()
    except Exception:  # html.parser is lenient; never let a broken body take the listener down
        pass
    lines = [line.strip() for line in "".join(parser.parts).replace("\xa0", " ").splitlines()]
    text = "\n".join(lines)
    return re.sub(r"\n{3,}", "\n\n", text).strip()


# A line where the quoted original begins: everything from it on is dropped.
_QUOTE_HEADERS = [
    re.compile(r"^\s*On\s.{1,200}\swrote:\s*$", re.I),  # On Mon, 1 May 2026, Ann <a@b> wrote:
    re.compile(r"^\s*-{2,}\s*Original Message\s*-{2,}\s*$", re.I),  # Outlook
    re.compile(r"^\s*-{2,}\s*Forwarded message\s*-{2,}\s*$", re.I),
    re.compile(r"^\s*_{10,}\s*$"),  # Outlook's separator line before From:/Sent:
    re.compile(r"^\s*From:\s.+$"),  # Outlook-style header block (only counted when followed by Sent:/Date:)
    re.compile(r"^\s*-{2,}\s*原始邮件\s*-{2,}\s*$"),  # Foxmail / QQ Mail
    re.compile(r"^\s*-+\s*原始邮件\s*-+\s*$"),
    re.compile(r"^\s*(发件人|寄件者|發件人)\s*[:：]"),  # Chinese clients' header block
    re.compile(r"^\s*在\s?.{1,200}\s?写道\s*[:：]\s*$"),  # 在 2026年5月1日 上午9:30，张三 <a@b> 写道：
    re.compile(r"^\s*於\s?.{1,200}\s?寫道\s*[:：]\s*$"),
]
_FROM_BLOCK = re.compile(r"^\s*(From|Sent|Date|To|Subject)\s*:", re.I)

# A line where the signature begins.
_SIGNATURES = [
    re.compile(r"^-- ?$"),  # RFC 3676 "-- " delimiter (trailing space often lost)
    re.compile(r"^\s*(Sent from my|Sent from|Get Outlook for)\s.{1,60}$", re.I),
    re.compile(r"^\s*发自我的\s?.{1,30}$"),  # 发自我的iPhone / 发自我的华为手机
    re.compile(r"^\s*從我的\s?.{1,30}傳送$"),
    re.compile(r"^\s*(来自|發自)\s?.{1,20}(邮箱|郵箱|客户端|手机)\s*$"),
]


_WROTE_START = re.compile(r"^\s*(On\s|在\s?\d)")
_WROTE_END = re.compile(r"(wrote|写道)\s*[:：]\s*$", re.I)


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


def _starts_quote(lines: list[str], index: int) -> bool:
    line = lines[index]
    # Clients wrap a long "On <date>, <name> <address> wrote:" over two lines.
    if _WROTE_START.match(line) and not _WROTE_END.search(line) and index + 1 < len(lines):
        if _WROTE_END.search(lines[index + 1]) and len(line) + len(lines[index + 1]) < 300:
            return True
    for pattern in _QUOTE_HEADERS:
        if pattern.match(line):
            if pattern.pattern.startswith(r"^\s*From:"):
                # "From: ..." alone could be the customer's own words; require a header block.
                following = [ln for ln in lines[index + 1 : index + 4] if ln.strip()]
                return any(_FROM_BLOCK.match(ln) for ln in following)
            return True
    return False


def strip_reply(text: str) -> str:
    """The new part of a message: no quoted original, no "> " lines, no signature."""
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    kept: list[str] = []
    for index, line in enumerate(lines):
        if _starts_quote(lines, index):
            break
        if any(p.match(line) for p in _SIGNATURES):
            break
        if line.lstrip().startswith(">"):
            continue
        kept.append(line.rstrip())
    result = "\n".join(kept).strip()
    return re.sub(r"\n{3,}", "\n\n", result)
