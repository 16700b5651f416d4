"""MC dropout or a small deep ensemble: which ranks informative candidates better?

    .venv/bin/python bench/bench_uncertainty.py [--n 16000] [--n-init 500] [--batch 500]
        [--members 5] [--mc-samples 10] [--seeds 0 1] [--epochs 12] [--out FILE.json]

A simulated COSMOS survey with truth labels is split into a fixed test set (``--test-frac``)
and a pool. Per seed, ``--n-init`` pool candidates drawn at random are labelled and the
epistemic uncertainty (BALD) of every other pool candidate is computed two ways:

* ``mc``: one model (the seed's), ``--mc-samples`` MC-dropout passes -- what the platform
  scores the catalogue with (``mlcore.cnn.scoring``);
* ``ensemble``: ``--members`` models trained from different seeds on the same labels, one
  deterministic (eval-mode) pass each, BALD from their temperature-scaled probabilities.

Two measures of "ranks informative candidates better":

1. error detection: ROC-AUC of BALD for flagging the candidates the method's own mean
   prediction gets wrong (truth known here), overall and at 4.8 <= S/N <= 5.5;
2. one acquisition step: the ``--batch`` pool candidates with the highest BALD get their
   truth labels, a fresh model (the seed's) is trained on init + batch, and its balanced
   accuracy per S/N regime on the test set is compared with the same step using a random
   batch and using the other method's batch.

Costs are printed too (training time, scoring time). Figures only: nothing passes or fails.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch
from _util import ROOT  # noqa: F401 - puts the repo on sys.path

from mlcore.acquisition import bald_from_samples
from mlcore.cnn.data import regime_index, spec_windows
from mlcore.cnn.evaluation import balanced_accuracy, roc_auc, sigmoid
from mlcore.cnn.model import CNNConfig
from mlcore.cnn.pipeline import SPEC_HALF_WIDTH
from mlcore.cnn.scoring import score_batch
from mlcore.cnn.training import TrainConfig, normalise_rows, predict_logits, train
from mlcore.survey import stack_cutouts


def load(n: int, seed: int):
    from mlcore.simulator import simulate_survey

    cuts, sns, ys, specs = [], [], [], []
    for k, a in enumerate(range(0, n, 20_000)):
        s = simulate_survey(min(20_000, n - a), seed=seed * 1000 + k, field="cosmos")
        cuts.append(stack_cutouts(s.im_sum, s.im_array).astype(np.float16))
        sns.append(s.catalog["sn"])
        ys.append(s.truth["truth_real"].astype(np.float32))
        specs.append(spec_windows(s.spec1d, s.spec1d_err, s.catalog["wave"], SPEC_HALF_WIDTH))
    return np.concatenate(cuts), np.concatenate(sns), np.concatenate(ys), np.concatenate(specs)


def fit(data, rows: np.ndarray, seed: int, epochs: int):
    """Train on ``rows`` (85/15 train/validation inside them); -> (model, seconds)."""
    cut, sn, y, spec = data
    rng = np.random.default_rng(seed)
    rows = rng.permutation(rows)
    n_val = max(1, int(0.15 * len(rows)))
    res = train(
        cut, y, sn, spec=spec, train_idx=np.sort(rows[n_val:]), val_idx=np.sort(rows[:n_val]),
        model_config=CNNConfig(spec_len=spec.shape[-1]),
        config=TrainConfig(epochs=epochs, seed=seed),
    )  # fmt: skip
    return res.model, res.train_time_s


def eval_probs(model, data, rows: np.ndarray) -> np.ndarray:
    """Deterministic temperature-scaled P(real) for ``rows``."""
    cut, _, _, spec = data
    logits = predict_logits(model, normalise_rows(cut, rows), torch.as_tensor(spec[rows]))
    return sigmoid(logits / float(model.temperature))


def mc_scores(model, data, rows: np.ndarray, n_samples: int, seed: int) -> dict:
    """The platform's scoring (score_batch: T dropout passes of the head) over ``rows``,
    with the 1D windows already cut."""
    cut, _, _, spec = data
    gen = torch.Generator().manual_seed(seed)
    parts = [
        score_batch(model, cut[rows[i : i + 4096]], spec=spec[rows[i : i + 4096]],
                    n_samples=n_samples, generator=gen)
        for i in range(0, len(rows), 4096)
    ]  # fmt: skip
    return {k: np.concatenate([p[k] for p in parts]) for k in ("prob", "bald")}


def test_bacc(model, data, test: np.ndarray) -> dict[str, float]:
    _, sn, y, _ = data
    pred = eval_probs(model, data, test) >= 0.5
    reg = regime_index(sn[test])
    return {
        "low": balanced_accuracy(y[test][reg == 0], pred[reg == 0]),
        "high": balanced_accuracy(y[test][reg == 1], pred[reg == 1]),
        "overall": balanced_accuracy(y[test], pred),
    }


def error_auc(bald: np.ndarray, prob: np.ndarray, y: np.ndarray, low: np.ndarray) -> dict:
    wrong = ((prob >= 0.5) != (y >= 0.5)).astype(np.float32)
    return {
        "error_rate": float(wrong.mean()),
        "auc_all": roc_auc(wrong, bald),
        "auc_low": roc_auc(wrong[low], bald[low]),
    }


def run_seed(data, test: np.ndarray, pool: np.ndarray, seed: int, a) -> dict:
    cut, sn, y, spec = data
    rng = np.random.default_rng(seed)
    init = np.sort(rng.choice(pool, a.n_init, replace=False))
    rest = np.setdiff1d(pool, init)
    low = regime_index(sn[rest]) == 0
    out: dict = {"seed": seed}

    # MC dropout: the seed's model, T passes over the rest of the pool
    base, t_base = fit(data, init, seed, a.epochs)
    t0 = time.perf_counter()
    mc = mc_scores(base, data, rest, a.mc_samples, seed)
    t_mc = time.perf_counter() - t0
    # Ensemble: the seed's model plus members - 1 more seeds, one eval pass each
    members, t_members = [base], t_base
    for k in range(1, a.members):
        m, t = fit(data, init, seed * 100 + k, a.epochs)
        members.append(m)
        t_members += t
    t0 = time.perf_counter()
    p_members = np.stack([eval_probs(m, data, rest) for m in members])
    t_ens = time.perf_counter() - t0
    ens_bald = bald_from_samples(p_members)
    out["mc"] = {
        **error_auc(mc["bald"], mc["prob"], y[rest], low),
        "train_s": round(t_base, 1),
        "score_s": round(t_mc, 2),
    }
    out["ensemble"] = {
        **error_auc(ens_bald, p_members.mean(0), y[rest], low),
        "train_s": round(t_members, 1),
        "score_s": round(t_ens, 2),
    }
    # each member's own test accuracy: one that failed to train makes "disagreement" mean
    # "that member is wrong", which is not epistemic uncertainty
    out["ensemble"]["member_test_bacc"] = [
        round(test_bacc(m, data, test)["overall"], 3) for m in members
    ]
    out["rank_correlation"] = float(
        np.corrcoef(np.argsort(np.argsort(mc["bald"])), np.argsort(np.argsort(ens_bald)))[0, 1]
    )

    # One acquisition step each, the retrain seeded like the base model
    batches = {
        "random": rng.choice(rest, a.batch, replace=False),
        "mc": rest[np.argsort(-mc["bald"], kind="stable")[: a.batch]],
        "ensemble": rest[np.argsort(-ens_bald, kind="stable")[: a.batch]],
    }
    out["init_test_bacc"] = test_bacc(base, data, test)
    out["step"] = {}
    for name, batch in batches.items():
        model, _ = fit(data, np.union1d(init, batch), seed, a.epochs)
        out["step"][name] = {
            **test_bacc(model, data, test),
            "batch_low_sn_share": float((regime_index(sn[batch]) == 0).mean()),
            "batch_real_share": float(y[batch].mean()),
        }
    overlap = len(np.intersect1d(batches["mc"], batches["ensemble"])) / a.batch
    out["batch_overlap_mc_ensemble"] = overlap
    return out


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--n", type=int, default=16_000)
    p.add_argument("--test-frac", type=float, default=0.25)
    p.add_argument("--n-init", type=int, default=500)
    p.add_argument("--batch", type=int, default=500)
    p.add_argument("--members", type=int, default=5)
    p.add_argument("--mc-samples", type=int, default=10)
    p.add_argument("--epochs", type=int, default=12)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    p.add_argument("--data-seed", type=int, default=7)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out", default=None, help="write the figures as JSON here")
    a = p.parse_args()
    torch.set_num_threads(a.threads)

    t0 = time.perf_counter()
    data = load(a.n, a.data_seed)
    n = len(data[2])
    rng = np.random.default_rng(a.data_seed)
    test = np.sort(rng.choice(n, int(a.test_frac * n), replace=False))
    pool = np.setdiff1d(np.arange(n), test)
    print(
        f"simulated {n} COSMOS candidates ({time.perf_counter() - t0:.0f} s): test {len(test)}, "
        f"pool {len(pool)}; init {a.n_init} labels, batch {a.batch}, ensemble of "
        f"{a.members}, MC dropout T={a.mc_samples}, {a.threads} CPU threads",
        flush=True,
    )
    results = []
    for seed in a.seeds:
        r = run_seed(data, test, pool, seed, a)
        results.append(r)
        print(json.dumps(r), flush=True)

    def mean(path):
        vals = []
        for r in results:
            v = r
            for k in path:
                v = v[k]
            vals.append(v)
        return float(np.mean(vals))

    print(f"\nmeans over seeds {a.seeds}:")
    print(f"{'':>10} {'err AUC all':>12} {'err AUC low':>12} {'train s':>8} {'score s':>8}")
    for m in ("mc", "ensemble"):
        print(
            f"{m:>10} {mean([m, 'auc_all']):>12.3f} {mean([m, 'auc_low']):>12.3f} "
            f"{mean([m, 'train_s']):>8.0f} {mean([m, 'score_s']):>8.2f}"
        )
    print(f"\none step of {a.batch} labels from {a.n_init}: test balanced accuracy")
    print(f"{'batch':>10} {'low':>7} {'high':>7} {'overall':>8} {'low-S/N share':>14}")
    print(
        f"{'(init)':>10} {mean(['init_test_bacc', 'low']):>7.3f} "
        f"{mean(['init_test_bacc', 'high']):>7.3f} {mean(['init_test_bacc', 'overall']):>8.3f}"
    )
    for b in ("random", "mc", "ensemble"):
        print(
            f"{b:>10} {mean(['step', b, 'low']):>7.3f} {mean(['step', b, 'high']):>7.3f} "
            f"{mean(['step', b, 'overall']):>8.3f} {mean(['step', b, 'batch_low_sn_share']):>14.2f}"
        )
    print(
        f"rank correlation of the two BALD scores: {mean(['rank_correlation']):.2f}; "
        f"top-{a.batch} overlap {mean(['batch_overlap_mc_ensemble']):.2f}"
    )
    if a.out:
        with open(a.out, "w") as f:
            json.dump({"args": vars(a), "results": results}, f, indent=1)


if __name__ == "__main__":
    main()
