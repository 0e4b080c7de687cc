"""One classification of failures (shared.errors.classify), checked against the real library exceptions."""

from __future__ import annotations

import asyncio

import aiokafka.errors as kafka
import asyncpg
import asyncpg.exceptions as pg
import pytest
from pydantic import BaseModel, ValidationError

from shared.errors import PERMANENT, TRANSIENT, UNEXPECTED, PermanentError, PublishUnavailable, TransientError, classify
from shared.events import EnvelopeError


class _Model(BaseModel):
    n: int


def _validation_error() -> ValidationError:
    try:
        _Model.model_validate({"n": "x"})
    except ValidationError as exc:
        return exc
    raise AssertionError("unreachable")


TRANSIENT_CASES = [
    pg.AdminShutdownError("terminating connection due to administrator command"),  # 57P01
    pg.CrashShutdownError("crash shutdown"),  # 57P02
    pg.CannotConnectNowError("the database system is starting up"),  # 57P03
    pg.QueryCanceledError("canceling statement due to statement timeout"),  # 57014
    pg.ReadOnlySQLTransactionError("cannot execute INSERT in a read-only transaction"),  # 25006
    pg.SerializationError("could not serialize access"),  # 40001
    pg.DeadlockDetectedError("deadlock detected"),  # 40P01
    pg.DiskFullError("could not extend file"),  # 53100
    pg.TooManyConnectionsError("sorry, too many clients already"),  # 53300
    pg.OutOfMemoryError("out of memory"),  # 53200
    pg.ConnectionDoesNotExistError("connection was closed in the middle of operation"),  # 08003
    pg.LockNotAvailableError("could not obtain lock"),  # 55P03
    asyncpg.InterfaceError("connection is closed"),
    ConnectionResetError("reset by peer"),
    ConnectionRefusedError("refused"),
    TimeoutError(),
    asyncio.TimeoutError(),
    kafka.KafkaConnectionError("no broker"),
    kafka.KafkaTimeoutError(),
    kafka.NotLeaderForPartitionError(),
    kafka.TopicAuthorizationFailedError(),
    PublishUnavailable("kafka down"),
    TransientError("a dependency is down"),
]

PERMANENT_CASES = [
    pg.UntranslatableCharacterError("unsupported Unicode escape sequence"),  # 22P05: a NUL in text
    pg.CharacterNotInRepertoireError("invalid byte sequence for encoding UTF8: 0x00"),  # 22021
    pg.DatetimeFieldOverflowError("timestamp out of range"),  # 22008
    pg.NumericValueOutOfRangeError("integer out of range"),  # 22003
    pg.CheckViolationError("new row violates check constraint"),  # 23514
    pg.NotNullViolationError("null value in column"),  # 23502
    asyncpg.exceptions._base.DataError("invalid input for query argument $1 (value out of int32 range)"),
    _validation_error(),
    PermanentError("unknown location"),
    EnvelopeError("missing CloudEvents headers: ce_id"),
    UnicodeEncodeError("utf-8", "\udfff", 0, 1, "surrogates not allowed"),
    kafka.MessageSizeTooLargeError(),
    kafka.InvalidTopicError(),
]

UNEXPECTED_CASES = [
    KeyError("severity"),
    ZeroDivisionError(),
    pg.UndefinedColumnError('column "x" does not exist'),  # 42703: code and schema disagree
    pg.InternalServerError("XX000"),
    RuntimeError("bug"),
]


@pytest.mark.parametrize("exc", TRANSIENT_CASES, ids=lambda e: type(e).__name__)
def test_transient(exc):
    assert classify(exc) == TRANSIENT


@pytest.mark.parametrize("exc", PERMANENT_CASES, ids=lambda e: type(e).__name__)
def test_permanent(exc):
    assert classify(exc) == PERMANENT


@pytest.mark.parametrize("exc", UNEXPECTED_CASES, ids=lambda e: type(e).__name__)
def test_unexpected(exc):
    assert classify(exc) == UNEXPECTED


def test_envelope_error_summary_names_fields_not_content():
    from shared.events import FEEDBACK_RECEIVED, Envelope

    with pytest.raises(EnvelopeError) as caught:
        Envelope.from_kafka(
            headers=[("ce_id", b"e1"), ("ce_source", b"/t"), ("ce_type", FEEDBACK_RECEIVED.type.encode()),
                     ("ce_specversion", b"1.0")],
            key=None, value=b'{"id": "f1", "channel": "web", "text": "Wang Fang 13800138000", "received_at": 5,'
                            b' "customer": {"email": "wang\\u0000@example.cn"}, "source": "x"}')
    assert "13800138000" in str(caught.value) or "wang" in str(caught.value)  # the full error, for the letter
    assert "wang" not in caught.value.summary and "13800138000" not in caught.value.summary
    assert "customer.email" in caught.value.summary
