"""Talk on real PostgreSQL + Redis: the first comments on a candidate arriving together make
one thread, new hashtags arriving together make one row each with the right count, and a
double-sent flag is recorded once."""

import pytest
from django.db import connection

from labelapp.errors import InvalidInput
from labelapp.models import Comment, Flag, Hashtag, Thread, Volunteer, Vote
from labelapp.services.community import talk
from tests.factories_console import make_account
from tests.factories_volunteers import make_candidates
from tests.threads import errors, in_threads

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def _voters(cand, n):
    users = [make_account(f"t{i}") for i in range(n)]
    for u in users:
        Vote.objects.create(volunteer=Volunteer.objects.create(user=u), candidate=cand, answer="no")
    return users


def test_first_comments_at_once_make_one_thread_and_exact_tag_counts(own_cache):
    assert connection.vendor == "postgresql"
    cand = make_candidates(1)[0]
    users = _voters(cand, 8)

    def post(i):
        return talk.post_candidate_comment(
            user=users[i], volunteer=None, detectid=cand.detectid, body=f"#brand-new #sky {i}"
        )

    results = in_threads(8, post)
    assert errors(results) == [], results
    assert Thread.objects.filter(candidate=cand).count() == 1
    thread = Thread.objects.get(candidate=cand)
    assert thread.n_comments == Comment.objects.filter(thread=thread).count() == 8
    assert dict(Hashtag.objects.values_list("name", "n_comments")) == {"brand-new": 8, "sky": 8}


def test_a_flag_sent_twice_at_once_is_recorded_once(own_cache):
    cand = make_candidates(1)[0]
    (user,) = _voters(cand, 1)

    def flag(i):
        return talk.flag_candidate(
            user=user, volunteer=None, detectid=cand.detectid, reason="interesting"
        )

    results = in_threads(4, flag)
    created = [r for r in results if isinstance(r, Flag)]
    refused = [r for r in results if isinstance(r, InvalidInput)]
    assert len(created) == 1 and len(refused) == 3, results
    assert Flag.objects.count() == 1
