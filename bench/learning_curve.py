"""Learning curve: balanced accuracy per S/N regime vs number of training labels.

    python bench/learning_curve.py --simulate 160000 [--seed 0] [--epochs 30] [--patience 5] \
        [--sizes 500 1000 2000 5000 10000 20000 50000 100000] [--threads 2] [--train-eval N]
    python bench/learning_curve.py --data survey.fits ...
    python bench/learning_curve.py --from-json bench/learning_curve.json  # report only

One fixed held-out test set (20% of the labelled rows, stratified by regime and class) for
every point; each point trains from scratch on ``n`` labels (+15% of that for validation,
early stopping), fits the temperature and prior shift, evaluates on the test set. Results
go to ``bench/learning_curve.json`` and a markdown table ``bench/learning_curve.md`` with a
saturating fit ``bacc(n) = a - b * n**-c`` per regime (its ``a`` estimates the asymptote,
loosely: three parameters on a few noisy points), and a plotly page
``bench/out/learning_curve.html`` (its PNG, made with ``bench/report_screenshot.py``, is
``bench/learning_curve.png``). Prints figures; never passes or fails. ``--train-eval N``
also scores each model on up to N of its own training rows: the train/test bracket of the
asymptote, the tighter estimate (``bench/learning_curve_bracket.md``, see
``_bracket_lines``). The committed run (160k candidates, sizes up to 100k, 30 epochs,
patience 5, 2 threads) took 39 min on the 2-core box.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from mlcore.cnn.data import spec_windows
from mlcore.cnn.evaluation import evaluate
from mlcore.cnn.model import CNNConfig
from mlcore.cnn.pipeline import SPEC_HALF_WIDTH, make_splits
from mlcore.cnn.training import TrainConfig, normalise_rows, predict_logits, train
from mlcore.survey import stack_cutouts

HERE = Path(__file__).resolve().parent


def load(args):
    """-> cutouts (N,5,9,100) float16, sn, truth_real, 1D windows (N,2,L) or None, source."""
    if args.data:
        from mlcore.survey_io import read_survey

        s = read_survey(args.data)
        cut = stack_cutouts(s.im_sum, s.im_array).astype(np.float16)  # half the memory
        spec = _spec(s, args)
        y = s.truth["truth_real"].astype(np.float32)
        return cut, s.catalog["sn"], y, spec, f"file {args.data}"
    from mlcore.simulator import SIMULATOR_VERSION, simulate_survey

    # in chunks of 20k (independent seeds) so only float16 cutouts accumulate in memory
    cuts, sns, ys, specs = [], [], [], []
    for k, a in enumerate(range(0, args.simulate, 20_000)):
        s = simulate_survey(
            min(20_000, args.simulate - a), seed=args.seed * 1000 + k, field=args.field
        )
        cuts.append(stack_cutouts(s.im_sum, s.im_array).astype(np.float16))
        sns.append(s.catalog["sn"])
        ys.append(s.truth["truth_real"].astype(np.float32))
        specs.append(_spec(s, args))
        del s
    src = (
        f"simulate_survey({args.simulate} in 20k chunks, seeds {args.seed * 1000}+k, "
        f"field={args.field!r}) v{SIMULATOR_VERSION}"
    )
    spec = None if args.no_spec1d else np.concatenate(specs)
    return np.concatenate(cuts), np.concatenate(sns), np.concatenate(ys), spec, src


def _spec(s, args):
    if args.no_spec1d:
        return None
    return spec_windows(s.spec1d, s.spec1d_err, s.catalog["wave"], SPEC_HALF_WIDTH)


def fit_saturating(n: np.ndarray, y: np.ndarray) -> dict | None:
    """Least squares of y = a - b n^-c over a grid of c (a, b linear given c), a <= 1.

    Three parameters on a handful of noisy points: the asymptote is loosely constrained,
    so the report also gives the measured gain over the last step in n.
    """
    ok = np.isfinite(y)
    if ok.sum() < 3:
        return None
    n, y = n[ok].astype(float), y[ok]
    best = None
    for c in np.linspace(0.05, 1.5, 146):
        A = np.stack([np.ones_like(n), -(n**-c)], axis=1)
        (a, b), *_ = np.linalg.lstsq(A, y, rcond=None)
        if a > 1.0:  # balanced accuracy cannot exceed 1: refit b with a fixed at 1
            a = 1.0
            b = float(np.dot(-(n**-c), y - 1.0) / np.dot(n**-c, n**-c))
        r = float(((a - b * n**-c - y) ** 2).sum())
        if best is None or r < best["rss"]:
            best = {"a": float(a), "b": float(b), "c": float(c), "rss": r}
    return best


def _train_set_report(res, cut, y, sn, spec, tr, limit: int, seed: int) -> dict | None:
    """The trained model on (up to ``limit`` of) its own training rows, in eval mode and
    without augmentation: the optimistic end of the learning-curve bracket (see the report).
    None when ``limit`` is 0."""
    if limit <= 0:
        return None
    idx = np.sort(tr if len(tr) <= limit else np.random.default_rng(seed).choice(tr, limit, False))
    logits = np.concatenate(
        [
            predict_logits(
                res.model,
                normalise_rows(cut, idx[a : a + 20_000]),
                None if spec is None else torch.as_tensor(spec[idx[a : a + 20_000]]),
            )
            for a in range(0, len(idx), 20_000)  # bounded memory: 20k rows are 360 MB float32
        ]
    )
    rep = evaluate(y[idx], logits, sn[idx], temperature=res.temperature)
    rep["n"] = int(len(idx))
    return rep


def _bracket_lines(points: list[dict]) -> list[str]:
    """The train/test bracket of the asymptote, for points run with --train-eval.

    For a fixed model class and training recipe, the error on the training rows grows with
    n towards the same limit that the test error falls to; the limit lies between them.
    That holds exactly only for empirical-risk minimisation of the scored loss, and this
    training has augmentation, dropout and early stopping, so the bracket is a diagnostic:
    a small gap says little is left to gain from more labels of the same kind.
    """
    pts = [p for p in points if "train_low_balanced_accuracy" in p]
    if not pts:
        return []
    out = [
        "Train/test bracket: each model also scored on its own training rows (up to "
        f"{max(p['n_train_eval'] for p in pts):,} of them; eval mode, no augmentation). "
        "The asymptote lies between the two (a diagnostic: see `_bracket_lines`).",
        "",
        "| n_train | train-set bacc high | test bacc high | gap | "
        "train-set bacc low | test bacc low | gap |",
        "|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for p in pts:
        row = [str(p["n_train"])]
        for reg in ("high", "low"):
            tr, te = p[f"train_{reg}_balanced_accuracy"], p[f"{reg}_balanced_accuracy"]
            row += [f"{tr:.3f}", f"{te:.3f}", f"{100 * (tr - te):+.1f} points"]
        out.append("| " + " | ".join(row) + " |")
    out.append("")
    last = pts[-1]
    for reg in ("high", "low"):
        tr, te = last[f"train_{reg}_balanced_accuracy"], last[f"{reg}_balanced_accuracy"]
        lo, hi = min(tr, te), max(tr, te)
        out.append(
            f"- {reg}: at n={last['n_train']} the asymptote is bracketed by {lo:.3f} and "
            f"{hi:.3f}, so the test point is within {100 * (hi - te):.1f} points of it"
        )
    return out + [""]


def _fmt(x) -> str:
    return "-" if x is None else f"{x:.3f}"  # points measured before the prior shift: "-"


def write_report(result: dict, out: str) -> str:
    """The markdown table + fits for a result dict (also rebuildable with --from-json)."""
    points = result["points"]
    ns = np.array([p["n_train"] for p in points])
    result["fits"] = fits = {
        reg: fit_saturating(ns, np.array([p[f"{reg}_balanced_accuracy"] for p in points]))
        for reg in ("high", "low")
    }
    mc = result["model_config"]
    lines = [
        f"# Learning curve ({result['source']})",
        "",
        f"Model: LineCNN width {mc['width']}, 1D branch {'on' if mc['spec_len'] else 'off'}; "
        f"one-cycle schedule over {result.get('epochs', '?')} epochs, early stopping after "
        f"{result.get('patience', '?')} without a better validation loss, counted from the "
        "schedule's midpoint at the earliest. "
        "Balanced accuracy on one fixed held-out test set "
        f"(n_test = {points[0]['n_test'] if points else 0}); truth labels; "
        f"CPU, {result['threads']} thread(s). Decisions at 0.5 on the even-odds probability "
        "(sigmoid(logit / T)); the last ECE adds the per-regime prior shift.",
        *(["", result["note"]] if result.get("note") else []),
        "",
        "| n_train | bacc high (sn>5.5) | bacc low (4.8-5.5) | bacc overall | "
        "prec/rec high | prec/rec low | ECE raw -> T -> T + prior shift | train s |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for p in points:
        lines.append(
            f"| {p['n_train']} | {p['high_balanced_accuracy']:.3f} | "
            f"{p['low_balanced_accuracy']:.3f} | {p['overall_balanced_accuracy']:.3f} | "
            f"{p['high_precision']:.3f}/{p['high_recall']:.3f} | "
            f"{p['low_precision']:.3f}/{p['low_recall']:.3f} | "
            f"{p['ece_uncal']:.3f} -> {p['ece_cal']:.3f} -> {_fmt(p.get('ece_prior'))} | "
            f"{p['train_time_s']:.0f} |"
        )
    lines.append("")
    lines += _bracket_lines(points)
    for reg, f in fits.items():
        if not f:
            continue
        last = points[-1][f"{reg}_balanced_accuracy"]
        step = ""
        if len(points) > 1:
            prev = points[-2]
            gain = 100 * (last - prev[f"{reg}_balanced_accuracy"])
            step = (
                f"; measured gain from n={prev['n_train']} to n={points[-1]['n_train']}: "
                f"{gain:+.1f} points"
            )
        lines.append(
            f"- {reg}: fit bacc(n) = {f['a']:.3f} - {f['b']:.3f} n^-{f['c']:.2f} (a <= 1); "
            f"asymptote {f['a']:.3f}, largest point {last:.3f} "
            f"({100 * (f['a'] - last):+.1f} points to go){step}"
        )
        if len(points) <= 3:
            lines[-1] += (
                "; three parameters through three points: the fit is exactly determined "
                "and says nothing about the asymptote"
            )
        elif f["a"] >= 0.995:  # pinned at the bound: the points show no saturation to fit
            lines[-1] += (
                "; the asymptote sits at the bound, i.e. the measured range shows no "
                "saturation and this fit does not estimate one"
            )
    text = "\n".join(lines) + "\n"
    Path(out + ".md").write_text(text)
    Path(out + ".json").write_text(json.dumps(result, indent=2))
    html = write_figure(result, HERE / "out" / (Path(out).name + ".html"))
    return text + f"\nfigure: {html} (PNG: python bench/report_screenshot.py {html} {out}.png)\n"


def write_figure(result: dict, path: Path) -> Path:
    """Balanced accuracy per regime against training labels (log axis) with the fits, as a
    self-contained plotly HTML page (bench/out/ is not committed; its PNG is)."""
    import plotly.graph_objects as go

    points = result["points"]
    ns = np.array([p["n_train"] for p in points], dtype=float)
    grid = np.geomspace(ns.min(), ns.max() * 2, 200)
    fig = go.Figure()
    for reg, name, colour in (("high", "S/N > 5.5", "#1f3b73"), ("low", "4.8-5.5", "#d95f02")):
        fig.add_scatter(
            x=ns, y=[p[f"{reg}_balanced_accuracy"] for p in points], mode="lines+markers",
            name=name, line={"color": colour},
        )  # fmt: skip
        tr = [p for p in points if f"train_{reg}_balanced_accuracy" in p]
        if tr:
            fig.add_scatter(
                x=[p["n_train"] for p in tr], y=[p[f"train_{reg}_balanced_accuracy"] for p in tr],
                mode="lines+markers", name=f"{name}, on its own training rows",
                line={"color": colour, "dash": "dash"}, marker={"symbol": "circle-open"},
            )  # fmt: skip
        f = (result.get("fits") or {}).get(reg)
        if f and len(points) > 3:  # three points fix three parameters: nothing to draw
            fig.add_scatter(
                x=grid, y=f["a"] - f["b"] * grid ** -f["c"], mode="lines",
                name=f"{name} fit, asymptote {f['a']:.3f}",
                line={"color": colour, "dash": "dot"},
            )  # fmt: skip
    fig.update_layout(
        title=f"Learning curve: {result['source']}", width=900, height=520, template="plotly_white",
        xaxis={"type": "log", "title": "training labels (truth)"},
        yaxis={"title": "balanced accuracy (held-out test unless noted)", "range": [0.78, 1.0]},
        legend={"x": 0.98, "xanchor": "right", "y": 0.02, "yanchor": "bottom"},
    )  # fmt: skip
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.write_html(path, include_plotlyjs=True)
    return path


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default=None)
    ap.add_argument("--simulate", type=int, default=160_000)
    ap.add_argument("--field", default="cosmos")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--sizes",
        type=int,
        nargs="+",
        default=[500, 1000, 2000, 5000, 10000, 20000, 50000, 100000],
    )
    ap.add_argument("--epochs", type=int, default=30)  # the platform's TrainConfig default
    ap.add_argument("--no-spec1d", action="store_true", help="images only, no 1D branch")
    ap.add_argument("--patience", type=int, default=5)
    ap.add_argument("--width", type=int, default=12)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument(
        "--train-eval",
        type=int,
        default=0,
        metavar="N",
        help="also score each model on up to N of its own training rows (0: off)",
    )
    ap.add_argument("--out", default=str(HERE / "learning_curve"))
    ap.add_argument("--from-json", default=None, help="only rebuild the report from a JSON")
    a = ap.parse_args()
    if a.from_json:
        print(write_report(json.loads(Path(a.from_json).read_text()), a.out))
        return
    torch.set_num_threads(a.threads)
    t0 = time.perf_counter()
    cut, sn, y, spec, src = load(a)
    mcfg = CNNConfig(width=a.width, spec_len=0 if spec is None else spec.shape[-1])
    print(f"{src}: {len(y)} candidates ({time.perf_counter() - t0:.0f}s)", flush=True)
    points = []
    for n in a.sizes:
        tr, va, te = make_splits(y, sn, test_frac=0.2, val_frac=0.15, max_train=n, seed=a.seed)
        if len(tr) < 0.9 * n:
            print(f"skip n={n}: only {len(tr)} training rows available")
            continue
        res = train(
            cut,
            y,
            sn,
            spec=spec,
            train_idx=tr,
            val_idx=va,
            model_config=mcfg,
            config=TrainConfig(epochs=a.epochs, patience=a.patience, seed=a.seed),
        )
        s_te = None if spec is None else torch.as_tensor(spec[te])
        logits = predict_logits(res.model, normalise_rows(cut, te), s_te)
        rep = evaluate(
            y[te], logits, sn[te], temperature=res.temperature, prior_shift=res.prior_shift
        )
        rep_tr = _train_set_report(res, cut, y, sn, spec, tr, a.train_eval, a.seed)
        pt = {
            "n_train": int(len(tr)),
            "n_val": int(len(va)),
            "n_test": int(len(te)),
            "epochs_run": len(res.history),
            "best_epoch": res.best_epoch,
            "train_time_s": round(res.train_time_s, 1),
            "temperature": res.temperature,
            "ece_uncal": rep["calibration"]["ece_uncalibrated"],
            "ece_cal": rep["calibration"]["ece_calibrated"],
            "prior_shift": list(res.prior_shift),
            "ece_prior": rep["calibration"]["ece_prior_corrected"],
        }
        for reg in ("high", "low", "overall"):
            m = rep["regimes"][reg]
            for k in ("balanced_accuracy", "precision", "recall", "roc_auc"):
                pt[f"{reg}_{k}"] = m[k]
            if rep_tr is not None:
                pt[f"train_{reg}_balanced_accuracy"] = rep_tr["regimes"][reg]["balanced_accuracy"]
        if rep_tr is not None:
            pt["n_train_eval"] = rep_tr["n"]
        points.append(pt)
        print(
            f"n={pt['n_train']:6d} bacc high {pt['high_balanced_accuracy']:.4f} "
            f"low {pt['low_balanced_accuracy']:.4f} overall {pt['overall_balanced_accuracy']:.4f}"
            f" ({pt['train_time_s']:.0f}s, {pt['epochs_run']} epochs)",
            flush=True,
        )
    result = {
        "source": src,
        "model_config": mcfg.to_dict(),
        "epochs": a.epochs,
        "patience": a.patience,
        "threads": a.threads,
        "points": points,
        "total_time_s": round(time.perf_counter() - t0, 1),
    }
    print(write_report(result, a.out))


if __name__ == "__main__":
    main()
