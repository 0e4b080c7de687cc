"""Wiring the mail queue into a service's :class:`~shared.runtime.ServiceRuntime`."""

from __future__ import annotations

from collections.abc import Sequence

from shared.mail import queue
from shared.mail.metrics import MailMetrics
from shared.mail.sender import MailSender, SettledHook
from shared.mail.settings import MailSettings
from shared.runtime import ServiceRuntime

def use_mail_queue(runtime: ServiceRuntime, *, purposes: Sequence[str],
                   on_settled: SettledHook | None = None) -> MailSender:
    """Give the service the ``keymoment_mail_*`` metrics for ``purposes`` (refreshed at scrape)
    and, unless ``MAIL_SENDER_ENABLED`` is off, a sender that runs from start to stop (graceful).
    The ``mail_queue`` table comes with the settings: a settings class including
    :class:`MailSettings` has migration component ``mail``, applied before the service's own
    migrations (by the service at start, or by ``keymoment migrate``). Sent and given-up mail
    keeps its content ``MAIL_CONTENT_DAYS`` (``runtime.retain``, then forgotten). Call in the app
    factory; enqueue with ``shared.mail.queue.enqueue``. ``on_settled`` hears, in the transaction
    recording it, of every attempt that delivered to or refused a recipient (see :data:`SettledHook`)."""
    settings = runtime.settings
    if not isinstance(settings, MailSettings):
        raise TypeError(f"{type(settings).__name__} must include shared.mail.settings.MailSettings")
    sender = MailSender(
        settings, schema=settings.schema, metrics=MailMetrics(runtime.registry, purposes), clock=runtime.clock,
        on_settled=on_settled,
    )

    async def start(rt: ServiceRuntime) -> None:
        rt.spawn(sender.run(rt.pool), f"{settings.service_name}-mail-sender")

    async def stop(_: ServiceRuntime) -> None:
        await sender.stop()

    async def refresh() -> None:
        await sender.refresh_metrics(runtime.pool)

    runtime.retain("mail_queue", "created_at", settings.mail_content_days, anonymise=queue.FORGET,
                   where=queue.SETTLED)
    if settings.mail_sender_enabled:
        runtime.on_start(start)
        runtime.on_stop(stop)
    runtime.on_scrape(refresh)
    return sender
