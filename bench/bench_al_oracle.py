"""Active learning with perfect labels: does the acquisition itself save labels?

    .venv/bin/python bench/bench_al_oracle.py [--n 24000] [--rounds 8] [--batch 500]
        [--init 500] [--strategies random bald] [--seeds 1] [--members 1] [--epochs 6]
        [--mc-samples 5] [--low-sn-weight 2] [--power 1] [--threads 1] [--tag NAME]
        [--out FILE.json]
    .venv/bin/python bench/bench_al_oracle.py --merge FILE.json [FILE.json ...]

The in-silico campaign (``manage.py run_campaign``) mixes two things: which candidates the
acquisition asks about, and what the simulated crowd then answers (who votes, which
candidates settle, how wrong the settled labels are). This bench removes the crowd: a
simulated COSMOS survey is split into a fixed test set (a third) and a pool; ``--init``
pool candidates drawn at random start every strategy; then each round trains the model
the loop trains (``mlcore.cnn.training.train``, ``--epochs`` as in campaign retrains),
scores the unlabelled pool the way the platform does (``score_batch``, T MC passes), picks
``--batch`` candidates with ``mlcore.acquisition.select_batch`` (the loop's defaults,
wavelength strata, power draws) and adds their *truth* labels. Every strategy sees the same
pool, test set, first batch and training seeds.

Output: balanced accuracy per S/N regime on the test set after each round (JSON lines, then
a table) and, per strategy against random, the labels at which it first reaches random's
final low-S/N balanced accuracy, per seed and on the mean curve over seeds. Runs split
over processes (one per core) are reported together with ``--merge``; rows with a ``--tag``
form their own section. Figures only: nothing passes or fails.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
from _util import ROOT
from bench_uncertainty import mc_scores

from mlcore.acquisition import AcquisitionConfig, select_batch
from mlcore.cnn.data import regime_index, spec_windows
from mlcore.cnn.evaluation import balanced_accuracy
from mlcore.cnn.model import CNNConfig
from mlcore.cnn.pipeline import SPEC_HALF_WIDTH
from mlcore.cnn.training import TrainConfig, normalise_rows, predict_logits, train
from mlcore.survey import stack_cutouts


def simulate_arrays(n: int, chunk_seed, scenario: str | None = None) -> dict[str, np.ndarray]:
    """n simulated COSMOS candidates in 20k chunks (chunk k from seed ``chunk_seed(k)``, under
    ``scenario``): cutouts (float16), 1D windows, sn, wave, truth (bench_shift_campaign too)."""
    from mlcore.simulator import simulate_survey

    parts: dict[str, list] = {k: [] for k in ("cut", "spec", "sn", "wave", "y")}
    for k, a in enumerate(range(0, n, 20_000)):
        s = simulate_survey(
            min(20_000, n - a), seed=chunk_seed(k), field="cosmos", scenario=scenario
        )
        parts["cut"].append(stack_cutouts(s.im_sum, s.im_array).astype(np.float16))
        parts["spec"].append(
            spec_windows(s.spec1d, s.spec1d_err, s.catalog["wave"], SPEC_HALF_WIDTH)
        )
        parts["sn"].append(np.asarray(s.catalog["sn"], np.float32))
        parts["wave"].append(np.asarray(s.catalog["wave"], np.float32))
        parts["y"].append(s.truth["truth_real"].astype(np.float32))
    return {k: np.concatenate(v) for k, v in parts.items()}


def load(n: int, seed: int, cache: Path | None) -> dict[str, np.ndarray]:
    """n simulated COSMOS candidates (20k chunks): cutouts, 1D windows, sn, wave, truth."""
    if cache is not None and cache.exists():
        with np.load(cache) as z:
            return {k: z[k] for k in z.files}
    data = simulate_arrays(n, lambda k: seed * 1000 + k)
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        np.savez(cache, **data)
    return data


def bacc(y: np.ndarray, pred: np.ndarray, reg: np.ndarray) -> tuple[float, float]:
    return tuple(float(balanced_accuracy(y[reg == r], pred[reg == r])) for r in (0, 1))


def run(d: dict, pool: np.ndarray, test: np.ndarray, strategy: str, seed: int, a) -> list[dict]:
    y, sn = d["y"], d["sn"]
    reg_te = regime_index(sn[test])
    x_te, s_te = normalise_rows(d["cut"], test), torch.as_tensor(d["spec"][test])
    labelled = np.random.default_rng(seed).choice(pool, a.init, replace=False)
    rows = []
    for r in range(1, a.rounds + 1):
        targets = np.full(len(y), np.nan, np.float32)  # NaN: not labelled, never read
        targets[labelled] = y[labelled]
        t0 = time.perf_counter()
        model = train(
            d["cut"], targets, sn, spec=d["spec"],
            model_config=CNNConfig(spec_len=d["spec"].shape[-1]),
            config=TrainConfig(epochs=a.epochs, seed=seed * 100 + r, members=a.members),
        ).model  # fmt: skip
        train_s = time.perf_counter() - t0
        low, high = bacc(y[test] >= 0.5, predict_logits(model, x_te, s_te) >= 0, reg_te)
        lab_low = int(np.count_nonzero(regime_index(sn[labelled]) == 0))
        row = {
            "strategy": strategy, "seed": seed, "round": r, "labels": len(labelled),
            "labels_low": lab_low, "real_share": round(float(y[labelled].mean()), 3),
            "bacc_low": round(low, 4), "bacc_high": round(high, 4), "train_s": round(train_s, 1),
        }  # fmt: skip
        rows.append(row)
        print(json.dumps(row), flush=True)
        if r == a.rounds:
            break
        rest = np.setdiff1d(pool, labelled)
        acq = dict(
            strategy=strategy, batch_size=a.batch, low_sn_weight=a.low_sn_weight,
            power=a.power or None, random_fraction=a.random_fraction, seed=seed * 100 + r,
        )  # fmt: skip
        if strategy == "random":  # the baseline, as in run_campaign: no emphasis, no strata
            acq.update(random_fraction=1.0, low_sn_weight=1.0, diversity="none")
        cfg = AcquisitionConfig(**acq)
        sc = (
            {"prob": np.full(len(rest), 0.5, np.float32), "bald": None}
            if strategy == "random"
            else mc_scores(model, (d["cut"], sn, y, d["spec"]), rest, a.mc_samples, seed * 100 + r)
        )
        pick = select_batch(
            prob=sc["prob"], bald=sc["bald"], sn=sn[rest], wave=d["wave"][rest], config=cfg
        ).index
        labelled = np.concatenate([labelled, rest[pick]])
    return rows


def labels_to_reach(rows: list[dict], target: float) -> int | None:
    return next((r["labels"] for r in rows if r["bacc_low"] >= target), None)


def report(rows: list[dict]) -> None:
    """One section per ``tag`` (a variant's settings): see ``report_one``. A tag without
    random rows is compared with the untagged random ones."""
    for tag in dict.fromkeys(r.get("tag", "") for r in rows):
        part = [r for r in rows if r.get("tag", "") == tag]
        if tag and not any(r["strategy"] == "random" for r in part):
            seeds = {r["seed"] for r in part}
            part += [
                r for r in rows
                if r["strategy"] == "random" and not r.get("tag") and r["seed"] in seeds
            ]  # fmt: skip
        print(f"\n### {tag or 'defaults'}")
        report_one(part)


def report_one(rows: list[dict]) -> None:
    """Per-seed low-S/N table and crossings, then the same on the mean over seeds."""
    seeds = sorted({r["seed"] for r in rows})
    strategies = sorted(dict.fromkeys(r["strategy"] for r in rows), key=lambda s: s != "random")
    n_rounds = max(r["round"] for r in rows)
    by = {(r["seed"], r["strategy"]): [] for r in rows}
    for r in sorted(rows, key=lambda r: r["round"]):
        by[(r["seed"], r["strategy"])].append(r)
    print("\n| seed | strategy | " + " | ".join(f"r{k}" for k in range(1, n_rounds + 1)) + " |")
    print("|---|---|" + "---|" * n_rounds)
    for seed in seeds:
        for s in strategies:
            got = by.get((seed, s), [])
            cells = " | ".join(f"{r['labels']:,}: {r['bacc_low']:.3f}" for r in got)
            if cells:
                print(f"| {seed} | {s} | {cells} |")
    curves = {}  # strategy -> mean over the seeds that ran it all, per round
    for s in strategies:
        full = [by[(seed, s)] for seed in seeds if len(by.get((seed, s), [])) == n_rounds]
        if len(full) == len(seeds):
            curves[s] = [
                {"labels": int(np.mean([c[k]["labels"] for c in full])),
                 "bacc_low": float(np.mean([c[k]["bacc_low"] for c in full]))}
                for k in range(n_rounds)
            ]  # fmt: skip
    if curves:
        print(f"| mean of {len(seeds)} | " + " |\n| | ".join(
            f"{s} | " + " | ".join(f"{r['labels']:,}: {r['bacc_low']:.3f}" for r in c)
            for s, c in curves.items()) + " |")  # fmt: skip
    cases = [(f"seed {seed}", {s: by[(seed, s)] for s in strategies if (seed, s) in by})
             for seed in seeds] + [(f"mean of {len(seeds)} seeds", curves)]  # fmt: skip
    for name, cs in cases:
        base = cs.get("random")
        if not base:
            continue
        target, n_base = base[-1]["bacc_low"], base[-1]["labels"]
        for s, c in cs.items():
            n = labels_to_reach(c, target)
            ratio = "never" if n is None else f"{n:,} labels ({n / n_base:.2f}x)"
            print(f"{name}: {s} reaches random's final {target:.3f} at {ratio}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=24000)
    ap.add_argument("--rounds", type=int, default=8)
    ap.add_argument("--batch", type=int, default=500)
    ap.add_argument("--init", type=int, default=500)
    ap.add_argument("--strategies", nargs="+", default=["random", "bald"])
    ap.add_argument("--seeds", type=int, nargs="+", default=[1])
    ap.add_argument("--members", type=int, default=1)
    ap.add_argument("--epochs", type=int, default=6, help="6: what campaign retrains use")
    ap.add_argument("--mc-samples", type=int, default=5, help="5: what campaigns score with")
    ap.add_argument("--low-sn-weight", type=float, default=AcquisitionConfig.low_sn_weight)
    ap.add_argument("--random-fraction", type=float, default=AcquisitionConfig.random_fraction)
    ap.add_argument("--power", type=float, default=AcquisitionConfig.power, help="0: top-k")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--cache", default=str(ROOT / "bench" / "out" / "al_oracle_{n}.npz"))
    ap.add_argument("--out", default=None, help="also write the rows as JSON here")
    ap.add_argument("--tag", default="", help="names this run's settings in merged reports")
    ap.add_argument("--merge", nargs="+", metavar="JSON", help="only report these runs' rows")
    a = ap.parse_args()
    if a.merge:  # runs split over processes (one per core): one table
        report([r for f in a.merge for r in json.load(open(f))["rows"]])
        return
    torch.set_num_threads(a.threads)
    d = load(a.n, 0, Path(a.cache.format(n=a.n)) if a.cache else None)
    perm = np.random.default_rng(0).permutation(len(d["y"]))
    n_test = len(perm) // 3
    test, pool = np.sort(perm[:n_test]), np.sort(perm[n_test:])
    rows = [r for seed in a.seeds for s in a.strategies for r in run(d, pool, test, s, seed, a)]
    for r in rows:
        r["tag"] = a.tag

    report(rows)
    if a.out:
        with open(a.out, "w") as f:
            json.dump({"args": vars(a), "rows": rows}, f, indent=2)


if __name__ == "__main__":
    main()
