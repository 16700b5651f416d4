"""Score candidates with a model version: P(real), predictive entropy and BALD per candidate.

Work is split by (batch, row range) so many workers can score chunks of the catalogue in
parallel; each chunk replaces that model's scores for its rows in one transaction, so a
redelivered or repeated chunk does no harm. Entropies are stored in bits.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache

import numpy as np
from django.conf import settings
from django.db import transaction

from labelapp.models import Candidate, CandidateScore, IngestBatch, ModelVersion
from labelapp.services.bulk import insert_rows
from labelapp.services.learning import adaptation, auto_shift
from labelapp.services.survey.rendering import open_store
from mlcore.cnn.scoring import iter_scores, load_for_scoring

LN2 = float(np.log(2.0))
CHUNK = 8192


@lru_cache(maxsize=4)
def _model(directory: str):
    return load_for_scoring(directory)


def score_chunk(
    *,
    model_version: ModelVersion,
    batch: IngestBatch,
    start: int,
    stop: int,
    n_samples: int | None = None,
) -> int:
    """Score rows [start, stop) of one batch; returns how many candidates were scored."""
    store = open_store(batch.store_path)
    ids = dict(
        Candidate.objects.filter(batch=batch, row__gte=start, row__lt=stop).values_list("row", "id")
    )
    waves = dict(
        Candidate.objects.filter(batch=batch, row__gte=start, row__lt=stop).values_list(
            "row", "wave"
        )
    )
    wave = np.zeros(len(store))
    wave[list(waves)] = list(waves.values())
    model = _model(model_version.directory)
    # a batch its shift report flags: the copy with this batch's statistics (AdaBN), decided
    # when the run was planned (services.learning.adaptation); else the model as trained
    adapted = adaptation.for_scoring(model_version, batch)
    if adapted is not None:
        model = adaptation.adapted_model(adapted, model)
    adaptation_id = adapted.pk if adapted is not None else None
    rows: list[tuple] = []
    for a, b, s in iter_scores(
        model,
        store.cutouts,
        spec=store.spec,
        wave=wave,
        n_samples=n_samples or settings.SCORE_MC_SAMPLES,
        start=start,
        stop=stop,
        precision=settings.SCORE_PRECISION,
    ):
        for k, r in enumerate(range(a, b)):
            rows.append(
                (
                    model_version.pk,
                    ids[r],
                    float(s["prob"][k]),
                    float(s["entropy"][k]) / LN2,
                    float(s["bald"][k]) / LN2,
                    adaptation_id,
                )
            )
    with transaction.atomic():
        CandidateScore.objects.filter(
            model_version=model_version, candidate_id__in=list(ids.values())
        ).delete()
        insert_rows(
            CandidateScore,
            ("model_version", "candidate", "prob", "entropy", "bald", "adaptation"),
            rows,
        )
    return len(rows)


def score_chunks(*, chunk: int = CHUNK, batch_id: int | None = None) -> list[tuple[int, int, int]]:
    """(batch id, start, stop) covering every ingested candidate (of one batch if given)."""
    batches = IngestBatch.objects.order_by("pk")
    if batch_id is not None:
        batches = batches.filter(pk=batch_id)
    return [
        (b.pk, start, min(b.n_candidates, start + chunk))
        for b in batches
        for start in range(0, b.n_candidates, chunk)
    ]


def rescore_batch(
    *,
    model_version: ModelVersion,
    batch: IngestBatch,
    force: bool = False,
    requested_by: str = "",
    n_samples: int | None = None,
):
    """Decide again how ``model_version`` scores ``batch`` (its newest shift reports, the
    campaign setting; ``force``: adapt a flagged batch even with the setting off) and
    replace the batch's scores in this process. -> (its BatchAdaptation or None, scored)."""
    row = adaptation.prepare_batch(
        model_version=model_version,
        batch=batch,
        rebuild=True,
        force=force,
        requested_by=requested_by,
    )
    n = 0
    for _, start, stop in score_chunks(batch_id=batch.pk):
        n += score_chunk(
            model_version=model_version, batch=batch, start=start, stop=stop, n_samples=n_samples
        )
    return row, n


def score_all(
    *,
    model_version: ModelVersion,
    progress: Callable[[str, int, int], None] | None = None,
    n_samples: int | None = None,
    shift_reports: bool = True,
) -> int:
    """Score the whole catalogue in this process (the Celery path fans the chunks out).
    As a planned run does, every batch without a shift report against this model gets one
    first (the campaign setting ``auto_shift_reports``; ``shift_reports=False`` skips it),
    so the AdaBN decision sees it."""
    if shift_reports:
        auto_shift.ensure_reports(
            model_version=model_version, progress_key=f"score-all-{model_version.pk}"
        )
    adaptation.prepare_run(model_version)
    chunks = score_chunks()
    total = sum(stop - start for _, start, stop in chunks)
    done = 0
    for batch_id, start, stop in chunks:
        done += score_chunk(
            model_version=model_version,
            batch=IngestBatch.objects.get(pk=batch_id),
            start=start,
            stop=stop,
            n_samples=n_samples,
        )
        if progress:
            progress("score", done, total)
    return done


class CandidateEmbeddings:
    """An (N, D) array-like of a model's ``LineCNN.features`` for candidates ``ids``
    (database ids, in the acquisition arrays' order), computed from the cutout stores only
    for the rows asked for: k-center diversity reads just its pool (``pool_factor`` x the
    batch size, e.g. 2,500 of 2.5 million candidates), so nothing is stored per model."""

    def __init__(self, *, model_version: ModelVersion, ids: np.ndarray):
        self.model = _model(model_version.directory)
        self.ids = np.asarray(ids, np.int64)
        self.shape = (len(self.ids), self.model.feature_dim)

    def __getitem__(self, rows) -> np.ndarray:
        from mlcore.cnn.data import spec_windows
        from mlcore.cnn.scoring import embed_batch

        rows, inverse = np.unique(np.asarray(rows, np.int64), return_inverse=True)
        out = np.empty((len(rows), self.shape[1]), np.float32)
        where = {cid: k for k, cid in enumerate(self.ids[rows].tolist())}
        found = Candidate.objects.filter(pk__in=list(where)).values_list(
            "pk", "batch__store_path", "row", "wave"
        )
        by_store: dict[str, list[tuple[int, int, float]]] = {}
        for pk, path, row, wave in found:
            by_store.setdefault(path, []).append((where[pk], row, wave))
        if sum(map(len, by_store.values())) != len(where):
            raise ValueError("some candidates asked for embeddings no longer exist")
        half = self.model.config.spec_len // 2
        for path, items in by_store.items():
            items.sort(key=lambda t: t[1])  # increasing store rows: memmap-friendly reads
            store = open_store(path)
            for a in range(0, len(items), 1024):
                part = items[a : a + 1024]
                store_rows = [t[1] for t in part]
                win = None
                if half:
                    sp = np.asarray(store.spec[store_rows], np.float32)
                    waves = np.asarray([t[2] for t in part])
                    win = spec_windows(sp[:, 0], sp[:, 1], waves, half)
                feats = embed_batch(self.model, store.cutouts[store_rows], spec=win)
                out[[t[0] for t in part]] = feats
        return out[inverse]  # in the order asked, repeats included
