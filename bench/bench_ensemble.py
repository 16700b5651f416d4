"""One CNN or a deep ensemble of K: how much does averaging members buy, per label count?

    .venv/bin/python bench/bench_ensemble.py [--n 24000] [--sizes 1000 2000 4000]
        [--seeds 1 2] [--members 3] [--epochs 6] [--threads 2] [--out FILE.json]

A simulated COSMOS survey with truth labels is split into a fixed test set (a third) and a
pool. Per label count and seed, that many pool candidates drawn at random train an
ensemble with ``mlcore.cnn.training.train(config=TrainConfig(members=K))`` -- the code the
platform runs with ``LABELAPP_ENSEMBLE_MEMBERS`` -- and each member alone and the ensemble
are judged on the test set (deterministic pass, threshold 0.5 on the calibrated
probability). Each member is exactly the single CNN its seed would have trained on that
split, so "member mean" is what one CNN gives on average and "member spread" how much a
single retrain depends on its seed. Figures only: nothing passes or fails.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch
from _util import ROOT  # noqa: F401 - puts the repo on sys.path
from bench_uncertainty import load

from mlcore.cnn.data import regime_index
from mlcore.cnn.evaluation import balanced_accuracy
from mlcore.cnn.model import CNNConfig, EnsembleCNN
from mlcore.cnn.training import TrainConfig, normalise_rows, predict_logits, train


def bacc_per_regime(y: np.ndarray, pred: np.ndarray, reg: np.ndarray) -> tuple[float, float]:
    return tuple(float(balanced_accuracy(y[reg == r], pred[reg == r])) for r in (0, 1))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=24000)
    ap.add_argument("--sizes", type=int, nargs="+", default=[1000, 2000, 4000])
    ap.add_argument("--seeds", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--members", type=int, default=3)
    ap.add_argument("--epochs", type=int, default=6, help="6: what campaign retrains use")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default=None, help="also write the rows as JSON here")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    cut, sn, y, spec = load(a.n, 0)
    perm = np.random.default_rng(0).permutation(len(y))
    n_test = len(y) // 3
    test, pool = np.sort(perm[:n_test]), perm[n_test:]
    reg, y_te = regime_index(sn[test]), y[test] >= 0.5
    x_te, s_te = normalise_rows(cut, test), torch.as_tensor(spec[test])
    rows = []
    for n in a.sizes:
        for seed in a.seeds:
            lab = np.random.default_rng(seed).choice(pool, n, replace=False)
            targets = np.full(len(y), np.nan, np.float32)  # NaN: not labelled, never read
            targets[lab] = y[lab]
            t0 = time.perf_counter()
            res = train(
                cut, targets, sn, spec=spec, model_config=CNNConfig(spec_len=spec.shape[-1]),
                config=TrainConfig(epochs=a.epochs, seed=seed, members=a.members),
            )  # fmt: skip
            wall = time.perf_counter() - t0
            ens = res.model
            members = ens.members if isinstance(ens, EnsembleCNN) else [ens]
            per = [bacc_per_regime(y_te, predict_logits(m, x_te, s_te) >= 0, reg) for m in members]
            low, high = bacc_per_regime(y_te, predict_logits(ens, x_te, s_te) >= 0, reg)
            row = {
                "n_labels": n, "seed": seed, "members_kept": len(members),
                "member_low": [round(p[0], 4) for p in per],
                "member_high": [round(p[1], 4) for p in per],
                "ensemble_low": round(low, 4), "ensemble_high": round(high, 4),
                "gain_low": round(low - float(np.mean([p[0] for p in per])), 4),
                "gain_high": round(high - float(np.mean([p[1] for p in per])), 4),
                "train_s": round(wall, 1),
            }  # fmt: skip
            rows.append(row)
            print(json.dumps(row), flush=True)
    print(f"\n| labels | seed | low: members (mean) -> ensemble | high: members (mean) -> ensemble "
          f"| train s ({a.members} members) |\n|---|---|---|---|---|")  # fmt: skip
    for r in rows:
        ml, mh = np.mean(r["member_low"]), np.mean(r["member_high"])
        print(
            f"| {r['n_labels']} | {r['seed']} | {', '.join(f'{v:.3f}' for v in r['member_low'])} "
            f"({ml:.3f}) -> **{r['ensemble_low']:.3f}** | "
            f"{', '.join(f'{v:.3f}' for v in r['member_high'])} ({mh:.3f}) -> "
            f"**{r['ensemble_high']:.3f}** | {r['train_s']:.0f} |"
        )
    if a.out:
        with open(a.out, "w") as f:
            json.dump({"args": vars(a), "rows": rows}, f, indent=2)


if __name__ == "__main__":
    main()
