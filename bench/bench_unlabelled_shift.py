"""Unlabelled domain adaptation on the shifted scenarios (issue 25, "shift without labels").

    .venv/bin/python bench/bench_unlabelled_shift.py [--seeds 4] [--bases today]
        [--methods none,adabn,...] [--out bench/unlabelled_shift.json]
    .venv/bin/python bench/bench_unlabelled_shift.py --held-back   # once, at the end

The protocol of ``bench/bench_augment.py`` (same training set, same test sets and seeds,
same recipe rows, 6,000 candidates, 3 epochs, one thread; so ``none`` here is that
bench's row for the base recipe): source models are trained on unshifted COSMOS and
cached in ``var/bench_unlabelled_shift/``. Each scenario (``in_domain``, ``correlated_noise``,
``psf_seeing``; ``sky_artefacts`` only with ``--held-back``) has a separate *unlabelled*
adaptation sample of 4,000 candidates (its own simulation seed): every method sees only
its cutouts and catalogue S/N, never its labels, and is scored on the labelled test set
of the same scenario. Every method starts from the same source model per seed, so the
differences are paired.

Methods (``mlcore.cnn.domain_adapt``):
``none``            the source model as it is;
``adabn``           BatchNorm statistics re-estimated on the adaptation sample;
``whiten``          the noise autocorrelation of the adaptation sample estimated from its
                    cutouts and a filter giving it the training data's; test cutouts
                    filtered, then normalised as usual (by the whitened noise level);
``whiten_rawsig``   the same filter, but each test cutout divided by its noise level
                    *before* filtering (the per-candidate normalisation's sigma unwhitened);
``whiten+adabn``    filter, then AdaBN on the filtered adaptation sample;
``tent``            AdaBN, then the BatchNorm affine weights trained to lower the
                    prediction entropy on the adaptation sample (1 epoch, lr 1e-3);
``whiten+tent``     the same on filtered cutouts;
``whiten+pseudo``   self-training: whiten+adabn's confident predictions on the adaptation
                    sample (p >= 0.9 or <= 0.1, class-balanced per S/N regime) added as
                    labels to the source training set, 2 epochs of fine-tuning (lr 3e-4)
                    from the source model, then AdaBN on the filtered adaptation sample.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path

import _util  # noqa: F401  (puts the repository root on sys.path)
import numpy as np
import torch
from bench_augment import SCENARIO_SEEDS, TEST_SEED, TODAY, TRAIN_SEED, centroid_sigma, data
from bench_augment import rows as augment_rows

from mlcore.cnn import domain_adapt as da
from mlcore.cnn.data import ASINH_SOFT, MAD_TO_SIGMA
from mlcore.cnn.evaluation import balanced_accuracy
from mlcore.cnn.model import CNNConfig, LineCNN
from mlcore.cnn.training import TrainConfig, train_one
from mlcore.simulator import HELD_BACK

ROOT = Path(__file__).resolve().parent.parent
CACHE = ROOT / "var" / "bench_unlabelled_shift"
SHIFTED = ("correlated_noise", "psf_seeing")
ADAPT_SEEDS = {"in_domain": 2612, "correlated_noise": 2613, "psf_seeing": 2614, HELD_BACK: 2615}
METHODS = (
    "none",
    "adabn",
    "whiten",
    "whiten_rawsig",
    "whiten+adabn",
    "tent",
    "whiten+tent",
    "whiten+pseudo",
)
PSEUDO = {"threshold": 0.9, "epochs": 2, "lr": 3e-4}


def scenario_of(name: str) -> str | None:
    return None if name == "in_domain" else name


def cached_data(n: int, seed: int, scenario: str | None):
    CACHE.mkdir(parents=True, exist_ok=True)
    f = CACHE / f"data_{scenario or 'none'}_{seed}_{n}.npz"
    if f.exists():
        d = np.load(f)
        return d["x"], d["y"], d["sn"]
    x, y, sn = data(n, seed, scenario)
    np.savez(f, x=x, y=y, sn=sn)
    return x, y, sn


def source_model(base: str, seed: int, x, y, sn, epochs: int):
    """The source model of one recipe row and seed (trained once, then cached)."""
    f = CACHE / f"{base}_s{seed}_e{epochs}_n{len(x)}.pt"
    if f.exists():
        blob = torch.load(f, weights_only=False)
        m = LineCNN(CNNConfig(**blob["config"]))
        m.load_state_dict(blob["state"])
        return m.eval(), blob["train_idx"], blob["val_idx"], blob["train_s"]
    row = augment_rows(centroid_sigma())[base]
    cfg = dataclasses.replace(
        TrainConfig(epochs=epochs, seed=seed, max_time_s=1200, **TODAY), **row
    )
    t = time.perf_counter()
    tr = train_one(x, y, sn, config=cfg)
    wall = round(time.perf_counter() - t, 1)
    torch.save(
        {
            "config": tr.model.config.to_dict(),
            "state": tr.model.state_dict(),
            "train_idx": tr.train_idx,
            "val_idx": tr.val_idx,
            "train_s": wall,
            "recipe": dataclasses.asdict(cfg),
        },
        f,
    )
    return tr.model.eval(), tr.train_idx, tr.val_idx, wall


def _group_scale(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per candidate: (median, robust sigma) of channel 0 and of channels 1-4 pooled,
    broadcastable to (B, 5, 1, 1): the normalisation's own centre and scale."""
    B = len(x)
    med, sig = np.empty((B, 5, 1, 1), np.float32), np.empty((B, 5, 1, 1), np.float32)
    for sl in (slice(0, 1), slice(1, 5)):
        g = x[:, sl].reshape(B, -1)
        m = np.nanmedian(g, axis=1)
        s = MAD_TO_SIGMA * np.nanmedian(np.abs(g - m[:, None]), axis=1)
        s = np.where(np.isfinite(s) & (s > 0), s, 1.0)
        med[:, sl], sig[:, sl] = m[:, None, None, None], s[:, None, None, None]
    return med, sig


