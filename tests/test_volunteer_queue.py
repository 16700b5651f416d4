"""services.queue: priority order, never twice, never retired, gold mixed in by experience."""

import random

import pytest

from labelapp.models import Candidate, Vote
from labelapp.services.crowd import queue
from labelapp.services.crowd.queue import gold_rate, next_candidate, next_candidates
from tests.factories_volunteers import make_candidates, make_gold, make_volunteer

pytestmark = pytest.mark.django_db


def test_gold_rate_falls_with_experience():
    assert [gold_rate(n) for n in (0, 19, 20, 39, 40, 59, 60, 5000)] == [
        0.4, 0.4, 0.3, 0.3, 0.2, 0.2, 0.1, 0.1,
    ]  # fmt: skip


def test_highest_priority_first_and_low_sn_by_default(monkeypatch):
    monkeypatch.setattr(queue, "TOP_K", 1)
    cands = make_candidates(20)  # ingest's default priority = -sn: lowest S/N first
    assert next_candidate(volunteer=None)["detectid"] == cands[0].detectid
    Candidate.objects.filter(pk=cands[7].pk).update(priority=10)  # set by active learning
    assert next_candidate(volunteer=None)["detectid"] == cands[7].detectid


def test_picks_among_the_top_few_to_spread_volunteers():
    cands = make_candidates(50)
    top = {c.detectid for c in cands[: queue.TOP_K]}
    picks = {next_candidate(volunteer=None)["detectid"] for _ in range(60)}
    assert picks <= top and len(picks) > 2


def test_never_the_same_candidate_twice_and_never_retired():
    cands = make_candidates(30)
    Candidate.objects.filter(pk__in=[c.pk for c in cands[::3]]).update(status="retired")
    Candidate.objects.filter(pk=cands[1].pk).update(status="expert")
    v = make_volunteer()
    seen = []
    while (row := next_candidate(volunteer=v)) is not None:
        seen.append(row["detectid"])
        Vote.objects.create(volunteer=v, candidate_id=row["id"], answer="yes")
    active = Candidate.objects.filter(status="active").values_list("detectid", flat=True)
    assert sorted(seen) == sorted(active) and len(seen) == len(set(seen)) == 19


def test_exclude_keeps_what_the_page_already_holds():
    cands = make_candidates(3)
    held = [cands[0].detectid, cands[1].detectid]
    assert next_candidate(volunteer=None, exclude=held)["detectid"] == cands[2].detectid
    assert next_candidate(volunteer=None, exclude=[c.detectid for c in cands]) is None


def test_count_returns_distinct_candidates():
    make_candidates(10)
    rows = next_candidates(volunteer=None, count=3)
    assert len({r["detectid"] for r in rows}) == 3


def _gold_share(volunteer, n_votes, trials=400):
    volunteer.n_votes = n_votes
    rng = random.Random(1)
    gold = 0
    for _ in range(trials):
        row = next_candidates(volunteer=volunteer, rng=rng)[0]
        gold += row["detectid"] >= 9_000_000
    return gold / trials


def test_gold_is_mixed_in_at_the_experience_rate():
    make_candidates(40)
    for c in make_candidates(40, first_id=9_000_000):
        make_gold(c, is_real=c.pk % 2 == 0)
    v = make_volunteer()
    assert 0.32 < _gold_share(v, 0) < 0.48
    assert 0.05 < _gold_share(v, 100) < 0.15


def test_gold_never_repeats_and_regular_queue_skips_gold():
    regular = make_candidates(5)
    golds = make_candidates(3, first_id=9_000_000)
    for c in golds:
        make_gold(c, is_real=True)
    v = make_volunteer()
    Vote.objects.bulk_create(
        [Vote(volunteer=v, candidate=c, answer="yes", was_gold=True) for c in golds]
    )
    rows = [next_candidate(volunteer=v)["detectid"] for _ in range(30)]
    assert set(rows) <= {c.detectid for c in regular}
    # with no volunteer history, a regular pick never returns a gold candidate
    ids = list(queue.queue_queryset(volunteer=None).values_list("detectid", flat=True))
    assert set(ids) == {c.detectid for c in regular}


def test_retired_gold_is_not_shown():
    make_candidates(2)
    g = make_candidates(1, first_id=9_000_000)[0]
    make_gold(g, is_real=True)
    Candidate.objects.filter(pk=g.pk).update(status="retired")
    v = make_volunteer()
    assert all(next_candidate(volunteer=v)["detectid"] != g.detectid for _ in range(30))


@pytest.mark.parametrize("n_exclude", [0, 1, 3])
@pytest.mark.parametrize("with_volunteer", [False, True])
def test_the_hot_path_runs_the_very_sql_of_the_querysets(n_exclude, with_volunteer):
    """queue._compiled caches the querysets' SQL per shape; what runs is what EXPLAIN checks."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    cands = make_candidates(12)
    v = make_volunteer() if with_volunteer else None
    exclude = [c.detectid for c in cands[:n_exclude]]
    with CaptureQueriesContext(connection) as ctx:
        rows = queue._run("regular", v, exclude)
    expected = queue.queue_queryset(volunteer=v, exclude=exclude).values(*queue.QUEUE_FIELDS)
    with CaptureQueriesContext(connection) as orm:
        expected = list(expected[: queue.TOP_K])
    assert ctx.captured_queries[0]["sql"] == orm.captured_queries[0]["sql"]
    assert [dict(zip(queue.QUEUE_FIELDS, r, strict=True)) for r in rows] == expected


def test_gold_is_still_found_when_the_random_sample_holds_none(monkeypatch):
    monkeypatch.setattr(queue, "GOLD_SAMPLE", 1)
    golds = make_candidates(6, first_id=9_000_000)
    for c in golds:
        make_gold(c, is_real=True)
    v = make_volunteer()
    Vote.objects.bulk_create(
        [Vote(volunteer=v, candidate=c, answer="yes", was_gold=True) for c in golds[:5]]
    )
    # the sample of one is almost always a seen one; the exhaustive query finds the last
    picks = {queue._gold(v, [])["detectid"] for _ in range(20)}
    assert picks == {golds[5].detectid}
    Vote.objects.create(volunteer=v, candidate=golds[5], answer="yes", was_gold=True)
    assert queue._gold(v, []) is None


def test_gold_pick_is_spread_over_the_unseen_gold():
    golds = make_candidates(10, first_id=9_000_000)
    for c in golds:
        make_gold(c, is_real=True)
    v = make_volunteer()
    picks = [queue._gold(v, [golds[0].detectid])["detectid"] for _ in range(200)]
    assert golds[0].detectid not in picks
    assert len(set(picks)) >= 8  # all 9 others, but for bad luck


def test_a_seeded_generator_makes_the_queue_reproducible():
    import random

    from labelapp.services.crowd.queue import next_candidates
    from tests.factories_volunteers import make_candidates, make_gold, make_volunteer

    cands = make_candidates(40)
    for c in cands[30:]:
        make_gold(c, is_real=True)
    v = make_volunteer()

    def draw(seed):
        rng = random.Random(seed)
        return [next_candidates(volunteer=v, count=1, rng=rng)[0]["detectid"] for _ in range(25)]

    assert draw(3) == draw(3)
    assert draw(3) != draw(4)
