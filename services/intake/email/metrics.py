"""Prometheus metrics of the email channel (one set per app registry)."""

from __future__ import annotations

from prometheus_client import Counter

from shared.metrics import PREFIX


def emails_counter(runtime) -> Counter:  # noqa: ANN001 - ServiceRuntime
    """``keymoment_intake_emails_total{via, status}``, created once per runtime."""
    counter = getattr(runtime, "_emails_total", None)
    if counter is None:
        counter = Counter(
            f"{PREFIX}_intake_emails_total",
            "Mail received by the email channel, by way in (smtp/http) and outcome "
            "(accepted, auto_reply, rejected, duplicate).",
            ["via", "status"],
            registry=runtime.registry,
        )
        runtime._emails_total = counter
    return counter
