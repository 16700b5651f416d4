"""The training pipeline as a library: labels -> splits -> fit -> held-out evaluation ->
model directory (``model.pt``, ``model_card.json``, optional attribution PNGs).

Two entry points share one code path: :func:`run` reads a survey file (``python -m
mlcore.train`` is its command-line wrapper), and :func:`fit_evaluate_write` takes arrays,
which is how the platform trains from its cutout stores and database labels. Errors are
:class:`mlcore.errors.MlcoreError`; progress goes to this module's logger and to
:mod:`mlcore.cnn.training`'s.

Labels: ``truth`` uses the simulator's ``truth_real``; a file (``.npz`` with arrays, or
``.csv`` with a header) gives aggregated volunteer labels: ``detectid``, ``p_real`` (soft
target in [0, 1]) and optionally ``weight`` (confidence). Rows without a label are not used.
The held-out test set is evaluated against truth when the file has it, else against the
labels.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mlcore.cnn import self_training
from mlcore.cnn.artefacts import KindTargets
from mlcore.cnn.self_training import SelfTrainConfig, Unlabelled
from mlcore.cnn.training import TrainConfig
from mlcore.errors import DataError, LabelsError
from mlcore.survey import SN_LOW_MAX, stack_cutouts

logger = logging.getLogger(__name__)

# 1D window of +-100 px (+-200 A) around the line: measured to help (docs/science.md)
SPEC_HALF_WIDTH = 100


@dataclass
class PipelineConfig:
    """What :func:`run` trains from and where it writes; ``train`` holds the optimisation
    settings (epochs, seed, validation share, device, ensemble members, ...)."""

    data: str  # survey file (FITS or HDF5)
    out: str  # model directory to write
    labels: str = "truth"  # 'truth' or a .npz / .csv label file
    max_train: int | None = None  # cap on training labels (learning curves)
    test_frac: float = 0.2
    external: str | None = None  # DESI-like catalogue to cross-match on the test set
    spec1d: bool = True  # add the 1D-spectrum branch
    width: int = 12  # channels of the first convolution
    threads: int | None = None  # torch CPU threads
    attributions: int = 0  # integrated-gradient PNGs for this many test candidates
    eval_data: tuple[str, ...] = ()  # other survey files (e.g. other fields) to evaluate on
    init: str | None = None  # model directory to fine-tune from (e.g. a pretrained encoder)
    train: TrainConfig = field(default_factory=TrainConfig)
    # fit, pseudo-label the file's rows outside every split, fit again (None: one fit)
    self_training: SelfTrainConfig | None = None


@dataclass
class LabelledArrays:
    """The M rows a model is fitted and judged on."""

    cutouts: np.ndarray  # (M, 5, 9, 100) raw: the summed cutout, then the 4 fibres
    targets: np.ndarray  # (M,) soft targets in [0, 1]; NaN where unlabelled
    sn: np.ndarray  # (M,)
    cols: dict[str, np.ndarray]  # catalogue columns of those rows: detectid, sn, field, ...
    spec: np.ndarray | None = None  # (M, 2, 2 * SPEC_HALF_WIDTH) 1D windows, or None
    weights: np.ndarray | None = None  # (M,) label confidence
    y_test: np.ndarray | None = None  # answers for the test split (default: targets >= 0.5)
    # artefact-type answers joined to these rows by detectid (artefacts.join_kind_targets):
    # the model gets an artefact-type head over kinds.kinds; None: no head
    kinds: KindTargets | None = None
    # candidates nobody labelled, outside every split: self-training's pool (FitPlan)
    unlabelled: Unlabelled | None = None


@dataclass
class FitPlan:
    """How to fit, and what the model card says about where the labels came from."""

    splits: tuple[np.ndarray, np.ndarray, np.ndarray]  # row indices: train, val, test
    label_source: str
    data_hash: str
    train: TrainConfig = field(default_factory=TrainConfig)
    width: int = 12
    external: dict | None = None  # ra, dec, z arrays of an external catalogue
    attributions: int = 0
    extra: dict | None = None  # more provenance for the card
    init: object | None = None  # a LineCNN / EnsembleCNN to fine-tune from (None: fresh)
    # fit, pseudo-label LabelledArrays.unlabelled, fit again (mlcore.cnn.self_training)
    self_training: SelfTrainConfig | None = None


def load_labels(spec: str, detectid: np.ndarray, truth_real: np.ndarray | None):
    """-> (targets (N,) float32 with NaN where unlabelled, weights (N,) or None, source)."""
    if spec == "truth":
        if truth_real is None:
            raise LabelsError("labels 'truth': this survey file has no truth_real column")
        return truth_real.astype(np.float32), None, "truth"
    path = Path(spec)
    if not path.exists():
        raise LabelsError(f"labels {spec}: no such file (use 'truth' or a .npz/.csv file)")
    if path.suffix == ".npz":
        data = dict(np.load(path))
    else:
        rec = np.genfromtxt(path, delimiter=",", names=True, dtype=None, encoding="utf-8")
        data = {k: np.atleast_1d(rec[k]) for k in rec.dtype.names}
    if "detectid" not in data or "p_real" not in data:
        raise LabelsError(f"labels {spec}: needs columns detectid and p_real (and opt. weight)")
    pos = {int(d): i for i, d in enumerate(detectid)}
    rows = np.array([pos.get(int(d), -1) for d in data["detectid"]])
    if (rows < 0).any():
        logger.warning("%d labelled detectids are not in the survey file", (rows < 0).sum())
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
    from mlcore.cnn.training import normalise_rows, predict_logits

    x = normalise_rows(cut, np.arange(len(cut)))
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
        raise DataError(f"{path}: no truth columns to evaluate against")
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


def _init_provenance(init: str | None) -> dict:
    """What the card says about the weights training started from (nothing when fresh)."""
    if not init:
        return {}
    from mlcore.cnn.card import CARD_NAME, read_card

    if not (Path(init) / CARD_NAME).exists():
        raise DataError(f"--init {init}: not a model directory (no {CARD_NAME})")
    c = read_card(init)
    return {
        "init": {
            "path": str(init),
            "kind": c.get("kind", "classifier"),
            "approach": c.get("approach"),
            "weights_sha256": c.get("weights_sha256"),
            "data_hash": c.get("data_hash"),
        }
    }


def _load_init(init: str | None, width: int, spec_len: int):
    """The model to fine-tune from, checked against this training's architecture."""
    if not init:
        return None
    from mlcore.cnn.card import load_checkpoint

    model = load_checkpoint(init)
    got = (model.config.width, model.config.spec_len)
    if got != (width, spec_len):
        raise DataError(
            f"--init {init}: its architecture (width {got[0]}, 1D window {got[1]}) differs "
            f"from this training's (width {width}, 1D window {spec_len}): pass the same "
            "--width and --no-spec1d as the encoder was built with"
        )
    return model


