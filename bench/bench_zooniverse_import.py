"""Zooniverse import throughput and memory on PostgreSQL.

Target (issue #23): at least 20,000 classification rows/s, memory flat in the file size.
Synthetic exports in Panoptes' formats (a ~1 kB metadata cell and a subject_data cell per row,
like the real ones), 20,000 candidates/subjects, 4,000 volunteers (a quarter not logged in),
random volunteer and subject per row (~0.1 % repeat classifications). Each import runs as
its own ``manage.py import_zooniverse`` process (start-up included) so its peak RSS is its
own: first with ``--no-consensus``, then a re-import with the consensus refresh on, which adds
no votes, so it times the idempotent path (the per-candidate consensus refresh after a first
import is not measured here). Figures are printed, never asserted.

    python bench/bench_zooniverse_import.py [--sizes 100000 300000]
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import random
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

from _util import ROOT, drop_database, postgres_url

N_CAND = 20_000
FIRST_ID = 7_000_000
WF = 10880

MAKE_CANDIDATES = f"""
from labelapp.models import Candidate, IngestBatch
from labelapp.services.bulk import insert_rows
from django.db import transaction
with transaction.atomic():
    b = IngestBatch.objects.create(name="zv", file_sha256="0" * 64, source_path="-",
        file_format="fits", n_candidates={N_CAND}, store_path="-", store_dtype="float16")
    insert_rows(Candidate, ("detectid", "batch", "row", "shotid", "field", "ra", "dec", "wave",
        "flux", "flux_err", "linewidth", "continuum", "sn", "chi2", "apcor", "status",
        "priority"), ((i + {FIRST_ID}, b.pk, i, 1, "cosmos", 150.0, 2.2, 4000.0, 10.0, 2.0, 3.0,
        0.0, 5.0 + (i % 100) / 50, 1.0, 1.0, "active", -5.0) for i in range({N_CAND})))
"""


def write_exports(work: Path, n_rows: int) -> Path:
    rng = random.Random(n_rows)
    subjects = work / "subjects.csv"
    if not subjects.exists():
        with open(subjects, "w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(["subject_id", "project_id", "workflow_id", "subject_set_id", "metadata",
                        "locations", "classifications_count", "retired_at",
                        "retirement_reason", "created_at", "updated_at"])  # fmt: skip
            for i in range(N_CAND):
                md = json.dumps({"image": f"{FIRST_ID + i}.png", "#detectid": FIRST_ID + i})
                w.writerow([80_000_000 + i, 7332, WF, 91001, md, "{}", 0, "", "", "x", "x"])
    path = work / f"classifications-{n_rows}.csv"
    meta = json.dumps({"source": "api", "session": "ab" * 32, "viewport": {"width": 390,
        "height": 844}, "started_at": "2021-03-01T09:15:00.000Z", "user_agent": "Mozilla/5.0 "
        "(iPhone; CPU iPhone OS 17_2 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
        "Version/17.2 Mobile/15E148 Safari/604.1", "utc_offset": "-21600",
        "finished_at": "2021-03-01T09:15:04.000Z", "live_project": True, "user_language": "en",
        "subject_dimensions": [{"clientWidth": 360, "clientHeight": 360, "naturalWidth": 600,
        "naturalHeight": 600}], "subject_selection_state": {"retired": False, "selected_at":
        "2021-03-01T09:15:00.000Z", "already_seen": False, "selection_state": "normal",
        "finished_workflow": False, "user_has_finished_workflow": False}})  # fmt: skip
    q = "Is there a real emission line at the centre of the image?"
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["classification_id", "user_name", "user_id", "user_ip", "workflow_id",
                    "workflow_name", "workflow_version", "created_at", "gold_standard",
                    "expert", "metadata", "annotations", "subject_data",
                    "subject_ids"])  # fmt: skip
        for k in range(n_rows):
            v = rng.randrange(4000)
            user = (f"not-logged-in-{v:020x}", "") if v < 1000 else (f"user{v}", str(v))
            s = rng.randrange(N_CAND)
            ans = json.dumps([{"task": "T0", "task_label": q, "value": rng.choice(["Yes", "No"])}])
            sd = json.dumps({str(80_000_000 + s): {"retired": None, "#detectid": FIRST_ID + s}})
            t = f"2021-03-{1 + k * 27 // n_rows:02d} {k % 24:02d}:{k % 60:02d}:{k % 59:02d} UTC"
            w.writerow([600_000_000 + k, user[0], user[1], "ab12", WF, "DEE", "13.4", t, "", "",
                        meta, ans, sd, 80_000_000 + s])  # fmt: skip
    return path


def _cpu_of(pid: int) -> float | None:
    """CPU seconds (user + system) of process ``pid``; None once it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _backend_pids(conn, app: str) -> set[int]:
    rows = conn.execute("SELECT pid FROM pg_stat_activity WHERE application_name = %s", [app])
    return {r[0] for r in rows}


