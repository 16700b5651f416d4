"""Self-training on the unlabelled catalogue after pretraining: does it close the <= 1,000-label
gap at high S/N? (issue #25 item 4)

    python bench/bench_selftrain.py [--pool 100000] [--test 5000] [--n 1000] [--seeds 0 1 2]
        [--pretrain-epochs 4] [--encoder-dir DIR] [--threshold 0.9] [--max-per-class 4000]
        [--threads 1]

Same pool, test set, labelled subsets and training recipe as ``bench_pretrain.py`` (the
platform's 30-epoch recipe), so its ``masked`` arm is the baseline here, run again on the same
seeds. Per seed:

``masked``          the masked-pretrained encoder fine-tuned on the n labels (bench_pretrain);
``masked+pseudo``   that model labels the rest of the unlabelled pool; its confident answers
                    (calibrated probability >= ``--threshold`` or <= 1 - threshold, as many
                    real as not real per S/N regime, at most ``--max-per-class`` each:
                    ``mlcore.cnn.self_training.pick``, what the platform's retrain runs) join
                    the n labels, and the encoder is fine-tuned again on both from a fresh
                    head;
``masked+pseudo2``  one more round: the ``masked+pseudo`` model picks the pseudo-labels.

Validation (early stopping, temperature) uses only the labelled validation rows, never
pseudo-labels; the test set is never seen. The pseudo-labels' accuracy against the simulator's
truth is printed afterwards (it is never used). Writes bench/selftrain.json and .md after every
point. Prints figures; never passes or fails.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import _util  # noqa: F401  (puts the repository root on sys.path)
import numpy as np
import torch
from bench_pretrain import TARGET, labelled_subset, simulate

from mlcore.cnn import self_training
from mlcore.cnn.card import hash_arrays, load_checkpoint, write_model_dir
from mlcore.cnn.evaluation import evaluate
from mlcore.cnn.model import CNNConfig
from mlcore.cnn.pretrain import PretrainConfig, build_pretrain_card, pretrain, with_fresh_head
from mlcore.cnn.self_training import SelfTrainConfig, Unlabelled
from mlcore.cnn.training import TrainConfig, normalise_rows, predict_logits, train

HERE = Path(__file__).resolve().parent


def write_report(result: dict, out: str) -> str:
    by: dict = {}
    for p in result["points"]:
        by.setdefault(p["arm"], []).append(p)
    lines = [
        "# Self-training on the unlabelled pool after masked pretraining (issue #25 item 4)",
        "",
        f"Pool: {result['pool_source']} ({result['n_pool']:,} candidates, unlabelled except "
        f"the n labelled rows). Test: {result['test_source']} ({result['n_test']:,}, disjoint). "
        f"Recipe: {result['train_recipe']}. Pseudo-labels: threshold {result['threshold']}, "
        f"at most {result['max_per_class']:,} per class and regime, class-balanced per regime. "
        "Balanced accuracy at 0.5 on the calibrated even-odds probability; mean over seeds, "
        "[min, max].",
        "",
        f"- encoder: {result['encoder']}",
        "",
        "| arm | labels | high | low | pseudo-labels (accuracy vs truth) | seeds |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for arm, ps in by.items():
        hi, lo = np.array([p["high"] for p in ps]), np.array([p["low"] for p in ps])
        pn = [p.get("pseudo_n", 0) for p in ps]
        pa = [p["pseudo_acc"] for p in ps if "pseudo_acc" in p]
        pcell = f"{np.mean(pn):,.0f} ({np.mean(pa):.3f})" if pa else "-"
        lines.append(
            f"| {arm} | {ps[0]['n']} | {hi.mean():.3f} [{hi.min():.3f}, {hi.max():.3f}] | "
            f"{lo.mean():.3f} [{lo.min():.3f}, {lo.max():.3f}] | {pcell} | {len(ps)} |"
        )
    lines += ["", f"Target (the paper): {TARGET['high']} / {TARGET['low']} with <= 1,000 labels."]
    lines.append(f"\nTotal wall time {result.get('total_time_s', 0) / 60:.0f} min.")
    text = "\n".join(lines) + "\n"
    Path(out + ".md").write_text(text)
    Path(out + ".json").write_text(json.dumps(result, indent=2))
    return text


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--pool", type=int, default=100_000)
    ap.add_argument("--test", type=int, default=5_000)
    ap.add_argument("--field", default="cosmos")
    ap.add_argument("--n", type=int, default=1000, help="training labels (+15 %% validation)")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--patience", type=int, default=5)
    ap.add_argument("--epoch-samples", type=int, default=8192)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--pretrain-epochs", type=int, default=4)
    ap.add_argument("--pretrain-s", type=float, default=3600)
    ap.add_argument("--threshold", type=float, default=0.9)
    ap.add_argument("--max-per-class", type=int, default=4000)
    ap.add_argument("--rounds", type=int, default=2, help="self-training rounds (1 or 2)")
    ap.add_argument(
        "--pseudo-weights",
        type=float,
        nargs="+",
        default=[1.0],
        help="weight of a pseudo-labelled row (a labelled row weighs 1); one arm "
        "each, from the same first fit (round 1 only when more than one)",
    )
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--encoder-dir", default=None, help="save the encoder here, or reuse it")
    ap.add_argument(
        "--start",
        choices=("masked", "scratch"),
        default="masked",
        help="every fit starts from the masked encoder, or from scratch",
    )
    ap.add_argument("--out", default=str(HERE / "selftrain"))
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    t0 = time.perf_counter()
    cut, sn, y, spec = simulate(a.pool, 700_000, a.field)
    c_te, sn_te, y_te, s_te = simulate(a.test, 900_000, a.field)
    print(f"simulated {len(y)} pool + {len(y_te)} test ({time.perf_counter() - t0:.0f}s)",
          flush=True)  # fmt: skip
    mcfg = CNNConfig(spec_len=spec.shape[-1])
    x_te, s_te_t = normalise_rows(c_te, np.arange(len(y_te))), torch.as_tensor(s_te)
    enc_dir = Path(a.encoder_dir) if a.encoder_dir else None
    if a.start == "scratch":
        encoder, enc_note = None, "none: every fit starts from scratch"
    elif enc_dir is not None and (enc_dir / "model.pt").exists():
        encoder, enc_note = load_checkpoint(enc_dir), f"masked, reused from {enc_dir}"
    else:
        pr = pretrain(
            cut, spec=spec, model_config=mcfg, x_norm=normalise_rows(cut, np.arange(len(y))),
            config=PretrainConfig(approach="masked", epochs=a.pretrain_epochs,
                                  max_time_s=a.pretrain_s, num_threads=a.threads, seed=0),
        )  # fmt: skip
        encoder = pr.model
        enc_note = (f"masked, {len(pr.history)} epochs on {pr.n_candidates:,} candidates in "
                    f"{pr.pretrain_time_s:.0f} s")  # fmt: skip
        if enc_dir is not None:
            write_model_dir(enc_dir, pr.model, build_pretrain_card(
                pr, data_hash=hash_arrays(cut), data_source="bench_selftrain pool"))  # fmt: skip
    print(f"encoder: {enc_note}", flush=True)
    result = {
        "pool_source": f"simulate_survey({a.pool}, seeds 700000+k, field={a.field!r})",
        "test_source": f"simulate_survey({a.test}, seeds 900000+k, field={a.field!r})",
        "n_pool": int(len(y)), "n_test": int(len(y_te)), "encoder": enc_note,
        "train_recipe": (f"TrainConfig(epochs={a.epochs}, patience={a.patience}, "
                         f"min_epoch_samples={a.epoch_samples}, lr={a.lr}), LineCNN width 12 "
                         "+ 1D branch"),
        "threshold": a.threshold, "max_per_class": a.max_per_class, "args": vars(a),
        "points": [],
    }  # fmt: skip

    def fit(seed, tr, va, targets, weights=None):
        cfg = TrainConfig(epochs=a.epochs, patience=a.patience, min_epoch_samples=a.epoch_samples,
                          lr=a.lr, seed=seed, num_threads=a.threads)  # fmt: skip
        init = None if encoder is None else with_fresh_head(encoder, seed)
        return train(cut, targets, sn, spec=spec, train_idx=tr, val_idx=va, model_config=mcfg,
                     config=cfg, init=init, weights=weights)  # fmt: skip

    def record(arm, seed, tr, res, extra=None):
        rep = evaluate(y_te, predict_logits(res.model, x_te, s_te_t), sn_te,
                       temperature=res.temperature, prior_shift=res.prior_shift)  # fmt: skip
        pt = {
            "arm": arm,
            "seed": seed,
            "n": a.n,
            "n_train_rows": int(len(tr)),
            "high": rep["regimes"]["high"]["balanced_accuracy"],
            "low": rep["regimes"]["low"]["balanced_accuracy"],
            "best_epoch": res.best_epoch,
            "train_s": round(res.train_time_s, 1),
            **(extra or {}),
        }
        result["points"].append(pt)
        result["total_time_s"] = round(time.perf_counter() - t0, 1)
        print(f"seed {seed} {arm:15s} high {pt['high']:.4f} low {pt['low']:.4f} "
              f"({pt['train_s']:.0f}s, {len(tr)} rows) {extra or ''}", flush=True)  # fmt: skip
        write_report(result, a.out)

    for seed in a.seeds:
        tr, va = labelled_subset(y, sn, a.n, seed)
        res = fit(seed, tr, va, y)
        record(a.start, seed, tr, res)
        labelled = np.zeros(len(y), bool)
        labelled[tr] = labelled[va] = True
        rest = np.flatnonzero(~labelled)
        unl = Unlabelled(cutouts=cut[rest], sn=sn[rest], spec=spec[rest])
        st = SelfTrainConfig(threshold=a.threshold, max_per_class=a.max_per_class,
                             max_pool=len(rest), seed=seed)  # fmt: skip
        first = res
        for w in a.pseudo_weights:
            res = first
            for rnd in range(1, (a.rounds if len(a.pseudo_weights) == 1 else 1) + 1):
                rows, labels, _ = self_training.pick(res.model, unl, st)  # the platform's rule
                pick = rest[rows]
                targets = y.copy()  # the labelled rows keep their labels; the picks get 0 / 1
                targets[pick] = labels
                acc = float((targets[pick] == (y[pick] >= 0.5)).mean())  # measured, never used
                weights = np.ones(len(y), np.float32)
                weights[pick] = w
                res = fit(seed, np.concatenate([tr, pick]), va, targets, weights)
                arm = (f"{a.start}+pseudo" + ("" if rnd == 1 else str(rnd))
                       + ("" if w == 1.0 else f" (weight {w:g})"))  # fmt: skip
                record(arm, seed, np.concatenate([tr, pick]), res,
                       {"pseudo_n": int(len(pick)), "pseudo_acc": round(acc, 4),
                        "pseudo_weight": w})  # fmt: skip
    print(write_report(result, a.out))


if __name__ == "__main__":
    main()
