"""Load and faults: simulated volunteers voting through the real HTTP API while the loop runs,
with Redis restarted, PostgreSQL restarted or a Celery cpu worker SIGKILLed mid-run.

The stack is the deployed one: gunicorn (``labelapp.wsgi``, the Procfile's 4 workers x 2
threads, DEBUG off) and one real Celery ``cpu`` worker (prefork, the Procfile's command)
against a fresh PostgreSQL database (``labelapp_bench_load_faults``, created and dropped
here) and Redis db 14 (broker, cache, sessions' cache, rate-limit counters). The catalogue
is a small simulated survey (ingested for real; a tiny model is trained on its truth) plus
``--candidates`` rows tiled from it into a second cutout store, so the scoring run reads real
pixels. Each scenario promotes a fresh model version (the trained weights), sends
``labelapp.tasks.score_catalogue`` at t = 2 s (chunked scoring on the cpu worker, whose
join opens the next round: the queue rebuild, one transaction over every active candidate)
and lets ``--volunteers`` simulated volunteers vote for ``--seconds``:

  * each volunteer is a thread with its own session and CSRF cookie, as the classify page:
    GET /api/next/?count=2, then POST /api/votes/ with ``next: 1`` per answer, zero think
    time; an answer that fails (connection error, 5xx, 429) is retried after 0.25-0.5 s, as
    the page retries network errors (a repeat is harmless: 200, created false);
  * at most ``--inflight`` requests are in flight at once (a semaphore shared by each client
    process's threads); latency is measured from send to response.

Scenarios: ``baseline``; ``redis-restart`` (Redis shut down at ``--fault-at`` s, started
again ``--outage`` s later); ``pg-restart`` (``pg_ctlcluster ... stop -m fast``, then
start); ``kill-scoring-worker`` (the cpu worker's process group SIGKILLed while it scores a
chunk, as when its machine dies; a new worker starts once the message's visibility timeout,
``--visibility-timeout`` (short here, 6 h in production), has passed, so Redis hands it the
killed worker's message as it starts); ``kill-scoring-child`` (only the pool process that
scores the chunk SIGKILLed, as the OOM killer does; the worker forks a new one). ``all`` runs
them in that order against one stack. Redis and PostgreSQL are restarted with this machine's
own commands and always started again, even when the bench fails.

Printed per scenario: votes/s, p50/p95/p99 latency, requests and errors by status / error
code / connection error, whether every error was clean (a 5xx with a JSON error body, or a
connection error; never a 2xx that was not stored), time to recover after the fault, and
after the run (once the scoring run has finished, bounded by ``--settle-timeout``):

  * acknowledged votes: every answer the server acknowledged (2xx) is in the database, once,
    for the volunteer of that session; votes stored without an acknowledgement are counted;
    each volunteer's vote counter equals its stored votes;
  * the loop: every chunk done, one score per candidate, the run's progress row done, exactly
    one round opened from this model, exactly one open round, and the queue not half-updated
    (the candidates with a batch priority are exactly this round's batch, in its order).

When the scoring run stalls (not complete, and no message queued or unacknowledged in
Redis) the bench re-sends ``score_catalogue`` (it plans only undone chunks again, or finishes
an interrupted join), as an operator would, and says so.

    python bench/bench_load_faults.py --scenario all --seconds 60 --volunteers 200
                                      [--candidates 200000] [--keep]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

try:
    from _util import ROOT, Volunteer, drop_database, free_port, postgres_url
except ImportError:  # imported as bench.bench_load_faults (the integration tests)
    from bench._util import ROOT, Volunteer, drop_database, free_port, postgres_url

DB_NAME = "labelapp_bench_load_faults"
REDIS_URL = "redis://127.0.0.1:6379/14"
SCENARIOS = ("baseline", "redis-restart", "pg-restart", "kill-scoring-worker", "kill-scoring-child")
ANSWERS = ("yes", "no", "no", "unsure")
NOISE = ("No directory at", "Conflict:", "mw_instance", "warnings.warn")  # gunicorn log lines
SECRET = "bench-only-secret-key-0123456789abcdefghijklmnopqrstuvwxyz"  # noqa: S105

# This machine's commands (the service docs of the machine): how PostgreSQL and Redis were
# started before the session, so a restart leaves them as they were.
REDIS_START = [
    "redis-server", "--daemonize", "yes", "--bind", "127.0.0.1", "-::1", "--port", "6379",
    "--save", "", "--appendonly", "no", "--dir", "/var/lib/redis",
    "--logfile", "/var/log/redis/ci.log",
]  # fmt: skip


# --- the services: stop, start, always restore ----------------------------------------------------
def pg_cluster() -> list[str]:
    version = sorted(os.listdir("/etc/postgresql"))[-1]
    return ["pg_ctlcluster", "--skip-systemctl-redirect", version, "main"]


def _answers(host: str, port: int) -> bool:
    try:
        socket.create_connection((host, port), timeout=1).close()
        return True
    except OSError:
        return False


def pg_up() -> bool:
    try:
        import psycopg

        with psycopg.connect(
            "postgresql://postgres@127.0.0.1:5432/postgres", connect_timeout=2
        ) as conn:
            conn.execute("SELECT 1")
        return True
    except Exception:
        return False


def redis_up() -> bool:
    try:
        import redis

        return bool(redis.Redis(host="127.0.0.1", port=6379, socket_timeout=2).ping())
    except Exception:
        return False


def _wait(check, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} did not come back within {timeout:.0f} s")
        time.sleep(0.1)


def pg_stop() -> None:
    subprocess.run([*pg_cluster(), "stop", "-m", "fast"], check=True, timeout=120)


def pg_start() -> None:
    subprocess.run([*pg_cluster(), "start"], check=True, timeout=120)
    _wait(pg_up, 60, "PostgreSQL")


def redis_stop() -> None:
    subprocess.run(["redis-cli", "-p", "6379", "shutdown", "nosave"], timeout=30, check=False)
    _wait(lambda: not _answers("127.0.0.1", 6379), 30, "Redis shutdown")


def redis_start() -> None:
    subprocess.run(REDIS_START, check=True, timeout=30)
    _wait(redis_up, 30, "Redis")


def restore_services() -> list[str]:
    """Start PostgreSQL / Redis if they are down (after a failure mid-fault); what was done."""
    done = []
    if not pg_up():
        pg_start()
        done.append("PostgreSQL started again")
    if not redis_up():
        redis_start()
        done.append("Redis started again")
    return done


def restart_unavailable_reason(service: str) -> str | None:
    """None when this process can stop and start ``service`` ('postgres' or 'redis') here;
    else why not (the integration tests skip with it)."""
    import shutil

    if service == "postgres":
        if not shutil.which("pg_ctlcluster") or not os.path.isdir("/etc/postgresql"):
            return "pg_ctlcluster (Debian's postgresql-common) is not installed"
        if os.geteuid() != 0:
            return "stopping the PostgreSQL cluster needs root here"
        if not pg_up():
            return "PostgreSQL does not answer on 127.0.0.1:5432"
        return None
    if not shutil.which("redis-server") or not shutil.which("redis-cli"):
        return "redis-server / redis-cli are not installed"
    if not os.path.isdir("/var/lib/redis") or not os.access("/var/lib/redis", os.W_OK):
        return "cannot start redis-server as this machine does (/var/lib/redis not writable)"
    if not redis_up():
        return "Redis does not answer on 127.0.0.1:6379"
    return None


# --- processes: gunicorn and Celery workers -------------------------------------------------------
def stack_env(db_url: str, redis_url: str, data_dir: str, **extra: str) -> dict[str, str]:
    return {
        **os.environ,
        "DATABASE_URL": db_url,
        "REDIS_URL": redis_url,
        "DJANGO_DEBUG": "0",
        "DJANGO_SECRET_KEY": SECRET,
        "DJANGO_ALLOWED_HOSTS": "127.0.0.1,localhost",
        "LABELAPP_DATA_DIR": data_dir,
        "LABELAPP_VOTE_RATE_LIMIT": "1000000",  # a load generator answers faster than people
        # ... from one address, as many anonymous volunteers as a large classroom (per-address
        # limits are the crowd-integrity defence, not what this load measures)
        "LABELAPP_ANON_VOLUNTEER_RATE_IP": "1000000/60",
        "LABELAPP_VOTE_RATE_IP": "1000000/60",
        "LABELAPP_LOG_LEVEL": "WARNING",
        "OMP_NUM_THREADS": "1",
        **extra,
    }


def start_gunicorn(env: dict[str, str], port: int, log: Path, workers: int = 4, threads: int = 2):
    """The Procfile's web command (without the access log), in its own process group."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "labelapp.wsgi", "-b", f"127.0.0.1:{port}",
         "-w", str(workers), "-k", "gthread", "--threads", str(threads), "--timeout", "30",
         "--graceful-timeout", "30", "--keep-alive", "5", "--max-requests", "5000",
         "--max-requests-jitter", "500", "--log-level", "warning"],
        cwd=ROOT, env=env, stdout=open(log, "w"), stderr=subprocess.STDOUT,
        start_new_session=True,
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while not _answers("127.0.0.1", port):
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"gunicorn did not start:\n{log.read_text()[-3000:]}")
        time.sleep(0.2)
    return proc


