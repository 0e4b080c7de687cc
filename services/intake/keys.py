"""API keys: who may submit feedback, on which channels, from which browser
origins and how fast.

A key looks like ``km_<id>_<secret>``; only the SHA-256 of the whole key is
stored. :class:`KeyStore` keeps every active key in memory (reloaded on a
PostgreSQL NOTIFY from the ``api_keys`` trigger and at least every TTL), so
authenticating a request costs no database round trip. Rate limits are token
buckets held in this process, per key (not per IP: a store's kiosks share one).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import logging
import math
import secrets
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import partial

import asyncpg

from services.intake import repository
from shared import auth
from shared.contracts import Channel
from shared.ratelimit import TokenBucket
from shared.retry import Backoff, honour_cancel, retry_forever

__all__ = ["TokenBucket"]  # re-exported: intake's limits are shared.ratelimit's buckets

logger = logging.getLogger(__name__)

PREFIX = "km_"
ANY = "*"
NOTIFY_CHANNEL = "keymoment_intake_api_keys"


class AuthError(auth.AuthError):
    """Base of the key errors; ``status`` is the HTTP status the API answers with (401 for a
    missing or unknown key, 403 for a known key not allowed this, as every service answers)."""

    status = 401


class MissingKey(AuthError):
    pass


class UnknownKey(AuthError):
    pass


class Forbidden(AuthError):
    status = 403


class RateLimited(AuthError):
    status = 429

    def __init__(self, message: str, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after


def hash_key(key: str) -> bytes:
    return hashlib.sha256(key.encode()).digest()


def split_key(key: str) -> str | None:
    """The key id of ``km_<id>_<secret>``, or None when the key is malformed."""
    if not key.startswith(PREFIX) or len(key) > 200:
        return None
    key_id, sep, secret = key[len(PREFIX):].partition("_")
    if not sep or not key_id or not secret:
        return None
    return key_id


def new_key() -> tuple[str, str]:
    """``(key_id, key)`` for a new key; the id has no underscore."""
    key_id = secrets.token_hex(6)
    return key_id, f"{PREFIX}{key_id}_{secrets.token_urlsafe(32)}"


@dataclass
class Principal:
    """The source behind a request: an active API key (or an internal channel)."""

    key_id: str
    name: str
    channels: frozenset[str]
    origins: frozenset[str]
    rate_per_second: float | None = None
    burst: int | None = None
    bucket: TokenBucket | None = field(default=None, repr=False)

    @classmethod
    def internal(cls, name: str, *, channels: Iterable[str] = (ANY,)) -> Principal:
        """A principal for feedback that does not come through an API key (e.g. the SMTP listener)."""
        return cls(key_id=f"internal:{name}", name=name, channels=frozenset(channels), origins=frozenset())

    def may_use(self, channel: Channel | str) -> bool:
        return ANY in self.channels or str(channel) in self.channels

    def require_channel(self, channel: Channel | str) -> None:
        """Raise :class:`Forbidden` (403) unless this key may submit on ``channel``."""
        if not self.may_use(channel):
            value = channel.value if isinstance(channel, Channel) else channel
            raise Forbidden(f"API key '{self.name}' may not submit channel '{value}'")

    def allows_origin(self, origin: str) -> bool:
        return ANY in self.origins or origin in self.origins

    def require_origin(self, origin: str | None) -> None:
        """Raise :class:`Forbidden` (403) when a browser sends this key from an origin it is not for."""
        if origin is not None and not self.allows_origin(origin):
            raise Forbidden(f"API key '{self.name}' may not be used from origin {origin}")

    def charge(self, n: int = 1) -> None:
        """Take ``n`` tokens from the key's rate limit or raise :class:`RateLimited` (429)."""
        if self.bucket is None:
            return
        wait = self.bucket.take(n)
        if wait:
            if math.isinf(wait):
                raise RateLimited(
                    f"{n} items exceed this key's burst of {self.bucket.burst}; send smaller batches", 60.0
                )
            raise RateLimited(f"rate limit of API key '{self.name}' exceeded", wait)


