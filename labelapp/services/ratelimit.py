"""Fixed-window rate limits on the Django cache (Redis in production, file cache in the demo).

One cache round trip on the hot path. With Redis: ``INCR`` on the window's key (its first
hit also sets the expiry), straight on a redis-py client kept per process -- Django's
cache ``incr`` asks ``EXISTS`` first and builds a new client object per call, which cost
more CPU than the vote's own SQL. Other caches: ``incr``, and the first hit of a window
``add``s the key. Fixed windows let a burst of up to 2x the limit straddle a window
boundary, which is fine for stopping runaway scripts and double-firing clients.
"""

from __future__ import annotations

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


def hit_rate_limit(
    *, key: str, limit: int, window_s: int, now: float | None = None
) -> RateDecision:
    """Count one event for ``key``; not ``allowed`` once ``limit`` events fell in the window."""
    now = time.time() if now is None else now
    window = int(now // window_s)
    cache_key = f"rl:{key}:{window}"
    client = _redis_for_cache()
    if client is not None:
        full_key = cache.make_key(cache_key)
        count = client.incr(full_key)
        if count == 1:
            client.expire(full_key, window_s + 1)
    else:
        try:
            count = cache.incr(cache_key)
        except ValueError:  # first event of this window
            if cache.add(cache_key, 1, timeout=window_s + 1):
                count = 1
            else:  # another request created it in between
                count = cache.incr(cache_key)
    retry_after = int((window + 1) * window_s - now) + 1
    return RateDecision(allowed=count <= limit, count=count, retry_after_s=retry_after)
