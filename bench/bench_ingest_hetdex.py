"""HETDEX three-file ingest at (scaled-down) survey scale: candidates/s and peak memory.

The real join is 2.46 M ML-file rows against a 14.2 M-row catalogue (5.8x). This makes the
three files with ``mlcore.hetdex_io.write_hetdex`` (ML file in shot order, catalogue
``--factor`` times larger in detectid order, survey table) for each ML size, then runs
``manage.py ingest ML --catalogue CAT --survey SURVEY`` as its own process on PostgreSQL and
prints wall time (process start-up included), candidates/s, CPU seconds split into user and
system (less sensitive than wall time to other work on a shared machine; system time is the
kernel's: page faults, page-cache copies), minor page faults, that process's peak RSS and
the load average when it ended.
``--baseline`` also ingests the same candidates written in the project's own one-file HDF5
layout, in the same run, for comparison. ``--before REF`` also ingests the same files with
the code of git revision REF (checked out in a temporary worktree, run with this Python),
alternating with today's code, and prints today's figures as ratios of REF's. Figures are
printed, never asserted.

    python bench/bench_ingest_hetdex.py [--sizes 20000 60000] [--factor 5] [--baseline]
        [--before 27d16ec] [--db NAME]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _util import ROOT, postgres_url, run_measured


def run_cpu(args: list[str], env: dict[str, str], cwd: Path = ROOT) -> tuple[dict, str]:
    """({wall, user, sys, rss (MiB), minflt}, output) of one child process."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        args, cwd=cwd, env={**os.environ, **env}, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    _, status, usage = os.wait4(proc.pid, 0)
    out = proc.stdout.read()
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(out[-3000:])
    wall = time.perf_counter() - t0
    figures = {
        "wall": wall, "user": usage.ru_utime, "sys": usage.ru_stime,
        "rss": usage.ru_maxrss / 1024, "minflt": usage.ru_minflt,
    }  # fmt: skip
    return figures, out


def checkout(ref: str) -> Path:
    """A temporary git worktree of ``ref`` (removed at the end by :func:`drop_checkout`)."""
    where = Path(tempfile.mkdtemp(prefix="bench-hetdex-before-"))
    subprocess.run(
        ["git", "worktree", "add", "--detach", str(where), ref], cwd=ROOT, check=True,
        capture_output=True,
    )  # fmt: skip
    return where


def drop_checkout(where: Path) -> None:
    subprocess.run(["git", "worktree", "remove", "--force", str(where)], cwd=ROOT, check=False)
    shutil.rmtree(where, ignore_errors=True)


MAKE_FILES = """
import sys
sys.path.insert(0, {root!r})
from mlcore.hetdex_io import write_hetdex
from tests.factories import make_survey
survey = make_survey({n}, seed={n})  # pixel values do not change ingest cost
out = write_hetdex(survey, {ml!r}, {cat!r}, {sv!r}, seed=1, catalogue_factor={factor})
print(out["quirks"])
if {baseline!r}:
    from mlcore.survey_io import write_survey
    write_survey({own!r}, survey)
"""


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", type=int, nargs="+", default=[20000, 60000])
    parser.add_argument("--factor", type=float, default=5.0, help="catalogue rows per ML row")
    parser.add_argument(
        "--db", default="labelapp_bench_hetdex", help="PostgreSQL database (dropped, recreated)"
    )
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    parser.add_argument("--baseline", action="store_true", help="also the one-file layout")
    parser.add_argument(
        "--before", metavar="REF", help="also ingest with the code of git revision REF"
    )
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-hetdex-"))
    trees = {"today": ROOT}
    if args.before:
        trees[args.before] = checkout(args.before)
    print(
        f"{'code':>8} {'layout':>8} {'ML rows':>8} {'cat rows':>9} {'ML GB':>6} "
        f"{'seconds':>8} {'cand/s':>7} {'user s':>7} {'sys s':>6} {'cand/CPU s':>10} "
        f"{'peak RSS MiB':>13} {'minflt':>8} {'load 1m':>7}"
    )
    results: dict[tuple[str, str, int], dict] = {}
    try:
        for i, n in enumerate(args.sizes):
            ml, cat, sv, own = (work / f"{k}{n}.h5" for k in ("ml", "cat", "survey", "own"))
            code = MAKE_FILES.format(
                root=str(ROOT), n=n, ml=str(ml), cat=str(cat), sv=str(sv), factor=args.factor,
                baseline=args.baseline, own=str(own),
            )  # fmt: skip
            run_measured([sys.executable, "-c", code], {})  # in a child: its memory is not ours
            runs = {"hetdex": [str(ml), "--catalogue", str(cat), "--survey", str(sv)]}
            if args.baseline:
                runs["own-hdf5"] = [str(own)]
            for layout, files in runs.items():
                # one after the other on the same files, the order alternating by size
                for label, tree in list(trees.items())[:: -1 if i % 2 else 1]:
                    url = postgres_url(args.db)
                    if url is None:
                        raise SystemExit("needs PostgreSQL")
                    data_dir = work / f"data-{n}"
                    env = {
                        "LABELAPP_DATA_DIR": str(data_dir), "DATABASE_URL": url, "REDIS_URL": "",
                    }  # fmt: skip
                    migrate = [sys.executable, "manage.py", "migrate", "-v0"]
                    run_cpu(migrate, env, cwd=tree)
                    cmd = [sys.executable, "manage.py", "ingest", *files, "--no-progress"]
                    f, out = run_cpu(cmd, env, cwd=tree)
                    if "Ingested" not in out:
                        raise RuntimeError(out)
                    results[label, layout, n] = f
                    cat_rows = int(round(n * args.factor)) if layout == "hetdex" else n
                    cpu = f["user"] + f["sys"]
                    print(
                        f"{label:>8} {layout:>8} {n:>8,} {cat_rows:>9,} "
                        f"{ml.stat().st_size / 1e9:>6.2f} {f['wall']:>8.1f} "
                        f"{n / f['wall']:>7,.0f} {f['user']:>7.1f} {f['sys']:>6.1f} "
                        f"{n / cpu:>10,.0f} {f['rss']:>13,.0f} {f['minflt']:>8,} "
                        f"{os.getloadavg()[0]:>7.2f}",
                        flush=True,
                    )
                    shutil.rmtree(data_dir)
            for p in (ml, cat, sv, own):
                p.unlink(missing_ok=True)
    finally:
        if args.before:
            drop_checkout(trees[args.before])
    print("seconds include process start-up and Django set-up (~1-2 s)")
    if args.before:
        print(f"today / {args.before} (same files, same run):")
        for (label, layout, n), f in results.items():
            b = results.get((args.before, layout, n))
            if label != "today" or b is None:
                continue
            print(
                f"  {layout} {n:,}: wall x{f['wall'] / b['wall']:.2f}, "
                f"user x{f['user'] / b['user']:.2f}, sys x{f['sys'] / b['sys']:.2f}, "
                f"CPU x{(f['user'] + f['sys']) / (b['user'] + b['sys']):.2f}, "
                f"peak RSS {f['rss']:.0f} vs {b['rss']:.0f} MiB"
            )
    if not args.keep:
        shutil.rmtree(work)


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    main()
