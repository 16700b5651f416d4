"""Peer credits on real PostgreSQL: they land, concurrently, and their relaxed commits
(``synchronous_commit = off``, services.crowd.peers) never leak into later transactions."""

import pytest
from django.db import connection, transaction

from labelapp.models import Volunteer
from labelapp.services.crowd.peers import credit_peers
from tests.factories_volunteers import make_volunteer
from tests.threads import errors, in_threads

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def _synchronous_commit() -> str:
    with connection.cursor() as cur:
        cur.execute("SHOW synchronous_commit")
        return cur.fetchone()[0]


def test_credits_land_and_the_connection_goes_back_to_synchronous_commits():
    assert connection.vendor == "postgresql"
    a, b = make_volunteer(), make_volunteer()
    before = _synchronous_commit()
    credit_peers([[a.pk, 1], [b.pk, 0], [a.pk, 1]], sign=+1)
    assert _synchronous_commit() == before == "on"
    a.refresh_from_db()
    b.refresh_from_db()
    assert (a.n_peer, a.n_peer_agree, b.n_peer, b.n_peer_agree) == (2, 2, 1, 0)
    credit_peers([[a.pk, 1]], sign=-1)  # taking back, as undo does
    a.refresh_from_db()
    assert (a.n_peer, a.n_peer_agree) == (1, 1)


def test_inside_an_outer_transaction_the_callers_commit_decides():
    a = make_volunteer()
    with transaction.atomic():
        credit_peers([[a.pk, 1]], sign=+1)
        assert _synchronous_commit() == "on"  # never switched inside the caller's transaction
    assert Volunteer.objects.get(pk=a.pk).n_peer == 1


def test_concurrent_credits_to_the_same_volunteers_lose_nothing():
    volunteers = [make_volunteer() for _ in range(4)]
    credits = [[v.pk, i % 2] for i, v in enumerate(volunteers)]

    def credit(i):
        for _ in range(5):
            credit_peers(credits if i % 2 else credits[::-1], sign=+1)

    results = in_threads(6, credit)
    assert errors(results) == [], results
    for i, v in enumerate(volunteers):
        v.refresh_from_db()
        assert v.n_peer == 30 and v.n_peer_agree == 30 * (i % 2)
