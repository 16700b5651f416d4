"""Train a CNN model version from the database's labels and the cutout stores.

Labels come from the simulator's truth (``truth``) or from the latest aggregation run
(``consensus``: the posterior as a soft target; gold standards and expert answers as hard
ones). Pixels come from the cutout stores. The fitting, evaluation and card are
:func:`mlcore.cnn.pipeline.fit_evaluate_write`, the same code the Django-free CLI runs. The model
directory is written under a temporary name and renamed into place before its
:class:`ModelVersion` row exists, so a crash never leaves a half-written version behind.

Level-3 volunteers' artefact-type answers (``selectors.artefacts.artefact_targets``) are
joined to the training rows by detectid; with at least ``settings.ARTEFACT_MIN_ANSWERS`` of
them on the training and validation rows the model gets an artefact-type head trained on
them (:mod:`mlcore.cnn.artefacts`), and its card says how well it names them.
"""

from __future__ import annotations

import hashlib
import logging
import shutil
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from django.conf import settings
from django.db import transaction
from django.db.models import F

from labelapp.errors import InvalidInput
from labelapp.models import (
    AggregationRun,
    ArtefactAnswer,
    Candidate,
    CandidateTruth,
    ConsensusState,
    GoldStandard,
    IngestBatch,
    Label,
    ModelVersion,
    Round,
)
from labelapp.selectors.artefacts import artefact_targets
from labelapp.selectors.models import live_model
from labelapp.services.learning.acquisition_settings import self_training_setting
from labelapp.services.learning.encoders import (
    CAMPAIGN,
    CHOSEN_BY,
    EncoderError,
    encoder_summary,
    resolve_start,
    usable_encoder,
)
from labelapp.services.learning.holdout import holdout_ids, holdout_labels
from labelapp.services.survey.rendering import open_store
from mlcore.cnn.artefacts import KindTargets, join_kind_targets
from mlcore.cnn.data import spec_windows
from mlcore.cnn.pipeline import (
    SPEC_HALF_WIDTH,
    FitPlan,
    LabelledArrays,
    fit_evaluate_write,
    make_splits,
)
from mlcore.cnn.self_training import SelfTrainConfig, Unlabelled
from mlcore.cnn.training import TrainConfig
from mlcore.cutout_quality import NO_CUTOUT

logger = logging.getLogger(__name__)

LABEL_SOURCES = ("truth", "consensus")
MIN_LABELS = 50


class TrainingError(InvalidInput):
    pass


@dataclass
class TrainingSet:
    candidate_id: np.ndarray
    targets: np.ndarray  # (N,) in [0, 1]
    y_truth: np.ndarray | None  # ground truth when every row has it (simulated surveys)
    cols: dict[str, np.ndarray]  # detectid, sn, field, ra, dec, wave, truth_type?
    cutouts: np.ndarray  # (N, 5, 9, 100) float16/32, as stored
    spec: np.ndarray  # (N, 2, 1036)
    data_hash: str
    holdout: np.ndarray  # (N,) bool: the held-out expert sample (test only, never trained on)


def consensus_targets() -> dict[int, float]:
    run = AggregationRun.objects.filter(status=AggregationRun.Status.DONE, n_votes__gt=0).first()
    if run is None:
        raise TrainingError(
            "no finished aggregation run yet: run `manage.py aggregate_votes` "
            "(or wait for the scheduled one) before training on consensus"
        )
    # Only labels the crowd has settled: a candidate with one or two votes carries one
    # volunteer's noise, and training on every voted candidate made each new model worse as
    # the catalogue filled with such labels (bench/RESULTS.md, "In-silico campaign").
    targets = dict(
        Label.objects.filter(
            run=run,
            n_votes__gte=settings.RETIRE_MIN_VOTES,
            confidence__gte=settings.TRAIN_MIN_CONFIDENCE,
        ).values_list("candidate_id", "posterior")
    )
    # Hard labels override the crowd: experts, then gold standards.
    targets.update(
        {
            cid: float(label)
            for cid, label in ConsensusState.objects.filter(expert_label__isnull=False).values_list(
                "candidate_id", "expert_label"
            )
        }
    )
    targets.update(
        {
            cid: float(real)
            for cid, real in GoldStandard.objects.filter(active=True).values_list(
                "candidate_id", "is_real"
            )
        }
    )
    for cid in holdout_ids():  # the gate's evaluation sample is never trained on
        targets.pop(cid, None)
    return targets