def run(config: PipelineConfig) -> dict:
    """Train and evaluate from a survey file and write the model directory; returns the card.
    Everything ``python -m mlcore.train`` does."""
    import torch

    from mlcore.cnn.card import hash_file, load_checkpoint
    from mlcore.cnn.data import spec_windows
    from mlcore.survey_io import open_survey, read_external

    c, tcfg = config, config.train
    if c.threads:
        torch.set_num_threads(c.threads)
    t_start = time.perf_counter()
    with open_survey(c.data) as reader:
        cols = reader.columns
        detectid = np.asarray(cols["detectid"])
        sn = np.asarray(cols["sn"], np.float32)
        truth_real = np.asarray(cols["truth_real"], bool) if "truth_real" in cols else None
        targets, weights, label_source = load_labels(c.labels, detectid, truth_real)
        tr, va, te = make_splits(
            targets, sn, test_frac=c.test_frac, val_frac=tcfg.val_frac, max_train=c.max_train,
            seed=tcfg.seed,
        )  # fmt: skip
        rows = np.sort(np.concatenate([tr, va, te]))
        names = ("im_sum", "im_array") + (("spec1d", "spec1d_err") if c.spec1d else ())
        logger.info(
            "%s: %d rows, %d train / %d val / %d test", c.data, reader.n, len(tr), len(va), len(te)
        )
        arr = read_rows(reader, rows, names)
        unlabelled = None
        if c.self_training is not None:  # their labels, if any, are never read
            unlabelled = _unlabelled_rows(reader, rows, names, sn, cols, c.self_training)
    cut = stack_cutouts(arr.pop("im_sum"), arr.pop("im_array"))  # (M, 5, 9, 100)
    l_tr, l_va, l_te = (np.searchsorted(rows, r) for r in (tr, va, te))  # into rows read
    spec = None
    if c.spec1d:
        wave = np.asarray(cols["wave"])[rows]
        spec = spec_windows(arr.pop("spec1d"), arr.pop("spec1d_err"), wave, SPEC_HALF_WIDTH)
    data = LabelledArrays(
        cutouts=cut,
        targets=targets[rows],
        sn=sn[rows],
        cols={k: np.asarray(v)[rows] for k, v in cols.items()},
        spec=spec,
        weights=None if weights is None else weights[rows],
        y_test=truth_real[rows][l_te] if truth_real is not None else None,
        unlabelled=unlabelled,
    )
    plan = FitPlan(
        splits=(l_tr, l_va, l_te),
        label_source=label_source,
        data_hash=hash_file(c.data),
        train=tcfg,
        width=c.width,
        external=read_external(c.external) if c.external else None,
        attributions=c.attributions,
        extra={"data_file": str(c.data), **_init_provenance(c.init)},
        init=_load_init(c.init, c.width, SPEC_HALF_WIDTH * 2 if c.spec1d else 0),
        self_training=c.self_training,
    )
    card = fit_evaluate_write(data, plan, c.out)
    for extra_file in c.eval_data:
        logger.info("evaluating on %s", extra_file)
        card["metrics"].setdefault("other_files", {})[str(extra_file)] = evaluate_file(
            load_checkpoint(c.out), extra_file, external=None
        )
        write_card(c.out, card)
    card["wall_time_s"] = round(time.perf_counter() - t_start, 2)
    write_card(c.out, card)
    return card


