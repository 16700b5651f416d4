"""Train the line CNN from a survey file, evaluate it on a held-out split, write a model dir.

    python -m mlcore.train --data survey.fits --out models/v1 [--epochs 30] [--seed 0]
        [--labels truth | labels.npz | labels.csv] [--max-train N] [--external desi.fits]

Writes ``model.pt``, ``model_card.json`` (provenance + held-out metrics per S/N regime,
field, contaminant type, calibration, external-LAE recovery) and, with ``--attributions K``,
integrated-gradient PNGs of K test candidates. Django-free: the retrain task calls
:func:`run` with the same arguments.

Labels: ``truth`` uses the simulator's ``truth_real``; a file (``.npz`` with arrays, or
``.csv`` with a header) gives aggregated volunteer labels: ``detectid``, ``p_real`` (soft
target in [0, 1]) and optionally ``weight`` (confidence). Rows without a label are not used.
The held-out test set is evaluated against truth when the file has it, else against the
labels.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from mlcore.survey import SN_LOW_MAX, stack_cutouts

# 1D window of +-100 px (+-200 A) around the line: measured to help (see bench/)
SPEC_HALF_WIDTH = 100


def load_labels(spec: str, detectid: np.ndarray, truth_real: np.ndarray | None):
    """-> (targets (N,) float32 with NaN where unlabelled, weights (N,) or None, source)."""
    if spec == "truth":
        if truth_real is None:
            raise SystemExit("--labels truth: this survey file has no truth_real column")
        return truth_real.astype(np.float32), None, "truth"
    path = Path(spec)
    if not path.exists():
        raise SystemExit(f"--labels {spec}: no such file (use 'truth' or a .npz/.csv file)")
    if path.suffix == ".npz":
        data = dict(np.load(path))
    else:
        rec = np.genfromtxt(path, delimiter=",", names=True, dtype=None, encoding="utf-8")
        data = {k: np.atleast_1d(rec[k]) for k in rec.dtype.names}
    if "detectid" not in data or "p_real" not in data:
        raise SystemExit(f"--labels {spec}: needs columns detectid and p_real (and opt. weight)")
    pos = {int(d): i for i, d in enumerate(detectid)}
    rows = np.array([pos.get(int(d), -1) for d in data["detectid"]])
    if (rows < 0).any():
        print(f"warning: {(rows < 0).sum()} labelled detectids not in the survey file")
    ok = rows >= 0
    targets = np.full(len(detectid), np.nan, np.float32)
    targets[rows[ok]] = np.clip(np.asarray(data["p_real"], np.float32)[ok], 0, 1)
    weights = None
    if "weight" in data:
        weights = np.zeros(len(detectid), np.float32)
        weights[rows[ok]] = np.asarray(data["weight"], np.float32)[ok]
    return targets, weights, f"volunteer:{path.name}"


def make_splits(
    targets: np.ndarray,
    sn: np.ndarray,
    *,
    test_frac: float,
    val_frac: float,
    max_train: int | None,
    seed: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Labelled rows -> (train, val, test) row indices, stratified by regime and class.

    The test set is fixed by (seed, test_frac) whatever ``max_train`` is, so learning-curve
    points share one test set. ``val_frac`` is the validation share of the labels used for
    training (validation grows with the training set, as it would with real labels).
    """
    from mlcore.cnn.data import regime_index, stratified_split

    lab = np.flatnonzero(np.isfinite(targets))
    strata = regime_index(sn[lab]) * 2 + (targets[lab] >= 0.5)
    test, rest = stratified_split(strata, (test_frac,), seed)
    test, rest = lab[test], lab[rest]
    rs = regime_index(sn[rest]) * 2 + (targets[rest] >= 0.5)
    if max_train is not None and max_train / (1 - val_frac) < len(rest):
        keep_frac = max_train / (1 - val_frac) / len(rest)
        keep, _ = stratified_split(rs, (keep_frac,), seed + 1)
        rest, rs = rest[keep], rs[keep]
    val, train = stratified_split(rs, (val_frac,), seed + 2)
    return np.sort(rest[train]), np.sort(rest[val]), np.sort(test)


def read_rows(reader, rows: np.ndarray, names: tuple[str, ...], chunk: int = 4096) -> dict:
    """Rows (sorted) of the named arrays, read chunk by chunk (memory ~ the rows kept)."""
    out: dict[str, list] = {k: [] for k in names}
    for a in range(0, reader.n, chunk):
        b = min(a + chunk, reader.n)
        sel = rows[(rows >= a) & (rows < b)] - a
        if len(sel) == 0:
            continue
        for k in names:
            out[k].append(np.asarray(reader.read(k, a, b))[sel].astype(np.float32))
    return {k: np.concatenate(v) if v else np.zeros((0,)) for k, v in out.items()}


