"""Load benchmark of the volunteer hot path: next candidate + vote, against the real stack.

Starts gunicorn itself against a fresh PostgreSQL database (``labelapp_bench_votes``,
created and dropped here) with 2.5 million candidates, sessions and rate limits in Redis,
DEBUG off. A load generator (stdlib ``http.client``, threads in several processes) plays
volunteers: each gets a session from GET /api/next/, then answers and asks for the next
candidate; every ``--votes-per-volunteer`` answers a new volunteer (a new session) starts, so
the mix includes newcomers (40% gold) and experienced volunteers (10% gold).

Two phases, each ``--seconds`` long:
  * ``combined``: POST /api/votes/ with ``next: 1`` -- what the classify page does (one round
    trip per answer);
  * ``separate``: GET /api/next/ then POST /api/votes/ with ``next: 0`` (two round trips).
Prints p50/p95/p99 latency of one "next + vote" cycle and votes/s sustained, then EXPLAIN
ANALYZE of the next-candidate query for a volunteer with many votes. Figures only; nothing
passes or fails on time. The per-volunteer vote rate limit is raised for the run (a load
generator answers much faster than a person), but its Redis counter still runs per vote.

    python bench/bench_votes.py [--candidates 2500000] [--seconds 30] [--workers 4]
                                [--clients 2] [--threads 12] [--keep]
"""

from __future__ import annotations

import argparse
import http.client
import json
import multiprocessing as mp
import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _util import ROOT, postgres_url

DB_NAME = "labelapp_bench_votes"
REDIS_URL = "redis://127.0.0.1:6379/14"
N_GOLD = 500


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def server_env(db_url: str, data_dir: str) -> dict[str, str]:
    return {
        **os.environ,
        "DATABASE_URL": db_url,
        "REDIS_URL": REDIS_URL,
        "DJANGO_DEBUG": "0",
        "DJANGO_SECRET_KEY": "bench-only-secret-key-0123456789abcdefghijklmnopqrstuvwxyz",
        "DJANGO_ALLOWED_HOSTS": "127.0.0.1,localhost",
        "LABELAPP_DATA_DIR": data_dir,
        "LABELAPP_VOTE_RATE_LIMIT": "1000000",
        "LABELAPP_LOG_LEVEL": "WARNING",
    }


def fill(db_url: str, n: int) -> None:
    """2.5M candidate rows through services.bulk.insert_rows (COPY), gold, ANALYZE."""
    os.environ["DATABASE_URL"] = db_url
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "labelapp.settings")
    import django

    django.setup()
    import numpy as np
    from django.core.management import call_command
    from django.db import connection, transaction

    from labelapp.models import Candidate, GoldStandard, IngestBatch
    from labelapp.services.bulk import insert_rows

    call_command("migrate", verbosity=0)
    t0 = time.perf_counter()
    rng = np.random.default_rng(0)
    fields = (
        "detectid", "batch", "row", "shotid", "field", "ra", "dec", "wave", "flux",
        "flux_err", "linewidth", "continuum", "sn", "chi2", "apcor", "status", "priority",
    )  # fmt: skip
    with transaction.atomic():
        batch = IngestBatch.objects.create(
            name="bench", file_sha256="0" * 64, source_path="(bench)", file_format="fits",
            n_candidates=n, store_path="(none: next+vote need no pixels)", store_dtype="float16",
        )  # fmt: skip
        chunk = 250_000
        for start in range(0, n, chunk):
            k = min(chunk, n - start)
            sn = rng.uniform(4.8, 9.0, k)
            wave = rng.uniform(3510, 5496, k)
            rows = zip(
                range(10**9 + start, 10**9 + start + k), [batch.pk] * k, range(start, start + k),
                [20190101001] * k, ["cosmos"] * k, rng.uniform(149.9, 150.3, k).tolist(),
                rng.uniform(2.0, 2.4, k).tolist(), wave.tolist(), [10.0] * k, [2.0] * k,
                [3.0] * k, [0.0] * k, sn.tolist(), [1.0] * k, [1.0] * k, ["active"] * k,
                (-sn).tolist(), strict=True,
            )  # fmt: skip
            insert_rows(Candidate, fields, rows)
            print(f"  {start + k:>9,} candidates ({time.perf_counter() - t0:.0f} s)", flush=True)
    # Gold: spread through the queue (some near the top, where volunteers are).
    ids = Candidate.objects.order_by("-priority").values_list("id", flat=True)[:20000]
    gold_ids = random.Random(1).sample(list(ids), N_GOLD)
    GoldStandard.objects.bulk_create(
        [
            GoldStandard(
                candidate_id=i,
                is_real=bool(i % 2),
                kind="lae" if i % 2 else "cosmic",
                feedback="bench",
            )
            for i in gold_ids
        ]  # fmt: skip
    )
    with connection.cursor() as cur:
        cur.execute("ANALYZE")
    print(f"filled {n:,} candidates + {N_GOLD} gold in {time.perf_counter() - t0:.0f} s")


