"""The error classes every layer shares and the one classification of failures, free of Kafka and
PostgreSQL imports.

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


class NotPublishable(PermanentError):
    """Kafka refused the message itself (too large, an invalid topic): sending it again cannot help."""


class NotDurable(RuntimeError):
    """Neither Kafka nor the outbox took the events: the caller must not report success."""


# ------------------------------------------------------------------------------------------ classification
TRANSIENT = "transient"
PERMANENT = "permanent"
UNEXPECTED = "unexpected"

# PostgreSQL SQLSTATEs (https://www.postgresql.org/docs/current/errcodes-appendix.html), by class (first two
# characters) or by full code. Transient: the same statement can succeed later without anyone changing the event.
TRANSIENT_SQLSTATE_CLASSES = {
    "08": "connection exception",
    "40": "transaction rollback (serialization failure 40001, deadlock 40P01)",
    "53": "insufficient resources (disk full 53100, out of memory 53200, too many connections 53300)",
    "55": "object not in prerequisite state (lock not available 55P03, object in use 55006)",
    "57": "operator intervention (query cancelled 57014, admin/crash shutdown 57P01/57P02, cannot connect now 57P03)",
    "58": "system error (I/O error 58030)",
}
TRANSIENT_SQLSTATES = {
    "25006": "read-only transaction (a failover: the primary became a standby)",
    "25P04": "transaction timeout",
}
# Permanent: what this event carries can never be stored, however often it is tried.
PERMANENT_SQLSTATE_CLASSES = {
    "22": "data exception (invalid text, value out of range, datetime overflow)",
    "23": "integrity constraint violation (not null, check, foreign key, unique)",
}

# aiokafka errors (by class name) that refuse one message whatever the broker's state.
PERMANENT_KAFKA_ERRORS = frozenset({
    "MessageSizeTooLargeError", "RecordTooLargeError", "RecordListTooLargeError", "InvalidTopicError",
    "CorruptRecordException", "InvalidMessageError", "InvalidTimestampError", "UnsupportedForMessageFormatError",
})


def classify(exc: BaseException) -> str:
    """The one classification of a failure while processing an event (consumers, the outbox relay).

    ``transient`` — a dependency is away or busy (PostgreSQL connection loss, shutdown, cancel,
    failover, serialization failure, deadlock, disk full, too many connections; Kafka unavailable;
    :class:`TransientError`; network and timeout errors): retry for ever with capped backoff, never
    dead-letter. ``permanent`` — the event's data can never be processed (:class:`PermanentError`,
    pydantic validation, PostgreSQL data and integrity errors, a value the driver cannot encode):
    dead-letter it. ``unexpected`` — anything else (a bug, a schema the code does not match): retried
    a bounded number of times, then dead-lettered with the reason ``unexpected`` for a replay after the fix.

    Library exceptions are recognised by their SQLSTATE and their module, so this module imports
    neither asyncpg nor aiokafka."""
    if isinstance(exc, PermanentError):
        return PERMANENT
    if isinstance(exc, TransientError):
        return TRANSIENT
    sqlstate = getattr(exc, "sqlstate", None)
    if isinstance(sqlstate, str) and len(sqlstate) == 5:
        if sqlstate in TRANSIENT_SQLSTATES or sqlstate[:2] in TRANSIENT_SQLSTATE_CLASSES:
            return TRANSIENT
        if sqlstate[:2] in PERMANENT_SQLSTATE_CLASSES:
            return PERMANENT
        return UNEXPECTED
    module = type(exc).__module__
    if module.startswith("asyncpg"):
        # client side: a value the driver cannot encode (int out of range, bad text) is data; the rest is the
        # connection (closed, lost) or a cached statement outdated by a migration: try again
        return PERMANENT if isinstance(exc, ValueError) else TRANSIENT
    if module.startswith("aiokafka"):
        # Kafka refusing this one message (too large, bad topic name, corrupt) is the message's fault; anything
        # else (unreachable, timeouts, leadership moving, authorisation) is fixed without touching the event
        return PERMANENT if type(exc).__name__ in PERMANENT_KAFKA_ERRORS else TRANSIENT
    if module.startswith("pydantic") and isinstance(exc, ValueError):
        return PERMANENT  # pydantic's ValidationError
    if isinstance(exc, UnicodeError):
        return PERMANENT
    if isinstance(exc, (OSError, TimeoutError)):
        return TRANSIENT  # connection refused/reset, DNS, pool acquire timeout
    return UNEXPECTED
