"""Fixed-window rate limits on the Django cache (Redis in production, file cache in the demo).

One cache round trip on the hot path: ``incr`` on the window's key; only the first hit of a
window also ``add``s it. Fixed windows let a burst of up to 2x the limit straddle a window
boundary, which is fine for stopping runaway scripts and double-firing clients.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from django.core.cache import cache


@dataclass(frozen=True)
class RateDecision:
    allowed: bool
    count: int
    retry_after_s: int


def hit_rate_limit(
    *, key: str, limit: int, window_s: int, now: float | None = None
) -> RateDecision:
    """Count one event for ``key``; not ``allowed`` once ``limit`` events fell in the window."""
    now = time.time() if now is None else now
    window = int(now // window_s)
    cache_key = f"rl:{key}:{window}"
    try:
        count = cache.incr(cache_key)
    except ValueError:  # first event of this window
        if cache.add(cache_key, 1, timeout=window_s + 1):
            count = 1
        else:  # another request created it in between
            count = cache.incr(cache_key)
    retry_after = int((window + 1) * window_s - now) + 1
    return RateDecision(allowed=count <= limit, count=count, retry_after_s=retry_after)