def rawsig_inputs(raw: np.ndarray, h: np.ndarray) -> np.ndarray:
    """Normalised inputs from filtered cutouts but divided by the *unfiltered* noise
    level: asinh((filtered - its median) / sigma of the raw cutout), as ``normalise``
    does otherwise (``normalise`` itself is scale-invariant, so it cannot be fed this)."""
    w = da.apply_filter(raw, h)
    med_w, _ = _group_scale(w)
    _, sig_r = _group_scale(raw)
    z = ASINH_SOFT * np.arcsinh((w - med_w) / sig_r / ASINH_SOFT)
    return np.nan_to_num(z).astype(np.float32)


def auc(y: np.ndarray, p: np.ndarray) -> float:
    """Area under the ROC curve (ties broken by order; nan with one class)."""
    n1 = int(y.sum())
    n0 = len(y) - n1
    if n1 == 0 or n0 == 0:
        return float("nan")
    r = np.empty(len(p))
    r[np.argsort(p, kind="stable")] = np.arange(1, len(p) + 1)
    return float((r[y].sum() - n1 * (n1 + 1) / 2) / (n1 * n0))


def scores(p: np.ndarray, y: np.ndarray, sn: np.ndarray) -> dict:
    """bench_augment's figures (balanced accuracy at p >= 0.5 per regime) plus the AUC:
    whether a method improves the ranking or only where the 0.5 cut falls."""
    low, t = sn <= 5.5, y >= 0.5
    out = {}
    for reg, m in (("high", ~low), ("low", low)):
        out[reg] = round(float(balanced_accuracy(t[m], p[m] >= 0.5)), 4)
        out[f"auc_{reg}"] = round(auc(t[m], p[m]), 4)
    out["pred_real"] = round(float((p >= 0.5).mean()), 4)
    return out


def evaluate(model: LineCNN, x: np.ndarray, y: np.ndarray, sn: np.ndarray) -> dict:
    return scores(da.predict_probs(model, x), y, sn)


