"""Volunteer votes on real PostgreSQL + Redis: concurrent double submits, the queue's plan,
and the Redis rate limiter."""

import uuid

import pytest
from django.db import connection

from labelapp.models import Candidate, IngestBatch, Volunteer, Vote
from labelapp.services.bulk import insert_rows
from labelapp.services.crowd.queue import TOP_K, queue_queryset
from labelapp.services.crowd.votes import CandidateNotInQueue, submit_vote
from labelapp.services.operations.ratelimit import hit_rate_limit
from tests.factories_volunteers import make_candidates, make_volunteer
from tests.threads import errors, in_threads

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def test_double_submit_from_many_threads_records_one_vote():
    assert connection.vendor == "postgresql"
    c = make_candidates(1)[0]
    v = make_volunteer()

    def vote(i):
        volunteer = Volunteer.objects.get(pk=v.pk)  # each "tab" loads its own copy
        return submit_vote(volunteer=volunteer, detectid=c.detectid, answer="yes")

    results = in_threads(8, vote)
    assert errors(results) == [], results
    assert sum(r.created for r in results) == 1
    assert len({r.vote.pk for r in results}) == 1
    assert Vote.objects.count() == 1
    assert Volunteer.objects.get(pk=v.pk).n_votes == 1


def test_a_vote_is_five_statements_and_counts_once():
    """On PostgreSQL the vote's INSERT and its volunteer's counters are one statement (a
    data-modifying WITH): candidate, insert + counters, consensus lock, evidence, state.
    The counters move only when the vote was stored, and the in-memory volunteer agrees
    with the row."""
    from django.test.utils import CaptureQueriesContext

    from labelapp.services.crowd.consensus import proof_min_checks
    from tests.factories_volunteers import make_gold

    a, b = make_candidates(2)
    make_gold(b, is_real=True, exam=True)
    v = make_volunteer()
    proof_min_checks()
    with CaptureQueriesContext(connection) as q:
        submit_vote(volunteer=v, detectid=a.detectid, answer="unsure")
    sql = [x["sql"] for x in q.captured_queries]
    control = ("BEGIN", "SAVEPOINT", "RELEASE", "COMMIT")
    statements = [s for s in sql if not s.startswith(control)]
    assert len(statements) == 5, sql
    assert statements[1].startswith("WITH ins AS (INSERT INTO"), sql
    submit_vote(volunteer=v, detectid=b.detectid, answer="yes")  # exam gold, right
    again = submit_vote(volunteer=v, detectid=b.detectid, answer="no")  # a repeat
    assert not again.created
    row = Volunteer.objects.get(pk=v.pk)
    for name in ("n_votes", "n_unsure", "n_gold", "n_gold_correct", "n_exam", "n_exam_correct",
                 "streak_days", "best_streak_days", "last_active_day"):  # fmt: skip
        assert getattr(row, name) == getattr(v, name), name
    assert (row.n_votes, row.n_unsure, row.n_exam, row.n_exam_correct) == (2, 1, 1, 1)
    assert row.streak_days == 1 and Vote.objects.filter(volunteer=v).count() == 2


def test_many_volunteers_voting_at_once_on_the_same_candidates():
    cands = make_candidates(5)
    volunteers = [make_volunteer() for _ in range(6)]

    def vote(i):
        out = []
        for c in cands:
            try:
                out.append(submit_vote(volunteer=volunteers[i], detectid=c.detectid, answer="no"))
            except CandidateNotInQueue:  # retired by the others' votes meanwhile: a clean 409
                out.append(None)
        return out

    results = in_threads(6, vote)
    assert errors(results) == [], results
    recorded = [r for per in results for r in per if r is not None]
    assert all(r.created for r in recorded)
    assert Vote.objects.count() == len(recorded) >= 5
    for v, per in zip(volunteers, results, strict=True):
        assert Volunteer.objects.get(pk=v.pk).n_votes == sum(r is not None for r in per)