class KeyStore:
    """Every active key in memory; reload on NOTIFY and every ``ttl`` seconds.

    Built with the app; :meth:`open` gives it the database (at start-up) and loads the keys."""

    def __init__(self, *, ttl: float = 30.0) -> None:
        self._pool: asyncpg.Pool | None = None
        self._ttl = ttl
        self._keys: dict[str, tuple[bytes, Principal]] = {}
        self._buckets: dict[str, TokenBucket] = {}
        self._origins: frozenset[str] = frozenset()
        self._loaded_at = 0.0
        self._changed = asyncio.Event()
        self._reload_lock = asyncio.Lock()
        # Set once the watcher listens for changes (and reloaded after it started): from then on a key
        # created anywhere is known here within a NOTIFY's delay. Intake is not ready before.
        self.listening = asyncio.Event()

    @property
    def browser_origins(self) -> frozenset[str]:
        """Union of all active keys' origins (for CORS preflight, which carries no key)."""
        return self._origins

    def __len__(self) -> int:
        return len(self._keys)

    async def open(self, pool: asyncpg.Pool) -> None:
        """Use ``pool`` from now on and load the keys."""
        self._pool = pool
        await self.reload()

    async def reload(self) -> None:
        if self._pool is None:
            raise RuntimeError("the key store is not open yet")
        async with self._reload_lock:
            rows = await repository.active_keys(self._pool)
            keys: dict[str, tuple[bytes, Principal]] = {}
            buckets: dict[str, TokenBucket] = {}
            origins: set[str] = set()
            for row in rows:
                bucket = None
                if row.rate_per_second is not None:
                    burst = row.burst or max(1, math.ceil(row.rate_per_second))
                    bucket = self._buckets.get(row.id)
                    if bucket is None or (bucket.rate, bucket.burst) != (row.rate_per_second, burst):
                        bucket = TokenBucket(row.rate_per_second, burst)
                    buckets[row.id] = bucket
                keys[row.id] = (
                    row.secret_sha256,
                    Principal(
                        key_id=row.id, name=row.name, channels=frozenset(row.channels),
                        origins=frozenset(row.origins), rate_per_second=row.rate_per_second,
                        burst=row.burst, bucket=bucket,
                    ),
                )
                origins.update(row.origins)
            self._keys, self._buckets, self._origins = keys, buckets, frozenset(origins)
            self._loaded_at = time.monotonic()
        logger.info("api keys loaded", extra={"keys": len(keys)})

    async def authenticate(self, key: str | None) -> Principal:
        """The principal of ``key``; raises :class:`MissingKey` or :class:`UnknownKey` (401)."""
        if not key:
            raise MissingKey("missing X-API-Key header")
        key_id = split_key(key)
        if key_id is None:
            raise UnknownKey("malformed API key")
        entry = self._keys.get(key_id)
        if entry is None and time.monotonic() - self._loaded_at > 1.0:
            # A key created a moment ago whose NOTIFY has not arrived yet: reload, at most once a second.
            try:
                await self.reload()
            except Exception as exc:  # database away: unknown stays unknown
                logger.warning("api key reload failed", extra={"error": repr(exc)})
            entry = self._keys.get(key_id)
        if entry is None or not hmac.compare_digest(entry[0], hash_key(key)):
            raise UnknownKey("unknown or revoked API key")
        return entry[1]

    def _notified(self, *_: object) -> None:
        self._changed.set()

    async def watch(self) -> None:
        """Background task: reload on NOTIFY, and every TTL in any case; after a lost
        connection, listen again (with backoff) and reload what changed meanwhile."""
        backoff = Backoff(initial=min(self._ttl, 0.2), maximum=min(self._ttl, 2.0))
        await retry_forever(
            partial(self._listen, backoff), what="api key watcher", backoff=backoff, logger=logger,
        )

    async def _listen(self, backoff: Backoff) -> None:
        if self._pool is None:
            raise RuntimeError("the key store is not open yet")
        async with self._pool.acquire() as conn:
            await conn.add_listener(NOTIFY_CHANNEL, self._notified)
            try:
                await self.reload()  # changes made while not listening
                honour_cancel()
                self.listening.set()
                backoff.reset()
                while True:
                    self._changed.clear()
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(self._ttl):
                            await self._changed.wait()
                    if conn.is_closed():
                        raise ConnectionError("the connection listening for key changes closed")
                    await self.reload()
                    honour_cancel()
            finally:
                if not conn.is_closed():
                    await conn.remove_listener(NOTIFY_CHANNEL, self._notified)
