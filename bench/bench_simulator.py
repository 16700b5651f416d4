"""Benchmark the survey simulator: candidates/s, peak memory, purity and mix. Prints figures,
asserts nothing about time.

    python bench/bench_simulator.py [--n 100000] [--seed 1] [--field cosmos]
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mlcore.simulator import simulate_survey
from mlcore.survey import TRUTH_TYPES, regime_of


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--field", default="cosmos")
    args = ap.parse_args()

    base = _rss_mb()
    last = [0.0]

    def progress(done: int, total: int) -> None:
        now = time.perf_counter()
        if now - last[0] > 2 or done == total:
            last[0] = now
            print(f"\r  {done:>8d}/{total}", end="", flush=True)

    t0 = time.perf_counter()
    s = simulate_survey(args.n, seed=args.seed, field=args.field, progress=progress)
    dt = time.perf_counter() - t0
    print()
    out_mb = sum(a.nbytes for a in s.arrays().values()) / 2**20
    peak = _rss_mb()
    print(f"n={args.n} field={args.field}: {dt:.1f} s, {args.n / dt:,.0f} candidates/s")
    print(
        f"peak RSS {peak:,.0f} MiB (start {base:,.0f} MiB, output arrays {out_mb:,.0f} MiB, "
        f"overhead {(peak - base - out_mb):,.0f} MiB)"
    )
    reg = regime_of(s.catalog["sn"])
    real = s.truth["truth_real"]
    for r in ("low", "high"):
        sel = reg == r
        print(f"regime {r:4s}: {sel.mean():6.1%} of candidates, raw purity {real[sel].mean():.3f}")
    tt = s.truth["truth_type"]
    trials = sum(int(s.meta[f"trials.{t}"]) for t in TRUTH_TYPES)
    print(f"trials simulated: {trials:,} ({trials / args.n:.1f} per kept candidate)")
    for t in TRUTH_TYPES:
        m = tt == t
        print(
            f"  {t:9s} {m.mean():6.1%}  median sn {np.median(s.catalog['sn'][m]):5.2f}  "
            f"low-regime share {np.mean(reg[m] == 'low'):.2f}"
        )
    print(f"external confirmations: {len(s.external['ra'])}")


if __name__ == "__main__":
    main()
