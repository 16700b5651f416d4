"""The science API's logic (read-only; routes in labelapp.views.science_api, docs/api.md).

Pages are keyset pages (``labelapp.selectors.catalogue``): ask with ``after`` = the
``next_after`` of the previous page until it is null. A page holds at most ``MAX_LIMIT``
rows. Scores are those of one model version: the live one unless ``model_version`` is
given; labels are the labels of record (the latest succeeded aggregation run), as in the
catalogue export. Arrays are sent as ``.npy`` bytes (``numpy.load(io.BytesIO(body))``).
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from labelapp.errors import InvalidInput, NotFound, UnknownCandidate
from labelapp.models import Candidate, ModelVersion
from labelapp.selectors import catalogue as catalogue_selectors
from labelapp.selectors import models as models_selectors
from labelapp.selectors.models import live_model
from labelapp.services.survey.rendering import candidate_pixels, cutout_png_path
from mlcore.survey import LYA_REST, SPEC_WAVE

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000
LABEL_STATES = ("real", "not_real", "none")
STATUSES = tuple(Candidate.Status.values)


@dataclass(frozen=True)
class Page:
    rows: list[dict]
    next_after: int | None
    meta: dict


def _limit(limit: int | None) -> int:
    if limit is None:
        return DEFAULT_LIMIT
    if not 1 <= limit <= MAX_LIMIT:
        raise InvalidInput(f"limit={limit}: ask for 1 to {MAX_LIMIT} rows a page.")
    return limit


def _range(name: str, low: float | None, high: float | None) -> None:
    for value, which in ((low, f"{name}_min"), (high, f"{name}_max")):
        if value is not None and not math.isfinite(value):
            raise InvalidInput(f"{which}={value} is not a finite number.")
    if low is not None and high is not None and low > high:
        raise InvalidInput(f"{name}_min={low} is above {name}_max={high}: nothing can match.")


def _model_version(model_version: int | None) -> ModelVersion | None:
    if model_version is None:
        return live_model()
    mv = ModelVersion.objects.filter(pk=model_version).first()
    if mv is None:
        raise NotFound(f"There is no model version {model_version}: see /models.")
    return mv


def catalogue_page(
    *,
    after: int | None = None,
    limit: int | None = None,
    model_version: int | None = None,
    sn_min: float | None = None,
    sn_max: float | None = None,
    wave_min: float | None = None,
    wave_max: float | None = None,
    field: str | None = None,
    score_min: float | None = None,
    score_max: float | None = None,
    label: str | None = None,
    status: str | None = None,
) -> Page:
    """One page of the catalogue with scores, labels, consensus and rounds (filters AND)."""
    size = _limit(limit)
    _range("sn", sn_min, sn_max)
    _range("wave", wave_min, wave_max)
    _range("score", score_min, score_max)
    if label is not None and label not in LABEL_STATES:
        raise InvalidInput(f"label={label!r}: use one of {', '.join(LABEL_STATES)}.")
    if status is not None and status not in STATUSES:
        raise InvalidInput(f"status={status!r}: use one of {', '.join(STATUSES)}.")
    mv = _model_version(model_version)
    run = catalogue_selectors.latest_aggregation_run()
    rows = catalogue_selectors.catalogue_page(
        model_version_id=mv.pk if mv else None,
        run_id=run.pk if run else None,
        after=after,
        limit=size + 1,
        sn_min=sn_min,
        sn_max=sn_max,
        wave_min=wave_min,
        wave_max=wave_max,
        field=field or None,
        score_min=score_min,
        score_max=score_max,
        label=label,
        status=status,
    )
    more = len(rows) > size
    rows = rows[:size]
    for row in rows:
        row["z_lya"] = row["wave"] / LYA_REST - 1
    return Page(
        rows=rows,
        next_after=rows[-1]["detectid"] if more else None,
        meta={
            "model_version": mv.pk if mv else None,
            "aggregation_run": run.pk if run else None,
        },
    )


def vote_page(
    *, after: int | None = None, limit: int | None = None, detectid: int | None = None
) -> Page:
    size = _limit(limit)
    rows = catalogue_selectors.vote_page(after=after, limit=size + 1, detectid=detectid)
    more = len(rows) > size
    rows = rows[:size]
    return Page(rows=rows, next_after=rows[-1]["vote_id"] if more else None, meta={})


def _model_summary(mv: ModelVersion) -> dict:
    return {
        "id": mv.pk,
        "status": mv.status,
        "label_source": mv.label_source,
        "n_train": mv.n_train,
        "data_hash": mv.data_hash,
        "status_reason": mv.status_reason,
        "created_at": mv.created_at,
    }


def model_versions() -> list[dict]:
    return [_model_summary(mv) for mv in ModelVersion.objects.order_by("-pk")]


def model_version_detail(pk: int) -> dict:
    mv = ModelVersion.objects.filter(pk=pk).first()
    if mv is None:
        raise NotFound(f"There is no model version {pk}: see /models.")
    return {**_model_summary(mv), "card": mv.card or {}}


def _encoder_summary(row: dict) -> dict:
    enc = row["enc"]
    return {
        "id": enc.pk,
        "approach": row["approach"],
        "n_candidates": row["n_candidates"],
        "n_eligible": row["n_eligible"],
        "fields": row["fields"],
        "epochs": row["epochs"],
        "final_loss": row["loss_last"],
        "data_source": row["data_source"],
        "data_hash": enc.data_hash,
        "created_at": enc.created_at,
        "retired_at": enc.retired_at,
        "retired_reason": enc.retired_reason,
        "offered": row["offered"],
        "problem": row["problem"],
        "models": row["used_by"],
    }


def encoders() -> list[dict]:
    """Every pretrained encoder, newest first, retired ones too (the models started from
    them keep their provenance)."""
    return [_encoder_summary(row) for row in models_selectors.encoder_table()]


def encoder_detail(pk: int) -> dict:
    row = next((r for r in models_selectors.encoder_table() if r["enc"].pk == pk), None)
    if row is None:
        raise NotFound(f"There is no pretrained encoder {pk}: see /encoders.")
    card = row["enc"].card or {}
    return {**_encoder_summary(row), "loss_curve": card.get("loss_curve") or [], "card": card}


def _candidate(detectid: int) -> Candidate:
    candidate = Candidate.objects.select_related("batch").filter(detectid=detectid).first()
    if candidate is None:
        raise UnknownCandidate(f"There is no candidate with detectid {detectid}.")
    return candidate


def _npy(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, np.ascontiguousarray(array), allow_pickle=False)
    return buf.getvalue()


def cutout_npy(detectid: int) -> bytes:
    """The candidate's cutout, float32 (5, 9, 100): the summed image, then the 4 fibres."""
    return _npy(candidate_pixels(_candidate(detectid))["cutouts"])


def spectrum_npy(detectid: int) -> bytes:
    """The candidate's 1D spectrum, float32 (3, N): wavelength (A), flux, flux error."""
    spec = candidate_pixels(_candidate(detectid))["spec"]
    return _npy(np.stack([SPEC_WAVE.astype(np.float32), spec[0], spec[1]]))


def cutout_png(detectid: int) -> Path:
    """The rendered PNG volunteers see (cached on disk)."""
    return cutout_png_path(_candidate(detectid))
