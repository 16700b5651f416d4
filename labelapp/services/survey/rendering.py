"""What a person sees of a candidate: cutout PNG (cached on disk) and the 1D spectrum figure."""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path

import numpy as np
from django.conf import settings

from labelapp.errors import InvalidInput
from labelapp.models import Candidate
from mlcore.render import (
    DEFAULT_CMAP,
    DEFAULT_STRETCH,
    RENDER_VERSION,
    check_view,
    line_column,
    render_cutout_png,
    spectrum_window,
)
from mlcore.store import CutoutStore
from mlcore.survey import SPEC_WAVE


@lru_cache(maxsize=64)
def open_store(path: str) -> CutoutStore:
    """Stores are immutable once committed, so one open memory map per process is enough."""
    return CutoutStore.open(path)


def candidate_pixels(candidate: Candidate) -> dict[str, np.ndarray]:
    store = open_store(candidate.batch.store_path)
    return {
        "cutouts": np.asarray(store.cutouts[candidate.row], dtype=np.float32),
        "spec": np.asarray(store.spec[candidate.row], dtype=np.float32),
        "im_wave": np.asarray(store.im_wave[candidate.row]),
    }


def check_cutout_view(*, stretch: str, cmap: str) -> None:
    """Raise InvalidInput (a 400 over HTTP, with the allowed values) for an unknown view."""
    try:
        check_view(stretch, cmap)
    except ValueError as exc:
        raise InvalidInput(str(exc)) from None


def cutout_png_path(
    candidate: Candidate, *, stretch: str = DEFAULT_STRETCH, cmap: str = DEFAULT_CMAP
) -> Path:
    """Path of the candidate's rendered PNG, rendering it first if it is not cached.

    The default view (linear stretch, viridis) is ``<detectid>.png``; every other view the
    volunteer's image tools ask for is cached beside it as ``<detectid>.<stretch>.<cmap>.png``
    (4 stretches x 3 maps at most per candidate)."""
    check_cutout_view(stretch=stretch, cmap=cmap)
    default = (stretch, cmap) == (DEFAULT_STRETCH, DEFAULT_CMAP)
    name = f"{candidate.detectid}.png" if default else f"{candidate.detectid}.{stretch}.{cmap}.png"
    target = Path(settings.RENDER_CACHE_DIR) / f"v{RENDER_VERSION}" / name
    if target.exists():
        return target
    pixels = candidate_pixels(candidate)
    png = render_cutout_png(
        pixels["cutouts"],
        line_col=line_column(pixels["im_wave"], candidate.wave),
        stretch=stretch,
        cmap=cmap,
    )
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{os.getpid()}")
    tmp.write_bytes(png)
    os.replace(tmp, target)  # concurrent renderers of one candidate never see half a file
    return target


def spectrum_figure(candidate: Candidate, half_width: float = 80.0) -> dict:
    """Plotly figure (as a dict) of the spectrum around the line with its 1-sigma band."""
    spec = candidate_pixels(candidate)["spec"]
    win = spectrum_window(SPEC_WAVE, spec[0], spec[1], candidate.wave, half_width)
    upper = [f + e for f, e in zip(win["flux"], win["err"], strict=True)]
    lower = [f - e for f, e in zip(win["flux"], win["err"], strict=True)]
    band = "rgba(120,120,120,0.25)"
    return {
        "data": [
            {
                "x": win["wave"],
                "y": upper,
                "mode": "lines",
                "line": {"width": 0},
                "hoverinfo": "skip",
                "showlegend": False,
            },
            {
                "x": win["wave"],
                "y": lower,
                "mode": "lines",
                "line": {"width": 0},
                "fill": "tonexty",
                "fillcolor": band,
                "name": "1σ error",
                "hoverinfo": "skip",
            },
            {
                "x": win["wave"],
                "y": win["flux"],
                "mode": "lines",
                "name": "spectrum",
                "line": {"color": "#1f3b73", "width": 2, "shape": "hvh"},
            },
        ],
        "layout": {
            "margin": {"l": 50, "r": 10, "t": 10, "b": 40},
            "xaxis": {"title": {"text": "wavelength (Å)"}},
            "yaxis": {"title": {"text": "flux (10⁻¹⁷ erg/s/cm²/Å)"}},
            "shapes": [
                {
                    "type": "line",
                    "x0": candidate.wave,
                    "x1": candidate.wave,
                    "yref": "paper",
                    "y0": 0,
                    "y1": 1,
                    "line": {"color": "#d55e00", "dash": "dot", "width": 1.5},
                }
            ],
            "legend": {"orientation": "h", "y": 1.12},
            "height": 260,
        },
    }
