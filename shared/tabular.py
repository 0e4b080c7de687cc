"""Spreadsheet files people upload (CSV exported from Excel, WPS, Numbers): their text and separator,
and validation errors said for a row. One reading for every upload (suggestion-box cards, survey
invitations)."""

from __future__ import annotations


class UndecodableFile(ValueError):
    """Neither UTF-8 nor GBK."""


def decode_text(data: bytes) -> tuple[str, str]:
    """The file's text and the encoding it was read as: UTF-8 (with or without the BOM Excel
    writes) or, failing that, GB18030 (a superset of GBK: what Chinese Excel saves as CSV)."""
    if data.startswith(b"\xef\xbb\xbf"):
        return data[3:].decode("utf-8", errors="strict"), "utf-8-sig"
    try:
        return data.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        pass
    try:
        return data.decode("gb18030"), "gbk"
    except UnicodeDecodeError as exc:
        raise UndecodableFile(f"the file is neither UTF-8 nor GBK (byte {exc.start})") from exc


def delimiter(text: str) -> str:
    """The separator of the header line: comma, semicolon (European Excel) or tab.

    Judged on the header only: cell texts are full of commas and semicolons."""
    header = text.split("\n", 1)[0]
    counts = {d: header.count(d) for d in (",", ";", "\t")}
    best = max(counts, key=counts.get)
    return best if counts[best] else ","


def error_message(error: dict) -> str:
    """One pydantic error as a person reads it: ``field.path: what is wrong``."""
    where = ".".join(str(p) for p in error.get("loc", ()) if p != "__root__")
    text = error.get("msg", "invalid").removeprefix("Value error, ")
    return f"{where}: {text}" if where else text
