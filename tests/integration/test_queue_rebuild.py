"""On PostgreSQL: volunteers keep getting candidates while the queue is rebuilt."""

import threading

import numpy as np
import pytest
from django.db import connection

from labelapp.models import Candidate, CandidateScore, ModelVersion, Round
from labelapp.services.crowd.queue import next_candidate
from labelapp.services.learning.promotion import promote_model
from labelapp.services.learning.rounds import acquisition_config, start_round
from tests.factories_volunteers import make_candidates, make_volunteer
from tests.threads import errors, in_threads

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def test_queue_is_never_empty_during_rebuilds():
    cands = make_candidates(3000)
    version = ModelVersion.objects.create(label_source="truth", directory="/x")
    promote_model(model_version=version, reason="test")
    rng = np.random.default_rng(0)
    CandidateScore.objects.bulk_create(
        [
            CandidateScore(
                model_version=version, candidate=c, prob=float(p), entropy=0, bald=float(b)
            )
            for c, p, b in zip(cands, rng.random(len(cands)), rng.random(len(cands)), strict=True)
        ]
    )
    volunteer = make_volunteer()
    empty, served, stop = [], [], threading.Event()

    def reader():
        try:
            while not stop.is_set():
                row = next_candidate(volunteer=volunteer)
                (served if row else empty).append(row)
        finally:
            connection.close()

    readers = [threading.Thread(target=reader) for _ in range(3)]
    for t in readers:
        t.start()
    for k in range(4):
        start_round(
            model_version=version,
            config=acquisition_config(batch_size=200, seed=k, diversity="none"),
        )
    stop.set()
    for t in readers:
        t.join(60)
    assert empty == [] and len(served) > 10
    # and the rebuild did change the order: the last round's batch is at the front
    assert Candidate.objects.order_by("-priority").first().rounds.exists()


def test_twin_start_round_requests_racing_open_one_round():
    """Two workers holding the same start_round message (a redelivery while the first still
    runs) race on PostgreSQL: the open round's row lock serialises them and the second
    returns the round the first opened."""
    make_candidates(500)
    start_round(model_version=None)  # an open round for both to close
    results = in_threads(4, lambda i: start_round(model_version=None, request_key="same-task").pk)
    assert errors(results) == [], results
    assert len(set(results)) == 1 and len(results) == 4
    assert Round.objects.count() == 2
    assert list(Round.objects.filter(status="open").values_list("pk", flat=True)) == results[:1]
