"""Wiring erasure into a service's :class:`~shared.runtime.ServiceRuntime`."""

from __future__ import annotations

from shared.events import ERASURE_APPLIED
from shared.privacy import PrivacySettings
from shared.runtime import ServiceRuntime


def use_erasure(runtime: ServiceRuntime) -> None:
    """The service publishes ``erasure.applied.v1`` (its reports) and keeps erased customers'
    pseudonyms (``erased_subjects``) for ``PROCESSED_EVENTS_RETENTION_DAYS``: as long as it
    remembers consumed events, above Kafka's retention. Its handler of ``erasure.requested.v1``
    is registered like any other (``runtime.consume(ERASURE_REQUESTED, partial(handlers.
    on_erasure_requested, ctx))``) and calls :func:`shared.privacy.erasure.apply`."""
    settings = runtime.settings
    if not isinstance(settings, PrivacySettings):
        raise TypeError(f"{type(settings).__name__} must include shared.privacy.PrivacySettings")
    if ERASURE_APPLIED not in runtime.produces:
        runtime.produces.append(ERASURE_APPLIED)
    runtime.retain("erased_subjects", "erased_at", settings.processed_events_retention_days)
