"""Streaming catalogue export: rows/s and peak memory of the FITS and CSV streams.

Builds a fresh SQLite database (in a temporary directory) with ``--n`` synthetic candidates,
every one scored by a promoted model, 10% labelled by a succeeded aggregation run and 2%
queued by a round (so every LEFT JOIN of the export query has work to do), inserted in bulk
(``labelapp.services.bulk.insert_rows``). Each export then runs in a fresh child process
that streams the whole file to a byte counter, so its peak RSS (``resource.getrusage``) is
the export's own; "baseline" is the child's peak after Django, astropy and the export
module are imported, before the first row is read. Figures only, nothing passes or fails.

    .venv/bin/python bench/bench_export.py [--n 200000] [--chunk 10000] [--postgres]

``--postgres`` uses a fresh database ``labelapp_bench_export`` on the local PostgreSQL
(postgres@127.0.0.1:5432, created here and dropped at the end) instead of SQLite.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

TARGET = 2_500_000


def _django(data_dir: str, database_url: str = "") -> None:
    os.environ.update(
        {
            "DJANGO_SETTINGS_MODULE": "labelapp.settings",
            "LABELAPP_DATA_DIR": data_dir,
            "DATABASE_URL": database_url,
            "REDIS_URL": "",
        }
    )
    import django

    django.setup()


def _peak_mib() -> float:
    """Peak RSS of this process. Linux keeps ``ru_maxrss`` across fork + exec, so a child's
    getrusage figure starts at its parent's size; VmHWM belongs to this process alone."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def build(n: int) -> int:
    """Migrate and fill the database; return the model version id."""
    import numpy as np
    from django.core.management import call_command
    from django.db import transaction

    from labelapp.models import (
        AggregationRun,
        Candidate,
        CandidateScore,
        IngestBatch,
        Label,
        ModelVersion,
        Round,
        RoundCandidate,
    )
    from labelapp.services.bulk import insert_rows

    call_command("migrate", verbosity=0)
    rng = np.random.default_rng(0)
    step = 50_000
    with transaction.atomic():
        batch = IngestBatch.objects.create(
            name="bench", file_sha256="0" * 64, source_path="/dev/null", file_format="fits",
            n_candidates=n, store_path="/nonexistent", store_dtype="float16",
        )  # fmt: skip
        mv = ModelVersion.objects.create(
            status=ModelVersion.Status.PROMOTED, label_source="truth", directory="/nonexistent"
        )
        run = AggregationRun.objects.create(method="dawid_skene", status="done")
        rnd = Round.objects.create(number=1)
        fields = ("cosmos", "goods-n", "dex-spring", "dex-fall")
        cols = ["detectid", "batch", "row", "shotid", "field", "ra", "dec", "wave", "flux"]
        cols += ["flux_err", "linewidth", "continuum", "sn", "chi2", "apcor", "status"]
        cols += ["priority"]
        for lo in range(0, n, step):
            k = min(step, n - lo)
            ra, dec = rng.uniform(150, 151, k), rng.uniform(2, 3, k)
            wave, sn = rng.uniform(3500, 5500, k), rng.uniform(4.8, 9, k)
            insert_rows(
                Candidate,
                cols,
                (
                    (1_000_000 + lo + i, batch.pk, lo + i, 20190101001, fields[i % 4],
                     float(ra[i]), float(dec[i]), float(wave[i]), 10.0, 2.0, 3.0, 0.0,
                     float(sn[i]), 1.0, 1.0, "active", -float(sn[i]))
                    for i in range(k)
                ),
            )  # fmt: skip
        ids = np.asarray(Candidate.objects.order_by("pk").values_list("pk", flat=True))
        for lo in range(0, n, step):
            part = ids[lo : lo + step]
            p = rng.uniform(0, 1, part.size).tolist()
            scores = zip(part.tolist(), p, strict=True)
            insert_rows(
                CandidateScore,
                ["model_version", "candidate", "prob", "entropy", "bald"],
                ((mv.pk, c, q, q * (1 - q), 0.1) for c, q in scores),
            )
        labelled = ids[rng.random(n) < 0.10]
        insert_rows(
            Label,
            ["run", "candidate", "posterior", "is_real", "confidence", "n_votes", "info_gain"],
            ((run.pk, int(c), 0.9, True, 0.9, 5, 0.01) for c in labelled),
        )
        queued = ids[rng.random(n) < 0.02]
        insert_rows(
            RoundCandidate,
            ["round", "candidate", "rank", "reason", "score"],
            ((rnd.pk, int(c), i, "exploit", 0.5) for i, c in enumerate(queued)),
        )
    return mv.pk


def child(fmt: str, data_dir: str, model_id: int, chunk: int, database_url: str) -> None:
    """Stream one export to a byte counter; print 'rows seconds bytes baseline peak'."""
    _django(data_dir, database_url)
    from labelapp.services.science.exports import open_catalogue_export

    baseline = _peak_mib()
    t0 = time.perf_counter()
    export = open_catalogue_export(fmt=fmt, model_version_id=model_id, chunk_size=chunk)
    size = sum(len(piece) for piece in export.chunks)
    seconds = time.perf_counter() - t0
    print(export.n_rows, seconds, size, baseline, _peak_mib())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=200_000, help="candidates")
    ap.add_argument("--chunk", type=int, default=10_000, help="rows per query / piece")
    ap.add_argument(
        "--postgres", action="store_true", help="a fresh local PostgreSQL database instead"
    )
    ap.add_argument("--child", nargs=3, metavar=("FMT", "DATA_DIR", "MODEL"), help="internal")
    ap.add_argument("--database-url", default="", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        fmt, data_dir, model = args.child
        child(fmt, data_dir, int(model), args.chunk, args.database_url)
        return

    url = ""
    if args.postgres:
        from _util import postgres_url

        url = postgres_url("labelapp_bench_export")
        if url is None:
            sys.exit("--postgres: no PostgreSQL at 127.0.0.1:5432")
    with tempfile.TemporaryDirectory(prefix="bench-export-") as data_dir:
        _django(data_dir, url)
        t0 = time.perf_counter()
        model_id = build(args.n)
        db = "PostgreSQL" if url else "SQLite"
        print(f"built {args.n:,} candidates (+scores, labels, rounds) on {db} in "
              f"{time.perf_counter() - t0:.1f} s; chunk {args.chunk:,} rows")  # fmt: skip
        for fmt in ("fits", "csv"):
            out = subprocess.run(
                [sys.executable, __file__, "--chunk", str(args.chunk), "--database-url", url,
                 "--child", fmt, data_dir, str(model_id)],
                check=True, capture_output=True, text=True, cwd=ROOT,
            ).stdout.split()  # fmt: skip
            rows, seconds, size, base, peak = int(out[0]), *map(float, out[1:])
            rate = rows / seconds
            print(
                f"  {fmt:<4s} {rows:,} rows in {seconds:5.1f} s = {rate:8,.0f} rows/s, "
                f"{size / 2**20:7.1f} MiB out; peak RSS {peak:6.1f} MiB "
                f"(baseline {base:.1f}, +{peak - base:.1f} while streaming); "
                f"2.5 M rows: ~{TARGET / rate / 60:.1f} min, "
                f"{TARGET / rows * size / 2**30:.2f} GiB, same memory"
            )
    if url:
        from django.db import connections

        connections.close_all()
        import psycopg

        with psycopg.connect(url.rsplit("/", 1)[0] + "/postgres", autocommit=True) as conn:
            conn.execute('DROP DATABASE IF EXISTS "labelapp_bench_export"')


if __name__ == "__main__":
    main()
