"""Does self-supervised pretraining cut the labels the line CNN needs? (issue #25 item 4)

    python bench/bench_pretrain.py [--pool 20000] [--test 5000] [--sizes 250 500 1000 2000 5000]
        [--seeds 0 1] [--arms scratch contrastive masked] [--epochs 12] [--pretrain-s 150]
        [--threads 1]
    python bench/bench_pretrain.py --from-json bench/pretrain.json [more.json ...]  # report only

One unlabelled pool (simulated COSMOS candidates) that every encoder is pretrained on
without labels; the labelled subsets (n training labels + 15 % of n for validation,
stratified by regime and class, drawn by the seed) come from the same pool, as volunteers'
labels would come from the catalogue; one held-out test set from its own simulator seed,
disjoint from everything. Every arm trains with the same recipe (``TrainConfig`` with the
given epochs, patience and epoch length); only the starting weights differ: ``scratch``
(fresh), or an encoder's pretrained trunks with a head re-initialised from the seed.
Balanced accuracy per regime on the test set, at 0.5 on the calibrated even-odds
probability, as bench/learning_curve.py scores it. Writes bench/pretrain.json and
bench/pretrain.md after every point, so an interrupted run still leaves its figures.
Prints figures; never passes or fails.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from mlcore.cnn.card import hash_arrays, load_checkpoint, read_card, write_model_dir
from mlcore.cnn.data import regime_index, spec_windows, stratified_split
from mlcore.cnn.evaluation import evaluate
from mlcore.cnn.model import CNNConfig
from mlcore.cnn.pipeline import SPEC_HALF_WIDTH
from mlcore.cnn.pretrain import PretrainConfig, build_pretrain_card, pretrain, with_fresh_head
from mlcore.cnn.training import TrainConfig, normalise_rows, predict_logits, train
from mlcore.survey import stack_cutouts

HERE = Path(__file__).resolve().parent
TARGET = {"high": 0.941, "low": 0.851}  # the paper's figures (issue #25)


def simulate(n: int, seed0: int, field: str):
    from mlcore.simulator import simulate_survey

    cuts, sns, ys, specs = [], [], [], []
    for k, a in enumerate(range(0, n, 20_000)):
        s = simulate_survey(min(20_000, n - a), seed=seed0 + k, field=field)
        cuts.append(stack_cutouts(s.im_sum, s.im_array).astype(np.float16))
        sns.append(s.catalog["sn"].astype(np.float32))
        ys.append(s.truth["truth_real"].astype(np.float32))
        specs.append(spec_windows(s.spec1d, s.spec1d_err, s.catalog["wave"], SPEC_HALF_WIDTH))
        del s
    return np.concatenate(cuts), np.concatenate(sns), np.concatenate(ys), np.concatenate(specs)


def labelled_subset(y, sn, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """n training + round(0.15 n / 0.85) validation rows of the pool, stratified."""
    strata = regime_index(sn) * 2 + (y >= 0.5)
    n_all = int(round(n / 0.85))
    pick, _ = stratified_split(strata, (n_all / len(y),), seed)
    val, tr = stratified_split(strata[pick], (0.15,), seed + 1)
    return pick[tr], pick[val]


def summarise(points: list[dict]) -> dict:
    """Mean and spread (min-max) per (arm, n)."""
    out: dict = {}
    for p in points:
        out.setdefault(p["arm"], {}).setdefault(p["n"], []).append(p)
    summ = {}
    for arm, by_n in out.items():
        for n, ps in sorted(by_n.items()):
            row = {"arm": arm, "n": n, "seeds": [p["seed"] for p in ps]}
            for reg in ("high", "low"):
                v = np.array([p[reg] for p in ps])
                row[reg] = float(v.mean())
                row[f"{reg}_min"], row[f"{reg}_max"] = float(v.min()), float(v.max())
            row["train_s"] = float(np.mean([p["train_s"] for p in ps]))
            summ[f"{arm}/{n}"] = row
    return summ


def _meets(r: dict | None) -> bool:
    return bool(r) and r["high"] >= TARGET["high"] and r["low"] >= TARGET["low"]


def write_report(result: dict, out: str) -> str:
    summ = summarise(result["points"])
    result["summary"] = summ
    arms = list(dict.fromkeys(p["arm"] for p in result["points"]))
    ns = sorted({p["n"] for p in result["points"]})
    lines = [
        "# Self-supervised pretraining vs training from scratch (issue #25 item 4)",
        "",
        f"Pool: {result['pool_source']} ({result['n_pool']:,} candidates, pretrained on "
        f"without labels; the labelled subsets come from it). Test: {result['test_source']} "
        f"({result['n_test']:,} candidates, disjoint). Training recipe for every arm: "
        f"{result['train_recipe']}. CPU, {result['threads']} thread(s), on a shared 2-core "
        "machine: wall times are loose. Balanced accuracy at 0.5 on the calibrated even-odds "
        "probability; mean over seeds, [min, max] in brackets.",
        *(["", result["note"]] if result.get("note") else []),
        "",
    ]
    for name, enc in result.get("encoders", {}).items():
        lines.append(
            f"- encoder `{name}`: {enc['epochs']} epochs on {enc['n_candidates']:,} candidates "
            f"in {enc['pretrain_time_s']:.0f} s; loss {enc['loss_curve'][0]:.3f} -> "
            f"{enc['loss_curve'][-1]:.3f}"
            + (f" (reused {enc['reused_from']})" if enc.get("reused_from") else "")
        )
    lines += [
        "",
        "| n labels | " + " | ".join(f"{a}: high / low" for a in arms) + " |",
        "|---:|" + "---:|" * len(arms),
    ]
    for n in ns:
        cells = []
        for a in arms:
            r = summ.get(f"{a}/{n}")
            if r is None:
                cells.append("-")
                continue
            cells.append(
                f"{r['high']:.3f} [{r['high_min']:.3f}, {r['high_max']:.3f}] / "
                f"{r['low']:.3f} [{r['low_min']:.3f}, {r['low_max']:.3f}] "
                f"({len(r['seeds'])} seed(s), {r['train_s']:.0f} s)"
            )
        lines.append(f"| {n} | " + " | ".join(cells) + " |")
    lines += ["", f"Target (the paper): {TARGET['high']} / {TARGET['low']} with <= 1,000 labels."]
    for a in arms:
        met = [n for n in ns if _meets(summ.get(f"{a}/{n}"))]
        lines.append(f"- {a}: target met (mean over seeds) at n = {met or 'none of the sizes run'}")
    lines.append(f"\nTotal wall time {result.get('total_time_s', 0) / 60:.0f} min.")
    text = "\n".join(lines) + "\n"
    Path(out + ".md").write_text(text)
    Path(out + ".json").write_text(json.dumps(result, indent=2))
    return text


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--pool", type=int, default=20_000)
    ap.add_argument("--test", type=int, default=5_000)
    ap.add_argument("--field", default="cosmos")
    ap.add_argument("--sizes", type=int, nargs="+", default=[250, 500, 1000, 2000, 5000])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    ap.add_argument("--arms", nargs="+", default=["scratch", "contrastive", "masked"])
    ap.add_argument("--epochs", type=int, default=12)
    ap.add_argument("--patience", type=int, default=3)
    ap.add_argument("--epoch-samples", type=int, default=4096)
    ap.add_argument("--lr", type=float, default=3e-3, help="fine-tuning and scratch alike")
    ap.add_argument("--pretrain-epochs", type=int, default=6)
    ap.add_argument("--pretrain-s", type=float, default=150, help="cap per encoder")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default=str(HERE / "pretrain"))
    ap.add_argument(
        "--encoder-dir", default=None, help="save each encoder here (DIR/<arm>), or reuse it"
    )
    ap.add_argument("--note", default=None, help="with --from-json: a line for the report")
    ap.add_argument("--from-json", nargs="+", default=None, help="report only (merging runs)")
    a = ap.parse_args()
    if a.from_json:  # several: their points merged (same pool, test and recipe assumed)
        parts = [json.loads(Path(f).read_text()) for f in a.from_json]
        merged = {**parts[0], "points": [p for r in parts for p in r["points"]]}
        merged["total_time_s"] = sum(r.get("total_time_s", 0) for r in parts)
        if len(parts) > 1:
            merged["merged_from"] = list(a.from_json)
        if a.note:
            merged["note"] = a.note
        print(write_report(merged, a.out))
        return
    torch.set_num_threads(a.threads)
    t0 = time.perf_counter()
    cut, sn, y, spec = simulate(a.pool, 700_000, a.field)
    c_te, sn_te, y_te, s_te = simulate(a.test, 900_000, a.field)
    print(
        f"simulated {len(y)} pool + {len(y_te)} test ({time.perf_counter() - t0:.0f}s)", flush=True
    )
    mcfg = CNNConfig(spec_len=spec.shape[-1])
    x_te = normalise_rows(c_te, np.arange(len(y_te)))
    s_te_t = torch.as_tensor(s_te)
    result = {
        "pool_source": f"simulate_survey({a.pool}, seeds 700000+k, field={a.field!r})",
        "test_source": f"simulate_survey({a.test}, seeds 900000+k, field={a.field!r})",
        "n_pool": int(len(y)),
        "n_test": int(len(y_te)),
        "threads": a.threads,
        "train_recipe": (
            f"TrainConfig(epochs={a.epochs}, patience={a.patience}, "
            f"min_epoch_samples={a.epoch_samples}, lr={a.lr}), LineCNN width 12 + 1D branch"
        ),
        "args": vars(a),
        "encoders": {},
        "points": [],
    }
    encoders = {}
    x_pool = normalise_rows(cut, np.arange(len(y)))
    for arm in a.arms:
        if arm == "scratch":
            continue
        enc_dir = Path(a.encoder_dir) / arm if a.encoder_dir else None
        if enc_dir is not None and (enc_dir / "model.pt").exists():  # reuse: a rerun's arms
            encoders[arm] = load_checkpoint(enc_dir)
            result["encoders"][arm] = {**read_card(enc_dir), "reused_from": str(enc_dir)}
            print(f"encoder {arm}: reused {enc_dir}", flush=True)
            continue
        pr = pretrain(
            cut, spec=spec, model_config=mcfg, x_norm=x_pool,
            config=PretrainConfig(approach=arm, epochs=a.pretrain_epochs, max_time_s=a.pretrain_s,
                                  num_threads=a.threads, seed=0),
        )  # fmt: skip
        encoders[arm] = pr.model
        result["encoders"][arm] = {
            "n_candidates": pr.n_candidates, "epochs": len(pr.history),
            "loss_curve": [h["loss"] for h in pr.history], "pretrain_time_s": pr.pretrain_time_s,
        }  # fmt: skip
        print(f"encoder {arm}: {result['encoders'][arm]}", flush=True)
        if enc_dir is not None:  # a versioned encoder with its card, for reruns
            card = build_pretrain_card(
                pr, data_hash=hash_arrays(cut), data_source=result["pool_source"]
            )
            write_model_dir(enc_dir, pr.model, card)
    del x_pool
    for seed in a.seeds:
        for n in a.sizes:
            tr, va = labelled_subset(y, sn, n, seed)
            for arm in a.arms:
                init = None if arm == "scratch" else with_fresh_head(encoders[arm], seed)
                cfg = TrainConfig(
                    epochs=a.epochs, patience=a.patience, min_epoch_samples=a.epoch_samples,
                    lr=a.lr, seed=seed, num_threads=a.threads,
                )  # fmt: skip
                res = train(cut, y, sn, spec=spec, train_idx=tr, val_idx=va, model_config=mcfg,
                            config=cfg, init=init)  # fmt: skip
                logits = predict_logits(res.model, x_te, s_te_t)
                rep = evaluate(y_te, logits, sn_te, temperature=res.temperature,
                               prior_shift=res.prior_shift)  # fmt: skip
                pt = {
                    "arm": arm, "n": int(len(tr)), "n_val": int(len(va)), "seed": seed,
                    "high": rep["regimes"]["high"]["balanced_accuracy"],
                    "low": rep["regimes"]["low"]["balanced_accuracy"],
                    "overall": rep["regimes"]["overall"]["balanced_accuracy"],
                    "best_epoch": res.best_epoch, "epochs_run": len(res.history),
                    "train_s": round(res.train_time_s, 1),
                }  # fmt: skip
                result["points"].append(pt)
                print(
                    f"seed {seed} n={pt['n']:5d} {arm:12s} high {pt['high']:.4f} "
                    f"low {pt['low']:.4f} ({pt['train_s']:.0f}s, best epoch {pt['best_epoch']})",
                    flush=True,
                )
                result["total_time_s"] = round(time.perf_counter() - t0, 1)
                write_report(result, a.out)
    print(write_report(result, a.out))


if __name__ == "__main__":
    main()
