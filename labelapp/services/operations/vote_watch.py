"""Warn when volunteers are on the site but no votes arrive (votes silently lost).

Signal of activity: the next-candidate API counts its requests per minute in the cache
(``note_volunteer_activity``: one cache INCR, the rate-limit counters' fast path). A beat task
(``labelapp.tasks.check_vote_flow``) calls ``check_vote_flow`` every few minutes: if at least
``min_requests`` requests fell in the complete minutes of the last ``active_s`` seconds and
the newest stored vote is older than ``stall_s`` seconds, it logs a WARNING. Every result is
kept in the cache, where ``/healthz`` shows it (``last_vote_flow``). The current minute is
left out of the count, so volunteers who have just arrived have had time to vote.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from dataclasses import asdict, dataclass

from django.conf import settings
from django.core.cache import cache

from labelapp.models import Vote
from labelapp.services.operations.ratelimit import hit_rate_limit, window_counts

log = logging.getLogger(__name__)

ACTIVITY_KEY = "vote_watch:next"
STATUS_KEY = "vote_watch:status"
BUCKET_S = 60


@dataclass(frozen=True)
class VoteFlow:
    status: str  # "ok" (votes arriving), "idle" (nobody asking), "stalled" (the warning)
    checked_at: str  # ISO 8601, UTC
    requests: int  # next-candidate requests counted in the active window
    last_vote_at: str | None
    last_vote_age_s: float | None
    message: str

    @property
    def ok(self) -> bool:
        return self.status != "stalled"


def note_volunteer_activity(*, now: float | None = None) -> None:
    """Count one next-candidate request in this minute's bucket (kept for the watch window)."""
    hit_rate_limit(
        key=ACTIVITY_KEY,
        limit=2**62,
        window_s=BUCKET_S,
        now=now,
        keep_s=settings.VOTE_WATCH_ACTIVE_S + 2 * BUCKET_S,
    )


def recent_requests(*, active_s: int, now: float | None = None) -> int:
    """Next-candidate requests in the complete minutes of the last ``active_s`` seconds."""
    now = time.time() if now is None else now
    current = int(now // BUCKET_S)
    first = int((now - active_s) // BUCKET_S)
    counts = window_counts(key=ACTIVITY_KEY, window_s=BUCKET_S, first=first, last=current - 1)
    return sum(counts.values())


def newest_vote_at() -> dt.datetime | None:
    """When the newest vote was stored: the highest id (an index lookup, not a scan)."""
    return Vote.objects.order_by("-pk").values_list("created_at", flat=True).first()


def check_vote_flow(
    *,
    now: float | None = None,
    active_s: int | None = None,
    stall_s: int | None = None,
    min_requests: int | None = None,
) -> VoteFlow:
    """Compare activity with stored votes; log a WARNING and record the result when stalled."""
    now = time.time() if now is None else now
    active_s = settings.VOTE_WATCH_ACTIVE_S if active_s is None else active_s
    stall_s = settings.VOTE_WATCH_STALL_S if stall_s is None else stall_s
    min_requests = settings.VOTE_WATCH_MIN_REQUESTS if min_requests is None else min_requests
    requests = recent_requests(active_s=active_s, now=now)
    last = newest_vote_at()
    age = None if last is None else round(now - last.timestamp(), 1)
    if requests < min_requests:
        status = "idle"
        message = f"{requests} next-candidate request(s) in the last {active_s} s: quiet"
    elif age is not None and age <= stall_s:
        status = "ok"
        message = f"{requests} requests in the last {active_s} s; newest vote {age:.0f} s ago"
    else:
        status = "stalled"
        since = "no vote stored yet" if age is None else f"newest vote {age:.0f} s ago"
        message = (
            f"votes have stopped: {requests} next-candidate requests in the last {active_s} s "
            f"but {since} (limit {stall_s} s). Check the vote API's errors, the database and "
            "the web logs."
        )
        log.warning("vote flow stalled: %s", message)
    flow = VoteFlow(
        status=status,
        checked_at=dt.datetime.fromtimestamp(now, tz=dt.UTC).isoformat(),
        requests=requests,
        last_vote_at=None if last is None else last.isoformat(),
        last_vote_age_s=age,
        message=message,
    )
    # Kept for two check intervals past the next one: an old result is shown as such.
    cache.set(STATUS_KEY, asdict(flow), timeout=max(3 * settings.VOTE_WATCH_INTERVAL_S, 600))
    return flow


def last_vote_flow() -> dict:
    """The latest check for /healthz: never raises (the cache may be down)."""
    try:
        flow = cache.get(STATUS_KEY)
    except Exception as exc:
        return {"ok": True, "status": "unknown", "error": str(exc)[:200]}
    if flow is None:
        return {"ok": True, "status": "unchecked", "message": "no recent vote-flow check"}
    return {"ok": flow["status"] != "stalled", **flow}
