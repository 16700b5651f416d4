"""Scoring a shifted batch with batch statistics: AdaBN on the platform (issue 25).

When the campaign setting ``adapt_shifted_batches`` is on (the default) and the newest
shift report of an ingest batch -- the whole batch's or one of its fields' -- against the
model being scored says ``shifted`` or ``far``, that batch's candidates are scored by a
copy of the model whose BatchNorm running statistics were re-estimated on the batch's own
normalised cutouts (:func:`mlcore.cnn.domain_adapt.adapt_batchnorm`; measured in
``bench/unlabelled_shift.md``: +0.17 / +0.14 balanced accuracy on ``correlated_noise``,
nothing in-domain). Every weight else is the model's; the model itself, its promotion gate,
its held-out figures and every other batch's scores are untouched.

The decision is made once per batch per model version, when the version's scoring run is
planned (:func:`prepare_run`, or per batch by ``scoring_runs.plan_scoring``, which first
builds the batch's missing shift reports against that version: :mod:`.auto_shift`), and
stored with what it used as a :class:`BatchAdaptation`
(the report, how many candidates gave the statistics, the seed, the re-estimated buffers:
a few hundred numbers). Chunks of the run read it (:func:`for_scoring`), so every worker
scores a batch with the same statistics, and each score made with them points at it
(``CandidateScore.adaptation``). It is made again only on request
(:func:`prepare_batch` with ``rebuild``: ``manage.py shift_report --batch ID --rescore``).

The statistics come from up to :data:`MAX_CANDIDATES` of the batch's candidates with
cutouts (all of them below it; a fixed-seed sample above it), never from fewer than
:data:`MIN_CANDIDATES`: a smaller batch is scored as trained and its record says why.
"""

from __future__ import annotations

import copy
import logging
from collections import OrderedDict

import numpy as np
from django.db import IntegrityError, transaction

from labelapp.models import (
    BatchAdaptation,
    Candidate,
    IngestBatch,
    ModelVersion,
    ShiftReport,
)
from labelapp.selectors.shift import latest_reports
from labelapp.services.learning.acquisition_settings import adapt_setting
from labelapp.services.learning.shift import cutout_pixels, sample_ids, with_cutouts
from mlcore.errors import DataError

logger = logging.getLogger(__name__)

ADAPT_VERDICTS = (ShiftReport.Verdict.SHIFTED, ShiftReport.Verdict.FAR)
# Statistics from all of a batch's candidates up to this many (the bench adapted on 4,000),
# a fixed-seed sample above it: a few seconds of CPU.
MAX_CANDIDATES = 4000
# Never fewer (adapt_batchnorm itself refuses < 64): BatchNorm means and variances of a
# few dozen cutouts would be the noise of that sample and its class mix, not the batch's.
MIN_CANDIDATES = 200
SEED = 0
_BN_BUFFERS = ("running_mean", "running_var", "num_batches_tracked")


# --- the decision ------------------------------------------------------------------------


def trigger(model_version: ModelVersion, batch: IngestBatch) -> ShiftReport | None:
    """The newest whole-batch or per-field report of ``batch`` against ``model_version``
    that says shifted or far (``far`` first), or None. Night-group reports and fields
    across the catalogue do not count: they are not about one batch."""
    flagged = [
        r
        for r in latest_reports(model_version)
        if r.batch_id == batch.pk and r.night_first is None and r.verdict in ADAPT_VERDICTS
    ]
    flagged.sort(key=lambda r: (r.verdict != ShiftReport.Verdict.FAR, -r.pk))
    return flagged[0] if flagged else None


def _bn_state(model) -> dict[str, list]:
    from torch import nn

    out = {}
    for name, mod in model.named_modules():
        if isinstance(mod, nn.modules.batchnorm._BatchNorm):
            for b in _BN_BUFFERS:
                t = getattr(mod, b, None)
                if t is not None:
                    out[f"{name}.{b}"] = t.detach().cpu().tolist()
    return out


def _estimate(model_version: ModelVersion, ids: list[int], seed: int) -> dict[str, list]:
    """AdaBN on the cutouts of candidates ``ids`` with a fresh CPU copy of the model (the
    scoring cache's copy is never handed to it) -> the re-estimated BatchNorm buffers."""
    from mlcore.cnn.domain_adapt import adapt_batchnorm, normalise_all
    from mlcore.cnn.scoring import load_for_scoring

    model = load_for_scoring(model_version.directory, device="cpu")
    x, windows, _ = cutout_pixels(ids, int(model.config.spec_len))  # joined by candidate id
    adapted = adapt_batchnorm(model, normalise_all(x), spec=windows, seed=seed)
    return _bn_state(adapted)