def test_next_candidate_query_uses_the_queue_index_not_a_scan():
    n = 50_000
    batch = IngestBatch.objects.create(
        name="plan", file_sha256="f" * 64, source_path="-", file_format="fits",
        n_candidates=n, store_path="-", store_dtype="float16",
    )  # fmt: skip
    fields = (
        "detectid", "batch", "row", "shotid", "field", "ra", "dec", "wave", "flux",
        "flux_err", "linewidth", "continuum", "sn", "chi2", "apcor", "status", "priority",
    )  # fmt: skip
    rows = (
        (10**8 + i, batch.pk, i, 1, "cosmos", 150.0, 2.2, 4000.0, 10.0, 2.0, 3.0, 0.0,
         4.8 + (i % 1000) / 250, 1.0, 1.0, "retired" if i % 3 == 0 else "active", -(i % 977))
        for i in range(n)
    )  # fmt: skip
    insert_rows(Candidate, fields, rows)
    v = make_volunteer()
    top = queue_queryset(volunteer=None).values_list("id", flat=True)[:30]
    Vote.objects.bulk_create([Vote(volunteer=v, candidate_id=i, answer="yes") for i in top])
    with connection.cursor() as cur:
        cur.execute("ANALYZE")
    qs = queue_queryset(volunteer=v, exclude=[1, 2]).values("id", "detectid")[:TOP_K]
    plan = qs.explain()
    assert "candidate_queue" in plan, plan
    assert "Seq Scan on labelapp_candidate" not in plan, plan
    assert "Seq Scan on labelapp_vote" not in plan, plan
    assert "Sort" not in plan, plan  # the order comes from the index, not a sort
    rows = list(qs)
    assert len(rows) == TOP_K and not set(r["id"] for r in rows) & set(top)


def test_level_one_queue_reads_only_high_sn_rows_from_the_index():
    """Level 1 is served S/N > 5.5 only while the queue puts low S/N first: the regime is in
    the index key, so the low-S/N rows in front are never read (1.1 s at 2.5 M without)."""
    n = 60_000
    batch = IngestBatch.objects.create(
        name="regime", file_sha256="e" * 64, source_path="-", file_format="fits",
        n_candidates=n, store_path="-", store_dtype="float16",
    )  # fmt: skip
    fields = (
        "detectid", "batch", "row", "shotid", "field", "ra", "dec", "wave", "flux",
        "flux_err", "linewidth", "continuum", "sn", "chi2", "apcor", "status", "priority",
    )  # fmt: skip
    sn = [4.8 + 3.0 * i / n for i in range(n)]  # priority = -sn: every low-S/N row first
    rows = (
        (2 * 10**8 + i, batch.pk, i, 1, "cosmos", 150.0, 2.2, 4000.0, 10.0, 2.0, 3.0, 0.0,
         sn[i], 1.0, 1.0, "active", -sn[i])
        for i in range(n)
    )  # fmt: skip
    insert_rows(Candidate, fields, rows)
    with connection.cursor() as cur:
        cur.execute("ANALYZE")
    v = make_volunteer()
    qs = queue_queryset(volunteer=v, level=1).values("id", "sn")[:TOP_K]
    plan = qs.explain(analyze=True)
    assert "candidate_queue_regime" in plan, plan
    assert "Rows Removed by Filter" not in plan, plan  # an index condition, not a filter
    got = list(qs)
    assert len(got) == TOP_K and all(r["sn"] > 5.5 for r in got)
    assert min(r["sn"] for r in got) == min(s for s in sn if s > 5.5)  # the queue's order


def test_rate_limit_counts_in_redis():
    from django.conf import settings

    assert settings.CACHES["default"]["BACKEND"].endswith("RedisCache")
    key = f"test:{uuid.uuid4()}"
    decisions = [hit_rate_limit(key=key, limit=2, window_s=60) for _ in range(3)]
    assert [d.allowed for d in decisions] == [True, True, False]
    assert decisions[-1].count == 3