@torch.no_grad()
def evaluate_z(model: LineCNN, z: np.ndarray, y: np.ndarray, sn: np.ndarray) -> dict:
    """:func:`evaluate` on inputs that are already normalised."""
    model.eval()
    p = np.concatenate(
        [
            torch.sigmoid(model(torch.from_numpy(z[a : a + 1024])).float()).numpy()
            for a in range(0, len(z), 1024)
        ]
    )
    return scores(p, y, sn)


def run_scenario(model, src, adapt, test, ref_acf, methods, seed: int, epochs_src: int) -> dict:
    """Every method on one scenario for one source model -> {method: eval, ...}."""
    x_s, y_s, sn_s, tr_idx, va_idx = src
    x_a, _, sn_a = adapt  # the adaptation sample's labels are never read
    x_t, y_t, sn_t = test
    out, info = {}, {}
    need_w = any(m.startswith("whiten") for m in methods)
    if need_w:
        acf_t = da.noise_acf(x_a)
        h = da.whitening_filter(acf_t, ref_acf)
        xa_w, xt_w = da.apply_filter(x_a, h), da.apply_filter(x_t, h)
        acf_w = da.noise_acf(xa_w)
        for k, a_ in (("acf", acf_t), ("whitened", acf_w)):
            r0, w0 = a_.shape[0] // 2, a_.shape[1] // 2
            info[f"{k}_lag1_wave"] = round(float(a_[r0, w0 + 1]), 3)
            info[f"{k}_lag1_rows"] = round(float(a_[r0 + 1, w0]), 3)
        info["max_gain"] = round(float(h.max()), 2)
    za = da.normalise_all(x_a)
    for m in methods:
        t0 = time.perf_counter()
        if m == "none":
            ev = evaluate(model, x_t, y_t, sn_t)
        elif m == "adabn":
            ev = evaluate(da.adapt_batchnorm(model, za, seed=seed), x_t, y_t, sn_t)
        elif m == "whiten":
            ev = evaluate(model, xt_w, y_t, sn_t)
        elif m == "whiten_rawsig":
            ev = evaluate_z(model, rawsig_inputs(x_t, h), y_t, sn_t)
        elif m == "whiten+adabn":
            ad = da.adapt_batchnorm(model, da.normalise_all(xa_w), seed=seed)
            ev = evaluate(ad, xt_w, y_t, sn_t)
        elif m == "tent":
            ev = evaluate(da.tent_adapt(model, za, seed=seed), x_t, y_t, sn_t)
        elif m == "whiten+tent":
            ev = evaluate(da.tent_adapt(model, da.normalise_all(xa_w), seed=seed), xt_w, y_t, sn_t)
        elif m == "whiten+pseudo":
            zw = da.normalise_all(xa_w)
            ad = da.adapt_batchnorm(model, zw, seed=seed)
            p = da.predict_probs(ad, xa_w)
            pick = da.pseudo_labels(p, sn_a, threshold=PSEUDO["threshold"])
            xx = np.concatenate([x_s, xa_w[pick]])
            yy = np.concatenate([y_s, (p[pick] >= 0.5).astype(np.float32)])
            ss = np.concatenate([sn_s, sn_a[pick]])
            tr_all = np.concatenate([tr_idx, len(x_s) + np.arange(len(pick))])
            cfg = dataclasses.replace(
                TrainConfig(seed=seed, max_time_s=1200, **TODAY),
                epochs=PSEUDO["epochs"], lr=PSEUDO["lr"],
            )  # fmt: skip
            ft = train_one(xx, yy, ss, train_idx=tr_all, val_idx=va_idx, config=cfg, init=model)
            ad2 = da.adapt_batchnorm(ft.model, zw, seed=seed)
            ev = evaluate(ad2, xt_w, y_t, sn_t)
            info["pseudo_n"] = int(len(pick))
            # how right the pseudo-labels were (measured afterwards, never used)
            info["pseudo_acc"] = round(
                float(((p[pick] >= 0.5) == (adapt[1][pick] >= 0.5)).mean()), 4
            )
        else:
            raise ValueError(f"unknown method {m!r}")
        ev["s"] = round(time.perf_counter() - t0, 1)
        out[m] = ev
    return {"eval": out, "info": info}