def prepare_batch(
    *,
    model_version: ModelVersion,
    batch: IngestBatch,
    rebuild: bool = False,
    force: bool = False,
    requested_by: str = "",
) -> BatchAdaptation | None:
    """How ``model_version`` scores ``batch``: the stored decision if there is one (unless
    ``rebuild``), else decide now and store it. None: as trained, nothing to record (no
    report flags the batch and nothing was recorded before). A flagged batch always gets a
    record, adapted or not (the setting off, too few candidates) with why.
    ``force``: adapt a flagged batch even with the campaign setting off (on request)."""
    existing = BatchAdaptation.objects.filter(model_version=model_version, batch=batch).first()
    if existing is not None and not rebuild:
        return existing
    on = force or adapt_setting()
    report = trigger(model_version, batch)
    fields: dict = {
        "adapted": False, "shift_report": report, "verdict": report.verdict if report else "",
        "n_used": 0, "n_batch": 0, "seed": SEED, "bn_state": {}, "requested_by": requested_by,
    }  # fmt: skip
    if report is None:
        if existing is None:
            return None
        fields["reason"] = (
            f"no shift report of batch {batch.pk} against v{model_version.pk} says shifted "
            "or far any more: scored as trained"
        )
        return _store(model_version, batch, fields)
    where = report.report.get("where", f"batch {batch.pk}")
    said = f"shift report {report.pk} ({where}) says {report.verdict}"
    if not on:
        fields["reason"] = (
            f"{said}, but the campaign setting adapt_shifted_batches is off: scored as trained"
        )
        return _store(model_version, batch, fields)
    ids = list(
        with_cutouts(Candidate.objects.filter(batch=batch))
        .order_by("pk")
        .values_list("pk", flat=True)
    )
    fields["n_batch"] = len(ids)
    if len(ids) < MIN_CANDIDATES:
        fields["reason"] = (
            f"{said}, but the batch has {len(ids)} candidates with cutouts and batch "
            f"statistics need at least {MIN_CANDIDATES}: scored as trained"
        )
        return _store(model_version, batch, fields)
    sample = sample_ids(ids, MAX_CANDIDATES, SEED)
    try:
        fields["bn_state"] = _estimate(model_version, sample, SEED)
    except (DataError, ValueError, OSError) as exc:
        fields["reason"] = f"{said}, but AdaBN failed ({exc}): scored as trained"
        return _store(model_version, batch, fields)
    fields |= {
        "adapted": True,
        "n_used": len(sample),
        "reason": f"{said}: BatchNorm statistics re-estimated on {len(sample)} of its "
        f"{len(ids)} candidates with cutouts",
    }
    return _store(model_version, batch, fields)


def _store(mv: ModelVersion, batch: IngestBatch, fields: dict) -> BatchAdaptation:
    try:
        with transaction.atomic():
            row, _ = BatchAdaptation.objects.update_or_create(
                model_version=mv, batch=batch, defaults=fields
            )
    except IntegrityError:  # another planner stored it first: the same decision
        row = BatchAdaptation.objects.get(model_version=mv, batch=batch)
    _put_on_card(mv)
    logger.info("model v%s on batch %s: %s", mv.pk, batch.pk, row.reason)
    return row


def prepare_run(model_version: ModelVersion) -> list[BatchAdaptation]:
    """Decide (once) for every batch before ``model_version`` scores the catalogue."""
    out = []
    for batch in IngestBatch.objects.order_by("pk"):
        row = prepare_batch(model_version=model_version, batch=batch)
        if row is not None:
            out.append(row)
    return out


def for_scoring(model_version: ModelVersion, batch: IngestBatch) -> BatchAdaptation | None:
    """The adapted statistics a chunk of ``batch`` is scored with, or None (as trained)."""
    return BatchAdaptation.objects.filter(
        model_version=model_version, batch=batch, adapted=True
    ).first()


_ADAPTED: OrderedDict = OrderedDict()  # (record, its update time, base model) -> model


def adapted_model(row: BatchAdaptation, base):
    """A copy of ``base`` (the loaded model version) with ``row``'s BatchNorm buffers;
    ``base`` is never modified. Cached (a new module: the fast CPU path folds the new
    statistics)."""
    import torch

    key = (row.pk, row.updated_at, id(base))
    hit = _ADAPTED.get(key)
    if hit is not None and hit[0] is base:
        _ADAPTED.move_to_end(key)
        return hit[1]
    model = copy.deepcopy(base)
    state = model.state_dict()
    missing = sorted(set(row.bn_state) - set(state))
    if missing or not row.bn_state:
        raise DataError(
            f"batch statistics {row.pk} do not fit model v{row.model_version_id} "
            f"({', '.join(missing[:3]) or 'none stored'})"
        )
    for k, v in row.bn_state.items():
        state[k] = torch.as_tensor(np.asarray(v), dtype=state[k].dtype, device=state[k].device)
    model.load_state_dict(state)
    model.eval()
    _ADAPTED[key] = (base, model)
    while len(_ADAPTED) > 8:
        _ADAPTED.popitem(last=False)
    return model


def _put_on_card(mv: ModelVersion) -> None:
    """The model's card lists each batch it scores with batch statistics (or was asked to
    and did not, with why): ``card["adaptation"]``."""
    summary = [
        {
            "batch": r.batch_id,
            "batch_name": r.batch.name,
            "adapted": r.adapted,
            "reason": r.reason,
            "verdict": r.verdict,
            "report_id": r.shift_report_id,
            "n_used": r.n_used,
            "n_batch": r.n_batch,
            "seed": r.seed,
            "method": "AdaBN (mlcore.cnn.domain_adapt.adapt_batchnorm)",
            "updated_utc": r.updated_at.isoformat(timespec="seconds"),
        }
        for r in BatchAdaptation.objects.filter(model_version=mv).select_related("batch")
    ]
    with transaction.atomic():
        card = dict(ModelVersion.objects.select_for_update().get(pk=mv.pk).card)
        card["adaptation"] = summary
        ModelVersion.objects.filter(pk=mv.pk).update(card=card)
    mv.card = card
