"""Where is the model out of its depth? Shift reports per ingest batch, per field and per
group of observing nights.

A report compares a sample of new candidates (a batch, a field of it, or a field across
the catalogue) with a *reference* sample of the model's training data -- candidates that
had a training label when the model was made (simulator truth, or the consensus / gold /
expert labels of the last aggregation before it), never the held-out sample -- with
:func:`mlcore.shift.compare`: input statistics, the model's embeddings and its scores, and
a verdict ("in distribution" / "shifted" / "far") with the thresholds measured by
``bench/bench_shift.py``. Reports are stored (:class:`ShiftReport`); the latest verdicts of
a model also go on its card (``card["shift"]``), so the card says where it was not
checked, or failed.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
from django.db import transaction
from django.db.models import F

from labelapp.errors import InvalidInput, NotFound
from labelapp.models import (
    AggregationRun,
    Candidate,
    CandidateTruth,
    ConsensusState,
    GoldStandard,
    HoldoutLabel,
    IngestBatch,
    Label,
    ModelVersion,
    ShiftReport,
)
from labelapp.selectors.models import live_model
from labelapp.selectors.shift import latest_reports
from labelapp.services.survey.rendering import open_store
from mlcore.cnn.data import spec_windows
from mlcore.cutout_quality import NO_CUTOUT
from mlcore.errors import DataError
from mlcore.nights import MAX_GAP_DAYS, NightGroup, night_groups
from mlcore.shift import MIN_SAMPLE, NIGHT_THRESHOLDS, Sample, Thresholds, compare, describe

logger = logging.getLogger(__name__)

N_REF = 2000
N_NEW = 2000


class ShiftReportError(InvalidInput):
    pass


def reference_candidates(model_version: ModelVersion):
    """The population ``model_version`` was built from (a queryset), which its shift
    reports' reference sample is drawn from: every candidate of the batches that held its
    training labels, ingested before it was made; never the held-out sample.

    Training labels are simulator truth, or the consensus labels of the aggregation run
    training read (``training.consensus_targets``: the latest finished run with votes,
    as it stood then), expert answers and gold. The reference is their batches, not those
    labelled rows alone: the queue chooses what volunteers label (low S/N first, then what
    the model is unsure of, gold by its own rules), so the labelled rows differ from any
    whole batch by that choice alone; against them, the very batch a crowd-trained model
    learnt from read "shifted" in the light-crowd loop (2026-12-07)."""
    made = model_version.created_at
    if model_version.label_source == "truth":
        labelled = CandidateTruth.objects.filter(candidate__batch__created_at__lte=made)
        batches = set(labelled.values_list("candidate__batch_id", flat=True).distinct())
    else:
        run = (
            AggregationRun.objects.filter(
                status=AggregationRun.Status.DONE, n_votes__gt=0, started_at__lte=made
            )
            .order_by("-pk")
            .first()
        )
        batches = set()
        if run is not None:
            batches |= set(
                Label.objects.filter(run=run)
                .values_list("candidate__batch_id", flat=True)
                .distinct()
            )
        batches |= set(
            ConsensusState.objects.filter(expert_label__isnull=False)
            .values_list("candidate__batch_id", flat=True)
            .distinct()
        )
        batches |= set(
            GoldStandard.objects.filter(active=True)
            .values_list("candidate__batch_id", flat=True)
            .distinct()
        )
    # a condition on the batches, not a list of ids: a batch holds more candidates than a
    # statement takes parameters (65,535)
    return Candidate.objects.filter(batch_id__in=batches, batch__created_at__lte=made).exclude(
        pk__in=HoldoutLabel.objects.values("candidate_id")
    )


def reference_candidate_ids(model_version: ModelVersion) -> list[int]:
    """:func:`reference_candidates`' ids, in id order."""
    return list(reference_candidates(model_version).order_by("pk").values_list("pk", flat=True))


def with_cutouts(qs):
    return qs.alias(no_cutout=F("cutout_flags").bitand(NO_CUTOUT)).exclude(no_cutout=NO_CUTOUT)


