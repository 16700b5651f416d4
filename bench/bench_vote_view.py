"""Process CPU of one vote through the volunteer API's view, in-process: print figures.

A volunteer session (CSRF cookie and header, as the page) answers ``--votes`` candidates one
after the other through Django's test client, each vote carrying the served token of the
candidate the previous answer brought (``next: 1``), then asks ``GET /api/next/?count=2``
``--nexts`` times. The figure is ``time.process_time()`` around each request: the whole
request in one process (middleware, django-ninja's parsing and answer validation, the vote
services and an in-memory SQLite database), no network and no server. To compare two
versions of the code, run it on both in the same minutes (the machine's load moves the
figures). Nothing is timed against a target.

``--services`` runs it as production does instead: a fresh PostgreSQL database
(``bench_vote_view``, server-side binding as in settings) and the Redis cache
(``BENCH_VOTE_VIEW_REDIS``, default redis://127.0.0.1:6379/13; flushed), so the figure
includes each SQL statement's and Redis command's client-side CPU. ``--tree DIR`` runs the
code of another checkout (e.g. ``git archive REV | tar -x -C DIR``) on its own migrations:
run both trees alternately in the same minutes.

    .venv/bin/python bench/bench_vote_view.py [--votes 400] [--nexts 200] [--repeat 3]
                                              [--services] [--tree DIR]
                                              [--profile N]  # CPU profile: N costliest calls
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

from _util import drop_database, postgres_url  # (puts this checkout on sys.path)

ROOT = Path(__file__).resolve().parent.parent


def _setup(work: Path, services: bool) -> None:
    (work / "data").mkdir(parents=True)
    os.environ.update(
        DJANGO_SETTINGS_MODULE="labelapp.settings",
        LABELAPP_DATA_DIR=str(work / "data"),
        DATABASE_URL="sqlite://:memory:",  # the request's own CPU, not the disk's
        REDIS_URL="",
    )
    if services:
        db_url = postgres_url("bench_vote_view")
        if db_url is None:
            sys.exit("PostgreSQL is not reachable on 127.0.0.1:5432: nothing to measure")
        redis_url = os.environ.get("BENCH_VOTE_VIEW_REDIS", "redis://127.0.0.1:6379/13")
        import redis

        redis.Redis.from_url(redis_url).flushdb()
        os.environ.update(DATABASE_URL=db_url, REDIS_URL=redis_url)
    import logging
    import warnings

    warnings.filterwarnings("ignore", message="No directory at")  # no collectstatic here

    import django

    django.setup()
    logging.disable(logging.WARNING)
    from django.core.management import call_command
    from django.test.utils import override_settings, setup_test_environment

    setup_test_environment(debug=False)
    local_cache = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    override_settings(
        **({} if services else {"CACHES": local_cache}),
        VOTE_RATE_LIMIT=10**6,  # the limits would stop one session voting this fast
        VOTE_RATE_IP=(10**6, 60),
        ANON_VOLUNTEER_RATE_IP=(10**6, 60),
    ).enable()
    call_command("migrate", verbosity=0)


def run_once(
    n_votes: int, n_nexts: int, first_id: int, profiler=None
) -> tuple[list[float], list[float]]:
    from django.test import Client

    from tests.factories_volunteers import make_candidates

    make_candidates(n_votes + 5, first_id=first_id)
    c = Client(enforce_csrf_checks=True)
    cur = c.get("/api/next/").json()["candidates"][0]
    headers = {"X-CSRFToken": c.cookies["csrftoken"].value}
    votes, nexts = [], []
    if profiler is not None:  # the votes alone, not the candidates made above
        profiler.enable()
    for _ in range(n_votes):
        body = {"detectid": cur["detectid"], "answer": "no", "response_ms": 900, "next": 1}
        if "token" in cur:  # (code from before served tokens has none)
            body["token"] = cur["token"]
        t0 = time.process_time()
        resp = c.post("/api/votes/", json.dumps(body), content_type="application/json",
                      headers=headers)  # fmt: skip
        votes.append(time.process_time() - t0)
        assert resp.status_code == 201, resp.content
        cur = resp.json()["next"][0]
    if profiler is not None:
        profiler.disable()
    for _ in range(n_nexts):
        t0 = time.process_time()
        c.get("/api/next/?count=2")
        nexts.append(time.process_time() - t0)
    return votes, nexts


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--votes", type=int, default=400)
    parser.add_argument("--nexts", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--services", action="store_true", help="PostgreSQL and Redis")
    parser.add_argument("--tree", type=Path, default=ROOT, help="the code to measure")
    parser.add_argument(
        "--profile", type=int, default=0, metavar="N",
        help="profile the votes instead and print the N costliest calls",
    )  # fmt: skip
    args = parser.parse_args()
    sys.path.insert(0, str(args.tree.resolve()))  # its labelapp before this checkout's
    os.chdir(args.tree)
    work = Path(tempfile.mkdtemp(prefix="bench-vote-view-"))
    try:
        _setup(work, args.services)
        from django.db import connection

        import labelapp

        where = f"{connection.vendor}" + (" + Redis" if args.services else ", local memory cache")
        print(f"code: {Path(labelapp.__file__).parent.parent}; database: {where}")
        print("| run | POST /api/votes/ median ms | p90 ms | GET /api/next/ median ms |")
        print("|---|---|---|---|")
        if args.profile:  # where a vote's CPU goes (the votes of one run, profiler on)
            import cProfile
            import pstats

            run_once(50, 0, first_id=9_000_000)  # warm the caches first
            # Process CPU, as the figures above: time waiting on PostgreSQL or Redis is theirs.
            prof = cProfile.Profile(time.process_time)
            run_once(args.votes, 0, 9_500_000, profiler=prof)
            stats = pstats.Stats(prof).strip_dirs()
            print(f"cProfile (process CPU) of {args.votes} votes (with the profiler's overhead):")
            stats.sort_stats("cumulative").print_stats(args.profile)
            stats.sort_stats("tottime").print_stats(args.profile)
            return
        for k in range(args.repeat):
            votes, nexts = run_once(args.votes, args.nexts, first_id=10_000_000 * (k + 1))
            warm = sorted(votes[20:])  # the first requests fill caches
            p90 = warm[int(0.9 * len(warm))]
            print(f"| {k + 1} | {1000 * statistics.median(warm):.3f} | {1000 * p90:.3f} | "
                  f"{1000 * statistics.median(nexts):.3f} |")  # fmt: skip
    finally:
        shutil.rmtree(work, ignore_errors=True)
        if args.services:
            drop_database("bench_vote_view")


if __name__ == "__main__":
    main()
