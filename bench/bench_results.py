"""How fast the public results page is on a large catalogue (default 2.5 million candidates).

Fills a fresh PostgreSQL database the way bench_console.py does (candidates by COPY, a
promoted model's score for each, a live consensus, three votes each and a retirement event
for a share of them), then measures, in this process with Django's test client as an
anonymous visitor: the live counts alone (no cache), and the page with an empty cache (the
first visitor after the cached summaries expire: the N(z) is then only asked of a worker),
then warm, and the worker's rebuild of the N(z) copy on its own. Prints milliseconds and the
queries each made. Figures only.

    python bench/bench_results.py [--candidates 2500000] [--voted 120000] [--db NAME] [--keep]
"""

from __future__ import annotations

import argparse
import time

from _util import django_on_fresh_database, drop_database


def add_retirements(n: int) -> None:
    """A retirement event for each retired candidate, spread over the last 30 days."""
    import datetime as dt

    import numpy as np
    from django.db import connection
    from django.utils import timezone

    from labelapp.models import Candidate, RetirementEvent
    from labelapp.services.bulk import insert_rows

    ids = list(Candidate.objects.filter(status="retired").values_list("pk", flat=True)[:n])
    now = timezone.now()
    ages = np.sort(np.random.default_rng(1).uniform(0, 30 * 86400, len(ids)))[::-1]
    rows = [
        (cid, "active", "retired", "confident", 0.99, 3, now - dt.timedelta(seconds=float(a)))
        for cid, a in zip(ids, ages, strict=True)
    ]  # oldest first, as they are written
    fields = ("candidate", "from_status", "to_status", "reason", "posterior", "n_votes",
              "created_at")  # fmt: skip
    insert_rows(RetirementEvent, fields, rows)
    with connection.cursor() as cur:
        cur.execute("ANALYZE")
    print(f"  {len(rows):,} retirement events")


def measure() -> None:
    from django.core.cache import cache
    from django.db import connection, reset_queries
    from django.test import Client
    from django.test.utils import override_settings

    from labelapp.selectors.results import live_counts
    from labelapp.services.science.public_nz import refresh_public_nz

    client = Client()
    cache.clear()
    with override_settings(DEBUG=True):  # to count queries
        for _ in range(2):
            reset_queries()
            t0 = time.perf_counter()
            counts = live_counts(use_cache=False)
            ms = (time.perf_counter() - t0) * 1000
            print(f"live counts, no cache: {ms:.0f} ms, {len(connection.queries)} queries")
        # (bench_console's votes have random times, not in id order: "today" is not
        # meaningful here, only its cost)
        print(f"  {counts['candidates']:,} candidates, {counts['settled']:,} settled")

        def page(path: str, label: str) -> None:
            reset_queries()
            t0 = time.perf_counter()
            resp = client.get(path)
            ms = (time.perf_counter() - t0) * 1000
            print(f"{path:>10} {label}: {resp.status_code} {ms:.0f} ms, "
                  f"{len(connection.queries)} queries")  # fmt: skip

        cache.clear()
        page("/results/", "cold (counts computed; no N(z) copy yet: a refresh task is sent)")
        page("/results/", "warm")
        t0 = time.perf_counter()
        refresh_public_nz()
        print(f"refresh_results_nz (the worker's job): {time.perf_counter() - t0:.1f} s")
        page("/results/", "warm, with the N(z)")
        cache.delete("results:counts:v1")
        page("/results/", "counts expired (every 60 s)")
        cache.clear()
        page("/privacy/", "cold")
        page("/privacy/", "warm")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--candidates", type=int, default=2_500_000)
    parser.add_argument("--voted", type=int, default=120_000)
    parser.add_argument("--db", default="labelapp_bench_results")
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args()
    db_url = django_on_fresh_database(args.db)
    from bench_console import add_scores_and_votes
    from bench_votes import fill

    try:
        print(f"filling {args.candidates:,} candidates ...", flush=True)
        fill(db_url, args.candidates)
        add_scores_and_votes(args.voted)
        add_retirements(args.voted // 2)
        measure()
    finally:
        if not args.keep:
            drop_database(args.db)


if __name__ == "__main__":
    main()
