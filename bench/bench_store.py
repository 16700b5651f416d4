"""float16 or float32 for the cutout store? Measure what each costs and loses.

On simulated candidates: the float16 rounding error against the per-pixel noise (the thing
that decides whether the rounding matters), the size on disk, and the time to stream the
whole store in CNN-sized batches (sequential) and to fetch random rows (volunteer pages).

    python bench/bench_store.py [--n 20000]
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
from _util import ROOT  # noqa: F401 - puts the repo on sys.path

from mlcore.simulator import simulate_survey
from mlcore.store import CutoutStore, StoreWriter


def build(path: Path, survey, dtype: str) -> CutoutStore:
    writer = StoreWriter(path, len(survey), dtype=dtype)
    writer.write(
        0,
        im_sum=survey.im_sum,
        im_array=survey.im_array,
        im_wave=survey.im_wave,
        spec1d=survey.spec1d,
        spec1d_err=survey.spec1d_err,
    )
    writer.commit()
    return CutoutStore.open(path)


def stream_seconds(store: CutoutStore, batch: int = 1024) -> float:
    t0 = time.perf_counter()
    total = 0.0
    for start in range(0, len(store), batch):
        total += float(np.asarray(store.cutouts[start : start + batch], np.float32).sum())
    return time.perf_counter() - t0


def random_rows_seconds(store: CutoutStore, k: int = 2000) -> float:
    rows = np.random.default_rng(0).integers(0, len(store), k)
    t0 = time.perf_counter()
    for r in rows:
        np.asarray(store.cutouts[r], np.float32)
    return (time.perf_counter() - t0) / k


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=20000)
    args = parser.parse_args()
    survey = simulate_survey(args.n, seed=7, field="cosmos")
    work = Path(tempfile.mkdtemp(prefix="bench-store-"))
    try:
        stores = {dt: build(work / dt, survey, dt) for dt in ("float32", "float16")}
        exact = np.asarray(stores["float32"].cutouts, np.float32)
        rounded = np.asarray(stores["float16"].cutouts, np.float32)
        err = rounded - exact
        # per-pixel noise of each cutout panel, robustly (MAD), so lines do not inflate it
        flat = exact.reshape(len(exact), 5, -1)
        mad = np.median(np.abs(flat - np.median(flat, axis=2, keepdims=True)), axis=2)
        noise = 1.4826 * mad
        err_rms = np.sqrt((err.reshape(len(err), 5, -1) ** 2).mean(axis=2))
        ratio = err_rms / np.maximum(noise, 1e-12)
        print(f"n = {args.n:,} simulated COSMOS candidates, cutouts (n, 5, 9, 100)")
        print(
            f"float16 rounding error / pixel noise: median {np.median(ratio):.2e}, "
            f"99th pct {np.percentile(ratio, 99):.2e}, max {ratio.max():.2e}"
        )
        print(
            f"float16 max abs error: {np.abs(err).max():.3g} (pixel values up to "
            f"{np.abs(exact).max():.3g})"
        )
        print(
            f"{'dtype':>8} {'MB on disk':>11} {'stream s':>9} {'cand/s':>10} {'random row us':>14}"
        )
        for dt, store in stores.items():
            size = sum(p.stat().st_size for p in (work / dt).iterdir()) / 1e6
            stream_seconds(store)  # warm the page cache: compare CPU cost, not disk
            sec = stream_seconds(store)
            print(
                f"{dt:>8} {size:>11,.0f} {sec:>9.2f} {len(store) / sec:>10,.0f} "
                f"{random_rows_seconds(store) * 1e6:>14.1f}"
            )
    finally:
        shutil.rmtree(work)


if __name__ == "__main__":
    main()
