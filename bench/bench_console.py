"""How fast the scientist console's pages are on a catalogue of 2.5 million candidates.

Fills a fresh PostgreSQL database (``labelapp_bench_console``, created and dropped here)
with N candidates (bench_votes.fill: COPY), a promoted model's score for every one of them,
a live consensus for a share of them, votes and volunteers, then renders each console page
in this process with Django's test client as a scientist: first with an empty cache (what
the first visitor after a cache expiry waits for) and again with the cached summaries.
Prints milliseconds per page and the queries each made. Figures only.

    python bench/bench_console.py [--candidates 2500000] [--voted 200000] [--keep]
"""

from __future__ import annotations

import argparse
import os
import sys
import time

from _util import drop_database, postgres_url

DB_NAME = "labelapp_bench_console"
PAGES = (
    ("campaign", "/console/"),
    ("volunteers", "/console/volunteers/"),
    ("models", "/console/models/"),
    ("model detail", "/console/models/{mv}/"),
    ("N(z)", "/console/redshift/"),
    ("gallery", "/console/gallery/"),
    ("gallery, low S/N", "/console/gallery/?regime=low"),
    ("exports page", "/console/exports/"),
    ("gold", "/console/gold/"),
    ("expert queue", "/console/expert/"),
    ("audit", "/console/audit/"),
    ("progress.json", "/console/progress.json"),
)


def add_scores_and_votes(n_voted: int, seed: int = 0) -> int:
    """A promoted model's score for every candidate, consensus + votes for ``n_voted``."""
    import datetime as dt

    import numpy as np
    from django.db import connection, transaction
    from django.utils import timezone

    from labelapp.models import (
        Candidate,
        CandidateScore,
        ConsensusState,
        ModelVersion,
        Volunteer,
        Vote,
    )
    from labelapp.services.bulk import insert_rows

    rng = np.random.default_rng(seed)
    t0 = time.perf_counter()
    regimes = {
        r: {"n": 1000, "tp": 400, "fp": 50, "fn": 60, "tn": 490, "balanced_accuracy": 0.9}
        for r in ("overall", "low", "high")
    }
    with transaction.atomic():
        mv = ModelVersion.objects.create(
            label_source="consensus",
            directory="(bench: no weights)",
            status=ModelVersion.Status.PROMOTED,
            card={"metrics": {"regimes": regimes}, "n_labels": n_voted},
        )
        ids = np.asarray(Candidate.objects.order_by("pk").values_list("pk", flat=True))
        chunk = 250_000
        for start in range(0, len(ids), chunk):
            part = ids[start : start + chunk]
            prob = rng.beta(0.6, 0.6, len(part))
            rows = zip(
                [mv.pk] * len(part), part.tolist(), prob.tolist(),
                (rng.random(len(part))).tolist(), (0.1 * rng.random(len(part))).tolist(),
                strict=True,
            )  # fmt: skip
            insert_rows(
                CandidateScore, ("model_version", "candidate", "prob", "entropy", "bald"), rows
            )
        print(f"  scores for {len(ids):,} candidates ({time.perf_counter() - t0:.0f} s)")
        voted = rng.choice(ids, size=min(n_voted, len(ids)), replace=False)
        now = timezone.now()
        insert_rows(
            ConsensusState,
            ("candidate", "posterior", "n_votes", "n_unsure", "updated_at"),
            zip(voted.tolist(), rng.random(len(voted)).tolist(), [3] * len(voted),
                [0] * len(voted), [now] * len(voted), strict=True),
        )  # fmt: skip
        vols = Volunteer.objects.bulk_create([Volunteer(n_votes=0) for _ in range(2000)])
        vol_ids = np.asarray([v.pk for v in vols])
        rows = []
        for k in range(3):  # three votes per voted candidate, distinct volunteers
            who = vol_ids[(np.arange(len(voted)) * 3 + k) % len(vol_ids)]
            ans = np.where(rng.random(len(voted)) < 0.5, "yes", "no")
            # spread over the last 30 days, for the votes-per-day plot
            when = [
                now - dt.timedelta(seconds=float(s)) for s in rng.uniform(0, 30 * 86400, len(voted))
            ]
            rows += list(
                zip(who.tolist(), voted.tolist(), ans.tolist(), [""] * len(voted), when,
                    [False] * len(voted), ["keyboard"] * len(voted), strict=True)
            )  # fmt: skip
        fields = ("volunteer", "candidate", "answer", "reason", "created_at", "was_gold", "client")
        insert_rows(Vote, fields, rows)
        retired = voted[: len(voted) // 2].tolist()
        for start in range(0, len(retired), 50_000):  # a statement takes 65,535 parameters
            part = retired[start : start + 50_000]
            Candidate.objects.filter(pk__in=part).update(status="retired")
    with connection.cursor() as cur:
        cur.execute("ANALYZE")
    print(f"  {len(rows):,} votes on {len(voted):,} candidates ({time.perf_counter() - t0:.0f} s)")
    return mv.pk


def measure(mv_pk: int) -> None:
    from django.contrib.auth.models import Group, User
    from django.core.cache import cache
    from django.db import connection, reset_queries
    from django.test import Client
    from django.test.utils import override_settings

    user = User.objects.create_user("bench-sci", password="x")  # noqa: S106 - bench only
    user.groups.add(Group.objects.get_or_create(name="scientists")[0])
    client = Client()
    client.force_login(user)
    cache.clear()
    print(f"{'page':>18} {'status':>6} {'cold ms':>9} {'queries':>8} {'warm ms':>9} {'queries':>8}")
    with override_settings(DEBUG=True):  # to count queries
        for name, path in PAGES:
            url = path.format(mv=mv_pk)
            row = []
            for _ in ("cold", "warm"):
                reset_queries()
                t0 = time.perf_counter()
                resp = client.get(url)
                ms = (time.perf_counter() - t0) * 1000
                row.append((resp.status_code, ms, len(connection.queries)))
            (st, cold, qc), (_, warm, qw) = row
            print(f"{name:>18} {st:>6} {cold:>9.0f} {qc:>8} {warm:>9.0f} {qw:>8}")
    print(
        "cold = empty cache (the first request after the cached summaries expire: candidate "
        "counts 60 s, gallery and spammers 5 min, N(z) a few minutes); warm = cached"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--candidates", type=int, default=2_500_000)
    parser.add_argument("--voted", type=int, default=200_000)
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args()
    db_url = postgres_url(DB_NAME)
    if db_url is None:
        sys.exit("PostgreSQL is not reachable on 127.0.0.1:5432: nothing to measure")
    os.environ.update(
        DATABASE_URL=db_url, REDIS_URL="", LABELAPP_DATA_DIR=f"/tmp/{DB_NAME}",
        DJANGO_SETTINGS_MODULE="labelapp.settings",
    )  # fmt: skip
    from bench_votes import fill

    try:
        print(f"filling {args.candidates:,} candidates ...", flush=True)
        fill(db_url, args.candidates)
        mv = add_scores_and_votes(args.voted)
        measure(mv)
    finally:
        if not args.keep:
            drop_database(DB_NAME)


if __name__ == "__main__":
    main()