def unlabelled_sample(*, exclude: np.ndarray, n: int, seed: int) -> Unlabelled:
    """Up to ``n`` candidates with cutouts that are none of ``exclude`` (a training set's
    labelled and held-out candidates), a seeded random sample, read from the cutout stores
    batch by batch in store order: self-training's pool. Only ids are read for the whole
    catalogue (a numpy array), the rest for the sample."""
    with_cutout = Candidate.objects.alias(no_cutout=F("cutout_flags").bitand(NO_CUTOUT)).exclude(
        no_cutout=NO_CUTOUT
    )
    ids = np.fromiter(
        with_cutout.order_by("pk").values_list("pk", flat=True).iterator(chunk_size=50_000),
        dtype=np.int64,
    )
    ids = ids[~np.isin(ids, np.asarray(exclude, np.int64))]
    if len(ids) > n:
        ids = np.sort(np.random.default_rng(seed).choice(ids, n, replace=False))
    if len(ids) == 0:
        return Unlabelled(cutouts=np.zeros((0, 5, 9, 100), np.float16), sn=np.zeros(0))
    rows = []
    for a in range(0, len(ids), 10_000):  # bounded IN lists
        rows += Candidate.objects.filter(pk__in=ids[a : a + 10_000].tolist()).values_list(
            "batch_id", "row", "sn", "wave"
        )
    arr = np.asarray(sorted(rows), np.float64)  # store order: memmap-friendly reads
    batch_ids, store_rows = arr[:, 0].astype(np.int64), arr[:, 1].astype(np.int64)
    cut_parts, spec_parts = [], []
    for batch_id in np.unique(batch_ids):
        store = open_store(IngestBatch.objects.get(pk=int(batch_id)).store_path)
        sel = store_rows[batch_ids == batch_id]
        cut_parts.append(np.asarray(store.cutouts[sel]))
        spec_parts.append(np.asarray(store.spec[sel], np.float32))
    sp = np.concatenate(spec_parts)
    logger.info("self-training pool: %d unlabelled candidates", len(arr))
    return Unlabelled(
        cutouts=np.concatenate(cut_parts),
        sn=arr[:, 2].astype(np.float32),
        spec=spec_windows(sp[:, 0], sp[:, 1], arr[:, 3], SPEC_HALF_WIDTH),
    )


