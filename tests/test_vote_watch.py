"""The vote-stall warning: volunteers active (next-candidate requests) but no vote stored.
Time is passed in as ``now``; nothing sleeps."""

from __future__ import annotations

import datetime as dt
import itertools
import logging
import time

import pytest

from labelapp.models import Vote
from labelapp.services.operations import vote_watch
from labelapp.services.operations.health import health_report
from tests.factories_volunteers import make_candidates, make_volunteer

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("own_cache")]

T0 = 1_800_000_000.0  # a fixed "now", on a minute boundary
WATCH = {"active_s": 600, "stall_s": 900, "min_requests": 5}


def requests_at(*seconds_before_now: float, now: float = T0) -> None:
    for s in seconds_before_now:
        vote_watch.note_volunteer_activity(now=now - s)


_ids = itertools.count(7_000_000, 10)


def vote_at(seconds_before_now: float, now: float = T0) -> Vote:
    (candidate,) = make_candidates(1, first_id=next(_ids))
    vote = Vote.objects.create(volunteer=make_volunteer(), candidate=candidate, answer="yes")
    at = dt.datetime.fromtimestamp(now - seconds_before_now, tz=dt.UTC)
    Vote.objects.filter(pk=vote.pk).update(created_at=at)
    return vote


def test_quiet_site_is_idle_not_an_alarm(caplog):
    requests_at(100, 200)  # two requests: below min_requests
    flow = vote_watch.check_vote_flow(now=T0, **WATCH)
    assert flow.status == "idle" and flow.requests == 2 and flow.ok
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


def test_active_volunteers_and_no_votes_at_all_is_a_stall(caplog):
    requests_at(*range(60, 600, 60))  # one a minute for the last 9 complete minutes
    with caplog.at_level(logging.WARNING, logger="labelapp.services.operations.vote_watch"):
        flow = vote_watch.check_vote_flow(now=T0, **WATCH)
    assert flow.status == "stalled" and flow.requests == 9 and not flow.ok
    assert flow.last_vote_at is None and "no vote stored yet" in flow.message
    (warning,) = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert "vote flow stalled" in warning.getMessage()


def test_recent_vote_means_ok_and_old_vote_means_stalled():
    requests_at(*range(60, 600, 60))
    vote_at(300)
    flow = vote_watch.check_vote_flow(now=T0, **WATCH)
    assert flow.status == "ok" and flow.last_vote_age_s == pytest.approx(300, abs=1)
    Vote.objects.all().delete()
    vote_at(3600)
    flow = vote_watch.check_vote_flow(now=T0, **WATCH)
    assert flow.status == "stalled" and flow.last_vote_age_s == pytest.approx(3600, abs=1)


def test_only_requests_inside_the_active_window_count():
    requests_at(*[700] * 10)  # ten requests, but 11+ minutes ago
    assert vote_watch.check_vote_flow(now=T0, **WATCH).status == "idle"


def test_the_current_minute_is_left_out_so_new_arrivals_have_time_to_vote():
    now = T0 + 30  # 30 s into a minute
    requests_at(*[10] * 20, now=now)  # 20 requests in the last 10 seconds
    assert vote_watch.recent_requests(active_s=600, now=now) == 0
    assert vote_watch.check_vote_flow(now=now, **WATCH).status == "idle"
    assert vote_watch.recent_requests(active_s=600, now=now + 60) == 20  # a minute later


def test_healthz_shows_the_last_check_without_failing_the_site(client):
    assert health_report()["votes"]["status"] == "unchecked"
    requests_at(*range(60, 600, 60))
    vote_watch.check_vote_flow(now=T0, **WATCH)
    resp = client.get("/healthz")
    votes = resp.json()["votes"]
    assert votes["ok"] is False and votes["status"] == "stalled" and votes["requests"] == 9
    assert resp.status_code == (200 if resp.json()["database"]["ok"] else 503)  # not from votes


def test_next_candidate_api_counts_as_activity(client):
    make_candidates(3)
    for _ in range(3):
        assert client.get("/api/next/").status_code == 200
    assert vote_watch.recent_requests(active_s=600, now=time.time() + 60) == 3


def test_beat_runs_the_check_through_a_thin_task(settings):
    from labelapp.tasks import check_vote_flow

    entry = settings.CELERY_BEAT_SCHEDULE["vote-watch"]
    assert entry["task"] == "labelapp.tasks.check_vote_flow"
    assert entry["schedule"] == settings.VOTE_WATCH_INTERVAL_S
    assert check_vote_flow.apply().get() == "idle"