def start_worker(env: dict[str, str], log: Path, name: str, concurrency: int = 1):
    """The Procfile's worker-cpu command (prefork), in its own process group."""
    env = {**env, "LABELAPP_LOG_LEVEL": "INFO"}  # "received" / "succeeded" lines
    return subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "labelapp", "worker", "-Q", "cpu",
         "--concurrency", str(concurrency), "--hostname", f"{name}@%h", "--loglevel", "INFO",
         "--without-mingle", "--without-gossip"],
        cwd=ROOT, env=env, stdout=open(log, "w"), stderr=subprocess.STDOUT,
        start_new_session=True,
    )  # fmt: skip


def stop_group(proc: subprocess.Popen | None, sig: int = signal.SIGTERM, timeout: float = 30):
    if proc is None or proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, sig)
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    except ProcessLookupError:
        pass


# --- the load: simulated volunteers ---------------------------------------------------------------
@dataclass
class Record:
    """What one client process saw. events: (t since start, op, status or 0, kind, latency);
    acks: (volunteer, session key, detectid, status, created)."""

    events: list = field(default_factory=list)
    acks: list = field(default_factory=list)


def _conn_kind(exc: BaseException) -> str:
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, TimeoutError | socket.timeout):
        return "timeout"
    return "connection reset/closed"


