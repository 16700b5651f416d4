"""On PostgreSQL: votes arriving from many threads while batch aggregation runs lose nothing."""

import random
import threading

import pytest
from django.db import connection
from django.db.models import Count, Sum

from labelapp.models import ConsensusState, Label, Vote
from labelapp.services.crowd.aggregation import aggregate_votes
from labelapp.services.crowd.votes import submit_vote
from tests.factories_volunteers import make_candidates, make_volunteer

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def test_concurrent_votes_and_aggregation_lose_no_vote(settings):
    settings.RETIRE_MAX_VOTES = 1000  # keep every candidate open to votes
    settings.RETIRE_P_HI, settings.RETIRE_P_LO = 1 - 1e-12, 1e-12
    settings.VOTE_RATE_LIMIT = 100_000
    cands = make_candidates(12)
    volunteers = [make_volunteer() for _ in range(24)]
    errors: list[BaseException] = []
    stop = threading.Event()

    def voter(vols):
        rng = random.Random(vols[0].pk)
        try:
            for v in vols:
                order = cands[:]
                rng.shuffle(order)
                for c in order:
                    submit_vote(volunteer=v, detectid=c.detectid, answer=rng.choice(["yes", "no"]))
        except BaseException as exc:
            errors.append(exc)
        finally:
            connection.close()

    def aggregator():
        try:
            while not stop.is_set():
                aggregate_votes(retire=False)
        except BaseException as exc:
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=voter, args=(volunteers[i::4],)) for i in range(4)]
    agg = threading.Thread(target=aggregator)
    agg.start()
    for t in threads:
        t.start()
    for t in threads:
        t.join(180)
    stop.set()
    agg.join(180)
    assert errors == []
    assert Vote.objects.count() == 24 * 12
    per_candidate = dict(Vote.objects.values_list("candidate").annotate(n=Count("id")))
    live = dict(ConsensusState.objects.values_list("candidate_id", "n_votes"))
    assert live == per_candidate  # every vote reached its candidate's live posterior
    final = aggregate_votes(retire=False)
    assert Label.objects.filter(run=final).aggregate(n=Sum("n_votes"))["n"] == 24 * 12
