"""Aggregation speed and quality at survey scale, and side by side with crowd-kit.

Candidates: (S/N, truth) pairs from the survey simulator, resampled to ``--candidates``
(the joint S/N-purity distribution is the simulator's). Votes: the simulated volunteer
population (``mlcore.volunteers``) casting ``--votes`` votes. Prints seconds and label
accuracy for majority vote, Dawid-Skene (one skill per volunteer), Dawid-Skene with S/N
regimes, with a simulated CNN as an extra annotator, and the value-of-a-vote measure.

crowd-kit (benchmark dependency only, never a project dependency) runs in its own
interpreter, ``$CROWDKIT_PYTHON`` (default /tmp/crowdkit/bin/python), on the same votes:
    python3 -m venv /tmp/crowdkit && /tmp/crowdkit/bin/pip install crowd-kit numpy
By default it gets a ``--crowdkit-votes`` subset (all votes of a random set of candidates;
10M votes through pandas take minutes and many GB); pass ``--crowdkit-votes 0`` for all.

    .venv/bin/python bench/bench_aggregation.py [--votes 10000000 --candidates 1000000
        --volunteers 20000]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from mlcore.aggregation import (
    VoteTable,
    dawid_skene,
    expected_information,
    majority_vote,
    regime_index,
)
from mlcore.simulator import simulate_survey
from mlcore.volunteers import VolunteerPopulation, simulate_votes

CROWDKIT_SCRIPT = r"""
import sys, time, numpy as np, pandas as pd
from crowdkit.aggregation import DawidSkene
d = np.load(sys.argv[1])
df = pd.DataFrame({"task": d["candidate"], "worker": d["volunteer"], "label": d["label"]})
t0 = time.perf_counter()
labels = DawidSkene(n_iter=100, tol=1e-5).fit_predict(df)
sec = time.perf_counter() - t0
np.savez(sys.argv[2], task=labels.index.to_numpy(), label=labels.to_numpy().astype(int), sec=sec)
"""


def timed(fn, *args, **kw):
    t0 = time.perf_counter()
    out = fn(*args, **kw)
    return out, time.perf_counter() - t0


def report(name, res, sec, truth, reg, voted):
    acc = res.label == truth
    low, high = voted & (reg == 0), voted & (reg == 1)
    it = f", {res.iterations} iterations" if res.iterations else ""
    print(
        f"  {name:<28s} {sec:6.2f} s{it:<16s} accuracy {acc[voted].mean():.4f} "
        f"(low {acc[low].mean():.4f}, high {acc[high].mean():.4f})"
    )


def crowdkit_compare(vt: VoteTable, truth: np.ndarray, n_votes: int, seed: int) -> None:
    py = os.environ.get("CROWDKIT_PYTHON", "/tmp/crowdkit/bin/python")
    ok = Path(py).exists() and (
        subprocess.run([py, "-c", "import crowdkit"], capture_output=True).returncode == 0
    )
    if not ok:
        print(
            f"\ncrowd-kit: not installed at {py} (set CROWDKIT_PYTHON, or: python3 -m venv "
            "/tmp/crowdkit && /tmp/crowdkit/bin/pip install crowd-kit numpy); skipped"
        )
        return
    sub = vt
    if n_votes and n_votes < len(vt):  # all votes of a random subset of candidates
        rng = np.random.default_rng(seed)
        frac = n_votes / len(vt)
        keep_c = rng.random(vt.n_candidates) < frac
        m = keep_c[vt.candidate]
        sub = VoteTable.from_arrays(
            vt.candidate[m],
            vt.volunteer[m],
            vt.label[m],
            n_candidates=vt.n_candidates,
            n_volunteers=vt.n_volunteers,
        )
    ours, sec_ours = timed(dawid_skene, sub)
    with tempfile.TemporaryDirectory() as tmp:
        src, dst = Path(tmp) / "votes.npz", Path(tmp) / "labels.npz"
        np.savez(src, candidate=sub.candidate, volunteer=sub.volunteer, label=sub.label)
        t0 = time.perf_counter()
        proc = subprocess.run(
            [py, "-c", CROWDKIT_SCRIPT, str(src), str(dst)], capture_output=True, text=True
        )
        wall = time.perf_counter() - t0
        if proc.returncode != 0:
            print(f"\ncrowd-kit failed:\n{proc.stderr[-2000:]}")
            return
        ck = np.load(dst)
    ck_label = np.full(vt.n_candidates, -1)
    ck_label[ck["task"]] = ck["label"]
    voted = sub.votes_per_candidate() > 0
    agree = np.mean(ck_label[voted] == ours.label[voted])
    print(
        f"\ncrowd-kit DawidSkene side by side, same {len(sub)} votes on {voted.sum()} "
        f"candidates (one skill per volunteer, as crowd-kit has no regimes):"
    )
    print(
        f"  ours       {sec_ours:7.2f} s, accuracy {np.mean(ours.label[voted] == truth[voted]):.4f}"
    )
    print(
        f"  crowd-kit  {float(ck['sec']):7.2f} s fit ({wall:.1f} s with process start and "
        f"DataFrame), accuracy {np.mean(ck_label[voted] == truth[voted]):.4f}"
    )
    print(
        f"  speed ratio crowd-kit / ours {float(ck['sec']) / sec_ours:.1f}x; "
        f"label agreement {agree:.5f} ({int((ck_label[voted] != ours.label[voted]).sum())} differ)"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--votes", type=int, default=10_000_000)
    ap.add_argument("--candidates", type=int, default=1_000_000)
    ap.add_argument("--volunteers", type=int, default=20_000)
    ap.add_argument("--survey", type=int, default=4000, help="simulator draws to resample")
    ap.add_argument("--crowdkit-votes", type=int, default=1_000_000)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()

    t0 = time.perf_counter()
    s = simulate_survey(a.survey, seed=a.seed, field="cosmos")
    rng = np.random.default_rng(a.seed)
    pick = rng.integers(0, a.survey, a.candidates)
    sn = s.catalog["sn"].astype(np.float64)[pick]
    truth = s.truth["truth_real"].astype(bool)[pick]
    reg = regime_index(sn)
    pop = VolunteerPopulation.sample(a.volunteers, seed=a.seed + 1)
    sv = simulate_votes(pop, truth, sn, n_votes=a.votes, seed=a.seed + 2)
    print(
        f"{a.votes:,} votes, {a.candidates:,} candidates, {a.volunteers:,} volunteers "
        f"(simulated in {time.perf_counter() - t0:.1f} s; low-S/N share {np.mean(reg == 0):.2f}"
        f", purity {truth.mean():.2f}); {os.cpu_count()} cores"
    )

    vt, sec = timed(
        VoteTable.from_arrays,
        sv.candidate,
        sv.volunteer,
        sv.label,
        n_candidates=a.candidates,
        n_volunteers=a.volunteers,
    )
    voted = vt.votes_per_candidate() > 0
    print(f"  VoteTable.from_arrays        {sec:6.2f} s")
    res, sec = timed(majority_vote, vt)
    report("majority vote", res, sec, truth, reg, voted)
    res, sec = timed(dawid_skene, vt)
    report("Dawid-Skene", res, sec, truth, reg, voted)
    ds_reg, sec = timed(dawid_skene, vt, regime=reg)
    report("Dawid-Skene + regimes", ds_reg, sec, truth, reg, voted)
    vs, sec_sort = timed(vt.sorted_by_candidate)
    res, sec = timed(dawid_skene, vs, regime=reg)
    report("  same, votes grouped", res, sec, truth, reg, voted)
    print(f"    (grouping by candidate took {sec_sort:.2f} s; free with ORDER BY candidate)")
    # A simulated CNN: sharper at high S/N, as the paper's per-regime metrics are.
    sep = np.where(reg == 1, 3.0, 1.2)
    z = sep * (2 * truth - 1) + rng.normal(0, 1.0, truth.size)
    scores = 1.0 / (1.0 + np.exp(-z))
    res, sec = timed(dawid_skene, vt, regime=reg, model_scores=scores)
    report("Dawid-Skene + regimes + CNN", res, sec, truth, reg, voted)
    s_typ, c_typ = ds_reg.skills.typical()
    info, sec = timed(
        expected_information, ds_reg.posterior, sensitivity=s_typ, specificity=c_typ, regime=reg
    )
    print(
        f"  expected_information         {sec:6.2f} s (median gain {np.median(info.info_gain):.3f}"
        f" bits, {np.mean(info.flip_probability > 0):.3f} of candidates could still flip)"
    )
    sk = ds_reg.skills
    kinds = {0: "honest", 1: "random", 2: "always-yes"}
    busy = sk.n_votes.min(axis=1) >= 50  # below that the prior rightly dominates
    for k, name in kinds.items():
        m = (pop.kind == k) & busy
        if m.any():
            print(
                f"  {name:<11s} volunteers with >= 50 votes per regime ({m.sum()}): median "
                f"weight (Youden J) low/high {np.median(sk.weight[m, 0]):.3f}/"
                f"{np.median(sk.weight[m, 1]):.3f}, median sensitivity std "
                f"{np.median(sk.sensitivity_std[m, 0]):.3f}"
            )
    crowdkit_compare(vt, truth, a.crowdkit_votes, a.seed)


if __name__ == "__main__":
    main()