def cutout_pixels(
    ids: list[int], spec_len: int
) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
    """Raw (N, 5, 9, 100) cutouts (+ the model's 1D windows) of candidates ``ids``, read
    from their batches' stores, and their catalogue wavelengths; rows joined by candidate
    id (all three in the same row order)."""
    rows = list(
        Candidate.objects.filter(pk__in=ids)
        .order_by("batch_id", "row")
        .values_list("pk", "batch_id", "row", "wave")
    )
    cut, spec, wave = [], [], []
    for batch_id in sorted({r[1] for r in rows}):
        mine = [r for r in rows if r[1] == batch_id]
        store = open_store(IngestBatch.objects.get(pk=batch_id).store_path)
        sel = np.asarray([r[2] for r in mine])
        cut.append(np.asarray(store.cutouts[sel], np.float32))
        if spec_len:
            spec.append(np.asarray(store.spec[sel], np.float32))
        wave.extend(r[3] for r in mine)
    x = np.concatenate(cut) if cut else np.zeros((0, 5, 9, 100), np.float32)
    waves = np.asarray(wave, np.float64)
    if not spec_len or not spec:
        return x, None, waves
    s = np.concatenate(spec)
    return x, spec_windows(s[:, 0], s[:, 1], waves, spec_len // 2), waves


def _waves(ids: list[int]) -> np.ndarray:
    """Catalogue wavelengths of candidates ``ids`` (any order: a histogram's input)."""
    out = []
    for start in range(0, len(ids), 50_000):  # a statement takes 65,535 parameters
        part = ids[start : start + 50_000]
        out += Candidate.objects.filter(pk__in=part).values_list("wave", flat=True)
    return np.asarray(out, np.float64)


def sample_ids(ids: list[int], n: int, seed: int) -> list[int]:
    if len(ids) <= n:
        return list(ids)
    return sorted(np.random.default_rng(seed).choice(ids, n, replace=False).tolist())


@dataclass
class _Reference:
    """The model and its described reference sample: made once for a run of reports."""

    mv: ModelVersion
    model: object
    spec_len: int
    sample: Sample
    n_sample: int
    waves: np.ndarray
    n_ids: int
    seed: int


def reference_sample(mv: ModelVersion | None, n_ref: int, seed: int) -> _Reference:
    from mlcore.cnn.scoring import load_for_scoring  # torch: not at import time

    mv = mv or live_model()
    if mv is None:
        raise ShiftReportError("no live model: train and promote one before a shift report")
    ref_ids = list(
        with_cutouts(reference_candidates(mv)).order_by("pk").values_list("pk", flat=True)
    )
    if len(ref_ids) < MIN_SAMPLE:
        raise ShiftReportError(
            f"model v{mv.pk} has {len(ref_ids)} candidates with cutouts left in the batches "
            f"it was trained from; a shift report needs at least {MIN_SAMPLE} as its reference"
        )
    model = load_for_scoring(mv.directory, device="cpu")
    spec_len = int(model.config.spec_len)
    ref_sample = sample_ids(ref_ids, n_ref, seed)
    try:
        x, w, waves = cutout_pixels(ref_sample, spec_len)
        desc = describe(model, x, spec=w, waves=waves)
    except DataError as exc:
        raise ShiftReportError(f"shift report reference of v{mv.pk}: {exc}") from exc
    return _Reference(
        mv, model, spec_len, desc, len(ref_sample), _waves(ref_ids), len(ref_ids), seed
    )


def _selection(batch: IngestBatch | None, field: str, nights: tuple[int, int] | None):
    qs = with_cutouts(Candidate.objects.all())
    if batch is not None:
        qs = qs.filter(batch=batch)
    if field:
        qs = qs.filter(field=field)
    if nights is not None:
        qs = qs.filter(shotid__gte=nights[0] * 1000, shotid__lte=nights[1] * 1000 + 999)
    return qs


def build_shift_report(
    *,
    model_version: ModelVersion | None = None,
    batch: IngestBatch | None = None,
    field: str = "",
    nights: tuple[int, int] | None = None,
    n_new: int = N_NEW,
    n_ref: int = N_REF,
    seed: int = 0,
    thresholds: Thresholds | None = None,
    _ref: _Reference | None = None,
) -> ShiftReport:
    """Compare a batch (or every batch), optionally one field of it and/or a group of
    observing nights (first, last as YYYYMMDD), with the reference sample of
    ``model_version`` (default: the live model); store and return the report."""
    if _ref is None and model_version is None and live_model() is None:
        raise ShiftReportError("no live model: train and promote one before a shift report")
    where = f"batch {batch.pk}" if batch else "the catalogue"
    if field:
        where += f", field {field!r}"
    if nights is not None:
        first, last = nights
        if not (0 < first <= last):
            raise ShiftReportError(
                f"nights {first}-{last}: the first night must not be after the last"
            )
        where += f", nights {first}" + (f"-{last}" if last != first else "")
    new_ids = list(_selection(batch, field, nights).order_by("pk").values_list("pk", flat=True))
    if len(new_ids) < MIN_SAMPLE:
        raise ShiftReportError(
            f"{where} has {len(new_ids)} candidates with cutouts; a shift report needs at "
            f"least {MIN_SAMPLE}"
        )
    ref = _ref or reference_sample(model_version, n_ref, seed)
    mv = ref.mv
    new_sample = sample_ids(new_ids, n_new, ref.seed + 1)
    try:
        x, w, waves = cutout_pixels(new_sample, ref.spec_len)
        new = describe(ref.model, x, spec=w, waves=waves)
        # the wavelength statistic needs no pixels: every candidate on both sides
        report = compare(
            ref.sample,
            new,
            seed=ref.seed,
            ref_waves=ref.waves,
            new_waves=_waves(new_ids),
            thresholds=thresholds,
        )
    except DataError as exc:
        raise ShiftReportError(f"shift report of {where}: {exc}") from exc
    report |= {
        "where": where,
        "model_version": mv.pk,
        "n_candidates": len(new_ids),
        "reference": f"{ref.n_sample} of the {ref.n_ids} candidates v{mv.pk} trained on",
    }
    with transaction.atomic():
        row = ShiftReport.objects.create(
            model_version=mv,
            batch=batch,
            field=field,
            night_first=nights[0] if nights else None,
            night_last=nights[1] if nights else None,
            verdict=report["verdict"],
            n_new=report["n_new"],
            n_ref=report["n_ref"],
            report=report,
        )
        _put_on_card(mv)
    logger.info("shift report %s of %s against v%s: %s", row.pk, where, mv.pk, row.verdict)
    return row


def build_batch_reports(
    *,
    batch: IngestBatch,
    model_version: ModelVersion | None = None,
    seed: int = 0,
    _ref: _Reference | None = None,
) -> list[ShiftReport]:
    """The report of a whole batch, then one per field of it that has enough candidates with
    cutouts; against one reference sample (made here unless ``_ref`` is given)."""
    if _ref is None and model_version is None and live_model() is None:
        raise ShiftReportError("no live model: train and promote one before a shift report")
    n = with_cutouts(Candidate.objects.filter(batch=batch)).count()
    if n < MIN_SAMPLE:  # before the reference: it costs seconds
        raise ShiftReportError(
            f"batch {batch.pk} has {n} candidates with cutouts; a shift report needs at "
            f"least {MIN_SAMPLE}"
        )
    ref = _ref or reference_sample(model_version, N_REF, seed)
    out = [build_shift_report(batch=batch, _ref=ref)]
    fields = sorted(
        Candidate.objects.filter(batch=batch).values_list("field", flat=True).distinct()
    )
    for f in fields:
        enough = with_cutouts(Candidate.objects.filter(batch=batch, field=f)).count()
        if enough >= MIN_SAMPLE and len(fields) > 1:
            out.append(build_shift_report(batch=batch, field=f, _ref=ref))
    return out


def night_groups_of(
    *, batch: IngestBatch | None = None, field: str = "", max_gap_days: int = MAX_GAP_DAYS
) -> list[NightGroup]:
    """The groups of observing nights (:func:`mlcore.nights.night_groups`) of the candidates
    with cutouts, of ``batch`` and ``field`` if given."""
    shotids = np.fromiter(
        _selection(batch, field, None).values_list("shotid", flat=True).iterator(50_000),
        dtype=np.int64,
    )
    try:
        return night_groups(shotids, min_size=MIN_SAMPLE, max_gap_days=max_gap_days)
    except DataError as exc:
        raise ShiftReportError(f"night groups: {exc}") from exc


def build_night_reports(
    *,
    model_version: ModelVersion | None = None,
    batch: IngestBatch | None = None,
    field: str = "",
    max_gap_days: int = MAX_GAP_DAYS,
    n_new: int = N_NEW,
    n_ref: int = N_REF,
    seed: int = 0,
) -> tuple[list[ShiftReport], list[NightGroup]]:
    """One report per group of observing nights (:func:`mlcore.nights.night_groups` on the
    shot ids of the candidates with cutouts, of ``batch`` and ``field`` if given), against
    one reference sample, judged with the night-level thresholds
    (:data:`mlcore.shift.NIGHT_THRESHOLDS`). -> (the reports, the groups too small to
    judge)."""
    groups = night_groups_of(batch=batch, field=field, max_gap_days=max_gap_days)
    small = [g for g in groups if g.n < MIN_SAMPLE]
    big = [g for g in groups if g.n >= MIN_SAMPLE]
    if not big:
        return [], small
    ref = reference_sample(model_version, n_ref, seed)
    rows = [
        build_shift_report(batch=batch, field=field, nights=(g.first, g.last), n_new=n_new,
                           thresholds=NIGHT_THRESHOLDS, _ref=ref)
        for g in big
    ]  # fmt: skip
    return rows, small


def _put_on_card(mv: ModelVersion) -> None:
    summary = [
        {
            "batch": r.batch_id,
            "batch_name": r.batch.name if r.batch_id else None,
            "field": r.field or None,
            "nights": r.nights,
            "verdict": r.verdict,
            "reasons": r.report.get("reasons", []),
            "n_new": r.n_new,
            "report_id": r.pk,
            "created_utc": r.created_at.isoformat(timespec="seconds"),
        }
        for r in latest_reports(mv)
    ]
    card = dict(ModelVersion.objects.get(pk=mv.pk).card) | {"shift": summary}
    ModelVersion.objects.filter(pk=mv.pk).update(card=card)
    mv.card = card


def get_batch(batch_id: int) -> IngestBatch:
    try:
        return IngestBatch.objects.get(pk=batch_id)
    except IngestBatch.DoesNotExist as exc:
        raise NotFound(
            f"no ingest batch {batch_id}: see the console's exports page for the batches"
        ) from exc
