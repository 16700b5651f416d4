"""Pretrain a self-supervised encoder on the catalogue and record it (issue #25).

The candidates are the volunteers' queue -- every active candidate with a cutout, or a
random sample of ``n`` of them, across every field (or one) -- less the held-out expert
sample, which is the gate's evaluation set and stays unseen. No label is read. Pixels come
from the batches' cutout stores, joined to the candidates by (batch, row). The fitting and
the card are :func:`mlcore.cnn.pretrain.pretrain` and
:func:`mlcore.cnn.pretrain.build_pretrain_card`, as in ``python -m mlcore.train pretrain``.
The encoder gets the platform retrain's architecture (width 12, the 1D branch) unless told
otherwise; a retrain refuses an encoder whose architecture differs
(:func:`labelapp.selectors.models.architecture_problem`). The directory is written
under a temporary name and renamed to ``MODELS_DIR/encoder-v<id>`` in the transaction that
creates its :class:`PretrainedEncoder` row, so a crash leaves no half-written encoder.
"""

from __future__ import annotations

import hashlib
import logging
import shutil
import uuid
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import numpy as np
from django.conf import settings
from django.db import transaction
from django.db.models import F

from labelapp.errors import InvalidInput
from labelapp.models import Candidate, IngestBatch, PretrainedEncoder
from labelapp.selectors.models import PLATFORM_WIDTH
from labelapp.services.learning.holdout import holdout_ids
from labelapp.services.survey.rendering import open_store
from mlcore.cnn.card import read_card, write_model_dir
from mlcore.cnn.data import spec_windows
from mlcore.cnn.model import CNNConfig
from mlcore.cnn.pipeline import SPEC_HALF_WIDTH
from mlcore.cnn.pretrain import APPROACHES, PretrainConfig, build_pretrain_card, pretrain
from mlcore.cutout_quality import NO_CUTOUT

logger = logging.getLogger(__name__)


class PretrainingError(InvalidInput):
    pass


def _selection(n: int | None, seed: int, field: str) -> tuple[list[tuple], int]:
    """(candidate id, detectid, batch, row, wave, field) of the rows to pretrain on, in
    (batch, row) order, and how many were eligible before sampling."""
    qs = (
        Candidate.objects.filter(status=Candidate.Status.ACTIVE)
        .alias(no_cutout=F("cutout_flags").bitand(NO_CUTOUT))
        .exclude(no_cutout=NO_CUTOUT)
    )
    if field:
        qs = qs.filter(field=field)
    held = holdout_ids()
    rows = [
        r
        for r in qs.order_by("batch_id", "row")
        .values_list("pk", "detectid", "batch_id", "row", "wave", "field")
        .iterator(chunk_size=20000)
        if r[0] not in held
    ]
    eligible = len(rows)
    if n is not None and n < eligible:
        pick = np.sort(np.random.default_rng(seed).choice(eligible, n, replace=False))
        rows = [rows[i] for i in pick]
    return rows, eligible


