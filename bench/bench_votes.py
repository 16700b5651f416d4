"""Load benchmark of the volunteer hot path: next candidate + vote, against the real stack.

Starts gunicorn itself against a fresh PostgreSQL database (``labelapp_bench_votes``,
created and dropped here) with 2.5 million candidates, sessions and rate limits in Redis,
DEBUG off. A load generator (a minimal HTTP/1.1 client on sockets, threads in several
processes) plays volunteers: each gets a session from GET /api/next/, then answers and asks
for the next candidate; every ``--votes-per-volunteer`` answers a new volunteer (a new
session) starts, so the mix includes newcomers (40% gold) and experienced volunteers (10%).

Two phases, each ``--seconds`` long:
  * ``combined``: POST /api/votes/ with ``next: 1`` -- what the classify page does (one round
    trip per answer);
  * ``separate``: GET /api/next/ then POST /api/votes/ with ``next: 0`` (two round trips).
Then open-loop phases (``--rates``, default 300/s): answers arrive as a Poisson stream at that
rate whatever the server does, and latency counts from each answer's scheduled time, so
queueing behind a saturated server is charged too -- the "300 votes/s with p95 under 50 ms"
question itself, which a closed loop (latency = in-flight / throughput) cannot answer.
Prints p50/p95/p99 latency of one "next + vote" cycle and votes/s sustained, then EXPLAIN
ANALYZE of the next-candidate query for a volunteer with many votes. Each row also splits
the CPU time per recorded vote: gunicorn, PostgreSQL, Redis, the load generator, and whatever
else ran on the machine meanwhile (other users of a shared box). Figures only; nothing
passes or fails on time. The per-volunteer vote rate limit is raised for the run (a load
generator answers much faster than a person), but its Redis counter still runs per vote.

    python bench/bench_votes.py [--candidates 2500000] [--seconds 30] [--workers 4]
                                [--server-threads 2] [--clients 2] [--threads 12] [--keep]
                                [--modes combined separate] [--rates 300] [--open-threads 16]
                                [--reuse]  # a database kept by --keep, its votes cleared
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import random
import resource
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _util import ROOT, Volunteer, drop_database, free_port, postgres_url

# Override both on a shared machine so runs of different people never meet.
DB_NAME = os.environ.get("BENCH_VOTES_DB", "labelapp_bench_votes")
REDIS_URL = os.environ.get("BENCH_VOTES_REDIS_URL", "redis://127.0.0.1:6379/14")
N_GOLD = 500


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
        # one load generator on one address plays thousands of volunteers: the per-address
        # limits (#24) are raised like the per-volunteer one; their counters still run
        "LABELAPP_VOTE_RATE_IP": "100000000/60",
        "LABELAPP_ANON_VOLUNTEER_RATE_IP": "100000000/3600",
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


# --- load generator (the HTTP client is _util.Volunteer) ------------------------------------
def client_thread(port, mode, deadline, votes_per_volunteer, out, seed, rate=0.0):
    """Closed loop (``rate`` 0: answer again as soon as the last answer came back) or open
    loop (Poisson arrivals at ``rate`` answers/s for this thread). Open-loop latency counts
    from the scheduled send time, so a server that falls behind is charged the wait too
    (no coordinated omission)."""
    rng = random.Random(seed)
    lat, errors, votes, skipped = [], 0, 0, 0
    due = time.perf_counter() + (rng.expovariate(rate) if rate else 0.0)
    while time.perf_counter() < deadline:
        v = Volunteer(port)
        status, data = v.request("GET", "/api/next/")
        queue = data.get("candidates", []) if status == 200 else []
        for _ in range(votes_per_volunteer):
            if not queue or time.perf_counter() >= deadline:
                break
            cand = queue.pop(0)
            # the served token (#24) goes back with the vote; code before #24 ignores it
            body = {"detectid": cand["detectid"], "answer": rng.choice(["yes", "no", "no"]),
                    "client": "keyboard", "response_ms": 1500,
                    "token": cand.get("token")}  # fmt: skip
            if rate:
                if due >= deadline:
                    break
                wait = due - time.perf_counter()
                if wait > 0:
                    time.sleep(wait)
                t0, due = due, due + rng.expovariate(rate)
            else:
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
            except Exception:
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


def client_process(port, mode, deadline, threads, votes_per_volunteer, out, seed, rate=0.0):
    import queue
    import threading

    local: queue.Queue = queue.Queue()
    ts = [
        threading.Thread(
            target=client_thread,
            args=(port, mode, deadline, votes_per_volunteer, local, seed * 1000 + i, rate),
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
    usage = resource.getrusage(resource.RUSAGE_SELF)
    out.put((*totals, usage.ru_utime + usage.ru_stime))


# --- CPU accounting (Linux /proc) ----------------------------------------------------------
_TICK = os.sysconf("SC_CLK_TCK")


def _process_cpu(gunicorn_pgid: int) -> dict[int, tuple[str, float]]:
    """pid -> (web | db | redis, CPU seconds so far) for gunicorn's process group, PostgreSQL
    and Redis processes."""
    seen = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        comm = stat[stat.index("(") + 1 : stat.rindex(")")]
        fields = stat[stat.rindex(")") + 2 :].split()
        seconds = (int(fields[11]) + int(fields[12])) / _TICK  # utime + stime
        if int(fields[2]) == gunicorn_pgid:
            seen[int(entry)] = ("web", seconds)
        elif comm.startswith("postgres"):
            seen[int(entry)] = ("db", seconds)
        elif comm.startswith("redis-server"):
            seen[int(entry)] = ("redis", seconds)
    return seen


class ProcessCpu:
    """CPU seconds spent by the gunicorn, PostgreSQL and Redis processes during a phase.

    Polled in a thread: a process that exits mid-phase (an autovacuum worker, a backend whose
    connection closed) takes its counters with it, so a start/end difference alone would
    charge its CPU to "other" and could even go negative. Each process counts up to the last
    poll it was seen in (at most ``interval`` of its CPU is missed)."""

    def __init__(self, gunicorn_pgid: int, interval: float = 0.2):
        import threading

        self.pgid, self.interval = gunicorn_pgid, interval
        self.start = _process_cpu(gunicorn_pgid)
        self.last = dict(self.start)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)
        self._thread.start()

    def _poll(self) -> None:
        while not self._stop.wait(self.interval):
            self.last.update(_process_cpu(self.pgid))

    def stop(self) -> dict[str, float]:
        self._stop.set()
        self._thread.join()
        self.last.update(_process_cpu(self.pgid))
        cpu = {"web": 0.0, "db": 0.0, "redis": 0.0}
        for pid, (kind, seconds) in self.last.items():
            before = self.start.get(pid)
            # a recycled pid of another kind counts from zero
            cpu[kind] += seconds - (before[1] if before and before[0] == kind else 0.0)
        return cpu


def host_cpu() -> str:
    """The CPU model and clock, printed with the figures: the same 2-core box has measured
    about 2x apart in CPU per vote from one session to the next."""
    info = {}
    with open("/proc/cpuinfo") as f:
        for line in f:
            key, _, value = line.partition(":")
            info.setdefault(key.strip(), value.strip())
    model, mhz = info.get("model name", "?"), info.get("cpu MHz", "?")
    return f"{model} at {mhz} MHz, {os.cpu_count()} cores"


def machine_busy() -> float:
    """CPU seconds all cores spent busy so far (/proc/stat: everything but idle + iowait)."""
    with open("/proc/stat") as f:
        ticks = [int(x) for x in f.readline().split()[1:]]
    return (sum(ticks[:8]) - ticks[3] - ticks[4]) / _TICK


def run_phase(port, mode, seconds, clients, threads, votes_per_volunteer, pgid, rate=0.0) -> dict:
    """One load phase; ``rate`` > 0: open loop at ``rate`` answers/s in total."""
    out: mp.Queue = mp.Queue()
    deadline = time.perf_counter() + seconds  # perf_counter is system-wide on Linux
    cpu, busy0 = ProcessCpu(pgid), machine_busy()
    t0 = time.perf_counter()
    procs = [
        mp.Process(
            target=client_process,
            args=(
                port,
                mode,
                deadline,
                threads,
                votes_per_volunteer,
                out,
                k + 1,
                rate / (clients * threads),
            ),
        )
        for k in range(clients)
    ]
    for p in procs:
        p.start()
    lat, errors, votes, skipped, client_cpu = [], 0, 0, 0, 0.0
    for _ in procs:
        a, b, c, d, e = out.get()
        lat += a
        errors += b
        votes += c
        skipped += d
        client_cpu += e
    spent, busy1 = cpu.stop(), machine_busy()
    for p in procs:
        p.join()
    wall = time.perf_counter() - t0
    lat.sort()
    per_vote = {k: seconds * 1000 / max(votes, 1) for k, seconds in spent.items()}
    per_vote["client"] = client_cpu * 1000 / max(votes, 1)
    # whatever else ran on the machine meanwhile (other users, the OS), per vote
    per_vote["other"] = (busy1 - busy0) * 1000 / max(votes, 1) - sum(per_vote.values())

    def pct(p):
        return lat[min(len(lat) - 1, int(p / 100 * len(lat)))] * 1000 if lat else float("nan")

    return {"mode": mode, "votes": votes, "errors": errors, "skipped": skipped, "seconds": wall,
            "votes_s": votes / wall, "p50": pct(50), "p95": pct(95), "p99": pct(99),
            "mean": statistics.fmean(lat) * 1000 if lat else float("nan"),
            "cpu": per_vote, "busy": (busy1 - busy0) / wall}  # fmt: skip


def reset() -> None:
    """Back to a freshly filled database: no volunteers, votes, sessions, consensus; every
    candidate in the queue again."""
    from django.db import connection

    with connection.cursor() as cur:
        cur.execute(
            "TRUNCATE labelapp_retirementevent, labelapp_consensusstate, labelapp_vote, "
            "labelapp_volunteerskill, labelapp_volunteer, django_session CASCADE"
        )
        cur.execute("UPDATE labelapp_candidate SET status = 'active' WHERE status <> 'active'")
        cur.execute("VACUUM ANALYZE labelapp_candidate")
    print("reused the database: votes and volunteers cleared, every candidate active again")


def explain(db_url: str) -> str:
    """EXPLAIN ANALYZE of the next-candidate query for the volunteer with the most votes."""
    from django.db import connection
    from django.db.models import Count

    from labelapp.models import Volunteer, Vote
    from labelapp.services.crowd.queue import TOP_K, queue_queryset

    top = Vote.objects.values("volunteer").annotate(n=Count("id")).order_by("-n").first()
    volunteer = Volunteer.objects.get(pk=top["volunteer"]) if top else None
    qs = queue_queryset(volunteer=volunteer, exclude=[1, 2]).values("id", "detectid")[:TOP_K]
    sql, params = qs.query.sql_with_params()
    with connection.cursor() as cur:
        cur.execute("EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) " + sql, params)
        plan = "\n".join(r[0] for r in cur.fetchall())
    n = top["n"] if top else 0
    return f"next-candidate query for a volunteer with {n} votes:\n{plan}"


def run_app(label: str, app: str, args, db_url: str, data_dir: str, cwd=ROOT) -> None:
    """Start gunicorn serving ``app`` (from the code in ``cwd``), run every load phase
    against it, stop it."""
    port = free_port()
    log = Path(data_dir) / f"gunicorn-{label}.log"
    gunicorn = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", app, "--pythonpath", str(ROOT / "bench"),
         "-b", f"127.0.0.1:{port}", "-w", str(args.workers), "-k", "gthread",
         "--threads", str(args.server_threads),
         "--keep-alive", "30", "--log-level", "warning"],
        cwd=cwd, env=server_env(db_url, data_dir), stdout=open(log, "w"),
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
        phases = [(mode, mode, args.threads, 0.0) for mode in args.modes] + [
            (f"open {rate:.0f}/s", "combined", args.open_threads, rate) for rate in args.rates
        ]
        for name, mode, threads, rate in phases:
            r = run_phase(
                port, mode, args.seconds, args.clients, threads, args.votes_per_volunteer,
                gunicorn.pid, rate,
            )  # fmt: skip
            c = r["cpu"]
            print(f"{label + ' ' + name:>17} {r['votes']:>7,} {r['skipped']:>5} "
                  f"{r['errors']:>6} {r['votes_s']:>8.0f} {r['p50']:>7.1f} {r['p95']:>7.1f} "
                  f"{r['p99']:>7.1f} {r['mean']:>8.1f} | {c['web']:>5.2f} {c['db']:>5.2f} "
                  f"{c['redis']:>5.2f} {c['client']:>6.2f} {c['other']:>5.2f} "
                  f"{r['busy']:>5.2f}", flush=True)  # fmt: skip
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
    parser.add_argument("--server-threads", type=int, default=2, help="threads per worker")
    parser.add_argument("--threads", type=int, default=12, help="client threads per process")
    parser.add_argument("--clients", type=int, default=2, help="client processes")
    parser.add_argument("--votes-per-volunteer", type=int, default=40)
    parser.add_argument("--modes", nargs="*", default=["combined", "separate"])
    parser.add_argument(
        "--rates", nargs="*", type=float, default=[300.0],
        help="open-loop phases (combined mode): Poisson arrivals at these answers/s in total",
    )  # fmt: skip
    parser.add_argument(
        "--open-threads", type=int, default=16, help="client threads per process, open loop"
    )
    parser.add_argument(
        "--apps", nargs="+", default=["full", "no-hook"], choices=["full", "no-hook", "before"],
        help="full: as deployed; no-hook: after_vote/after_undo (live consensus) disabled; "
        "before: the code in --before-tree (e.g. `git archive main`), same database",
    )  # fmt: skip
    parser.add_argument(
        "--before-tree", type=Path,
        help="a source tree of the code to compare with (the 'before' app runs from it)",
    )  # fmt: skip
    parser.add_argument(
        "--reuse", action="store_true",
        help="reuse a database filled by an earlier --keep run (its votes are cleared first)",
    )  # fmt: skip
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
        from django.core.management import call_command

        call_command("migrate", verbosity=0)  # a database kept by an older checkout
        reset()

    print(f"host: {host_cpu()}")
    print(
        f"gunicorn: {args.workers} workers x {args.server_threads} threads (gthread, keep-alive); "
        f"clients: {args.clients} processes x {args.threads} threads; {os.cpu_count()} CPU cores "
        "shared by server, PostgreSQL, Redis and the load generator"
    )
    print(f"{'':>58}| CPU ms per vote")
    print(f"{'app mode':>17} {'votes':>7} {'409':>5} {'errors':>6} {'votes/s':>8} {'p50 ms':>7} "
          f"{'p95 ms':>7} {'p99 ms':>7} {'mean ms':>8} | {'web':>5} {'db':>5} {'redis':>5} "
          f"{'client':>6} {'other':>5} {'cores':>5}")  # fmt: skip
    apps = {
        "full": "labelapp.wsgi:application",
        "no-hook": "_wsgi_no_hook:application",
        "before": "labelapp.wsgi:application",
    }
    if "before" in args.apps and not (
        args.before_tree and (args.before_tree / "labelapp").is_dir()
    ):
        sys.exit("--apps before needs --before-tree DIR holding the code to compare with")
    try:
        for label in args.apps:
            cwd = args.before_tree if label == "before" else ROOT
            run_app(label, apps[label], args, db_url, data_dir, cwd=cwd)
        print(
            "latency = one 'next + vote' cycle as the client sees it (combined: one POST "
            "that returns the next candidate; separate: GET /api/next/ + POST /api/votes/; "
            "closed loop: each client thread answers again as soon as it has its answer; "
            "open R/s: answers arrive at R/s whatever the server does, latency counted from "
            "the scheduled time); "
            "409 = candidate retired by other volunteers' votes while held (the page skips it); "
            "CPU ms per recorded vote: web = gunicorn processes, db = all PostgreSQL processes, "
            "client = the load generator, other = everything else busy on the machine "
            "meanwhile; cores = busy cores on average (of "
            f"{os.cpu_count()})"
        )
        print(explain(db_url))
    finally:
        if not args.keep:
            drop_database(DB_NAME)


if __name__ == "__main__":
    main()