def training_set(*, label_source: str) -> TrainingSet:
    if label_source not in LABEL_SOURCES:
        raise TrainingError(f"--labels must be one of {LABEL_SOURCES}, not {label_source!r}")
    held = holdout_labels()  # never trained on: the test set instead
    if label_source == "truth":
        targets = {
            cid: float(r)
            for cid, r in CandidateTruth.objects.values_list("candidate_id", "is_real")
            if cid not in held
        }
    else:
        targets = consensus_targets()  # already without the held-out sample
    if len(targets) < MIN_LABELS:
        raise TrainingError(
            f"only {len(targets)} labelled candidates; need at least "
            f"{MIN_LABELS} to train (ingest more, or collect more votes)"
        )
    fields = ("id", "detectid", "sn", "field", "ra", "dec", "wave", "batch_id", "row")
    rows = list(
        Candidate.objects.filter(pk__in=[*targets, *held])
        # no cutout (a failed extraction): nothing for the CNN to learn from
        .alias(no_cutout=F("cutout_flags").bitand(NO_CUTOUT))
        .exclude(no_cutout=NO_CUTOUT)
        .order_by("batch_id", "row")
        .values_list(*fields)
        .iterator(chunk_size=20000)
    )
    arr = {f: np.asarray([r[i] for r in rows]) for i, f in enumerate(fields)}
    truth = dict(
        CandidateTruth.objects.filter(candidate_id__in=arr["id"].tolist()).values_list(
            "candidate_id", "kind"
        )
    )
    real = dict(
        CandidateTruth.objects.filter(candidate_id__in=arr["id"].tolist()).values_list(
            "candidate_id", "is_real"
        )
    )
    cut_parts, spec_parts, sha = [], [], hashlib.sha256()
    for batch_id in np.unique(arr["batch_id"]):
        batch = IngestBatch.objects.get(pk=int(batch_id))
        store = open_store(batch.store_path)
        sel = arr["row"][arr["batch_id"] == batch_id]
        cut_parts.append(np.asarray(store.cutouts[sel]))
        spec_parts.append(np.asarray(store.spec[sel]))
        sha.update(batch.file_sha256.encode())
    sha.update(arr["detectid"].astype(np.int64).tobytes())
    cols = {k: arr[k] for k in ("detectid", "sn", "field", "ra", "dec", "wave")}
    has_truth = len(truth) == len(arr["id"])
    if has_truth:
        cols["truth_type"] = np.asarray([truth[c] for c in arr["id"].tolist()])
    ids = arr["id"].tolist()
    return TrainingSet(
        candidate_id=arr["id"],
        targets=np.asarray([targets.get(c, held.get(c)) for c in ids], np.float32),
        y_truth=np.asarray([real[c] for c in arr["id"].tolist()]) if has_truth else None,
        cols=cols,
        cutouts=np.concatenate(cut_parts),
        spec=np.concatenate(spec_parts),
        data_hash=sha.hexdigest(),
        holdout=np.isin(arr["id"], list(held)),
    )


def artefact_kind_targets(
    *, detectid: np.ndarray, fit_rows: np.ndarray, min_answers: int | None = None
) -> tuple[KindTargets | None, dict]:
    """The level-3 artefact-type targets joined by detectid to the training set's rows
    ``detectid``, or None when fewer than ``min_answers`` (default
    ``settings.ARTEFACT_MIN_ANSWERS``) land on ``fit_rows`` (training + validation): a head
    is trained only on enough answers. -> (targets or None, what the card records)."""
    min_answers = settings.ARTEFACT_MIN_ANSWERS if min_answers is None else min_answers
    answers = {t.detectid: (t.kind, t.share) for t in artefact_targets()}
    info: dict = {"n_candidates_answered": len(answers), "min_answers": min_answers}
    if not answers:
        return None, {**info, "head": False, "n_on_training_rows": 0}
    kt = join_kind_targets(detectid, answers, tuple(ArtefactAnswer.Kind.values))
    n_fit = int((kt.index[fit_rows] >= 0).sum())
    # answers on candidates outside the labelled set (or on the held-out test rows) train
    # nothing: counted, so the card says how many of the volunteers' answers were used
    info.update(n_on_training_rows=n_fit, n_not_in_training_set=len(kt.unmatched))
    if n_fit < min_answers:
        logger.info(
            "artefact-type answers on %d training candidates (need %d): no artefact-type head",
            n_fit, min_answers,
        )  # fmt: skip
        return None, {**info, "head": False}
    return kt, {**info, "head": True}


