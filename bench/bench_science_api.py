"""How fast a notebook pages the catalogue through the science API (/api/science/v1/).

Fills a fresh PostgreSQL database (``labelapp_bench_science_api`` unless ``--db``, created
and dropped here) with N candidates (bench_votes.fill: COPY), a promoted model's score for
every one, consensus and votes for some (bench_console.add_scores_and_votes), then, in this
process with Django's test client and a real token (rate limit, audit row per request
included):

* pages through the whole catalogue, ``limit=1000``: rows/s, ms per page (median, p95),
  the first and the last pages (a keyset page costs the same at any depth);
* a filtered walk (``score_min=0.9``, ``sn_max=5.5``);
* the baseline measured in the same run: the console's streaming CSV export of the same
  catalogue (``services.science.exports``), rows/s.

Figures only.

    python bench/bench_science_api.py [--candidates 200000] [--voted 20000] [--db NAME]
"""

from __future__ import annotations

import argparse
import statistics
import time

from _util import django_on_fresh_database, drop_database


def walk(client, auth: dict, **params) -> tuple[int, list[float], float]:
    """Every page of ``/catalogue`` with ``params``: (rows, ms per page, seconds)."""
    rows, times, after = 0, [], None
    t_all = time.perf_counter()
    while True:
        q = dict(params, limit=1000) | ({"after": after} if after is not None else {})
        t0 = time.perf_counter()
        resp = client.get("/api/science/v1/catalogue", q, **auth)
        body = resp.json()
        times.append((time.perf_counter() - t0) * 1000)
        assert resp.status_code == 200, body
        rows += body["count"]
        after = body["next_after"]
        if after is None:
            return rows, times, time.perf_counter() - t_all


def measure() -> None:
    from django.test import Client
    from django.test.utils import override_settings

    from labelapp.models import AuditEvent
    from labelapp.services.science import exports
    from labelapp.services.science.tokens import SCOPES, create_token
    from tests.factories_console import make_scientist

    new = create_token(user=make_scientist("bench-sci"), name="bench", scopes=list(SCOPES))
    auth = {"HTTP_AUTHORIZATION": f"Bearer {new.secret}"}
    client = Client()
    with override_settings(SCIENCE_API_RATE=(10**9, 60)):
        t0 = time.perf_counter()
        export = exports.open_catalogue_export(fmt="csv")
        size = sum(len(chunk) for chunk in export.chunks)
        csv_s = time.perf_counter() - t0
        rows, times, api_s = walk(client, auth)
        f_rows, f_times, f_s = walk(client, auth, score_min=0.9, sn_max=5.5)
    p95 = statistics.quantiles(times, n=20)[-1] if len(times) >= 20 else max(times)
    print(f"CSV export (baseline): {export.n_rows:,} rows, {size / 2**20:.0f} MiB in "
          f"{csv_s:.1f} s = {export.n_rows / csv_s:,.0f} rows/s")  # fmt: skip
    print(f"API, limit=1000: {rows:,} rows in {len(times)} pages, {api_s:.1f} s = "
          f"{rows / api_s:,.0f} rows/s ({rows / api_s / (export.n_rows / csv_s):.2f}x the "
          f"export); page median {statistics.median(times):.0f} ms, p95 {p95:.0f} ms; first "
          f"page {times[0]:.0f} ms, last full page {times[-2]:.0f} ms")  # fmt: skip
    print(f"API, score_min=0.9 & sn_max=5.5: {f_rows:,} rows in {len(f_times)} pages, "
          f"{f_s:.1f} s; page median {statistics.median(f_times):.0f} ms")  # fmt: skip
    print(f"audit rows written: {AuditEvent.objects.filter(action='api.read').count():,}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--candidates", type=int, default=200_000)
    parser.add_argument("--voted", type=int, default=20_000)
    parser.add_argument("--db", default="labelapp_bench_science_api")
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args()
    db_url = django_on_fresh_database(args.db)
    from bench_console import add_scores_and_votes
    from bench_votes import fill

    try:
        print(f"filling {args.candidates:,} candidates ...", flush=True)
        fill(db_url, args.candidates)
        add_scores_and_votes(args.voted)
        measure()
    finally:
        if not args.keep:
            drop_database(args.db)


if __name__ == "__main__":
    main()
