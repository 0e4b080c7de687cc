"""Dev SMTP sink: accepts every mail and stores it as an .eml file.

Each file starts with the envelope and the moment the sink accepted the mail
(``X-Sink-Mail-From``, ``X-Sink-Rcpt-To``, ``X-Sink-Accepted-At``: Unix time,
taken when DATA arrived, before the 250 answer), then the message exactly as
received. :class:`Mailbox` reads them back.
"""

from __future__ import annotations

import argparse
import asyncio
import email
import email.policy
import signal
import time
import uuid
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path

from aiosmtpd.controller import Controller


class MaildirSink:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)

    async def handle_DATA(self, server, session, envelope) -> str:  # noqa: N802 - aiosmtpd API
        accepted_at = time.time()
        name = f"{time.strftime('%Y%m%dT%H%M%S')}-{uuid.uuid4().hex[:8]}.eml"
        header = (f"X-Sink-Mail-From: {envelope.mail_from}\r\nX-Sink-Rcpt-To: {', '.join(envelope.rcpt_tos)}\r\n"
                  f"X-Sink-Accepted-At: {accepted_at:.6f}\r\n")
        data = envelope.original_content or envelope.content
        if isinstance(data, str):
            data = data.encode()
        tmp = self.directory / (name + ".tmp")
        tmp.write_bytes(header.encode() + data)
        tmp.rename(self.directory / name)  # readers never see half a mail
        return "250 Message accepted for delivery"


@dataclass(frozen=True)
class SinkMail:
    """One mail the sink accepted."""

    path: Path
    mail_from: str
    rcpt_tos: tuple[str, ...]
    accepted_at: float  # Unix time the DATA arrived
    raw: bytes  # the message as the client sent it

    def message(self) -> EmailMessage:
        return email.message_from_bytes(self.raw, policy=email.policy.default)


class Mailbox:
    """The mails an SMTP sink stored in ``directory``, oldest first."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def messages(self) -> list[SinkMail]:
        mails = [read_mail(path) for path in self.directory.glob("*.eml")] if self.directory.is_dir() else []
        return sorted(mails, key=lambda m: m.accepted_at)

    def __len__(self) -> int:
        return sum(1 for _ in self.directory.glob("*.eml")) if self.directory.is_dir() else 0


def read_mail(path: Path) -> SinkMail:
    data = path.read_bytes()
    fields: dict[str, str] = {}
    while data.startswith(b"X-Sink-"):
        line, _, data = data.partition(b"\r\n")
        name, _, value = line.decode("utf-8", "replace").partition(":")
        fields[name] = value.strip()
    accepted = fields.get("X-Sink-Accepted-At")
    return SinkMail(
        path=path,
        mail_from=fields.get("X-Sink-Mail-From", ""),
        rcpt_tos=tuple(r.strip() for r in fields.get("X-Sink-Rcpt-To", "").split(",") if r.strip()),
        accepted_at=float(accepted) if accepted else path.stat().st_mtime,  # files from before the header
        raw=data,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Store every mail received as an .eml file")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=1025)
    parser.add_argument("--dir", type=Path, default=Path("var/mail"))
    args = parser.parse_args(argv)
    controller = Controller(MaildirSink(args.dir), hostname=args.host, port=args.port)
    controller.start()
    stop = asyncio.Event()

    async def wait() -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()

    try:
        asyncio.run(wait())
    finally:
        controller.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