def _unlabelled_rows(reader, rows, names, sn, cols, cfg: SelfTrainConfig) -> Unlabelled:
    """The file's rows outside every split (up to ``cfg.max_pool``, a seeded sample)."""
    from mlcore.cnn.data import spec_windows

    rest = np.setdiff1d(np.arange(reader.n), rows)
    if len(rest) > cfg.max_pool:
        rest = np.sort(np.random.default_rng(cfg.seed).choice(rest, cfg.max_pool, replace=False))
    logger.info("self-training: reading %d rows outside the splits", len(rest))
    arr = read_rows(reader, rest, names)
    spec = None
    if "spec1d" in arr:
        wave = np.asarray(cols["wave"])[rest]
        spec = spec_windows(arr.pop("spec1d"), arr.pop("spec1d_err"), wave, SPEC_HALF_WIDTH)
    cut = stack_cutouts(arr.pop("im_sum"), arr.pop("im_array"))
    return Unlabelled(cutouts=cut, sn=sn[rest], spec=spec)


def fit_evaluate_write(
    data: LabelledArrays,
    plan: FitPlan,
    out: str | Path,
    *,
    on_epoch: Callable[[dict, int], None] | None = None,
) -> dict:
    """Train on ``plan.splits[0]``, early-stop on ``[1]``, evaluate on ``[2]``, and write
    ``out/model.pt`` + ``out/model_card.json``. Returns the card.

    Array-based, so the CLI (a survey file) and the platform (the cutout store + database
    labels) share it.
    """
    from mlcore.cnn.attribution import attribute, save_attribution_png
    from mlcore.cnn.card import build_card, hash_arrays, read_card, write_model_dir
    from mlcore.cnn.evaluation import sigmoid
    from mlcore.cnn.model import CNNConfig
    from mlcore.cnn.training import train

    cut, targets, sn, cols, spec = data.cutouts, data.targets, data.sn, data.cols, data.spec
    l_tr, l_va, l_te = plan.splits
    tcfg = plan.train
    kt = data.kinds
    mcfg = CNNConfig(
        width=plan.width,
        spec_len=0 if spec is None else spec.shape[-1],
        artefact_kinds=kt.kinds if kt is not None else (),
    )
    first_epochs = on_epoch
    if plan.self_training is not None and on_epoch is not None:  # progress over both fits

        def first_epochs(rec: dict, n: int) -> None:
            on_epoch(rec, 2 * n)

    res = train(
        cut,
        targets,
        sn,
        weights=data.weights,
        spec=spec,
        train_idx=l_tr,
        val_idx=l_va,
        model_config=mcfg,
        config=tcfg,
        on_epoch=first_epochs,
        init=plan.init,
        kind_targets=None if kt is None else kt.index,
        kind_weights=None if kt is None else kt.weight,
    )
    y_te = np.asarray(data.y_test if data.y_test is not None else targets[l_te] >= 0.5)
    self_info = None
    if plan.self_training is not None:
        res, self_info = _self_train(data, plan, mcfg, res, y_te, on_epoch)
    model = res.model
    # held-out evaluation (deterministic forward pass; MC scoring is for acquisition)
    metrics, logits = evaluate_rows(
        model,
        cut[l_te],
        None if spec is None else spec[l_te],
        {k: np.asarray(v)[l_te] for k, v in cols.items()},
        y_te,
        plan.external,
    )
    metrics["evaluated_against"] = "truth" if data.y_test is not None else plan.label_source
    if res.kind_eval is not None:
        # the head is judged on validation rows with an answer, against the answers: early
        # stopping looks at the real/not-real loss only, so they never chose its weights
        metrics["artefact_type"] = {
            **res.kind_eval,
            "evaluated_on": "validation rows with a level-3 answer, against the answers",
            "n_answers_joined": kt.n_matched,
            "n_answers_not_in_rows": len(kt.unmatched),
        }
    detectid = np.asarray(cols["detectid"])
    card = build_card(
        model=model,
        data_hash=plan.data_hash,
        label_source=plan.label_source,
        seed=tcfg.seed,
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
            **({"self_training": self_info} if self_info is not None else {}),
            **(plan.extra or {}),
        },
    )
    w_path, c_path = write_model_dir(out, model, card)
    card = read_card(out)  # as written: with the weights' file name and hash
    logger.info("wrote %s and %s", w_path, c_path)
    if plan.attributions:
        p_te = sigmoid(logits / res.temperature)
        # the most confident mistakes first: they show what fools the model
        wrong = np.argsort(-np.abs(p_te - y_te))[: plan.attributions]
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