def train_model_version(
    *,
    label_source: str = "truth",
    epochs: int = 12,
    seed: int = 0,
    keep: str = "best",
    members: int | None = None,
    max_train: int | None = None,
    max_time_s: float | None = None,
    on_epoch: Callable[[dict, int], None] | None = None,
    fine_tune: bool = False,
    encoder_id: int | str | None = None,
    start_chosen_by: str = "request",
    self_train: bool | None = None,
) -> ModelVersion:
    """Train, evaluate on held-out labels and register a new (not yet promoted) version.

    The test set is the held-out expert sample when there is one (every other label then
    goes to training and validation), else a random 20% of the labels. ``members`` > 1
    trains a deep ensemble (default ``settings.ENSEMBLE_MEMBERS``). ``fine_tune``: start
    from the live model's weights instead of afresh (its card says which version).
    ``encoder_id``: start from that pretrained encoder's trunks with a fresh head (its card
    says which encoder, and its summary); not with ``fine_tune``. ``encoder_id=CAMPAIGN``
    ("campaign"): where the campaign setting says (``encoders.resolve_start``; the
    ``retrain_model`` task's default). ``start_chosen_by``: "campaign setting" when the
    caller resolved ``encoder_id`` from that setting itself. The card's ``start`` records
    where it started and who chose it. ``self_train``: after the fit, the model labels a
    sample of the unlabelled catalogue (:func:`unlabelled_sample`) with its confident answers
    and a second fit trains on labels and answers (:mod:`mlcore.cnn.self_training`; the card's
    ``self_training`` says what was added and the first fit's held-out figures); None: the
    campaign setting ``self_training``.
    """
    if self_train is None:
        self_train = self_training_setting()
    members = settings.ENSEMBLE_MEMBERS if members is None else members
    if members < 1:
        raise TrainingError(f"an ensemble needs at least 1 member, not {members}")
    if start_chosen_by not in CHOSEN_BY:
        raise TrainingError(f"start_chosen_by must be one of {CHOSEN_BY}, not {start_chosen_by!r}")
    try:
        start = resolve_start(fine_tune=fine_tune, encoder_id=encoder_id)
    except EncoderError as exc:
        raise TrainingError(str(exc)) from exc
    if encoder_id != CAMPAIGN and start_chosen_by != start.chosen_by:
        start = replace(start, chosen_by=start_chosen_by)
    init, extra = None, {}
    if start.fine_tune:
        init, extra = _live_weights(), {"fine_tuned_from": live_model().pk}
    elif start.encoder_id is not None:
        init, extra = _encoder_weights(start.encoder_id, seed=seed, members=members)
    extra["start"] = start.card()
    ts = training_set(label_source=label_source)
    sn = ts.cols["sn"].astype(np.float32)
    if ts.holdout.any():
        rest, te = np.flatnonzero(~ts.holdout), np.flatnonzero(ts.holdout)
        tr, va, _ = make_splits(
            ts.targets[rest], sn[rest], test_frac=0.0, val_frac=0.15, max_train=max_train,
            seed=seed,
        )  # fmt: skip
        tr, va, test_set = rest[tr], rest[va], "held-out expert sample"
        y_test = ts.targets[te] >= 0.5  # the experts' answers
    else:
        tr, va, te = make_splits(
            ts.targets, sn, test_frac=0.2, val_frac=0.15, max_train=max_train, seed=seed
        )
        test_set = "random 20% of the labels"
        y_test = None if ts.y_truth is None else ts.y_truth[te]
    n_labels = int((~ts.holdout).sum())
    logger.info(
        "%d labelled candidates (%s): %d train / %d validation / %d test (%s)",
        n_labels, label_source, len(tr), len(va), len(te), test_set,
    )  # fmt: skip
    spec = spec_windows(
        ts.spec[:, 0].astype(np.float32),
        ts.spec[:, 1].astype(np.float32),
        ts.cols["wave"],
        SPEC_HALF_WIDTH,
    )
    kinds, kinds_info = artefact_kind_targets(
        detectid=ts.cols["detectid"], fit_rows=np.concatenate([tr, va])
    )
    extra["artefact_answers"] = kinds_info
    models_dir = Path(settings.MODELS_DIR)
    tmp = models_dir / f".training-{uuid.uuid4().hex[:12]}"
    try:
        st_config = SelfTrainConfig(seed=seed) if self_train else None
        data = LabelledArrays(
            cutouts=ts.cutouts, targets=ts.targets, sn=sn, cols=ts.cols, spec=spec,
            y_test=y_test, kinds=kinds,
            unlabelled=unlabelled_sample(
                exclude=ts.candidate_id, n=st_config.max_pool, seed=seed
            ) if st_config else None,
        )  # fmt: skip
        plan = FitPlan(
            splits=(tr, va, te),
            label_source=label_source,
            data_hash=ts.data_hash,
            train=TrainConfig(
                epochs=epochs, seed=seed, keep=keep, members=members, max_time_s=max_time_s
            ),
            extra={"n_labels": n_labels, "test_set": test_set, **extra},
            init=init,
            self_training=st_config,
        )
        try:
            card = fit_evaluate_write(data, plan, tmp, on_epoch=on_epoch)
        except ValueError as exc:
            if init is None:
                raise
            where = "the live model" if start.fine_tune else f"encoder v{start.encoder_id}"
            raise TrainingError(f"cannot fine-tune from {where}: {exc}") from exc
        with transaction.atomic():
            version = ModelVersion.objects.create(
                label_source=label_source,
                directory="",
                card=card,
                n_train=len(tr),
                data_hash=ts.data_hash,
            )
            final = models_dir / f"v{version.pk}"
            tmp.rename(final)
            version.directory = str(final)
            version.save(update_fields=["directory"])
            # Provenance: the open round's labels went into this model (the latest wins
            # when a round is retrained twice).
            Round.objects.filter(status=Round.Status.OPEN).update(trained_model=version)
    except BaseException as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        free = _free_bytes(models_dir)
        if isinstance(exc, OSError | RuntimeError) and free is not None and free < LOW_DISK_BYTES:
            # PyTorch reports ENOSPC as "RuntimeError: ... unexpected pos": say what it is.
            raise TrainingError(
                f"could not write the new model under {models_dir}: the disk is full "
                f"({free / 2**20:.1f} MiB free); the live model is unchanged ({exc})"
            ) from exc
        raise
    return version


