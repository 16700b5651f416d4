"""On PostgreSQL: a client pages through the science API's catalogue while other threads
vote, rescore every candidate and ingest candidates on both sides of the cursor. Every row
that existed when paging began is served exactly once, in detectid order."""

import random
import threading

import pytest
from django.db import connection

from labelapp.models import Candidate, CandidateScore, ConsensusState, ModelVersion, Vote
from tests.factories_science import make_token
from tests.factories_volunteers import make_candidates, make_volunteer

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def test_pages_stay_exact_under_concurrent_writes(client, settings):
    settings.SCIENCE_API_RATE = (100_000, 60)
    cands = make_candidates(300, first_id=2_000_000)
    batch = cands[0].batch
    mv = ModelVersion.objects.create(status="promoted", label_source="truth", directory="/x")
    CandidateScore.objects.bulk_create(
        CandidateScore(model_version=mv, candidate=c, prob=0.5, entropy=1, bald=0) for c in cands
    )
    original = {c.detectid for c in cands}
    secret = make_token().secret
    stop = threading.Event()
    errors: list[BaseException] = []
    written = {"before": [], "behind": [], "after": [], "rescores": 0}
    first_page = threading.Event()  # set once the cursor is past every "before" detectid

    def writer(seed: int):
        rng = random.Random(seed)
        volunteer = make_volunteer()
        row = 10_000 * (seed + 1)
        try:
            while not stop.is_set():
                c = rng.choice(cands)
                Vote.objects.get_or_create(volunteer=volunteer, candidate=c, answer="yes")
                ConsensusState.objects.update_or_create(
                    candidate=c, defaults={"posterior": rng.random(), "n_votes": 1}
                )
                CandidateScore.objects.filter(model_version=mv).update(prob=rng.random())
                side = rng.choice(("before", "after"))
                d = (1_000_000 if side == "before" else 3_000_000) + row
                behind = side == "before" and first_page.is_set()  # checked before inserting
                Candidate.objects.create(
                    detectid=d, batch=batch, row=row, shotid=1, field="cosmos", ra=150,
                    dec=2, wave=4100, flux=1, flux_err=1, linewidth=3, sn=5, chi2=1,
                )  # fmt: skip
                written[side].append(d)
                if behind:
                    written["behind"].append(d)
                written["rescores"] += 1
                row += 1
        except BaseException as exc:
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    seen, after = [], None
    try:
        while True:
            q = {"limit": 7} | ({"after": after} if after is not None else {})
            resp = client.get("/api/science/v1/catalogue", q, HTTP_AUTHORIZATION=f"Bearer {secret}")
            assert resp.status_code == 200, resp.content
            body = resp.json()
            seen += [r["detectid"] for r in body["rows"]]
            if seen and seen[-1] >= min(original):
                first_page.set()
            after = body["next_after"]
            if after is None:
                break
    finally:
        stop.set()
        for t in threads:
            t.join(30)
    assert errors == []
    assert written["rescores"] > 5 and written["behind"], written  # writes did interleave
    assert len(seen) == len(set(seen)), "a row was served twice"
    assert original <= set(seen), "a row was skipped"
    assert not set(written["behind"]) & set(seen)  # inserted behind the cursor: never
    assert seen == sorted(seen)
