"""Attribution maps for the console: integrated gradients of one model on one candidate,
rendered once to a PNG in the render cache (models and stores never change once written)."""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path

import numpy as np
from django.conf import settings

from labelapp.models import Candidate, ModelVersion
from labelapp.services.survey.rendering import candidate_pixels


@lru_cache(maxsize=4)
def _model(directory: str):
    from mlcore.cnn.scoring import load_for_scoring  # torch: only where a map is drawn

    # CPU in the web process: one candidate at a time, and the GPU belongs to training.
    return load_for_scoring(directory, device="cpu")


def attribution_png_path(*, candidate: Candidate, model_version: ModelVersion) -> Path:
    target = (
        Path(settings.RENDER_CACHE_DIR)
        / "attribution"
        / f"model-{model_version.pk}"
        / f"{candidate.detectid}.png"
    )
    if target.exists():
        return target
    from mlcore.cnn.attribution import attribute, save_attribution_png
    from mlcore.cnn.card import WEIGHTS_NAME
    from mlcore.cnn.data import spec_windows

    if not (Path(model_version.directory) / WEIGHTS_NAME).is_file():
        raise FileNotFoundError(
            f"model v{model_version.pk} has no weights at {model_version.directory}: "
            "is the models directory shared with this web server?"
        )

    model = _model(model_version.directory)
    pixels = candidate_pixels(candidate)
    spec = None
    if model.config.spec_len:
        s = pixels["spec"][None]
        spec = spec_windows(
            s[:, 0], s[:, 1], np.asarray([candidate.wave]), model.config.spec_len // 2
        )
    out = attribute(model, pixels["cutouts"][None], spec=spec)
    title = f"{candidate.detectid}  v{model_version.pk}  P(real) = {float(out['prob'][0]):.2f}"
    tmp = target.with_name(f".{target.name}.{os.getpid()}")
    save_attribution_png(tmp, out["x"][0], out["attr"][0], title=title)
    os.replace(tmp, target)  # a concurrent request never serves half a file
    return target
