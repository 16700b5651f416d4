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
from labelapp.services.rendering import open_store
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
    rows: list[tuple] = []
    for a, b, s in iter_scores(
        model,
        store.cutouts,
        spec=store.spec,
        wave=wave,
        n_samples=n_samples or settings.SCORE_MC_SAMPLES,
        start=start,
        stop=stop,
    ):
        for k, r in enumerate(range(a, b)):
            rows.append(
                (
                    model_version.pk,
                    ids[r],
                    float(s["prob"][k]),
                    float(s["entropy"][k]) / LN2,
                    float(s["bald"][k]) / LN2,
                )
            )
    with transaction.atomic():
        CandidateScore.objects.filter(
            model_version=model_version, candidate_id__in=list(ids.values())
        ).delete()
        insert_rows(CandidateScore, ("model_version", "candidate", "prob", "entropy", "bald"), rows)
    return len(rows)


def score_chunks(*, chunk: int = CHUNK) -> list[tuple[int, int, int]]:
    """(batch id, start, stop) covering every ingested candidate."""
    return [
        (b.pk, start, min(b.n_candidates, start + chunk))
        for b in IngestBatch.objects.order_by("pk")
        for start in range(0, b.n_candidates, chunk)
    ]


def score_all(
    *,
    model_version: ModelVersion,
    progress: Callable[[str, int, int], None] | None = None,
    n_samples: int | None = None,
) -> int:
    """Score the whole catalogue in this process (the Celery path fans the chunks out)."""
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
