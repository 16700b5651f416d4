"""Acquisition speed at catalogue scale: select_batch + priorities over N candidates.

    .venv/bin/python bench/bench_acquisition.py [--n 2500000] [--batch 500 5000]
        [--pool-n 25000] [--dim 32]

Synthetic scores shaped like a catalogue: S/N crowding towards the 4.8 threshold, 10 % of
lines in the sky-residual windows with inflated BALD (the trap diversity must avoid).
Prints seconds per call and the wavelength spread of each batch; never passes or fails.
k-center runs inside select_batch on N rows with a pool of ``--pool-n`` (embeddings for all
N would be N x dim float32: only the pool rows are read, so the bench backs them with a
small table indexed modulo its length), and alone on a (pool, dim) array.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from _util import ROOT  # noqa: F401 - puts the repo on sys.path

from mlcore.acquisition import (
    SKY_RESIDUAL_WINDOWS_A,
    AcquisitionConfig,
    batch_diversity,
    kcenter_greedy,
    priorities,
    select_batch,
)


class RowTable:
    """Looks like an (N, D) array to select_batch; row i is table[i % len(table)]."""

    def __init__(self, table: np.ndarray, n: int) -> None:
        self.table, self.shape = table, (n, table.shape[1])

    def __getitem__(self, rows: np.ndarray) -> np.ndarray:
        return self.table[np.asarray(rows) % len(self.table)]


def catalogue(n: int, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    sn = (4.8 + rng.pareto(3.0, n)).astype(np.float32)
    wave = rng.uniform(3510.0, 5496.0, n)
    sky = rng.random(n) < 0.10
    lo, hi = np.array(SKY_RESIDUAL_WINDOWS_A)[rng.integers(0, 3, n)].T
    wave[sky] = rng.uniform(lo, hi)[sky]
    prob = rng.beta(0.5, 0.5, n).astype(np.float32)
    bald = (rng.gamma(1.0, 0.02, n) * (1 + 4 * sky)).astype(np.float32)
    return {"prob": prob, "bald": bald, "sn": sn, "wave": wave.astype(np.float32)}


def timed(fn, repeat: int = 3):
    best, out = np.inf, None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=2_500_000)
    ap.add_argument("--batch", type=int, nargs="+", default=[500, 5000])
    ap.add_argument("--pool-n", type=int, default=25_000)
    ap.add_argument("--dim", type=int, default=32)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    t0 = time.perf_counter()
    cat = catalogue(args.n, args.seed)
    elig = np.random.default_rng(1).random(args.n) > 0.05  # 5 % already retired
    print(f"N = {args.n:,} candidates generated in {time.perf_counter() - t0:.1f} s")
    print(f"{'strategy':8} {'diversity':10} {'batch':>6} {'select s':>9} {'max bin':>8} sky")
    for batch in args.batch:
        for strategy, diversity in [
            ("bald", "none"),
            ("bald", "wavelength"),
            ("margin", "wavelength"),
        ]:
            cfg = AcquisitionConfig(strategy=strategy, batch_size=batch, diversity=diversity)
            sec, res = timed(
                lambda cfg=cfg: select_batch(**cat, eligible=elig, config=cfg), args.repeat
            )
            d = batch_diversity(cat["wave"], res.index)
            print(
                f"{strategy:8} {diversity:10} {batch:>6} {sec:>9.3f} "
                f"{d['max_stratum_fraction']:>8.3f} {d['sky_fraction']:.3f}"
            )
    sec, pr = timed(lambda: priorities(res), args.repeat)
    print(f"priorities() over N: {sec:.3f} s (all {len(pr):,} rows, chosen first)")

    rng = np.random.default_rng(2)
    centres = rng.normal(0, 3, (64, args.dim)).astype(np.float32)
    pool_x = centres[rng.integers(0, 64, args.pool_n)] + rng.normal(0, 1, (args.pool_n, args.dim))
    pool_x = pool_x.astype(np.float32)
    for batch in args.batch:
        k = int(0.9 * batch)
        sec, _ = timed(lambda k=k: kcenter_greedy(pool_x, k), args.repeat)
        print(f"kcenter_greedy alone: pool {args.pool_n:,} x {args.dim}, k = {k}: {sec:.3f} s")
    emb = RowTable(pool_x, args.n)
    for batch in args.batch:
        cfg = AcquisitionConfig(
            batch_size=batch, diversity="kcenter", pool_factor=args.pool_n / batch
        )
        sec, res = timed(
            lambda cfg=cfg: select_batch(**cat, embeddings=emb, eligible=elig, config=cfg),
            args.repeat,
        )
        print(
            f"select_batch kcenter: N = {args.n:,}, pool {args.pool_n:,}, batch {batch}: "
            f"{sec:.3f} s"
        )


if __name__ == "__main__":
    main()
