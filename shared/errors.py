"""The error classes every layer shares, free of Kafka and PostgreSQL imports.

Service code (use cases, handlers) raises and catches these; only the runtime
wiring (``shared.kafka``, ``shared.outbox``) maps library exceptions onto them.
"""

from __future__ import annotations


class PermanentError(Exception):
    """Raised by a handler for an event that can never be processed: dead-letter it."""


class TransientError(Exception):
    """Raised by a handler for a failure that may pass (a dependency down): retry it."""


class PublishUnavailable(TransientError):
    """Kafka did not acknowledge in time; the caller should fall back (outbox) or fail."""


class NotDurable(RuntimeError):
    """Neither Kafka nor the outbox took the events: the caller must not report success."""
