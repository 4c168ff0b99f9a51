"""The provider access-token store (design.md section 4, rule 5).

One token per credential set, shared by every thread and every process:

* a per-process memory cache answers almost every call without touching the database;
* on a miss, one thread per process (a per-fingerprint ``threading.Lock``) goes to the
  ``ProviderToken`` row, locks it (``SELECT ... FOR UPDATE`` in a short transaction; on
  SQLite the IMMEDIATE transaction takes the write lock) and either adopts the token
  another process stored or fetches a new one and stores it -- so at most one process
  asks the provider for a token at a time;
* a token is refreshed when less than ``refresh_margin`` (60 s, or half its lifetime
  if that is shorter) is left;
* after an auth error the caller asks for a replacement of the token it used
  (``refresh(stale=...)``): if someone else already replaced it, that replacement is
  used and the provider is not asked again.

Daraja invalidates a consumer key's previous token when it issues a new one, which is
why fetching tokens freely (one per worker, one per request) breaks under load.

The token call happens inside the short row-lock transaction, never inside a
transaction that also holds a payment call. Callers should not call provider methods
inside their own ``transaction.atomic()`` block (the lock would then last until their
commit).
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from django.db import IntegrityError, transaction
from django.utils import timezone

from pesarail.common.logging import get_logger
from pesarail.providers.crypto import DecryptionError
from pesarail.providers.models import ProviderToken

__all__ = [
    "PROCESS_CACHE",
    "REFRESH_MARGIN_SECONDS",
    "IssuedToken",
    "TokenCache",
    "TokenStore",
    "fingerprint",
    "purge_expired_tokens",
]

log = get_logger("pesarail.providers.tokens")

REFRESH_MARGIN_SECONDS = 60.0


@dataclass(frozen=True, slots=True)
class IssuedToken:
    """What a provider's token endpoint returned."""

    access_token: str
    expires_in: float  # seconds


def fingerprint(*parts: str) -> str:
    """SHA-256 over the parts (base URL, consumer key, consumer secret, ...). Stored
    instead of the credentials so the token row never holds a secret."""
    digest = hashlib.sha256()
    for part in parts:
        digest.update(part.encode("utf-8"))
        digest.update(b"\x00")
    return digest.hexdigest()


@dataclass(frozen=True, slots=True)
class _Entry:
    token: str
    expires_at: float  # epoch seconds
    issued_at: float  # epoch seconds


class TokenCache:
    """Per-process memory of tokens plus one lock per fingerprint."""

    def __init__(self) -> None:
        self._entries: dict[str, _Entry] = {}
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()

    def lock_for(self, key: str) -> threading.Lock:
        with self._guard:
            lock = self._locks.get(key)
            if lock is None:
                lock = self._locks[key] = threading.Lock()
            return lock

    def get(self, key: str) -> _Entry | None:
        return self._entries.get(key)

    def put(self, key: str, entry: _Entry) -> None:
        self._entries[key] = entry

    def discard(self, key: str) -> None:
        self._entries.pop(key, None)

    def clear(self) -> None:
        with self._guard:
            self._entries.clear()


#: The cache every TokenStore uses unless given another (tests simulate processes).
PROCESS_CACHE = TokenCache()


class TokenStore:
    """Single-flight access to one credential set's token.

    ``fetch`` asks the provider for a new token (it raises the provider's exceptions,
    e.g. ProviderAuthError for a wrong secret; nothing is stored then).
    """

    def __init__(
        self,
        *,
        provider: str,
        key: str,
        fetch: Callable[[], IssuedToken],
        cache: TokenCache | None = None,
        refresh_margin: float = REFRESH_MARGIN_SECONDS,
    ) -> None:
        self.provider = provider
        self.key = key
        self._fetch = fetch
        self._cache = cache if cache is not None else PROCESS_CACHE
        self._margin = refresh_margin

    # ------------------------------------------------------------------ public

    def get(self) -> str:
        """A valid token: from memory, from the shared row, or freshly fetched."""
        return self._obtain(stale=None, newer_than=None)

    def refresh(self, stale: str) -> str:
        """Replace ``stale`` (a token the provider just refused) unless another thread
        or process has already replaced it."""
        return self._obtain(stale=stale, newer_than=None)

    def force_refresh(self) -> str:
        """A token issued after this call started (used to test credentials); a token
        another caller fetched meanwhile counts."""
        return self._obtain(stale=None, newer_than=time.time())

    # ---------------------------------------------------------------- internals

    def _usable(self, token: str | None, expires_at: float, issued_at: float,
                stale: str | None, newer_than: float | None) -> bool:
        if not token or token == stale:
            return False
        if newer_than is not None and issued_at < newer_than:
            return False
        lifetime = max(expires_at - issued_at, 0.0)
        margin = min(self._margin, lifetime / 2)
        return expires_at - time.time() > margin

    def _obtain(self, *, stale: str | None, newer_than: float | None) -> str:
        entry = self._cache.get(self.key)
        if entry and self._usable(entry.token, entry.expires_at, entry.issued_at,
                                  stale, newer_than):
            return entry.token
        with self._cache.lock_for(self.key):
            entry = self._cache.get(self.key)
            if entry and self._usable(entry.token, entry.expires_at, entry.issued_at,
                                      stale, newer_than):
                return entry.token
            entry = self._from_row(stale=stale, newer_than=newer_than)
            self._cache.put(self.key, entry)
            return entry.token

    def _row_pk(self) -> str:
        query = ProviderToken.objects.defer("access_token")
        try:
            return query.get(credential_fingerprint=self.key).pk
        except ProviderToken.DoesNotExist:
            pass
        try:
            with transaction.atomic():
                return ProviderToken.objects.create(
                    provider=self.provider, credential_fingerprint=self.key
                ).pk
        except IntegrityError:  # another process created it first
            return query.get(credential_fingerprint=self.key).pk

    def _from_row(self, *, stale: str | None, newer_than: float | None) -> _Entry:
        pk = self._row_pk()
        with transaction.atomic():
            row = ProviderToken.objects.select_for_update().defer("access_token").get(pk=pk)
            try:
                stored = row.access_token
            except DecryptionError:  # a removed encryption key: just fetch a new token
                stored = None
            if stored and row.expires_at and row.refreshed_at:
                shared = _Entry(stored, row.expires_at.timestamp(), row.refreshed_at.timestamp())
                if self._usable(shared.token, shared.expires_at, shared.issued_at,
                                stale, newer_than):
                    return shared
            issued = self._fetch()
            now = timezone.now()
            expires_at = now + timedelta(seconds=max(issued.expires_in, 0.0))
            ProviderToken.objects.filter(pk=pk).update(
                access_token=issued.access_token,
                expires_at=expires_at,
                refreshed_at=now,
                refresh_count=row.refresh_count + 1,
            )
        log.info("provider_token_refreshed", provider=self.provider,
                 fingerprint=self.key[:12], expires_in=issued.expires_in,
                 replaced_stale=stale is not None)
        return _Entry(issued.access_token, expires_at.timestamp(), now.timestamp())


def purge_expired_tokens(older_than: timedelta = timedelta(days=1)) -> int:
    """Delete token rows expired for longer than ``older_than`` (rows of credential sets
    no longer used accumulate otherwise). Returns how many were deleted."""
    cutoff = datetime.now(UTC) - older_than
    deleted, _ = ProviderToken.objects.filter(expires_at__lt=cutoff).delete()
    return deleted