def _self_train(data: LabelledArrays, plan: FitPlan, mcfg, first, y_te, on_epoch):
    """The second fit of self-training -> (its TrainResult, the card's summary). The first
    fit's held-out figures go in the summary, so the card shows what the pseudo-labels
    added on the same test rows."""
    from mlcore.cnn.training import train

    unl = data.unlabelled
    if unl is None or len(unl.sn) == 0:
        return first, {**plan.self_training.to_dict(), "skipped": "no unlabelled candidates"}
    l_tr, l_va, l_te = plan.splits
    spec = data.spec
    m1, _ = evaluate_rows(
        first.model, data.cutouts[l_te], None if spec is None else spec[l_te],
        {k: np.asarray(v)[l_te] for k, v in data.cols.items()}, y_te,
    )  # fmt: skip
    rows, labels, info = self_training.pick(first.model, unl, plan.self_training)
    info["first_fit"] = {
        "balanced_accuracy": {
            reg: r.get("balanced_accuracy") for reg, r in m1.get("regimes", {}).items()
        },
        "best_epoch": first.best_epoch,
        "training_time_s": round(first.train_time_s, 2),
    }
    if len(rows) == 0:
        info["skipped"] = "no confident answers to add"
        return first, info
    kt = data.kinds
    ext = self_training.extend(
        cutouts=data.cutouts, targets=data.targets, sn=data.sn, spec=spec, weights=data.weights,
        kind_index=None if kt is None else kt.index, kind_weight=None if kt is None else kt.weight,
        unl=unl, rows=rows, labels=labels, weight=plan.self_training.weight,
    )  # fmt: skip
    logger.info("self-training: %d pseudo-labels from %d unlabelled candidates; fitting again",
                len(rows), info["n_scored"])  # fmt: skip

    def second_epochs(rec: dict, n: int) -> None:
        if on_epoch is not None:
            on_epoch({**rec, "epoch": n + rec["epoch"]}, 2 * n)

    second = train(
        ext["cutouts"], ext["targets"], ext["sn"], weights=ext["weights"], spec=ext["spec"],
        train_idx=np.concatenate([l_tr, ext["pseudo_rows"]]), val_idx=l_va, model_config=mcfg,
        config=plan.train, on_epoch=second_epochs, init=plan.init, kind_targets=ext["kind_index"],
        kind_weights=ext["kind_weight"],
    )  # fmt: skip
    second.train_time_s += first.train_time_s  # the card's training time: both fits
    return second, info


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
