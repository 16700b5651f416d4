"""The field guide: one simulated example of each kind of candidate, rendered once.

Examples come from the simulator (``mlcore.simulator``), so the guide needs no ingested
data and shows exactly the artefacts the pipeline produces. Each example is one whose
rendered picture shows what its text says (``mlcore.teaching.teaching_check``: the cosmic
ray in exactly one fiber, the sky stripe in every fiber, the [OII] galaxy a blob rather
than a continuum band); a kind the main simulated survey has no such example of is drawn
from a small survey of bright examples of that kind. Rendered PNGs and the spectra go
under ``RENDER_CACHE_DIR/field-guide/v<RENDER_VERSION>.<GUIDE_VERSION>``; ``guide.json``
is written last, so a half-built guide is never read.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
from django.conf import settings
from django.utils.translation import gettext, gettext_noop

from labelapp.services.crowd.gold import FEEDBACK
from mlcore.render import RENDER_VERSION, line_column, render_cutout_png, spectrum_window
from mlcore.survey import REAL_TYPES, SPEC_WAVE, stack_cutouts
from mlcore.teaching import teaching_check

GUIDE_SEED = 7
GUIDE_VERSION = 2  # bump when the choice of examples changes: a new cache directory
GUIDE_N = 400
BRIGHT_N = 60  # examples in the bright-artefact survey of a kind the main one cannot show
BRIGHT_NU = (25.0, 60.0)  # their amplitude range (the simulator's art_nu; default 2.8-80)
# (kind, title, the reason a volunteer picks for it after 'No')
# The titles are stored in English in the cached guide.json and translated when read
# (field_guide_entries), so one cache serves every language.
KINDS: tuple[tuple[str, str, str], ...] = (
    ("lae", gettext_noop("Real line: a distant galaxy (Lyman-alpha)"), ""),
    ("oii", gettext_noop("Real line: a nearer galaxy ([OII])"), ""),
    ("noise", gettext_noop("Noise"), "noise"),
    ("sky", gettext_noop("Sky line"), "sky"),
    ("cosmic", gettext_noop("Cosmic ray"), "cosmic"),
    ("hotcol", gettext_noop("Hot column"), "hotcol"),
    ("meteor", gettext_noop("Meteor or satellite"), "meteor"),
    ("badfiber", gettext_noop("Bad fiber"), "badfiber"),
    ("star", gettext_noop("Star"), "other"),
)
# The order the tutorial walks through (a real line first, then the commonest look-alikes).
TUTORIAL_KINDS = ("lae", "cosmic", "sky", "noise")


def guide_dir() -> Path:
    return Path(settings.RENDER_CACHE_DIR) / "field-guide" / f"v{RENDER_VERSION}.{GUIDE_VERSION}"


def _pick(checks: list[tuple[int, float]], kind: str) -> int | None:
    """Among ``(index, clarity)`` of the examples whose picture shows what the kind's text
    says, a clear one but not the most extreme: a high percentile of clarity (higher for
    real lines, so the first thing a newcomer sees is unmistakable)."""
    if not checks:
        return None
    order = [i for i, _ in sorted(checks, key=lambda t: t[1])]
    q = 0.9 if kind in REAL_TYPES else 0.75
    return order[int(q * (len(order) - 1))]


def _showing(survey, kind: str) -> list[tuple[int, float]]:
    """(index, clarity) of the examples of ``kind`` whose cutout shows its text."""
    kinds = survey.truth["truth_type"].astype(str)
    cutouts = stack_cutouts(survey.im_sum, survey.im_array)
    out = []
    for i in np.nonzero(kinds == kind)[0]:
        col = line_column(survey.im_wave[i], float(survey.catalog["wave"][i]))
        check = teaching_check(kind, cutouts[i], col, strict=True)
        if check.shows:
            out.append((int(i), check.clarity))
    return out


def _bright_examples(kind: str):
    """A small simulated survey of ``kind`` only, with artefacts bright enough to show
    what the text describes (a sky residual near the detection threshold is spread over
    every fiber, a few tenths of a sigma per pixel: too faint to teach with)."""
    from mlcore.simulator import simulate_survey
    from mlcore.simulator.params import SimParams

    params = SimParams(
        real_fraction=0.0, mix={kind: 1.0}, art_nu_min=BRIGHT_NU[0], art_nu_max=BRIGHT_NU[1]
    )
    return simulate_survey(BRIGHT_N, seed=GUIDE_SEED, field="cosmos", params=params)


def build_field_guide() -> list[dict]:
    """Simulate, render and write the guide; returns its entries."""
    from mlcore.simulator import simulate_survey

    out = guide_dir()
    out.mkdir(parents=True, exist_ok=True)
    survey = simulate_survey(GUIDE_N, seed=GUIDE_SEED, field="cosmos")
    entries = []
    for kind, title, reason in KINDS:
        source = survey
        i = _pick(_showing(source, kind), kind)
        if i is None and kind not in REAL_TYPES:
            source = _bright_examples(kind)
            i = _pick(_showing(source, kind), kind)
        if i is None:
            continue
        wave = float(source.catalog["wave"][i])
        cutout = stack_cutouts(source.im_sum[i : i + 1], source.im_array[i : i + 1])[0]
        col = line_column(source.im_wave[i], wave)
        png = render_cutout_png(cutout, line_col=col)
        check = teaching_check(kind, cutout, col, strict=True)
        tmp = out / f".{kind}.png.{os.getpid()}"
        tmp.write_bytes(png)
        os.replace(tmp, out / f"{kind}.png")
        spec = spectrum_window(SPEC_WAVE, source.spec1d[i], source.spec1d_err[i], wave, 80)
        entries.append(
            {
                "kind": kind,
                "title": title,
                "reason": reason,
                "is_real": kind in REAL_TYPES,
                "text": FEEDBACK[kind],
                "wave": round(wave, 1),
                "sn": round(float(source.catalog["sn"][i]), 2),
                "shows": check.why,  # what the picture was measured to show
                "measured": check.numbers,
                "spectrum": spec,
            }
        )
    tmp = out / f".guide.json.{os.getpid()}"
    tmp.write_text(json.dumps(entries))
    os.replace(tmp, out / "guide.json")
    return entries


def field_guide_entries() -> list[dict]:
    """The guide's entries, building it on first use; title and text in the active
    language (the cache holds the English, the catalogue's msgids)."""
    path = guide_dir() / "guide.json"
    entries = json.loads(path.read_text()) if path.exists() else build_field_guide()
    for e in entries:
        # gettext("") would be the catalogue's header
        e["title"] = gettext(e["title"]) if e["title"] else ""
        e["text"] = gettext(e["text"]) if e["text"] else ""
    return entries


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
             "fillcolor": band, "name": gettext("1σ error"), "hoverinfo": "skip"},
            {"x": wave, "y": flux, "mode": "lines", "name": gettext("spectrum"),
             "line": {"color": "#1f3b73", "width": 2, "shape": "hvh"}},
        ],
        "layout": {
            "margin": {"l": 44, "r": 8, "t": 8, "b": 36},
            "xaxis": {"title": {"text": gettext("wavelength (Å)")}},
            "yaxis": {"title": {"text": gettext("flux")}},
            "shapes": [{"type": "line", "x0": centre, "x1": centre, "yref": "paper",
                        "y0": 0, "y1": 1, "line": {"color": "#d55e00", "dash": "dot",
                                                   "width": 1.5}}],
            "showlegend": False,
            "height": 200,
        },
    }  # fmt: skip