def run(args: list[str], env: dict[str, str], cwd: Path) -> dict[str, float | str]:
    """Run ``args``; wall seconds, its CPU seconds and peak RSS (MiB), and the CPU of its
    own PostgreSQL backends (found by application name, sampled every 0.1 s: the last
    0.1 s of a backend's life can be missed)."""
    app = f"bench-zv-{os.getpid()}-{time.monotonic_ns()}"
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        args, cwd=cwd, env={**os.environ, **env, "PGAPPNAME": app}, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    import psycopg

    backend_cpu: dict[int, float] = {}
    usage = None
    with psycopg.connect("postgresql://postgres@127.0.0.1:5432/postgres", autocommit=True) as c:
        while usage is None:
            pid, status, ru = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                usage = ru
                break
            for b in _backend_pids(c, app) | set(backend_cpu):
                cpu = _cpu_of(b)
                if cpu is not None:
                    backend_cpu[b] = cpu
            time.sleep(0.1)
    wall = time.perf_counter() - t0
    out = proc.stdout.read()
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"{' '.join(args)} failed:\n{out[-3000:]}")
    return {
        "wall": wall,
        "cpu": usage.ru_utime + usage.ru_stime,
        "rss": usage.ru_maxrss / 1024,
        "pg_cpu": sum(backend_cpu.values()),
        "out": out,
    }


def extract(rev: str, into: Path) -> Path:
    """The tree of git revision ``rev`` in ``into`` (read-only use of the repository)."""
    data = subprocess.run(
        ["git", "archive", "--format=tar", rev], cwd=ROOT, check=True, capture_output=True
    ).stdout
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        tar.extractall(into, filter="data")
    return into


def measure(code: Path, label: str, n: int, work: Path, db: str) -> None:
    py = sys.executable
    url = postgres_url(db)
    if url is None:
        raise SystemExit(1)
    env = {"DATABASE_URL": url}
    try:
        run([py, "manage.py", "migrate", "-v", "0"], env, code)
        run([py, "manage.py", "shell", "-c", MAKE_CANDIDATES], env, code)
        cls = work / f"classifications-{n}.csv"
        workflows = ROOT / "tests" / "fixtures" / "zooniverse" / "workflows.csv"
        base = [py, "manage.py", "import_zooniverse", str(cls), "--subjects",
                str(work / "subjects.csv"), "--workflow", str(workflows), "--workflow-id",
                str(WF), "--no-progress"]  # fmt: skip
        first = run([*base, "--no-consensus"], env, code)
        again = run(base, env, code)
    finally:
        drop_database(db)
    added = str(first["out"]).split("votes added: ")[1].split(" ")[0]
    both = n / (first["cpu"] + first["pg_cpu"])
    print(
        f"{label:>9} {n:>9,} rows: first import {first['wall']:6.1f} s = "
        f"{n / first['wall']:7,.0f} rows/s (import process {n / first['cpu']:7,.0f} rows per "
        f"CPU-s; postgres CPU {first['pg_cpu']:5.1f} s; both: {both:7,.0f}"
        f" rows per CPU-s), peak RSS {first['rss']:4.0f} MiB, votes added {added}; "
        f"re-import {again['wall']:6.1f} s = {n / again['wall']:7,.0f} rows/s "
        f"({n / again['cpu']:7,.0f} rows per CPU-s), RSS {again['rss']:4.0f} MiB",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 300_000])
    parser.add_argument("--baseline", default=None, help="git revision to measure as well")
    parser.add_argument("--db", default="bench_zooniverse", help="database to (re)create")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-zv-"))
    try:
        codes = [(ROOT, "current")]
        if args.baseline:
            codes.insert(0, (extract(args.baseline, work / "baseline"), args.baseline[:9]))
        print(f"load average before: {os.getloadavg()[0]:.2f}, {os.cpu_count()} CPUs")
        for n in args.sizes:
            cls = write_exports(work, n)
            print(f"{n:,} rows: {cls.stat().st_size / 2**20:,.0f} MB")
            for code, label in codes:
                measure(code, label, n, work, args.db)
            cls.unlink()
        print(f"load average after: {os.getloadavg()[0]:.2f}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
