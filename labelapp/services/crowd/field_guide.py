"""The field guide: one simulated example of each kind of candidate, rendered once.

Examples come from the simulator (``mlcore.simulator``), so the guide needs no ingested
data and shows exactly the artefacts the pipeline produces. Rendered PNGs and the spectra
go under ``RENDER_CACHE_DIR/field-guide/v<RENDER_VERSION>``; ``guide.json`` is written last,
so a half-built guide is never read.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
from django.conf import settings

from labelapp.services.crowd.gold import FEEDBACK
from mlcore.render import RENDER_VERSION, line_column, render_cutout_png, spectrum_window
from mlcore.survey import REAL_TYPES, SPEC_WAVE, stack_cutouts

GUIDE_SEED = 7
GUIDE_N = 400
# (kind, title, the reason a volunteer picks for it after 'No')
KINDS: tuple[tuple[str, str, str], ...] = (
    ("lae", "Real line: a distant galaxy (Lyman-alpha)", ""),
    ("oii", "Real line: a nearer galaxy ([OII])", ""),
    ("noise", "Noise", "noise"),
    ("sky", "Sky line", "sky"),
    ("cosmic", "Cosmic ray", "cosmic"),
    ("hotcol", "Hot column", "hotcol"),
    ("meteor", "Meteor or satellite", "meteor"),
    ("badfiber", "Bad fiber", "badfiber"),
    ("star", "Star", "other"),
)
# The order the tutorial walks through (a real line first, then the commonest look-alikes).
TUTORIAL_KINDS = ("lae", "cosmic", "sky", "noise")


def guide_dir() -> Path:
    return Path(settings.RENDER_CACHE_DIR) / "field-guide" / f"v{RENDER_VERSION}"


def _pick(kinds: np.ndarray, sn: np.ndarray, kind: str) -> int | None:
    idx = np.nonzero(kinds == kind)[0]
    if len(idx) == 0:
        return None
    # A clear example, but not the most extreme one: a high percentile of S/N (higher for
    # real lines, so the first thing a newcomer sees is unmistakable).
    order = idx[np.argsort(sn[idx])]
    q = 0.98 if kind in REAL_TYPES else 0.75
    return int(order[int(q * (len(order) - 1))])


def build_field_guide() -> list[dict]:
    """Simulate, render and write the guide; returns its entries."""
    from mlcore.simulator import simulate_survey

    out = guide_dir()
    out.mkdir(parents=True, exist_ok=True)
    survey = simulate_survey(GUIDE_N, seed=GUIDE_SEED, field="cosmos")
    kinds = survey.truth["truth_type"].astype(str)
    sn = survey.catalog["sn"]
    cutouts = stack_cutouts(survey.im_sum, survey.im_array)
    entries = []
    for kind, title, reason in KINDS:
        i = _pick(kinds, sn, kind)
        if i is None:
            continue
        wave = float(survey.catalog["wave"][i])
        png = render_cutout_png(cutouts[i], line_col=line_column(survey.im_wave[i], wave))
        tmp = out / f".{kind}.png.{os.getpid()}"
        tmp.write_bytes(png)
        os.replace(tmp, out / f"{kind}.png")
        spec = spectrum_window(SPEC_WAVE, survey.spec1d[i], survey.spec1d_err[i], wave, 80)
        entries.append(
            {
                "kind": kind,
                "title": title,
                "reason": reason,
                "is_real": kind in REAL_TYPES,
                "text": FEEDBACK[kind],
                "wave": round(wave, 1),
                "sn": round(float(sn[i]), 2),
                "spectrum": spec,
            }
        )
    tmp = out / f".guide.json.{os.getpid()}"
    tmp.write_text(json.dumps(entries))
    os.replace(tmp, out / "guide.json")
    return entries


def field_guide_entries() -> list[dict]:
    """The guide's entries, building it on first use."""
    path = guide_dir() / "guide.json"
    if path.exists():
        return json.loads(path.read_text())
    return build_field_guide()


def field_guide_png(kind: str) -> Path | None:
    if kind not in {k for k, _, _ in KINDS}:
        return None
    field_guide_entries()
    path = guide_dir() / f"{kind}.png"
    return path if path.exists() else None


def spectrum_figure_from_window(win: dict, wave: float) -> dict:
    """A plotly figure like rendering.spectrum_figure, for a precomputed window."""
    upper = [f + e for f, e in zip(win["flux"], win["err"], strict=True)]
    lower = [f - e for f, e in zip(win["flux"], win["err"], strict=True)]
    return figure_from_arrays(win["wave"], win["flux"], upper, lower, wave)


def figure_from_arrays(wave, flux, upper, lower, centre: float) -> dict:
    band = "rgba(120,120,120,0.25)"
    return {
        "data": [
            {"x": wave, "y": upper, "mode": "lines", "line": {"width": 0},
             "hoverinfo": "skip", "showlegend": False},
            {"x": wave, "y": lower, "mode": "lines", "line": {"width": 0}, "fill": "tonexty",
             "fillcolor": band, "name": "1σ error", "hoverinfo": "skip"},
            {"x": wave, "y": flux, "mode": "lines", "name": "spectrum",
             "line": {"color": "#1f3b73", "width": 2, "shape": "hvh"}},
        ],
        "layout": {
            "margin": {"l": 44, "r": 8, "t": 8, "b": 36},
            "xaxis": {"title": {"text": "wavelength (Å)"}},
            "yaxis": {"title": {"text": "flux"}},
            "shapes": [{"type": "line", "x0": centre, "x1": centre, "yref": "paper",
                        "y0": 0, "y1": 1, "line": {"color": "#d55e00", "dash": "dot",
                                                   "width": 1.5}}],
            "showlegend": False,
            "height": 200,
        },
    }  # fmt: skip
