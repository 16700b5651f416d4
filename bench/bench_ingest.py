"""Ingest throughput and memory: 20,000 and 100,000 candidates, SQLite and PostgreSQL.

Target (issue): at least 5,000 candidates/s on 2 cores, and peak memory that does not grow
with the file beyond the current chunk. Each ingest runs as its own ``manage.py ingest``
process so its peak RSS is its own. Figures are printed, never asserted.

    python bench/bench_ingest.py [--sizes 20000 100000] [--keep]
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

from _util import ROOT, postgres_url, run_measured

MAKE_FILES = """
import sys
sys.path.insert(0, {root!r})
from mlcore.survey_io import write_survey
from tests.factories import make_survey
survey = make_survey({n}, seed={n})  # pixel values do not change ingest cost
for path in {paths!r}:
    write_survey(path, survey)
"""


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", type=int, nargs="+", default=[20000, 100000])
    parser.add_argument("--formats", nargs="+", default=["fits", "hdf5"])
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-ingest-"))
    files = {}
    for n in args.sizes:
        paths = []
        for fmt in args.formats:
            files[(n, fmt)] = work / f"s{n}{'.fits' if fmt == 'fits' else '.h5'}"
            paths.append(str(files[(n, fmt)]))
        # In a child process: a forked ingest would otherwise inherit (and be charged for)
        # this process's memory in its peak RSS.
        code = MAKE_FILES.format(root=str(ROOT), n=n, paths=paths)
        run_measured([sys.executable, "-c", code], {})
    backends = {"sqlite": ""}
    pg = postgres_url("labelapp_bench_ingest")
    if pg:
        backends["postgresql"] = pg
    print(
        f"{'backend':>10} {'format':>6} {'n':>8} {'file GB':>8} {'seconds':>8} "
        f"{'cand/s':>8} {'peak RSS MiB':>13}"
    )
    for backend, url in backends.items():
        for (n, fmt), path in files.items():
            data_dir = work / f"data-{backend}-{n}-{fmt}"
            env = {"LABELAPP_DATA_DIR": str(data_dir), "DATABASE_URL": url, "REDIS_URL": ""}
            if url:  # a fresh database for each run
                env["DATABASE_URL"] = postgres_url("labelapp_bench_ingest")
            run_measured([sys.executable, "manage.py", "migrate", "-v0"], env)
            seconds, rss, out = run_measured(
                [sys.executable, "manage.py", "ingest", str(path), "--no-progress"], env
            )
            if "Ingested" not in out:
                raise RuntimeError(out)
            gb = path.stat().st_size / 1e9
            print(
                f"{backend:>10} {fmt:>6} {n:>8,} {gb:>8.2f} {seconds:>8.1f} "
                f"{n / seconds:>8,.0f} {rss:>13,.0f}",
                flush=True,
            )
            shutil.rmtree(data_dir)
    print("seconds include process start-up and Django set-up (~1-2 s)")
    if not args.keep:
        shutil.rmtree(work)


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    main()