def _call(v: Volunteer, method: str, path: str, body, sem, rec: Record, op: str, t_start: float):
    """One request: (acknowledged with a JSON 2xx, status or 0, JSON body or {})."""
    with sem:
        t0 = time.time()
        try:
            status, _, payload = v.request_raw(method, path, body)
        except (OSError, ValueError, IndexError) as exc:  # refused, reset, garbled status line
            rec.events.append((t0 - t_start, op, 0, _conn_kind(exc), time.time() - t0))
            return False, 0, {}
    latency = time.time() - t0
    try:
        data = json.loads(payload) if payload else {}
    except ValueError:
        data = None
    if not isinstance(data, dict):
        kind, data = "non-JSON body", {}
    elif 200 <= status < 300:
        kind = "ok"
    else:
        err = data.get("error")
        kind = err.get("code", "?") if isinstance(err, dict) else "JSON without error"
    rec.events.append((t0 - t_start, op, status, kind, latency))
    return 200 <= status < 300 and kind == "ok", status, data


def _volunteer(vid: int, port: int, t_start: float, deadline: float, sem, rec: Record, seed):
    rng = random.Random(seed)
    v = Volunteer(port, timeout=30)
    queue: list[dict] = []

    def pause():
        time.sleep(rng.uniform(0.25, 0.5))

    try:
        while time.time() < deadline:
            if not queue:
                ok, _, data = _call(v, "GET", "/api/next/?count=2", None, sem, rec, "next", t_start)
                if not ok:
                    pause()
                    continue
                queue = list(data.get("candidates") or [])
                if not queue:  # nothing left for this volunteer
                    time.sleep(0.5)
                    continue
            cand = queue.pop(0)
            body = {"detectid": cand["detectid"], "token": cand.get("token"),
                    "answer": rng.choice(ANSWERS),
                    "client": "keyboard", "response_ms": 1500, "next": 1,
                    "exclude": [c["detectid"] for c in queue]}  # fmt: skip
            while time.time() < deadline:
                ok, status, data = _call(v, "POST", "/api/votes/", body, sem, rec, "vote", t_start)
                if ok:
                    rec.acks.append((vid, v.cookies.get("sessionid"), cand["detectid"], status,
                                     bool(data.get("created"))))  # fmt: skip
                    queue += data.get("next") or []
                    break
                if status in (400, 403, 404, 409):  # retired meanwhile (409), or not retryable
                    if status == 403:
                        queue = []  # a fresh CSRF cookie comes with the next GET
                    break
                pause()  # connection error, 5xx, 429: the page retries the same answer
    finally:
        v.close()


def client_process(cfg: dict, out) -> None:
    """``cfg['threads']`` volunteers, ``cfg['inflight']`` requests in flight at most."""
    sem = threading.BoundedSemaphore(max(1, cfg["inflight"]))
    recs = [Record() for _ in range(cfg["threads"])]
    threads = [
        threading.Thread(
            target=_volunteer,
            args=(
                cfg["first"] + i,
                cfg["port"],
                cfg["t_start"],
                cfg["deadline"],
                sem,
                recs[i],
                cfg["seed"] * 10_000 + i,
            ),  # fmt: skip
            daemon=True,
        )
        for i in range(cfg["threads"])
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=max(1.0, cfg["deadline"] - time.time() + 60))
    out.put(([e for r in recs for e in r.events], [a for r in recs for a in r.acks]))


def run_load(
    *, port: int, seconds: float, volunteers: int, processes: int, inflight: int, t_start: float
) -> Record:
    """Volunteers spread over client processes (spawned: no Django or torch state inherited)."""
    ctx = mp.get_context("spawn")
    out = ctx.Queue()
    deadline = t_start + seconds
    per = [volunteers // processes + (k < volunteers % processes) for k in range(processes)]
    first = [sum(per[:k]) for k in range(processes)]
    slots = [inflight // processes + (k < inflight % processes) for k in range(processes)]
    procs = [
        ctx.Process(
            target=client_process,
            args=(
                {
                    "threads": per[k],
                    "first": first[k],
                    "port": port,
                    "t_start": t_start,
                    "deadline": deadline,
                    "inflight": slots[k],
                    "seed": k + 1,
                },
                out,
            ),  # fmt: skip
        )
        for k in range(processes)
        if per[k]
    ]
    for p in procs:
        p.start()
    rec = Record()
    for _ in procs:
        events, acks = out.get(timeout=seconds + 180)
        rec.events += events
        rec.acks += acks
    for p in procs:
        p.join(timeout=30)
    return rec


# --- what the load saw ----------------------------------------------------------------------------
def _pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, int(p / 100 * len(values)))] * 1000