def _live_weights():
    """The live model, loaded on the CPU, to fine-tune from."""
    from mlcore.cnn.card import load_checkpoint

    live = live_model()
    if live is None:
        raise TrainingError("there is no live model to fine-tune from: train one afresh first")
    try:
        return load_checkpoint(live.directory)
    except (OSError, RuntimeError, KeyError) as exc:
        raise TrainingError(
            f"cannot read the live model v{live.pk} to fine-tune from: {exc}"
        ) from exc


def _encoder_weights(encoder_id, *, seed: int, members: int):
    """The pretrained encoder's trunks, each member with a head drawn fresh from its own
    seed (as a scratch ensemble's members differ), and what the card records."""
    from mlcore.cnn.card import load_checkpoint
    from mlcore.cnn.model import EnsembleCNN
    from mlcore.cnn.pretrain import with_fresh_head

    try:
        enc = usable_encoder(encoder_id)
    except EncoderError as exc:
        raise TrainingError(str(exc)) from exc
    try:
        base = load_checkpoint(enc.directory)
    except (OSError, RuntimeError, KeyError) as exc:
        raise TrainingError(f"cannot read encoder v{enc.pk} to start from: {exc}") from exc
    heads = [with_fresh_head(base, seed + k) for k in range(members)]
    init = heads[0] if members == 1 else EnsembleCNN(heads)
    return init, {"pretrained_from": encoder_summary(enc)}


LOW_DISK_BYTES = 64 * 2**20  # below this, a failed write is reported as a full disk


def _free_bytes(path: Path) -> int | None:
    try:
        return shutil.disk_usage(path).free
    except OSError:
        return None


def new_labels_since_live_model() -> int:
    """Consensus labels now available minus those the live model was trained from."""
    from labelapp.selectors.models import live_model

    run = AggregationRun.objects.filter(status=AggregationRun.Status.DONE, n_votes__gt=0).first()
    available = len(consensus_targets()) if run else 0  # what training would use now
    live = live_model()
    used = int(live.card.get("n_labels", 0)) if live and live.label_source == "consensus" else 0
    return available - used