def evaluate_rows(model, cut, spec, cols: dict, y: np.ndarray, external: dict | None = None):
    """Held-out report for raw cutouts ``cut`` (M, 5, 9, 100) with their catalogue ``cols``.

    -> (metrics, uncalibrated logits). Deterministic forward pass; probabilities use the
    model's fitted temperature. ``external`` (ra, dec, z arrays) adds LAE recovery.
    """
    import torch

    from mlcore.cnn.evaluation import crossmatch_external, evaluate, sigmoid
    from mlcore.cnn.training import _normalise_rows, predict_logits

    x = _normalise_rows(cut, np.arange(len(cut)))
    logits = predict_logits(model, x, None if spec is None else torch.as_tensor(spec))
    temperature = float(model.temperature)
    sn = np.asarray(cols["sn"], np.float32)
    metrics = evaluate(
        y, logits, sn, temperature=temperature, field=cols.get("field"),
        truth_type=cols.get("truth_type"), prior_shift=model.prior_shift.tolist(),
    )  # fmt: skip
    metrics["n_test"] = int(len(y))
    if external is not None:
        metrics["external"] = crossmatch_external(
            cols["ra"], cols["dec"], cols["wave"], sn, sigmoid(logits / temperature),
            external["ra"], external["dec"], external["z"],
        )  # fmt: skip
    return metrics, logits


def evaluate_file(model, path: str, external: str | None = None) -> dict:
    """Evaluate a trained model on every row of another survey file (e.g. another field).

    Needs truth columns. Reads the file whole: meant for test files of modest size.
    """
    from mlcore.cnn.data import spec_windows
    from mlcore.survey_io import read_external, read_survey

    s = read_survey(path)
    if s.truth is None:
        raise SystemExit(f"{path}: no truth columns to evaluate against")
    spec = None
    if model.config.spec_len > 0:
        half = model.config.spec_len // 2
        spec = spec_windows(s.spec1d, s.spec1d_err, s.catalog["wave"], half)
    cols = {**s.catalog, **s.truth}
    ext = read_external(external) if external else None
    metrics, _ = evaluate_rows(
        model, stack_cutouts(s.im_sum, s.im_array), spec, cols, s.truth["truth_real"], ext
    )
    return metrics


def run(
    data: str,
    out: str,
    *,
    epochs: int = 30,
    seed: int = 0,
    labels: str = "truth",
    max_train: int | None = None,
    test_frac: float = 0.2,
    val_frac: float = 0.15,
    external: str | None = None,
    spec1d: bool = True,
    batch_size: int = 256,
    lr: float = 3e-3,
    width: int = 12,
    device: str | None = None,
    threads: int | None = None,
    max_time_s: float | None = None,
    members: int = 1,
    attributions: int = 0,
    eval_data: list[str] | None = None,
    log=print,
) -> dict:
    """Everything the CLI does; returns the model card."""
    import torch

    from mlcore.cnn.card import hash_file, load_checkpoint
    from mlcore.cnn.data import spec_windows
    from mlcore.cnn.training import TrainConfig
    from mlcore.survey_io import open_survey, read_external

    if threads:
        torch.set_num_threads(threads)
    t_start = time.perf_counter()
    with open_survey(data) as reader:
        cols = reader.columns
        detectid = np.asarray(cols["detectid"])
        sn = np.asarray(cols["sn"], np.float32)
        truth_real = np.asarray(cols["truth_real"], bool) if "truth_real" in cols else None
        targets, weights, label_source = load_labels(labels, detectid, truth_real)
        tr, va, te = make_splits(
            targets, sn, test_frac=test_frac, val_frac=val_frac, max_train=max_train, seed=seed
        )
        rows = np.sort(np.concatenate([tr, va, te]))
        names = ("im_sum", "im_array") + (("spec1d", "spec1d_err") if spec1d else ())
        log(f"{data}: {reader.n} rows, {len(tr)} train / {len(va)} val / {len(te)} test")
        arr = read_rows(reader, rows, names)
    cut = stack_cutouts(arr.pop("im_sum"), arr.pop("im_array"))  # (M, 5, 9, 100)
    l_tr, l_va, l_te = (np.searchsorted(rows, r) for r in (tr, va, te))  # into rows read
    spec = None
    if spec1d:
        wave = np.asarray(cols["wave"])[rows]
        spec = spec_windows(arr.pop("spec1d"), arr.pop("spec1d_err"), wave, SPEC_HALF_WIDTH)
    y_te = truth_real[rows][l_te] if truth_real is not None else None
    card = fit_evaluate_write(
        cut,
        targets[rows],
        sn[rows],
        {k: np.asarray(v)[rows] for k, v in cols.items()},
        splits=(l_tr, l_va, l_te),
        out=out,
        spec=spec,
        weights=None if weights is None else weights[rows],
        y_test=y_te,
        label_source=label_source,
        data_hash=hash_file(data),
        seed=seed,
        train_config=TrainConfig(
            epochs=epochs,
            seed=seed,
            val_frac=val_frac,
            batch_size=batch_size,
            lr=lr,
            device=device,
            max_time_s=max_time_s,
            members=members,
        ),  # fmt: skip
        width=width,
        external=read_external(external) if external else None,
        attributions=attributions,
        extra={"data_file": str(data)},
        log=log,
    )
    for extra_file in eval_data or ():
        log(f"evaluating on {extra_file}")
        card["metrics"].setdefault("other_files", {})[str(extra_file)] = evaluate_file(
            load_checkpoint(out), extra_file, external=None
        )
        write_card(out, card)
    card["wall_time_s"] = round(time.perf_counter() - t_start, 2)
    write_card(out, card)
    return card