# --- load generator ----------------------------------------------------------------------
class Volunteer:
    """One browser: cookies (session + csrftoken) and a keep-alive connection."""

    def __init__(self, port: int):
        self.port = port
        self.cookies: dict[str, str] = {}
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)

    def request(self, method: str, path: str, body: dict | None = None) -> tuple[int, dict]:
        headers = {"Host": "127.0.0.1"}
        if self.cookies:
            headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        data = None
        if body is not None:
            data = json.dumps(body)
            headers["Content-Type"] = "application/json"
            headers["X-CSRFToken"] = self.cookies.get("csrftoken", "")
            headers["Referer"] = f"http://127.0.0.1:{self.port}/classify/"
        for attempt in range(2):
            try:
                self.conn.request(method, path, body=data, headers=headers)
                resp = self.conn.getresponse()
                payload = resp.read()
                break
            except (http.client.HTTPException, OSError):
                self.conn.close()  # server closed the keep-alive connection: reconnect
                self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
                if attempt:
                    raise
        for header, value in resp.getheaders():
            if header.lower() == "set-cookie":
                name, _, rest = value.partition("=")
                self.cookies[name] = rest.split(";", 1)[0]
        if resp.getheader("Connection", "").lower() == "close":
            self.conn.close()
            self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        return resp.status, (json.loads(payload) if payload else {})

    def close(self):
        self.conn.close()


def client_thread(port, mode, deadline, votes_per_volunteer, out, seed):
    rng = random.Random(seed)
    lat, errors, votes, skipped = [], 0, 0, 0
    while time.perf_counter() < deadline:
        v = Volunteer(port)
        status, data = v.request("GET", "/api/next/")
        queue = data.get("candidates", []) if status == 200 else []
        for _ in range(votes_per_volunteer):
            if not queue or time.perf_counter() >= deadline:
                break
            cand = queue.pop(0)
            body = {"detectid": cand["detectid"], "answer": rng.choice(["yes", "no", "no"]),
                    "client": "keyboard", "response_ms": 1500}  # fmt: skip
            t0 = time.perf_counter()
            try:
                if mode == "separate":
                    s1, d1 = v.request("GET", f"/api/next/?exclude={cand['detectid']}")
                    queue += d1.get("candidates", [])
                    body["next"] = 0
                    status, data = v.request("POST", "/api/votes/", body)
                else:
                    body["next"] = 1
                    status, data = v.request("POST", "/api/votes/", body)
                    queue += data.get("next", [])
            except Exception:  # noqa: BLE001 - counted, reported
                errors += 1
                break
            dt = time.perf_counter() - t0
            if status in (200, 201):
                lat.append(dt)
                votes += 1
            elif status == 409:  # retired by others' votes while we held it: the page skips it
                skipped += 1
            else:
                errors += 1
        v.close()
    out.put((lat, errors, votes, skipped))


def client_process(port, mode, deadline, threads, votes_per_volunteer, out, seed):
    import queue
    import threading

    local: queue.Queue = queue.Queue()
    ts = [
        threading.Thread(
            target=client_thread,
            args=(port, mode, deadline, votes_per_volunteer, local, seed * 1000 + i),
        )
        for i in range(threads)
    ]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    totals = [[], 0, 0, 0]
    while not local.empty():
        for k, value in enumerate(local.get()):
            totals[k] += value
    out.put(tuple(totals))


def run_phase(port, mode, seconds, clients, threads, votes_per_volunteer) -> dict:
    out: mp.Queue = mp.Queue()
    deadline = time.perf_counter() + seconds  # perf_counter is system-wide on Linux
    t0 = time.perf_counter()
    procs = [
        mp.Process(
            target=client_process,
            args=(port, mode, deadline, threads, votes_per_volunteer, out, k + 1),
        )
        for k in range(clients)
    ]
    for p in procs:
        p.start()
    lat, errors, votes, skipped = [], 0, 0, 0
    for _ in procs:
        a, b, c, d = out.get()
        lat += a
        errors += b
        votes += c
        skipped += d
    for p in procs:
        p.join()
    wall = time.perf_counter() - t0
    lat.sort()

    def pct(p):
        return lat[min(len(lat) - 1, int(p / 100 * len(lat)))] * 1000 if lat else float("nan")

    return {"mode": mode, "votes": votes, "errors": errors, "skipped": skipped, "seconds": wall,
            "votes_s": votes / wall, "p50": pct(50), "p95": pct(95), "p99": pct(99),
            "mean": statistics.fmean(lat) * 1000 if lat else float("nan")}  # fmt: skip


def explain(db_url: str) -> str:
    """EXPLAIN ANALYZE of the next-candidate query for the volunteer with the most votes."""
    from django.db import connection
    from django.db.models import Count

    from labelapp.models import Volunteer, Vote
    from labelapp.services.queue import TOP_K, queue_queryset

    top = Vote.objects.values("volunteer").annotate(n=Count("id")).order_by("-n").first()
    volunteer = Volunteer.objects.get(pk=top["volunteer"]) if top else None
    qs = queue_queryset(volunteer=volunteer, exclude=[1, 2]).values("id", "detectid")[:TOP_K]
    sql, params = qs.query.sql_with_params()
    with connection.cursor() as cur:
        cur.execute("EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) " + sql, params)
        plan = "\n".join(r[0] for r in cur.fetchall())
    n = top["n"] if top else 0
    return f"next-candidate query for a volunteer with {n} votes:\n{plan}"


