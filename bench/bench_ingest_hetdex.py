"""HETDEX three-file ingest at (scaled-down) survey scale: candidates/s and peak memory.

The real join is 2.46 M ML-file rows against a 14.2 M-row catalogue (5.8x). This makes the
three files with ``mlcore.hetdex_io.write_hetdex`` (ML file in shot order, catalogue
``--factor`` times larger in detectid order, survey table) for each ML size, then runs
``manage.py ingest ML --catalogue CAT --survey SURVEY`` as its own process on PostgreSQL and
prints wall time (process start-up included), candidates/s, CPU seconds (user + system: less
sensitive than wall time to other work on a shared machine) and that process's peak RSS.
``--baseline`` also ingests the same candidates written in the project's own one-file HDF5
layout, in the same run, for comparison. Figures are printed, never asserted.

    python bench/bench_ingest_hetdex.py [--sizes 20000 60000] [--factor 5] [--baseline] [--db NAME]
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


def run_cpu(args: list[str], env: dict[str, str]) -> tuple[float, float, float, str]:
    """(wall s, CPU s, peak RSS MiB, output) of one child process."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        args, cwd=ROOT, env={**os.environ, **env}, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    _, status, usage = os.wait4(proc.pid, 0)
    out = proc.stdout.read()
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(out[-3000:])
    wall = time.perf_counter() - t0
    return wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024, out


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
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-hetdex-"))
    print(
        f"{'layout':>8} {'ML rows':>8} {'cat rows':>9} {'ML GB':>6} {'seconds':>8} "
        f"{'cand/s':>7} {'CPU s':>6} {'cand/CPU s':>10} {'peak RSS MiB':>13}"
    )
    for n in args.sizes:
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
            url = postgres_url(args.db)
            if url is None:
                raise SystemExit("needs PostgreSQL")
            data_dir = work / f"data-{n}"
            env = {"LABELAPP_DATA_DIR": str(data_dir), "DATABASE_URL": url, "REDIS_URL": ""}
            run_measured([sys.executable, "manage.py", "migrate", "-v0"], env)
            cmd = [sys.executable, "manage.py", "ingest", *files, "--no-progress"]
            wall, cpu, rss, out = run_cpu(cmd, env)
            if "Ingested" not in out:
                raise RuntimeError(out)
            cat_rows = int(round(n * args.factor)) if layout == "hetdex" else n
            print(
                f"{layout:>8} {n:>8,} {cat_rows:>9,} {ml.stat().st_size / 1e9:>6.2f} "
                f"{wall:>8.1f} {n / wall:>7,.0f} {cpu:>6.1f} {n / cpu:>10,.0f} {rss:>13,.0f}",
                flush=True,
            )
            shutil.rmtree(data_dir)
        for p in (ml, cat, sv, own):
            p.unlink(missing_ok=True)
    print("seconds include process start-up and Django set-up (~1-2 s)")
    if not args.keep:
        shutil.rmtree(work)


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    main()