def fit_evaluate_write(
    cut,
    targets: np.ndarray,
    sn: np.ndarray,
    cols: dict[str, np.ndarray],
    *,
    splits: tuple[np.ndarray, np.ndarray, np.ndarray],
    out: str | Path,
    spec: np.ndarray | None = None,
    weights: np.ndarray | None = None,
    y_test: np.ndarray | None = None,
    label_source: str,
    data_hash: str,
    seed: int = 0,
    train_config=None,
    width: int = 12,
    external: dict | None = None,
    attributions: int = 0,
    extra: dict | None = None,
    log=print,
    on_epoch=None,
) -> dict:
    """Train on ``splits[0]``, early-stop on ``splits[1]``, evaluate on ``splits[2]``, and
    write ``out/model.pt`` + ``out/model_card.json``. Returns the card.

    Array-based, so the CLI (a survey file) and the platform (the cutout store + database
    labels) share it. ``cut`` (M, 5, 9, 100) raw; ``cols`` the catalogue columns of those M
    rows (``sn``, ``detectid`` and, when present, ``field``, ``truth_type``, ``ra``, ``dec``,
    ``wave``); ``y_test`` the labels to evaluate against (default: targets >= 0.5).
    """
    from mlcore.cnn.attribution import attribute, save_attribution_png
    from mlcore.cnn.card import build_card, hash_arrays, read_card, write_model_dir
    from mlcore.cnn.evaluation import sigmoid
    from mlcore.cnn.model import CNNConfig
    from mlcore.cnn.training import TrainConfig, train

    l_tr, l_va, l_te = splits
    tcfg = train_config or TrainConfig(seed=seed)
    mcfg = CNNConfig(width=width, spec_len=0 if spec is None else spec.shape[-1])
    res = train(
        cut,
        targets,
        sn,
        weights=weights,
        spec=spec,
        train_idx=l_tr,
        val_idx=l_va,
        model_config=mcfg,
        config=tcfg,
        log=log,
        on_epoch=on_epoch,
    )
    model = res.model
    # held-out evaluation (deterministic forward pass; MC scoring is for acquisition)
    y_te = np.asarray(y_test if y_test is not None else targets[l_te] >= 0.5)
    metrics, logits = evaluate_rows(
        model,
        cut[l_te],
        None if spec is None else spec[l_te],
        {k: np.asarray(v)[l_te] for k, v in cols.items()},
        y_te,
        external,
    )
    metrics["evaluated_against"] = "truth" if y_test is not None else label_source
    detectid = np.asarray(cols["detectid"])
    card = build_card(
        model=model,
        data_hash=data_hash,
        label_source=label_source,
        seed=seed,
        training_time_s=res.train_time_s,
        train_config=tcfg.to_dict(),
        n_train=len(l_tr),
        n_val=len(l_va),
        metrics=metrics,
        extra={
            "labels_hash": hash_arrays(detectid, np.asarray(targets)),
            "best_epoch": res.best_epoch,
            "kept_epoch": res.kept_epoch,
            "history": res.history,
            "device": res.device,
            **({"member_runs": res.members} if res.members else {}),
            **(extra or {}),
        },
    )
    w_path, c_path = write_model_dir(out, model, card)
    card = read_card(out)  # as written: with the weights' file name and hash
    log(f"wrote {w_path} and {c_path}")
    if attributions:
        p_te = sigmoid(logits / res.temperature)
        # the most confident mistakes first: they show what fools the model
        wrong = np.argsort(-np.abs(p_te - y_te))[:attributions]
        s_wrong = None if spec is None else spec[l_te[wrong]]
        att = attribute(model, cut[l_te[wrong]], spec=s_wrong)
        for k, j in enumerate(wrong):
            i = l_te[j]
            title = f"detectid {detectid[i]} sn {sn[i]:.2f} p {p_te[j]:.2f} y {y_te[j]}"
            if "truth_type" in cols:
                title += f" {cols['truth_type'][i]}"
            save_attribution_png(
                Path(out) / "attributions" / f"{detectid[i]}.png",
                att["x"][k], att["attr"][k], title,
            )  # fmt: skip
    return card