def _inputs(rows: list[tuple], spec_len: int):
    """The normalised float16 (N, 5, 9, 100) inputs and (N, 2, spec_len) 1D windows of
    ``rows`` (same order), read batch by batch (normalised as they are read, so the raw
    cutouts are never all in memory next to them), and a hash of the batches' files and
    the detectids."""
    import torch

    from mlcore.cnn.training import normalise_rows

    batch_of = np.asarray([r[2] for r in rows])
    x = torch.empty((len(rows), 5, 9, 100), dtype=torch.float16)
    spec = None if not spec_len else np.empty((len(rows), 2, spec_len), np.float32)
    sha = hashlib.sha256()
    for batch_id in np.unique(batch_of):
        batch = IngestBatch.objects.get(pk=int(batch_id))
        store = open_store(batch.store_path)
        at = np.flatnonzero(batch_of == batch_id)
        sel = np.asarray([rows[i][3] for i in at])  # ascending: rows are in (batch, row) order
        x[torch.as_tensor(at)] = normalise_rows(store.cutouts, sel)
        if spec is not None:
            s = np.asarray(store.spec[sel], np.float32)
            waves = np.asarray([rows[i][4] for i in at], np.float64)
            spec[at] = spec_windows(s[:, 0], s[:, 1], waves, spec_len // 2)
        sha.update(batch.file_sha256.encode())
    sha.update(np.asarray([r[1] for r in rows], np.int64).tobytes())
    return x, spec, sha.hexdigest()


def pretrain_encoder(
    *,
    approach: str = "masked",
    epochs: int = 5,
    n: int | None = None,
    field: str = "",
    seed: int = 0,
    batch_size: int = 256,
    lr: float = 2e-3,
    width: int = PLATFORM_WIDTH,
    spec1d: bool = True,
    max_time_s: float | None = None,
    on_epoch: Callable[[dict, int], None] | None = None,
) -> PretrainedEncoder:
    """Pretrain an encoder on the catalogue (see the module docstring) and record it.

    ``n``: a random sample of that many candidates (default every eligible one; the
    normalised cutouts are held in memory as float16, 9 kB a candidate, plus 1.6 kB of 1D
    window). ``field``: only that
    field (default all). ``width`` / ``spec1d``: the architecture; anything but the
    defaults makes an encoder the platform's retrain will refuse (it is for experiments).
    """
    if approach not in APPROACHES:
        raise PretrainingError(f"approach must be one of {APPROACHES}, not {approach!r}")
    if not 1 <= epochs <= 200:
        raise PretrainingError(f"epochs must be between 1 and 200, got {epochs}")
    if n is not None and n < 2:
        raise PretrainingError(f"--n must be at least 2 candidates, not {n}")
    if batch_size < 2:
        raise PretrainingError(f"the batch size must be at least 2, not {batch_size}")
    rows, eligible = _selection(n, seed, field)
    where = f"field {field!r}" if field else "the catalogue"
    if len(rows) < 2:
        raise PretrainingError(
            f"only {len(rows)} active candidates with a cutout in {where}: ingest a survey "
            "before pretraining"
        )
    spec_len = 2 * SPEC_HALF_WIDTH if spec1d else 0
    x_norm, spec, data_hash = _inputs(rows, spec_len)
    fields = dict(sorted(Counter(r[5] for r in rows).items()))
    batches = sorted({int(r[2]) for r in rows})
    logger.info(
        "pretraining a %s encoder on %d of %d active candidates (%s)",
        approach, len(rows), eligible, ", ".join(f"{k} {v}" for k, v in fields.items()),
    )  # fmt: skip
    cfg = PretrainConfig(
        approach=approach, epochs=epochs, seed=seed, batch_size=batch_size, lr=lr,
        max_time_s=max_time_s,
    )  # fmt: skip
    mcfg = CNNConfig(width=width, spec_len=spec_len)
    res = pretrain(
        x_norm, spec=spec, model_config=mcfg, config=cfg, on_epoch=on_epoch, x_norm=x_norm
    )
    sample = f"a random sample (seed {seed}) of {len(rows)}" if len(rows) < eligible else "all"
    source = (
        f"catalogue: {sample} of the {eligible} active candidates with a cutout in {where} "
        f"(held-out expert sample excluded), batches {batches}"
    )
    selection = {
        "status": "active",
        "field": field or "all",
        "n_eligible": eligible,
        "n_used": len(rows),
        "sampled": len(rows) < eligible,
        "sample_seed": seed if len(rows) < eligible else None,
        "fields": fields,
        "batches": batches,
        "holdout_excluded": True,
    }
    card = build_pretrain_card(
        res, data_hash=data_hash, data_source=source, extra={"selection": selection}
    )
    models_dir = Path(settings.MODELS_DIR)
    tmp = models_dir / f".pretraining-{uuid.uuid4().hex[:12]}"
    try:
        write_model_dir(tmp, res.model, card)
        card = read_card(tmp)  # as written: with the weights' hash
        with transaction.atomic():
            enc = PretrainedEncoder.objects.create(
                approach=approach,
                directory="",
                card=card,
                n_candidates=len(rows),
                data_hash=data_hash,
            )
            final = models_dir / f"encoder-v{enc.pk}"
            tmp.rename(final)
            enc.directory = str(final)
            enc.save(update_fields=["directory"])
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    logger.info("encoder v%d written to %s", enc.pk, enc.directory)
    return enc