def summarise(runs: list[dict], scen: str) -> dict:
    """Per method: mean, min, max over seeds of every figure (bacc, AUC, predicted real)."""
    out = {}
    for r in runs:
        for m, ev in r["scen"].get(scen, {}).get("eval", {}).items():
            for k, v in ev.items():
                if k != "s":
                    out.setdefault(m, {}).setdefault(k, []).append(v)
    return {
        m: {
            k: {"mean": float(np.mean(v)), "min": float(np.min(v)), "max": float(np.max(v)),
                "n": len(v)}
            for k, v in d.items()
        }
        for m, d in out.items()
    }  # fmt: skip


def paired(runs: list[dict], scen: str, m: str) -> dict:
    """Seed-matched differences from ``none``: mean +- standard error, per regime."""
    out = {}
    for reg in ("high", "low"):
        d = np.array(
            [
                r["scen"][scen]["eval"][m][reg] - r["scen"][scen]["eval"]["none"][reg]
                for r in runs
                if m in r["scen"].get(scen, {}).get("eval", {})
                and "none" in r["scen"][scen]["eval"]
            ]
        )
        if len(d) == 0:
            return {}
        se = float(d.std(ddof=1) / np.sqrt(len(d))) if len(d) > 1 else float("nan")
        out[reg] = {"mean": round(float(d.mean()), 4), "se": round(se, 4)}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", type=int, default=4)
    ap.add_argument("--n-train", type=int, default=6000)
    ap.add_argument("--n-test", type=int, default=4000)
    ap.add_argument("--n-adapt", type=int, default=4000)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--bases", default="today", help="bench_augment recipe rows")
    ap.add_argument("--methods", default=",".join(METHODS))
    ap.add_argument("--scenarios", default="in_domain," + ",".join(SHIFTED))
    ap.add_argument("--held-back", action="store_true", help=f"score {HELD_BACK}, once")
    ap.add_argument("--report", action="store_true", help="only rewrite the .md from the JSON")
    ap.add_argument("--out", default=str(ROOT / "bench" / "unlabelled_shift.json"))
    a = ap.parse_args()
    torch.set_num_threads(1)
    out_path = Path(a.out)
    res = json.loads(out_path.read_text()) if out_path.exists() else {"runs": {}}
    if a.report:
        write_md(res, out_path.with_suffix(".md"))
        return
    args = {k: v for k, v in vars(a).items() if k not in ("report",)}
    res.setdefault("invocations", []).append(args)  # which bases / methods / scenarios ran
    res["config"] = {k: v for k, v in args.items() if k.startswith("n_") or k == "epochs"}
    res["pseudo"] = PSEUDO
    t0 = time.perf_counter()
    methods = [m for m in a.methods.split(",") if m]
    scens = [HELD_BACK] if a.held_back else [s for s in a.scenarios.split(",") if s]
    if HELD_BACK in scens and not a.held_back:
        raise SystemExit(f"{HELD_BACK} is held back: score it with --held-back, once")
    x_s, y_s, sn_s = cached_data(a.n_train, TRAIN_SEED, None)
    ref_acf = da.noise_acf(x_s)
    r0, w0 = ref_acf.shape[0] // 2, ref_acf.shape[1] // 2
    res["reference_acf_lag1"] = {
        "wave": round(float(ref_acf[r0, w0 + 1]), 4),
        "rows": round(float(ref_acf[r0 + 1, w0]), 4),
    }
    test_seed = {"in_domain": TEST_SEED, **SCENARIO_SEEDS}
    sets = {
        s: (
            cached_data(a.n_adapt, ADAPT_SEEDS[s], scenario_of(s)),
            cached_data(a.n_test, test_seed[s], scenario_of(s)),
        )
        for s in scens
    }
    print(f"data ready ({time.perf_counter() - t0:.0f} s)", flush=True)
    for base in [b for b in a.bases.split(",") if b]:
        runs = res["runs"].setdefault(base, [])
        for seed in range(a.seeds):
            model, tr_idx, va_idx, train_s = source_model(base, seed, x_s, y_s, sn_s, a.epochs)
            run = next((r for r in runs if r["seed"] == seed), None)
            if run is None:
                run = {"seed": seed, "train_s": train_s, "scen": {}}
                runs.append(run)
            for s in scens:
                have = run["scen"].get(s, {"eval": {}, "info": {}})
                todo = [m for m in methods if m not in have["eval"]]
                if not todo:
                    continue
                src = (x_s, y_s, sn_s, tr_idx, va_idx)
                r = run_scenario(model, src, *sets[s], ref_acf, todo, seed, a.epochs)
                have["eval"].update(r["eval"])
                have["info"].update(r["info"])
                run["scen"][s] = have
                out_path.write_text(json.dumps(res, indent=1) + "\n")
                print(
                    f"{base} seed {seed} {s:17s} "
                    + "  ".join(f"{m} {v['high']:.3f}/{v['low']:.3f}" for m, v in r["eval"].items())
                    + f"  ({time.perf_counter() - t0:.0f} s)",
                    flush=True,
                )
    write_md(res, out_path.with_suffix(".md"))
    out_path.write_text(json.dumps(res, indent=1) + "\n")


