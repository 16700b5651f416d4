"""Does training on level-3 "which artefact is it?" answers teach the CNN the artefact type,
and does the extra head cost the real/not-real decision anything?

    .venv/bin/python bench/bench_artefact_head.py [--n 12000] [--seeds 0] [--epochs 3]
        [--answered 0.6] [--correct 0.8] [--threads 1] [--out FILE.json]

A simulated COSMOS survey (truth known) is split into a fixed test third and a training
pool (85 % train / 15 % validation). Simulated level-3 volunteers answer "which artefact?"
for a share ``--answered`` of the pool's contaminants: the true kind with probability
``--correct``, otherwise another kind drawn at random (the kinds are the follow-up task's:
cosmic, sky, hotcol, meteor, badfiber, noise, other; the simulator's stars are "other").
The answers, keyed by detectid and shuffled, are joined to the training rows by
``mlcore.cnn.artefacts.join_kind_targets`` -- what the platform's training service does.

Per seed the same data, split and seed train two models with ``mlcore.cnn.training.train``:
without the head, and with it (``CNNConfig.artefact_kinds``). Printed: the head's accuracy
on the held-out test contaminants against the simulator's truth (not against the noisy
answers), with the commonest-kind baseline, per-kind recall and the confusion matrix; its
accuracy on validation rows against the answers (what the model card records); and the
real/not-real balanced accuracy per S/N regime of both models on the test set, with its
binomial standard error, so a difference can be read against noise. Figures only.
"""

from __future__ import annotations

import argparse
import json
import math
import time

import numpy as np
import torch
from _util import ROOT  # noqa: F401 - puts the repo on sys.path

from mlcore.cnn.artefacts import NO_KIND, join_kind_targets, kind_report
from mlcore.cnn.data import regime_index, spec_windows
from mlcore.cnn.evaluation import balanced_accuracy
from mlcore.cnn.model import CNNConfig
from mlcore.cnn.pipeline import SPEC_HALF_WIDTH
from mlcore.cnn.training import (
    TrainConfig,
    normalise_rows,
    predict_kind_probs,
    predict_logits,
    train,
)
from mlcore.survey import REAL_TYPES, stack_cutouts

# the level-3 task's kinds (labelapp ArtefactAnswer.Kind), in its order
KINDS = ("cosmic", "sky", "hotcol", "meteor", "badfiber", "noise", "other")
TRUTH_TO_KIND = {**{k: k for k in KINDS}, "star": "other"}


def load(n: int, seed: int):
    from mlcore.simulator import simulate_survey

    s = simulate_survey(n, seed=seed, field="cosmos")
    cut = stack_cutouts(s.im_sum, s.im_array).astype(np.float16)
    spec = spec_windows(s.spec1d, s.spec1d_err, s.catalog["wave"], SPEC_HALF_WIDTH)
    return {
        "cut": cut,
        "spec": spec,
        "sn": np.asarray(s.catalog["sn"], np.float32),
        "detectid": np.asarray(s.catalog["detectid"], np.int64),
        "real": np.asarray(s.truth["truth_real"], np.float32),
        "type": np.asarray(s.truth["truth_type"]).astype(str),
    }


def simulated_answers(d, rows, answered: float, correct: float, rng) -> dict:
    """{detectid: (kind, share)} for a share ``answered`` of the contaminants in ``rows``:
    one answer each, right with probability ``correct``, else a random other kind."""
    fake = rows[~np.isin(d["type"][rows], REAL_TYPES)]
    who = rng.choice(fake, int(round(answered * len(fake))), replace=False)
    out = {}
    for i in rng.permutation(who):  # any order: the join is by detectid
        truth = TRUTH_TO_KIND[d["type"][i]]
        kind = truth
        if rng.random() >= correct:
            kind = rng.choice([k for k in KINDS if k != truth])
        out[int(d["detectid"][i])] = (str(kind), 1.0)
    return out