def write_card(out: str | Path, card: dict) -> None:
    from mlcore.cnn.card import CARD_NAME

    (Path(out) / CARD_NAME).write_text(json.dumps(card, indent=2, sort_keys=True))


def summarise(card: dict) -> str:
    lines = []
    for reg in ("high", "low", "overall"):
        m = card["metrics"]["regimes"][reg]
        lines.append(
            f"{reg:8s} n={m['n']:6d} bacc={_pct(m['balanced_accuracy'])} "
            f"prec={_pct(m['precision'])} rec={_pct(m['recall'])} auc={_pct(m['roc_auc'])}"
        )
    cal = card["metrics"]["calibration"]
    prior = ""
    if cal.get("ece_prior_corrected") is not None:
        sh = cal["prior_shift"]
        prior = (
            f" -> {cal['ece_prior_corrected']:.4f} with the prior shift "
            f"(low {sh['low']:+.2f}, high {sh['high']:+.2f})"
        )
    lines.append(
        f"ECE {cal['ece_uncalibrated']:.4f} -> {cal['ece_calibrated']:.4f} "
        f"(T={cal['temperature']:.3f}){prior}; {card['n_parameters']} params; "
        f"train {card['training_time_s']:.0f}s; high = sn > {SN_LOW_MAX}"
    )
    return "\n".join(lines)


def _pct(v) -> str:
    return " n/a " if v is None else f"{100 * v:5.1f}"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m mlcore.train", description=__doc__.split("\n")[0])
    ap.add_argument("--data", required=True, help="survey file (FITS or HDF5)")
    ap.add_argument("--out", required=True, help="output directory for model.pt + card")
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--labels", default="truth", help="'truth' or a .npz/.csv label file")
    ap.add_argument("--max-train", type=int, default=None, help="cap on training labels")
    ap.add_argument("--test-frac", type=float, default=0.2)
    ap.add_argument("--val-frac", type=float, default=0.15)
    ap.add_argument("--external", default=None, help="DESI-like catalogue to cross-match")
    ap.add_argument(
        "--no-spec1d", action="store_true", help="images only (default adds the 1D branch)"
    )
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--width", type=int, default=12, help="channels of the first conv")
    ap.add_argument("--device", default=None, help="cuda / cpu (default: cuda if available)")
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    ap.add_argument("--max-time-s", type=float, default=None)
    ap.add_argument("--members", type=int, default=1, help="a deep ensemble of K CNNs")
    ap.add_argument("--attributions", type=int, default=0, help="PNGs for K test candidates")
    ap.add_argument(
        "--eval-data",
        nargs="*",
        default=None,
        help="other survey files (e.g. other fields) to evaluate on",
    )
    a = ap.parse_args(argv)
    card = run(
        a.data, a.out, epochs=a.epochs, seed=a.seed, labels=a.labels, max_train=a.max_train,
        test_frac=a.test_frac, val_frac=a.val_frac, external=a.external, spec1d=not a.no_spec1d,
        batch_size=a.batch_size, lr=a.lr, width=a.width, device=a.device, threads=a.threads,
        max_time_s=a.max_time_s, members=a.members, attributions=a.attributions,
        eval_data=a.eval_data,
    )  # fmt: skip
    print(summarise(card))
    print(json.dumps({"out": a.out, "n_parameters": card["n_parameters"]}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