def _table(runs: list[dict], scen: str) -> list[str]:
    summ = summarise(runs, scen)
    L = [
        "| method | seeds | high S/N [min-max] | low S/N [min-max] | vs none (high / low) "
        "| AUC high / low | predicted real |",
        "|---|---|---|---|---|---|---|",
    ]

    def rng(v: dict) -> str:
        return f"{v['mean']:.3f} [{v['min']:.3f}-{v['max']:.3f}]"

    for m in [m for m in METHODS if m in summ]:
        v = summ[m]
        d = paired(runs, scen, m) if m != "none" else {}
        ds = "-"
        if d:
            ds = (
                f"{d['high']['mean']:+.3f} +- {d['high']['se']:.3f} / "
                f"{d['low']['mean']:+.3f} +- {d['low']['se']:.3f}"
            )
        L.append(
            f"| {m} | {v['high']['n']} | {rng(v['high'])} | {rng(v['low'])} | {ds} | "
            f"{v['auc_high']['mean']:.3f} / {v['auc_low']['mean']:.3f} | "
            f"{v['pred_real']['mean']:.3f} |"
        )
    return L


def write_md(res: dict, path: Path) -> None:
    c = res["config"]
    L = [
        "# Unlabelled domain adaptation on shifted scenarios (bench/bench_unlabelled_shift.py)",
        "",
        f"Source models: unshifted COSMOS, {c['n_train']} candidates, {c['epochs']} epochs, "
        "one thread (bench_augment's protocol and test sets). Each scenario: an unlabelled "
        f"adaptation sample of {c['n_adapt']} candidates (own seed; its labels never read), "
        f"scored on {c['n_test']} labelled test candidates of the same scenario. Balanced "
        "accuracy (p >= 0.5) per S/N regime, mean over seeds [min-max]; the seed-matched "
        "difference from `none` (mean +- standard error over seeds); the AUC (ranking, "
        "whatever the cut); the fraction predicted real (78 % are). Target (issue 25): "
        ">= 0.90 / 0.80 on every shifted scenario. Reading in docs/shift.md.",
        "",
    ]
    for base, runs in res["runs"].items():
        for scen in ("in_domain", *SHIFTED, HELD_BACK):
            if not any(scen in r["scen"] for r in runs):
                continue
            title = f"## `{scen}`, source recipe `{base}`"
            if scen == HELD_BACK:
                title += " (held back: scored once, after the tables above were read)"
            L += [title, "", *_table(runs, scen), ""]
            info = [r["scen"][scen]["info"] for r in runs if r["scen"].get(scen, {}).get("info")]
            if info:
                keys = sorted({k for i in info for k in i})
                L.append(
                    "Noise model and pseudo-labels (mean over seeds): "
                    + ", ".join(f"{k} {np.mean([i[k] for i in info if k in i]):.3f}" for k in keys)
                )
                L.append("")
    path.write_text("\n".join(L))


if __name__ == "__main__":
    main()