def bacc_se(bacc: float, y: np.ndarray) -> float:
    n1, n0 = int(y.sum()), int((~y).sum())
    v = bacc * (1 - bacc)
    return 0.5 * math.sqrt(v / n1 + v / n0) if n1 and n0 else float("nan")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=12000)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--answered", type=float, default=0.6)
    ap.add_argument("--correct", type=float, default=0.8)
    ap.add_argument("--kind-loss-weight", type=float, default=TrainConfig.kind_loss_weight)
    ap.add_argument(
        "--joint", action="store_true",
        help="the head's loss also trains the shared layers (TrainConfig.kind_joint)",
    )  # fmt: skip
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default=None)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    t0 = time.perf_counter()
    d = load(a.n, 0)
    print(f"simulated {a.n} candidates in {time.perf_counter() - t0:.0f}s", flush=True)
    perm = np.random.default_rng(0).permutation(a.n)
    n_test = a.n // 3
    test, pool = np.sort(perm[:n_test]), perm[n_test:]
    n_val = int(0.15 * len(pool))
    val, tr = np.sort(pool[:n_val]), np.sort(pool[n_val:])
    reg = regime_index(d["sn"][test])
    y_te = d["real"][test] >= 0.5
    x_te, s_te = normalise_rows(d["cut"], test), torch.as_tensor(d["spec"][test])
    test_fake = ~np.isin(d["type"][test], REAL_TYPES)
    truth_kind = np.array([KINDS.index(TRUTH_TO_KIND[t]) if f else NO_KIND
                           for t, f in zip(d["type"][test], test_fake, strict=True)])  # fmt: skip
    rows = []
    for seed in a.seeds:
        answers = simulated_answers(
            d, np.concatenate([tr, val]), a.answered, a.correct, np.random.default_rng(seed)
        )
        kt = join_kind_targets(d["detectid"], answers, KINDS)
        base = dict(spec=d["spec"], train_idx=tr, val_idx=val)
        cfg = TrainConfig(
            epochs=a.epochs, seed=seed, kind_loss_weight=a.kind_loss_weight, kind_joint=a.joint
        )
        row = {"seed": seed, "n_answers": kt.n_matched,
               "answers_right": round(float(np.mean(
                   [TRUTH_TO_KIND[d["type"][i]] == KINDS[kt.index[i]]
                    for i in np.flatnonzero(kt.index != NO_KIND)])), 4)}  # fmt: skip
        for name, mcfg, extra in (
            ("no_head", CNNConfig(spec_len=d["spec"].shape[-1]), {}),
            ("head", CNNConfig(spec_len=d["spec"].shape[-1], artefact_kinds=KINDS),
             {"kind_targets": kt.index, "kind_weights": kt.weight}),
        ):  # fmt: skip
            t1 = time.perf_counter()
            res = train(d["cut"], d["real"], d["sn"], **base, model_config=mcfg, config=cfg,
                        **extra)  # fmt: skip
            pred = predict_logits(res.model, x_te, s_te) >= 0
            for r, rn in ((0, "low"), (1, "high")):
                b = float(balanced_accuracy(y_te[reg == r], pred[reg == r]))
                row[f"{name}_bacc_{rn}"] = round(b, 4)
                row[f"{name}_bacc_{rn}_se"] = round(bacc_se(b, y_te[reg == r]), 4)
            b = float(balanced_accuracy(y_te, pred))
            row[f"{name}_bacc_all"], row[f"{name}_bacc_all_se"] = (
                round(b, 4),
                round(bacc_se(b, y_te), 4),
            )
            row[f"{name}_train_s"] = round(time.perf_counter() - t1, 1)
            if name == "head":
                probs = predict_kind_probs(res.model, x_te, s_te)
                rep = kind_report(probs, truth_kind, KINDS)
                conf = np.array(rep["confusion"])
                row["head_test_vs_truth"] = {
                    "n": rep["n_eval"], "accuracy": rep["accuracy"],
                    "majority_baseline": rep["majority_baseline"],
                    "recall": {k: (round(float(conf[i, i] / conf[i].sum()), 3)
                                   if conf[i].sum() else None) for i, k in enumerate(KINDS)},
                    "support": {k: int(conf[i].sum()) for i, k in enumerate(KINDS)},
                    "confusion": rep["confusion"],
                }  # fmt: skip
                row["head_val_vs_answers"] = {
                    k: res.kind_eval[k] for k in ("n_eval", "accuracy", "majority_baseline")
                }
        rows.append(row)
        print(json.dumps(row), flush=True)
    print(f"total {time.perf_counter() - t0:.0f}s")
    if a.out:
        with open(a.out, "w") as f:
            json.dump({"args": vars(a), "rows": rows}, f, indent=1)


if __name__ == "__main__":
    main()
