"""Who may call the service and how much: API keys, per-key token buckets and concurrency caps.

Keys come from a file (one per line, ``name:key`` or a bare key; lines starting with ``#`` are
comments) and from
``REPOCTX_API_KEYS`` (comma-separated, same forms). Only their SHA-256 digests are kept in
memory; a presented key is hashed and compared against every digest with
`hmac.compare_digest`, so neither the comparison nor the loop ends early on a partial match.
The key's *name* is the tenant: rate limits, concurrency caps, completion caches and token
metrics are kept per name. A bare key gets the name ``key-<first 8 hex digits of its hash>``.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import math
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from repoctx.config import ConfigError

from .settings import ServiceSettings, is_loopback

log = logging.getLogger("repoctx.service")

ANONYMOUS = "anonymous"
"""The tenant of every request when no keys are configured (loopback only); no key may take
this name, since a service without keys lets its one user read every shared repository."""


def _digest(key: str) -> bytes:
    return hashlib.sha256(key.encode("utf-8")).digest()


@dataclass(frozen=True)
class _Entry:
    name: str
    digest: bytes


class KeyStore:
    """API keys held as SHA-256 digests, each with a tenant name."""

    def __init__(self, entries: Iterable[_Entry] = ()) -> None:
        self._entries: tuple[_Entry, ...] = tuple(entries)

    @classmethod
    def from_lines(cls, lines: Iterable[str], where: str = "keys") -> "KeyStore":
        entries: list[_Entry] = []
        names: dict[str, int] = {}
        for number, raw in enumerate(lines, 1):
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            name, sep, key = line.partition(":")
            if not sep:
                key = name
                name = ""
            name, key = name.strip(), key.strip()
            if not key:
                raise ConfigError(f"{where}, line {number}: empty key")
            if len(key) < 16:
                raise ConfigError(f"{where}, line {number}: a key must be at least 16 characters")
            digest = _digest(key)
            name = name or f"key-{digest.hex()[:8]}"
            if name == ANONYMOUS:
                raise ConfigError(f"{where}, line {number}: the key name {ANONYMOUS!r} is reserved for requests "
                                  f"to a service without keys; give this key another name")
            if name in names:
                raise ConfigError(f"{where}, line {number}: key name {name!r} is used twice (also line {names[name]})")
            names[name] = number
            entries.append(_Entry(name, digest))
        return cls(entries)

    @classmethod
    def from_settings(cls, settings: ServiceSettings) -> "KeyStore":
        """The keys of ``settings.api_keys_file`` and ``REPOCTX_API_KEYS`` together."""
        lines: list[str] = []
        if settings.api_keys_file:
            path = Path(settings.api_keys_file).expanduser()
            try:
                lines = path.read_text(encoding="utf-8").splitlines()
            except OSError as exc:
                raise ConfigError(f"cannot read the API keys file {path}: {exc}") from exc
        store = cls.from_lines(lines, where=str(settings.api_keys_file or "keys"))
        env_store = cls.from_lines(settings.extra_keys, where="REPOCTX_API_KEYS")
        taken = {e.name for e in store._entries}
        for entry in env_store._entries:
            if entry.name in taken:
                raise ConfigError(f"REPOCTX_API_KEYS: key name {entry.name!r} is also in the keys file")
        return cls(store._entries + env_store._entries)

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def names(self) -> list[str]:
        return [entry.name for entry in self._entries]

    def authenticate(self, presented: str | None) -> str | None:
        """The tenant name of a presented key, or None. Compares against every key in constant time."""
        if not presented:
            return None
        digest = _digest(presented)
        found: str | None = None
        for entry in self._entries:
            if hmac.compare_digest(entry.digest, digest):
                found = entry.name
        return found


def presented_key(headers: dict[str, str]) -> str | None:
    """The key of ``Authorization: Bearer <key>`` or ``X-API-Key: <key>``."""
    auth = headers.get("authorization", "")
    scheme, _, value = auth.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    value = headers.get("x-api-key", "").strip()
    return value or None


def check_startup(settings: ServiceSettings, keys: KeyStore) -> list[str]:
    """Refuse to serve without keys on a non-loopback host unless explicitly allowed; return warnings."""
    warnings: list[str] = []
    if len(keys):
        return warnings
    if is_loopback(settings.host):
        warnings.append(
            f"no API keys configured: serving {settings.host} without authentication "
            f"(loopback only; set api_keys_file or REPOCTX_API_KEYS for a shared service)"
        )
        return warnings
    if not settings.insecure_no_auth:
        raise ConfigError(
            f"no API keys configured and host {settings.host!r} is reachable from other machines: refusing to start. "
            f"Give keys (service.api_keys_file or REPOCTX_API_KEYS), bind 127.0.0.1, or pass --insecure-no-auth"
        )
    warnings.append(f"--insecure-no-auth: anyone who can reach {settings.host}:{settings.port} may use this service")
    return warnings


class RateLimiter:
    """A token bucket per tenant: `burst` requests at once, refilled at `per_minute`."""

    def __init__(self, per_minute: float, burst: int, clock=time.monotonic) -> None:
        self.rate = per_minute / 60.0
        self.burst = max(1, burst)
        self._clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}  # tenant -> (tokens, last refill)
        self._lock = threading.Lock()

    def take(self, tenant: str) -> float:
        """0 if the request may go ahead (a token is spent), else the seconds until one is available."""
        if self.rate <= 0:
            return 0.0
        now = self._clock()
        with self._lock:
            tokens, last = self._buckets.get(tenant, (float(self.burst), now))
            tokens = min(float(self.burst), tokens + (now - last) * self.rate)
            if tokens >= 1.0:
                self._buckets[tenant] = (tokens - 1.0, now)
                return 0.0
            self._buckets[tenant] = (tokens, now)
            return (1.0 - tokens) / self.rate


class ConcurrencyLimiter:
    """At most `limit` requests of one tenant in flight at once (0 = no limit)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._active: dict[str, int] = {}
        self._lock = threading.Lock()

    def acquire(self, tenant: str) -> bool:
        with self._lock:
            count = self._active.get(tenant, 0)
            if self.limit and count >= self.limit:
                return False
            self._active[tenant] = count + 1
            return True

    def release(self, tenant: str) -> None:
        with self._lock:
            count = self._active.get(tenant, 0) - 1
            if count > 0:
                self._active[tenant] = count
            else:
                self._active.pop(tenant, None)

    def active(self, tenant: str) -> int:
        with self._lock:
            return self._active.get(tenant, 0)


def retry_after_header(seconds: float) -> str:
    """Whole seconds, at least 1 (Retry-After takes an integer)."""
    return str(max(1, math.ceil(seconds)))
