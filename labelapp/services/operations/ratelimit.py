"""Fixed-window rate limits on the Django cache (Redis in production, file cache in the demo).

One cache round trip on the hot path. With Redis: ``INCR`` on the window's key (its first
hit also sets the expiry; several counters go in one pipeline, :func:`hit_rate_limits`),
straight on a redis-py client kept per process -- Django's cache ``incr`` asks ``EXISTS``
first and builds a new client object per call, which cost more CPU than the vote's own
SQL. Other caches: ``incr``, and the first hit of a window ``add``s the key. Fixed windows
let a burst of up to 2x the limit straddle a window boundary, which is fine for stopping
runaway scripts and double-firing clients.
"""

from __future__ import annotations

import hashlib
import re
import time
from dataclasses import dataclass
from functools import lru_cache

from django.core.cache import cache


@dataclass(frozen=True)
class RateDecision:
    allowed: bool
    count: int
    retry_after_s: int


@lru_cache(maxsize=4)
def _redis_client(location: str):
    import redis

    return redis.Redis(connection_pool=redis.ConnectionPool.from_url(location))


def _redis_for_cache():
    """A redis-py client on the default cache's (first) server, or None for other caches."""
    from django.conf import settings
    from django.core.cache import caches
    from django.core.cache.backends.redis import RedisCache

    if not isinstance(caches["default"], RedisCache):
        return None
    location = settings.CACHES["default"]["LOCATION"]
    if not isinstance(location, str):
        location = location[0]
    return _redis_client(re.split("[;,]", location)[0])


@dataclass(frozen=True)
class RateRule:
    """One counter to hit: ``limit`` events per ``window_s`` seconds for ``key``."""

    key: str
    limit: int
    window_s: int
    keep_s: int | None = None


def hit_rate_limit(
    *,
    key: str,
    limit: int,
    window_s: int,
    now: float | None = None,
    keep_s: int | None = None,
) -> RateDecision:
    """Count one event for ``key``; not ``allowed`` once ``limit`` events fell in the window.

    A window's counter expires just after the window, or after ``keep_s`` when longer (to
    read past windows back with ``window_counts``)."""
    return hit_rate_limits([RateRule(key, limit, window_s, keep_s)], now=now)[0]


def hit_rate_limits(rules: list[RateRule], *, now: float | None = None) -> list[RateDecision]:
    """:func:`hit_rate_limit` for several counters at once, one decision per rule: with
    Redis the INCRs go in one pipelined round trip (a vote counts two limits; a second round
    trip only sets the expiry of counters that a window's first event created)."""
    now = time.time() if now is None else now
    windows = [int(now // r.window_s) for r in rules]
    keys = [_window_key(r.key, w) for r, w in zip(rules, windows, strict=True)]
    client = _redis_for_cache()
    if client is not None and rules:
        full = [cache.make_key(k) for k in keys]
        pipe = client.pipeline(transaction=False)
        for k in full:
            pipe.incr(k)
        counts = pipe.execute()
        fresh = [i for i, c in enumerate(counts) if c == 1]
        if fresh:
            pipe = client.pipeline(transaction=False)
            for i in fresh:
                pipe.expire(full[i], _expire_s(rules[i]))
            pipe.execute()
    else:
        counts = [_incr_cache(k, _expire_s(r)) for k, r in zip(keys, rules, strict=True)]
    return [
        RateDecision(
            allowed=c <= r.limit, count=c, retry_after_s=int((w + 1) * r.window_s - now) + 1
        )
        for c, r, w in zip(counts, rules, windows, strict=True)
    ]


def _expire_s(rule: RateRule) -> int:
    return max(rule.window_s + 1, rule.keep_s or 0)


def _incr_cache(cache_key: str, expire_s: int) -> int:
    """INCR on a cache without Redis (the demo's file cache, tests' local memory)."""
    try:
        return cache.incr(cache_key)
    except ValueError:  # first event of this window
        if cache.add(cache_key, 1, timeout=expire_s):
            return 1
        return cache.incr(cache_key)  # another request created it in between


def _window_key(key: str, window: int) -> str:
    return f"rl:{key}:{window}"


def window_counts(*, key: str, window_s: int, first: int, last: int) -> dict[int, int]:
    """Events counted for ``key`` in windows ``first..last`` (window = int(time // window_s)),
    for windows whose counters have not expired; one cache round trip."""
    keys = {_window_key(key, w): w for w in range(first, last + 1)}
    found = cache.get_many(list(keys))
    return {keys[k]: int(v) for k, v in found.items()}


# --- Accounts: log-in lock-out after repeated failures -----------------------------------


def username_key(username: str) -> str:
    """Cache-safe key for a username as typed (any string: it comes from the form)."""
    return hashlib.sha256(username.strip().casefold().encode()).hexdigest()[:32]


def login_lockout_remaining(*, username: str, now: float | None = None) -> int:
    """Seconds until log-ins for ``username`` are accepted again; 0 when not locked."""
    until = cache.get(f"auth:lock:{username_key(username)}")
    now = time.time() if now is None else now
    return max(0, int(until - now) + 1) if until and until > now else 0


def record_login_failure(
    *, username: str, max_failures: int, window_s: int, now: float | None = None
) -> int:
    """Count a failed log-in for ``username``; at ``max_failures`` in a window, lock the
    username for ``window_s`` seconds. Returns the lock's remaining seconds (0: not locked).
    Unknown usernames count the same, so a lock says nothing about which accounts exist."""
    now = time.time() if now is None else now
    decision = hit_rate_limit(
        key=f"auth:fail:{username_key(username)}",
        limit=max_failures - 1,
        window_s=window_s,
        now=now,
    )
    if decision.allowed:
        return 0
    cache.set(f"auth:lock:{username_key(username)}", now + window_s, timeout=window_s + 1)
    return window_s