def summarise(rec: Record, seconds: float, marks: dict) -> dict:
    """Throughput, latency, errors by kind, cleanliness, and recovery around the fault:
    ``marks['fault']`` = (stop issued, service answering again), ``marks['down']`` = (stop
    done, start issued), in seconds since the load started."""
    fault = marks.get("fault")
    votes_ok = [e for e in rec.events if e[1] == "vote" and e[3] == "ok"]
    lat = [e[4] for e in votes_ok]
    errors: dict[str, int] = {}
    unclean: dict[str, int] = {}
    for _, op, status, kind, _lat in rec.events:
        if kind == "ok" or status == 409:
            continue
        label = f"{op} {status or ''} {kind}".replace("  ", " ")
        errors[label] = errors.get(label, 0) + 1
        clean = status == 0 or (status >= 500 and kind != "non-JSON body") or status == 429
        if not clean:
            unclean[label] = unclean.get(label, 0) + 1
    out = {
        "requests": len(rec.events),
        "votes_acked": len(rec.acks),
        "votes_created": sum(a[4] for a in rec.acks),
        "votes_s": len(votes_ok) / seconds,
        "p50": _pct(lat, 50),
        "p95": _pct(lat, 95),
        "p99": _pct(lat, 99),
        "max": max(lat, default=float("nan")) * 1000,
        "skipped_409": sum(1 for e in rec.events if e[2] == 409),
        "errors": errors,
        "unclean": unclean,
    }
    if fault is not None:
        f0, f1 = fault
        d0, d1 = marks.get("down", fault)
        bad = [e[0] + e[4] for e in rec.events if e[3] != "ok" and e[2] != 409]  # answered at
        first_ok_after = min((e[0] + e[4] for e in votes_ok if e[0] >= f1), default=None)
        out["fault"] = {
            "start": f0,
            "end": f1,
            "errors_before": sum(1 for t in bad if t < f0),
            "errors_from": sum(1 for t in bad if t >= f0),
            "last_error_after_s": max((t - f1 for t in bad if t >= f0), default=None),
            "recovered_after_s": None if first_ok_after is None else first_ok_after - f1,
            "ok_votes_during": sum(1 for e in votes_ok if d0 <= e[0] and e[0] + e[4] < d1),
        }
    bins = max(1, int(seconds // 5))
    timeline = [[0, 0] for _ in range(bins)]
    for e in rec.events:
        k = min(bins - 1, max(0, int(e[0] // 5)))
        if e[1] == "vote" and e[3] == "ok":
            timeline[k][0] += 1
        elif e[3] != "ok" and e[2] != 409:
            timeline[k][1] += 1
    out["timeline"] = timeline
    return out


# --- checks after the run (in this process, through the ORM) --------------------------------------
def check_acknowledged(acks: list) -> dict:
    """Every acknowledged answer is stored exactly once for its session's volunteer."""
    from django.contrib.sessions.backends.db import SessionStore
    from django.db.models import Count

    from labelapp.models import Volunteer as VolunteerRow
    from labelapp.models import Vote
    from labelapp.services.crowd.volunteers import SESSION_KEY

    by_session: dict[str, int | None] = {}
    for _, skey, *_ in acks:
        if skey and skey not in by_session:
            by_session[skey] = SessionStore(session_key=skey).load().get(SESSION_KEY)
    ids = {v for v in by_session.values() if v is not None}
    stored = set(
        Vote.objects.filter(volunteer_id__in=ids).values_list("volunteer_id", "candidate__detectid")
    )
    acked = {(by_session.get(skey), d) for _, skey, d, *_ in acks}
    missing = [(v, d) for v, d in acked if (v, d) not in stored]
    dup = (
        Vote.objects.filter(volunteer_id__in=ids)
        .values("volunteer_id", "candidate_id")
        .annotate(n=Count("id"))
        .filter(n__gt=1)
        .count()
    )
    counts = dict(
        Vote.objects.filter(volunteer_id__in=ids)
        .values_list("volunteer_id")
        .annotate(n=Count("id"))
        .values_list("volunteer_id", "n")
    )
    counters_off = sum(
        1
        for pk, n_votes in VolunteerRow.objects.filter(pk__in=ids).values_list("pk", "n_votes")
        if counts.get(pk, 0) != n_votes
    )
    return {
        "acked": len(acks),
        "acked_distinct": len(acked),
        "acked_twice": len(acks) - len(acked),  # repeats answered 200 created:false
        "no_session": sum(1 for a in acks if not a[1] or by_session.get(a[1]) is None),
        "missing": len(missing),
        "duplicates": dup,
        "stored": len(stored),
        "stored_unacked": len(stored - acked),
        "counters_off": counters_off,
        "ok": not missing and not dup and not counters_off,
    }


def check_loop(version_pk: int) -> dict:
    """The scoring run and the round it opened, and the queue that round wrote."""
    from django.db.models import Count

    from labelapp.models import (
        Candidate,
        CandidateScore,
        GoldStandard,
        Round,
        RoundCandidate,
        ScoreChunk,
        TaskProgress,
    )

    chunks = ScoreChunk.objects.filter(model_version_id=version_pk)
    progress = TaskProgress.objects.filter(
        name="score_catalogue", key=f"model-{version_pk}"
    ).first()
    n_scores = CandidateScore.objects.filter(model_version_id=version_pk).count()
    dup_scores = (
        CandidateScore.objects.filter(model_version_id=version_pk)
        .values("candidate_id")
        .annotate(n=Count("id"))
        .filter(n__gt=1)
        .count()
    )
    rounds = list(Round.objects.filter(scored_by_id=version_pk))
    out = {
        "chunks": chunks.count(),
        "chunks_done": chunks.filter(done=True).count(),
        "progress": progress.state if progress else None,
        "scores": n_scores,
        "candidates": Candidate.objects.count(),
        "duplicate_scores": dup_scores,
        "rounds_from_model": len(rounds),
        "open_rounds": Round.objects.filter(status=Round.Status.OPEN).count(),
        "queue_ok": None,
    }
    if len(rounds) == 1:
        rnd = rounds[0]
        batch = list(
            RoundCandidate.objects.filter(round=rnd, candidate__status=Candidate.Status.ACTIVE)
            .order_by("rank")
            .values_list("candidate_id", "candidate__priority")
        )
        in_batch_range = set(
            Candidate.objects.filter(status=Candidate.Status.ACTIVE, priority__gt=1.0)
            .exclude(pk__in=GoldStandard.objects.values("candidate_id"))
            .values_list("pk", flat=True)
        )
        prios = [p for _, p in batch]
        out["queue_ok"] = {c for c, _ in batch} == in_batch_range and all(
            a > b for a, b in zip(prios, prios[1:], strict=False)
        )
        out["round"] = rnd.number
        out["n_queued"] = rnd.n_queued
    out["ok"] = bool(
        out["chunks"]
        and out["chunks_done"] == out["chunks"]
        and out["progress"] == "done"
        and out["scores"] == out["candidates"]
        and not dup_scores
        and out["rounds_from_model"] == 1
        and out["open_rounds"] == 1
        and out["queue_ok"]
    )
    return out


# --- the catalogue and the model ------------------------------------------------------------------
def setup_django(env: dict[str, str]) -> None:
    for k in ("DATABASE_URL", "REDIS_URL", "DJANGO_DEBUG", "DJANGO_SECRET_KEY",
              "DJANGO_ALLOWED_HOSTS", "LABELAPP_DATA_DIR", "LABELAPP_LOG_LEVEL"):  # fmt: skip
        os.environ[k] = env[k]
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "labelapp.settings")
    import django

    django.setup()


def fill(n_candidates: int, n_small: int, data_dir: Path, log=print) -> None:
    """A simulated survey of ``n_small`` (ingested: store, truth, gold) plus the rest of the
    ``n_candidates`` tiled from it into a second batch (real pixels, new detectids)."""
    import numpy as np
    from django.conf import settings
    from django.core.management import call_command
    from django.db import connection, transaction

    from labelapp.models import Candidate, IngestBatch
    from labelapp.services.bulk import insert_rows
    from labelapp.services.crowd.gold import seed_gold_from_truth
    from labelapp.services.survey.ingest import ingest_survey
    from mlcore.simulator import simulate_survey
    from mlcore.store import StoreWriter
    from mlcore.survey_io import write_survey

    t0 = time.perf_counter()
    call_command("migrate", verbosity=0)
    survey = simulate_survey(n_small, seed=1)
    ingest_survey(path=write_survey(data_dir / "small.fits", survey))
    n_gold = seed_gold_from_truth(per_kind=10)
    bulk = max(0, n_candidates - n_small)
    if bulk:
        path = Path(settings.STORE_ROOT) / "bulk"
        writer = StoreWriter(path, bulk, dtype="float16")
        for start in range(0, bulk, n_small):
            k = min(n_small, bulk - start)
            writer.write(start, im_sum=survey.im_sum[:k], im_array=survey.im_array[:k],
                         im_wave=survey.im_wave[:k], spec1d=survey.spec1d[:k],
                         spec1d_err=survey.spec1d_err[:k])  # fmt: skip
        writer.commit()
        cat = survey.catalog
        src = np.arange(bulk) % n_small
        fields = ("detectid", "batch", "row", "shotid", "field", "ra", "dec", "wave", "flux",
                  "flux_err", "linewidth", "continuum", "sn", "chi2", "apcor", "status",
                  "priority")  # fmt: skip
        with transaction.atomic():
            batch = IngestBatch.objects.create(
                name="bulk", file_sha256="1" * 64, source_path="(bench: tiled)",
                file_format="fits", n_candidates=bulk, store_path=str(path),
                store_dtype="float16",
            )  # fmt: skip
            cols = {c: np.asarray(cat[c])[src] for c in ("shotid", "ra", "dec", "wave", "flux",
                    "flux_err", "linewidth", "continuum", "sn", "chi2")}  # fmt: skip
            insert_rows(
                Candidate,
                fields,
                zip(
                    range(9 * 10**9, 9 * 10**9 + bulk), [batch.pk] * bulk, range(bulk),
                    cols["shotid"].tolist(), ["cosmos"] * bulk, cols["ra"].tolist(),
                    cols["dec"].tolist(), cols["wave"].tolist(), cols["flux"].tolist(),
                    cols["flux_err"].tolist(), cols["linewidth"].tolist(),
                    cols["continuum"].tolist(), cols["sn"].tolist(), cols["chi2"].tolist(),
                    [1.0] * bulk, ["active"] * bulk, (-cols["sn"]).tolist(), strict=True,
                ),
            )  # fmt: skip
    with connection.cursor() as cur:
        cur.execute("ANALYZE")
    log(
        f"catalogue: {n_small:,} simulated (ingested, {n_gold} gold) + {bulk:,} tiled = "
        f"{n_small + bulk:,} candidates in {time.perf_counter() - t0:.0f} s"
    )


def train_tiny_model(log=print):
    """`manage.py train_model --labels truth --epochs 1 --max-train 2000`, in this process."""
    from labelapp.services.learning.promotion import promote_model
    from labelapp.services.learning.training import train_model_version

    t0 = time.perf_counter()
    version = train_model_version(label_source="truth", epochs=1, max_train=2000, max_time_s=60)
    promote_model(model_version=version, reason="bench: the first model")
    log(f"model v{version.pk} trained (1 epoch, truth labels) in {time.perf_counter() - t0:.0f} s")
    return version


def new_live_version(base) -> int:
    """A new promoted version with ``base``'s weights: what a retrain + promotion leaves."""
    from labelapp.models import ModelVersion
    from labelapp.services.learning.promotion import promote_model

    version = ModelVersion.objects.create(
        label_source=base.label_source, directory=base.directory, card=base.card,
        n_train=base.n_train, data_hash=base.data_hash,
    )  # fmt: skip
    promote_model(model_version=version, reason="bench: a scenario's new model")
    return version.pk


# --- the scoring run: send, watch, re-send when its messages were lost ----------------------------
def broker_state(redis_url: str) -> dict[str, int]:
    """Messages waiting on the cpu queue and unacknowledged (delivered, not yet acked)."""
    import redis

    r = redis.Redis.from_url(redis_url, socket_timeout=2)
    return {"queued": r.llen("cpu"), "unacked": r.hlen("unacked")}


def scoring_state(version_pk: int) -> dict:
    from django.db import connections

    from labelapp.models import Round, ScoreChunk, TaskProgress

    try:
        chunks = ScoreChunk.objects.filter(model_version_id=version_pk)
        progress = TaskProgress.objects.filter(name="score_catalogue", key=f"model-{version_pk}")
        return {
            "chunks": chunks.count(),
            "done": chunks.filter(done=True).count(),
            "run_done": progress.filter(state="done").exists(),
            "round": Round.objects.filter(scored_by_id=version_pk).exists(),
        }
    except Exception:
        connections.close_all()
        return {"chunks": 0, "done": 0, "round": False, "db_down": True}


def settle(version_pk: int, redis_url: str, timeout: float, notes: list[str], t_start: float):
    """Wait for the round this model's scoring run opens; re-send what a fault lost."""
    from labelapp.tasks import score_catalogue, start_round

    deadline = time.time() + timeout
    idle_since = None
    while time.time() < deadline:
        s = scoring_state(version_pk)
        if s["round"]:
            return time.time() - t_start
        try:
            b = broker_state(redis_url)
        except Exception:
            b = {"queued": 1, "unacked": 1}
        idle = s.get("chunks") and not s.get("db_down") and not b["queued"] and not b["unacked"]
        if not idle:
            idle_since = None
        elif idle_since is None:
            idle_since = time.time()
        elif time.time() - idle_since > 5:  # nothing queued, nothing in flight, not finished
            if not s["run_done"]:  # chunks undone, or the join interrupted
                score_catalogue.delay(version_pk)
                notes.append(
                    f"t={time.time() - t_start:.0f}s scoring stalled ({s['done']}/{s['chunks']}"
                    " chunks done, run not complete) with no message in Redis: re-sent "
                    "score_catalogue"
                )
            else:  # the join's start_round message itself was lost
                start_round.delay()
                notes.append(
                    f"t={time.time() - t_start:.0f}s run complete but no round and no message "
                    "in Redis: re-sent start_round"
                )
            idle_since = None
        time.sleep(1)
    return None


# --- a scenario -----------------------------------------------------------------------------------
@dataclass
class Stack:
    env: dict[str, str]
    data_dir: Path
    port: int
    base_version: object
    worker: subprocess.Popen | None = None
    n_workers: int = 0

    def new_worker(self) -> subprocess.Popen:
        self.n_workers += 1
        log = self.data_dir / f"worker-cpu{self.n_workers}.log"
        self.worker = start_worker(self.env, log, f"cpu{self.n_workers}")
        self.worker_log = log
        return self.worker


def _chunk_running(log: Path) -> bool:
    """The worker's log shows a score_chunk received and not yet finished."""
    lines = [ln for ln in (log.read_text() if log.exists() else "").splitlines()
             if "tasks.score_chunk[" in ln]  # fmt: skip
    received = sum("received" in ln for ln in lines)
    return received > sum(("succeeded" in ln or "raised" in ln) for ln in lines)


def rebuild_window(data_dir: Path, t_start: float) -> tuple[float, float] | None:
    """(start, end), in seconds since ``t_start``, of the latest start_round that succeeded
    (the queue rebuild), from the workers' logs (same clock: the same machine)."""
    import datetime as dt

    last = None
    for log in data_dir.glob("worker-cpu*.log"):
        for ln in log.read_text().splitlines():
            if "tasks.start_round[" in ln and "succeeded in " in ln:
                end = dt.datetime.strptime(ln[:23], "%Y-%m-%d %H:%M:%S,%f").timestamp()
                took = float(ln.split("succeeded in ")[1].split("s:")[0])
                if last is None or end > last[1]:
                    last = (end - took, end)
    return None if last is None else (last[0] - t_start, last[1] - t_start)


def _wait_chunk_running(log: Path, timeout: float = 60) -> None:
    deadline = time.time() + timeout
    while not _chunk_running(log) and time.time() < deadline:
        time.sleep(0.2)
    time.sleep(0.3)  # inside the chunk (a chunk takes seconds)


def chunk_log(data_dir: Path, version_pk: int) -> dict[str, int]:
    """This model's score_chunk runs in every worker's log: succeeded, retried after an
    error (the database down), failed for good (raised; WorkerLostError: pool process killed)."""
    from labelapp.models import ScoreChunk

    ids = {f"chunk_id={pk}]" for pk in ScoreChunk.objects.filter(model_version_id=version_pk)
           .values_list("pk", flat=True)}  # fmt: skip
    lines = [
        ln
        for log in data_dir.glob("worker-cpu*.log")
        for ln in log.read_text().splitlines()
        if "score_chunk[" in ln and any(i in ln for i in ids)
    ]
    return {
        "succeeded": sum("succeeded" in ln for ln in lines),
        "retried": sum("Retry in" in ln for ln in lines),
        "failed": sum("raised" in ln for ln in lines),
    }


def fault_thread(scenario: str, stack: Stack, args, t_start: float, marks: dict, notes: list):
    """Run the scenario's fault at --fault-at s; marks['fault'] = (start, end) since t_start."""
    try:
        time.sleep(max(0.0, t_start + args.fault_at - time.time()))
        if scenario in ("redis-restart", "pg-restart"):
            stop, start = (redis_stop, redis_start) if scenario == "redis-restart" else (
                pg_stop, pg_start)  # fmt: skip
            f0 = time.time() - t_start
            stop()
            down = time.time() - t_start
            time.sleep(args.outage)
            marks["down"] = (down, time.time() - t_start)
            start()
            marks["fault"] = (f0, time.time() - t_start)
        elif scenario == "kill-scoring-child":
            # The pool process that runs the chunk, as the kernel's OOM killer would pick it;
            # the worker's main process stays and forks a new pool process.
            _wait_chunk_running(stack.worker_log)
            f0 = time.time() - t_start
            children = Path(f"/proc/{stack.worker.pid}/task/{stack.worker.pid}/children")
            for pid in children.read_text().split():
                os.kill(int(pid), signal.SIGKILL)
            notes.append(f"t={f0:.1f}s the cpu worker's pool process SIGKILLed mid-chunk")
            marks["down"] = marks["fault"] = (f0, f0 + 0.1)
        elif scenario == "kill-scoring-worker":
            _wait_chunk_running(stack.worker_log)
            f0 = time.time() - t_start
            os.killpg(stack.worker.pid, signal.SIGKILL)
            stack.worker.wait()
            # Restarted once its message's visibility timeout has passed: the new worker's
            # Redis transport then hands the killed worker's message back as it starts
            # (otherwise at kombu's next periodic sweep, about 100 s later).
            dead = max(args.outage, args.visibility_timeout + 1)
            marks["down"] = (f0, f0 + dead)
            notes.append(f"t={f0:.1f}s cpu worker SIGKILLed while scoring a chunk")
            time.sleep(dead)
            stack.new_worker()
            marks["fault"] = (f0, time.time() - t_start)
            notes.append(f"t={marks['fault'][1]:.1f}s a new cpu worker started")
    except Exception as exc:
        notes.append(f"fault thread failed: {exc!r}")
        restore_services()


def run_scenario(scenario: str, stack: Stack, args) -> dict:
    from django.db import connections

    from labelapp.tasks import score_catalogue

    version_pk = new_live_version(stack.base_version)
    connections.close_all()
    notes: list[str] = []
    marks: dict = {}
    t_start = time.time() + 2.0  # client processes start meanwhile
    sender = threading.Timer(
        max(0.0, t_start + 2.0 - time.time()), lambda: score_catalogue.delay(version_pk)
    )
    sender.start()
    fault = None
    if scenario != "baseline":
        fault = threading.Thread(
            target=fault_thread, args=(scenario, stack, args, t_start, marks, notes)
        )
        fault.start()
    try:
        rec = run_load(
            port=stack.port, seconds=args.seconds, volunteers=args.volunteers,
            processes=args.processes, inflight=args.inflight, t_start=t_start,
        )  # fmt: skip
    finally:
        sender.join()
        if fault is not None:
            fault.join()
        restored = restore_services()
        notes += [f"after the run: {r}" for r in restored]
    connections.close_all()
    round_at = settle(version_pk, REDIS_URL, args.settle_timeout, notes, t_start)
    connections.close_all()
    summary = summarise(rec, args.seconds, marks)
    summary["round_at"] = round_at
    summary["acks"] = check_acknowledged(rec.acks)
    summary["loop"] = check_loop(version_pk)
    summary["loop"]["chunk_runs"] = chunk_log(stack.data_dir, version_pk)
    window = rebuild_window(stack.data_dir, t_start)
    if window is not None:
        w0, w1 = window
        during = [e for e in rec.events if w0 <= e[0] <= w1]
        lat = [e[4] for e in during if e[1] == "vote" and e[3] == "ok"]
        summary["rebuild"] = {
            "start": w0,
            "seconds": w1 - w0,
            "votes": len(lat),
            "p99": _pct(lat, 99),
            "errors": sum(1 for e in during if e[3] != "ok" and e[2] != 409),
        }
    summary["notes"] = notes
    return summary


def report(scenario: str, s: dict) -> str:
    a, lp = s["acks"], s["loop"]
    lines = [
        f"== {scenario}",
        f"  votes/s {s['votes_s']:.0f} | vote latency p50 {s['p50']:.0f} ms, p95 {s['p95']:.0f} "
        f"ms, p99 {s['p99']:.0f} ms, max {s['max']:.0f} ms | requests {s['requests']:,}, "
        f"answers acknowledged {s['votes_acked']:,} ({s['votes_created']:,} new), "
        f"409 skipped {s['skipped_409']}",
        "  errors: "
        + (", ".join(f"{k}: {v}" for k, v in sorted(s["errors"].items())) or "none")
        + " | unclean (non-JSON 5xx/2xx, unexpected 4xx): "
        + (", ".join(f"{k}: {v}" for k, v in sorted(s["unclean"].items())) or "none"),
    ]
    if "fault" in s:
        f = s["fault"]
        rec, last = f["recovered_after_s"], f["last_error_after_s"]
        lines.append(
            f"  fault {f['start']:.1f}-{f['end']:.1f} s (down/dead -> back): errors before it "
            f"{f['errors_before']}, from it on {f['errors_from']} (last "
            + ("-" if last is None else f"{last:+.1f} s from the restart")
            + f"); answers acknowledged while it was down {f['ok_votes_during']}; first "
            "acknowledged answer " + ("never" if rec is None else f"{rec:.2f} s after the restart")
        )
    lines.append(
        "  per 5 s (ok votes/errors): " + " ".join(f"{ok}/{err}" for ok, err in s["timeline"])
    )
    lines.append(
        f"  acknowledged votes: {a['acked_distinct']:,} distinct acknowledged, missing "
        f"{a['missing']}, duplicated {a['duplicates']}, stored without acknowledgement "
        f"{a['stored_unacked']}, repeats answered 200 {a['acked_twice']}, volunteer counters "
        f"off {a['counters_off']} -> {'OK' if a['ok'] else 'FAIL'}"
    )
    lines.append(
        f"  loop: chunks {lp['chunks_done']}/{lp['chunks']} done (chunk runs: "
        + ", ".join(f"{k} {v}" for k, v in lp["chunk_runs"].items())
        + f"), progress {lp['progress']}, "
        f"scores {lp['scores']:,}/{lp['candidates']:,} (duplicates {lp['duplicate_scores']}), "
        f"rounds from this model {lp['rounds_from_model']}, open rounds {lp['open_rounds']}, "
        f"queue from one round {lp['queue_ok']}; "
        + ("no round by the end of the wait" if s["round_at"] is None else "checked after the run")
        + f" -> {'OK' if lp['ok'] else 'FAIL'}"
    )
    if "rebuild" in s:
        r = s["rebuild"]
        lines.append(
            f"  queue rebuild (start_round) t={r['start']:.1f}-{r['start'] + r['seconds']:.1f} s "
            f"({r['seconds']:.1f} s): meanwhile {r['votes']} answers acknowledged, vote p99 "
            f"{r['p99']:.0f} ms, errors {r['errors']}"
        )
    lines += [f"  note: {n}" for n in s["notes"]]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scenario", default="all", choices=(*SCENARIOS, "all"))
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--volunteers", type=int, default=200)
    parser.add_argument("--candidates", type=int, default=200_000)
    parser.add_argument("--simulated", type=int, default=2000, help="ingested, trained on")
    parser.add_argument("--processes", type=int, default=4, help="client processes")
    parser.add_argument("--inflight", type=int, default=32, help="requests in flight at most")
    parser.add_argument("--fault-at", type=float, default=15)
    parser.add_argument("--outage", type=float, default=5, help="seconds a service stays down")
    parser.add_argument("--mc-samples", type=int, default=2, help="MC-dropout passes scoring")
    parser.add_argument("--visibility-timeout", type=int, default=10)
    parser.add_argument("--settle-timeout", type=float, default=300)
    parser.add_argument(
        "--keep", action="store_true", help="keep the database and the data directory afterwards"
    )
    args = parser.parse_args()
    scenarios = list(SCENARIOS) if args.scenario == "all" else [args.scenario]
    for s in scenarios:
        what = {"redis-restart": "redis", "pg-restart": "postgres"}.get(s)
        if what and (why := restart_unavailable_reason(what)):
            sys.exit(f"cannot run {s}: {why}")

    db_url = postgres_url(DB_NAME)
    if db_url is None:
        sys.exit("PostgreSQL is not reachable on 127.0.0.1:5432: nothing to measure")
    import redis

    redis.Redis.from_url(REDIS_URL).flushdb()
    data_dir = Path(tempfile.mkdtemp(prefix="bench-load-faults-"))
    env = stack_env(db_url, REDIS_URL, str(data_dir), LABELAPP_SCORE_MC_SAMPLES=str(
        args.mc_samples), LABELAPP_VISIBILITY_TIMEOUT_S=str(args.visibility_timeout))  # fmt: skip
    setup_django(env)
    fill(args.candidates, args.simulated, data_dir)
    base = train_tiny_model()
    from django.db import connections

    connections.close_all()
    stack = Stack(env=env, data_dir=data_dir, port=free_port(), base_version=base)
    gunicorn = None
    print(
        f"config: gunicorn 4 workers x 2 threads (gthread, the Procfile's web command), one "
        f"Celery cpu worker (prefork, concurrency 1, visibility timeout "
        f"{args.visibility_timeout} s, {args.mc_samples} MC samples), PostgreSQL + Redis db 14; "
        f"{args.volunteers} volunteers = threads in {args.processes} client processes, zero "
        f"think time, at most {args.inflight} requests in flight; {args.seconds:.0f} s per "
        f"scenario; faults at t={args.fault_at:.0f} s for {args.outage:.0f} s; "
        f"{os.cpu_count()} CPU cores shared by everything",
        flush=True,
    )
    try:
        gunicorn = start_gunicorn(env, stack.port, data_dir / "gunicorn.log")
        stack.new_worker()
        for scenario in scenarios:
            if stack.worker is None or stack.worker.poll() is not None:
                stack.new_worker()
            summary = run_scenario(scenario, stack, args)
            print(report(scenario, summary), flush=True)
    finally:
        stop_group(stack.worker)
        stop_group(gunicorn)
        for r in restore_services():
            print(f"restored: {r}")
        log = (
            (data_dir / "gunicorn.log").read_text() if (data_dir / "gunicorn.log").exists() else ""
        )
        tail = [ln for ln in log.splitlines() if not any(x in ln for x in NOISE)]
        tail = tail[-15:]
        if tail:
            print("--- gunicorn log, tail:\n" + "\n".join(tail))
        connections.close_all()
        if not args.keep:
            import shutil

            shutil.rmtree(data_dir, ignore_errors=True)  # the stores: GBs at 200,000 candidates
            drop_database(DB_NAME)


if __name__ == "__main__":
    main()