def run_app(label: str, app: str, args, db_url: str, data_dir: str) -> None:
    """Start gunicorn serving ``app``, run every load phase against it, stop it."""
    port = free_port()
    log = Path(data_dir) / f"gunicorn-{label}.log"
    gunicorn = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", app, "--pythonpath", str(ROOT / "bench"),
         "-b", f"127.0.0.1:{port}", "-w", str(args.workers), "-k", "gthread", "--threads", "2",
         "--keep-alive", "30", "--log-level", "warning"],
        cwd=ROOT, env=server_env(db_url, data_dir), stdout=open(log, "w"),  # noqa: SIM115
        stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    try:
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.2)
        warm = Volunteer(port)
        for _ in range(args.workers * 4):
            warm.request("GET", "/api/next/")
        for mode in args.modes:
            r = run_phase(
                port, mode, args.seconds, args.clients, args.threads, args.votes_per_volunteer
            )
            print(f"{label + ' ' + r['mode']:>17} {r['votes']:>7,} {r['skipped']:>5} "
                  f"{r['errors']:>6} {r['votes_s']:>8.0f} {r['p50']:>7.1f} {r['p95']:>7.1f} "
                  f"{r['p99']:>7.1f} {r['mean']:>8.1f}", flush=True)  # fmt: skip
    finally:
        os.killpg(gunicorn.pid, signal.SIGTERM)
        gunicorn.wait(timeout=30)
        errors = [ln for ln in log.read_text().splitlines() if "Conflict:" not in ln]
        errors = [ln for ln in errors if "No directory at" not in ln and "mw_instance" not in ln]
        if errors:
            print(f"--- gunicorn log ({label}), tail:\n" + "\n".join(errors[-20:]))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--candidates", type=int, default=2_500_000)
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--workers", type=int, default=4, help="gunicorn worker processes")
    parser.add_argument("--threads", type=int, default=12, help="client threads per process")
    parser.add_argument("--clients", type=int, default=2, help="client processes")
    parser.add_argument("--votes-per-volunteer", type=int, default=40)
    parser.add_argument("--modes", nargs="+", default=["combined", "separate"])
    parser.add_argument(
        "--apps", nargs="+", default=["full", "no-hook"], choices=["full", "no-hook"],
        help="full: as deployed; no-hook: after_vote/after_undo (live consensus) disabled",
    )  # fmt: skip
    parser.add_argument("--reuse", action="store_true", help="reuse a filled database")
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards")
    args = parser.parse_args()

    if args.reuse:
        db_url = f"postgres://postgres@127.0.0.1:5432/{DB_NAME}"
    else:
        db_url = postgres_url(DB_NAME)
        if db_url is None:
            sys.exit("PostgreSQL is not reachable on 127.0.0.1:5432: nothing to measure")
    import redis

    redis.Redis.from_url(REDIS_URL).flushdb()
    data_dir = tempfile.mkdtemp(prefix="bench-votes-")
    if not args.reuse:
        print(f"filling {args.candidates:,} candidates ...", flush=True)
        fill(db_url, args.candidates)
    else:
        os.environ["DATABASE_URL"] = db_url
        os.environ.setdefault("DJANGO_SETTINGS_MODULE", "labelapp.settings")
        import django

        django.setup()

    print(
        f"gunicorn: {args.workers} workers x 2 threads (gthread, keep-alive); clients: "
        f"{args.clients} processes x {args.threads} threads; {os.cpu_count()} CPU cores "
        "shared by server, PostgreSQL, Redis and the load generator"
    )
    print(f"{'app mode':>17} {'votes':>7} {'409':>5} {'errors':>6} {'votes/s':>8} {'p50 ms':>7} "
          f"{'p95 ms':>7} {'p99 ms':>7} {'mean ms':>8}")  # fmt: skip
    apps = {"full": "labelapp.wsgi:application", "no-hook": "_wsgi_no_hook:application"}
    try:
        for label in args.apps:
            run_app(label, apps[label], args, db_url, data_dir)
        print(
            "latency = one 'next + vote' cycle as the client sees it (combined: one POST "
            "that returns the next candidate; separate: GET /api/next/ + POST /api/votes/); "
            "409 = candidate retired by other volunteers' votes while held (the page skips it)"
        )
        print(explain(db_url))
    finally:
        if not args.keep:
            from django.db import connections

            connections.close_all()
            import psycopg

            with psycopg.connect(
                "postgresql://postgres@127.0.0.1:5432/postgres", autocommit=True
            ) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{DB_NAME}" WITH (FORCE)')


if __name__ == "__main__":
    main()
