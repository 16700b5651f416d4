"""Adaptive retirement vs a fixed vote count, on simulated candidates and volunteers.

Campaign: candidates from the survey simulator (truth + S/N), a simulated volunteer
population, and Space-Warps-style gold: each volunteer's first few votes, and a small share
after that, are on expert-vetted candidates, which teach the online skills. A 'nightly'
Dawid-Skene run (gold-clamped, regime-aware) refreshes skills and posteriors every
``--refresh`` votes.

- fixed rule: every candidate gets exactly 10 votes (Dark Energy Explorers needed 10+ for
  >94% confidence); labelled by majority vote and, for reference, by Dawid-Skene.
- adaptive: online SWAP posterior after every vote; retire at P >= 0.95 or <= 0.05 after
  ``min_votes``; expert queue at ``max_votes`` if still uncertain.
Prints mean votes per retired candidate, vote totals (gold votes included, since they cost
volunteer time too), and label accuracy against ground truth per S/N regime. Accuracy of
the adaptive run is given with expert-queue candidates labelled by the crowd posterior
(no expert help) and with the expert assumed right.

    .venv/bin/python bench/bench_retirement.py [--candidates 6000] [--seed 1]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from mlcore.aggregation import (
    EXPERT,
    RETIRED,
    OnlineSwap,
    RetirementRule,
    VoteTable,
    dawid_skene,
    majority_vote,
    regime_index,
)
from mlcore.simulator import simulate_survey
from mlcore.volunteers import VolunteerPopulation


def _acc(label: np.ndarray, truth: np.ndarray, reg: np.ndarray, mask: np.ndarray) -> str:
    parts = [f"all {np.mean(label[mask] == truth[mask]):.4f}"]
    for r, name in enumerate(("low", "high")):
        m = mask & (reg == r)
        parts.append(f"{name} {np.mean(label[m] == truth[m]):.4f}")
    return "  ".join(parts)


class Campaign:
    """Volunteers arriving by activity; gold first, then gold at ``gold_rate``."""

    def __init__(self, pop, truth, sn, gold_idx, seed, n_gold_first=5, gold_rate=0.05):
        self.pop, self.truth, self.sn = pop, truth, sn
        self.gold_idx = gold_idx
        self.rng = np.random.default_rng(seed)
        self.done = np.zeros(len(pop), dtype=np.int64)  # votes cast so far, per volunteer
        self.seen: list[set[int]] = [set() for _ in range(len(pop))]
        self.n_gold_first, self.gold_rate = n_gold_first, gold_rate
        self.votes: list[tuple[int, int, int]] = []

    def vote(self, j: int, c: int) -> int:
        pos = self.pop.session_position(j, self.done[j])
        y = int(self.pop.respond(np.array([j]), self.truth[[c]], self.sn[[c]], self.rng, pos)[0])
        self.done[j] += 1
        self.seen[j].add(c)
        self.votes.append((c, j, y))
        return y

    def next_volunteer(self) -> int:
        return int(self.pop.draw_volunteers(1, self.rng)[0])

    def wants_gold(self, j: int) -> int | None:
        if self.done[j] < self.n_gold_first or self.rng.random() < self.gold_rate:
            for _ in range(10):
                g = int(self.gold_idx[self.rng.integers(self.gold_idx.size)])
                if g not in self.seen[j]:
                    return g
        return None

    def table(self, n_cand: int) -> VoteTable:
        a = np.array(self.votes, dtype=np.int64).reshape(-1, 3)
        return VoteTable.from_arrays(
            a[:, 0], a[:, 1], a[:, 2], n_candidates=n_cand, n_volunteers=len(self.pop)
        )


def run_fixed(pop, truth, sn, reg, gold_idx, targets, n_fixed, seed):
    camp = Campaign(pop, truth, sn, gold_idx, seed)
    need = np.zeros(truth.size, dtype=np.int64)
    need[targets] = n_fixed
    pool = list(targets)
    while pool:
        j = camp.next_volunteer()
        g = camp.wants_gold(j)
        if g is not None:
            camp.vote(j, g)
            continue
        for _ in range(20):
            k = camp.rng.integers(len(pool))
            c = pool[k]
            if c not in camp.seen[j]:
                camp.vote(j, c)
                need[c] -= 1
                if need[c] == 0:
                    pool[k] = pool[-1]
                    pool.pop()
                break
    return camp


def run_adaptive(pop, truth, sn, reg, gold_idx, targets, rule, refresh, seed):
    camp = Campaign(pop, truth, sn, gold_idx, seed)
    gold = (gold_idx, truth[gold_idx].astype(np.int64))
    online = OnlineSwap(truth.size, len(pop), regime=reg, rule=rule, gold=gold)
    pool = list(targets)
    where = {c: k for k, c in enumerate(pool)}
    since = 0
    while pool:
        j = camp.next_volunteer()
        g = camp.wants_gold(j)
        if g is not None:
            online.update(g, j, camp.vote(j, g))
            continue
        for _ in range(20):
            c = pool[camp.rng.integers(len(pool))]
            if c not in camp.seen[j]:
                out = online.update(c, j, camp.vote(j, c))
                if out.state != "active":  # O(1) removal from the active pool
                    k = where.pop(c)
                    last = pool.pop()
                    if last != c:
                        pool[k], where[last] = last, k
                since += 1
                break
        if refresh and since >= refresh and pool:
            since = 0
            online.refresh(dawid_skene(camp.table(truth.size), regime=reg, gold=gold))
    return camp, online


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--candidates", type=int, default=6000)
    ap.add_argument("--volunteers", type=int, default=1500)
    ap.add_argument("--gold", type=int, default=300, help="expert-vetted gold candidates")
    ap.add_argument("--fixed", type=int, default=10)
    ap.add_argument("--min-votes", type=int, default=2)
    ap.add_argument("--max-votes", type=int, default=15)
    ap.add_argument("--refresh", type=int, default=3000, help="votes between batch EM runs")
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args()

    t0 = time.perf_counter()
    survey = simulate_survey(a.candidates + a.gold, seed=a.seed, field="cosmos")
    sn = survey.catalog["sn"].astype(np.float64)
    truth = survey.truth["truth_real"].astype(bool)
    reg = regime_index(sn)
    rng = np.random.default_rng(a.seed)
    perm = rng.permutation(truth.size)
    gold_idx, targets = np.sort(perm[: a.gold]), perm[a.gold :]
    pop = VolunteerPopulation.sample(a.volunteers, seed=a.seed + 1)
    is_target = np.zeros(truth.size, dtype=bool)
    is_target[targets] = True
    print(
        f"{a.candidates} candidates (simulator, cosmos; low-S/N share "
        f"{np.mean(reg[targets] == 0):.2f}, purity low {truth[is_target & (reg == 0)].mean():.2f}"
        f" high {truth[is_target & (reg == 1)].mean():.2f}), {a.gold} gold, "
        f"{a.volunteers} volunteers ({time.perf_counter() - t0:.1f} s to simulate)"
    )

    t0 = time.perf_counter()
    fixed = run_fixed(pop, truth, sn, reg, gold_idx, targets, a.fixed, a.seed + 2)
    vt = fixed.table(truth.size)
    n_target_votes = int(vt.votes_per_candidate()[targets].sum())
    mv = majority_vote(vt, regime=reg)
    ds = dawid_skene(vt, regime=reg, gold=(gold_idx, truth[gold_idx].astype(int)))
    print(f"\nfixed {a.fixed}-vote rule ({time.perf_counter() - t0:.1f} s):")
    print(
        f"  votes per candidate {n_target_votes / targets.size:.2f}; all votes incl. gold "
        f"{len(vt)} ({len(vt) / targets.size:.2f} per candidate)"
    )
    print(f"  accuracy majority     {_acc(mv.label, truth, reg, is_target)}")
    print(f"  accuracy Dawid-Skene  {_acc(ds.label, truth, reg, is_target)}")

    rule = RetirementRule(min_votes=a.min_votes, max_votes=a.max_votes)
    t0 = time.perf_counter()
    camp, online = run_adaptive(pop, truth, sn, reg, gold_idx, targets, rule, a.refresh, a.seed + 2)
    vt2 = camp.table(truth.size)
    n_votes = online.n_votes
    state = online.state
    retired = is_target & (state == RETIRED)
    expert = is_target & (state == EXPERT)
    label = (online.posterior > 0.5).astype(np.int8)
    print(
        f"\nadaptive SWAP rule (P>={rule.p_real_hi} or <={rule.p_real_lo}, "
        f"min {rule.min_votes}, max {rule.max_votes}, batch refresh every {a.refresh} votes; "
        f"{time.perf_counter() - t0:.1f} s):"
    )
    print(
        f"  retired {retired.sum()}  expert queue {expert.sum()} "
        f"({expert.mean() / is_target.mean():.3f} of candidates)"
    )
    print(f"  mean votes per retired candidate {n_votes[retired].mean():.2f}")
    print(
        f"  votes per candidate (retired + expert) {n_votes[is_target].mean():.2f}; "
        f"all votes incl. gold {len(vt2)} ({len(vt2) / targets.size:.2f} per candidate, "
        f"{len(vt2) / len(vt):.2f} of the fixed rule's)"
    )
    print(f"  accuracy retired only           {_acc(label, truth, reg, retired)}")
    print(f"  accuracy all, crowd label       {_acc(label, truth, reg, is_target)}")
    with_expert = np.where(expert, truth, label)
    print(f"  accuracy all, expert right      {_acc(with_expert, truth, reg, is_target)}")
    ds2 = dawid_skene(vt2, regime=reg, gold=(gold_idx, truth[gold_idx].astype(int)))
    print(f"  accuracy all, final batch DS    {_acc(ds2.label, truth, reg, is_target)}")
    for r, name in enumerate(("low", "high")):
        m = is_target & (reg == r)
        print(
            f"  {name}-S/N: mean votes {n_votes[m].mean():.2f}, expert share {expert[m].mean():.3f}"
        )


if __name__ == "__main__":
    main()
