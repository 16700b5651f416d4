"""How many gold standards show what their feedback text says: the old choice (highest
S/N per kind, half from S/N <= 5.5) against the new one (only examples whose cutout shows
the text, clearest first per regime). Pure numpy on a simulated survey; no database.

    python bench/bench_gold_clarity.py [--n 4000] [--per-kind 20] [--seed 11]

Prints, per kind, the gold each rule picks, how many of them show their text
(mlcore.teaching.teaching_check) and how many sit in the low S/N regime.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from mlcore.render import line_column
from mlcore.simulator import simulate_survey
from mlcore.survey import SN_LOW_MAX, TRUTH_TYPES, stack_cutouts
from mlcore.teaching import teaching_check


def _old_rule(idx, sn, per_kind):
    low = idx[sn[idx] <= SN_LOW_MAX]
    high = idx[sn[idx] > SN_LOW_MAX]
    pick = []
    for k, group in enumerate((low, high)):
        want = per_kind // 2 + (per_kind % 2 if k else 0)
        pick += list(group[np.argsort(-sn[group])][:want])
    rest = [i for i in idx[np.argsort(-sn[idx])] if i not in set(pick)]
    return pick + rest[: per_kind - len(pick)]


def _new_rule(idx, sn, checks, per_kind):
    clear = [i for i in idx if checks[i].shows]
    pick = []
    for k, in_regime in enumerate((lambda i: sn[i] <= SN_LOW_MAX, lambda i: sn[i] > SN_LOW_MAX)):
        want = per_kind // 2 + (per_kind % 2 if k else 0)
        group = sorted((i for i in clear if in_regime(i)), key=lambda i: -checks[i].clarity)
        pick += group[:want]
    rest = sorted((i for i in clear if i not in set(pick)), key=lambda i: -checks[i].clarity)
    return pick + rest[: per_kind - len(pick)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=4000)
    ap.add_argument("--per-kind", type=int, default=20)
    ap.add_argument("--seed", type=int, default=11)
    args = ap.parse_args()
    t0 = time.perf_counter()
    s = simulate_survey(args.n, seed=args.seed)
    kinds = s.truth["truth_type"].astype(str)
    sn = s.catalog["sn"]
    cut = stack_cutouts(s.im_sum, s.im_array)
    checks = {
        i: teaching_check(kinds[i], cut[i], line_column(s.im_wave[i], float(s.catalog["wave"][i])))
        for i in range(args.n)
    }
    print(f"{args.n} simulated candidates (seed {args.seed}), measured in "
          f"{time.perf_counter() - t0:.1f} s; {args.per_kind} gold per kind asked")  # fmt: skip
    print(f"{'kind':9} {'old: n':>7} {'shows':>6} {'low S/N':>8} | {'new: n':>7} {'low S/N':>8}")
    tot = {"old": 0, "old_shows": 0, "old_low": 0, "new": 0, "new_low": 0}
    for kind in TRUTH_TYPES:
        idx = np.nonzero(kinds == kind)[0]
        old = _old_rule(idx, sn, args.per_kind)
        new = _new_rule(idx, sn, checks, args.per_kind)
        shows = sum(checks[i].shows for i in old)
        old_low = sum(sn[i] <= SN_LOW_MAX for i in old)
        new_low = sum(sn[i] <= SN_LOW_MAX for i in new)
        assert all(checks[i].shows for i in new)
        print(f"{kind:9} {len(old):7d} {shows:6d} {old_low:8d} | {len(new):7d} {new_low:8d}")
        tot["old"] += len(old)
        tot["old_shows"] += shows
        tot["old_low"] += old_low
        tot["new"] += len(new)
        tot["new_low"] += new_low
    print(
        f"old rule: {tot['old_shows']}/{tot['old']} gold show their text "
        f"({tot['old_shows'] / max(tot['old'], 1):.0%}), {tot['old_low']} at S/N <= {SN_LOW_MAX}; "
        f"new rule: {tot['new']}/{tot['new']} (100 %), {tot['new_low']} at S/N <= {SN_LOW_MAX}"
    )


if __name__ == "__main__":
    main()
