"""Does a teaching picture show what its text says? Measured on the pixels volunteers see.

A field-guide example or a gold standard comes with a sentence ("a bright dot in one fiber
only", "a thin vertical stripe through every fiber", "a blob at the marks shared by
several fibers"). The simulator's truth type does not guarantee that the rendered cutout
shows it: a cosmic ray whose hit pixels the pipeline masked in its fiber shows in the summed
strip only; a faint sky residual is lost in the noise; a bright [OII] galaxy with continuum
looks like a star's band. :func:`teaching_check` measures, on one (5, 9, 100) cutout (the
summed image first, then the 4 fibers, as rendered), the property the kind's text names, in
units of the cutout's own noise, and says whether it holds and how clearly.

Numbers (noise sigma from the median absolute deviation of the columns away from the line;
the window is +-``HALF_WINDOW`` columns around the line):

* ``fiber_peak[k]``: the brightest window pixel of fiber k above its row's background.
* ``fiber_sum[k]``: the S/N of the window's summed excess in fiber k.
* ``sum_sn``: the same in the summed image; ``band_sn``: the S/N of the summed image's
  level away from the line (a continuum band along the whole strip).
* ``column_sn[k]``: the S/N of the line column's excess over all 9 rows of fiber k (a
  stripe straight up and down).

numpy only.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from mlcore.survey import CUTOUT_COLS, CUTOUT_ROWS, LINE_COL

HALF_WINDOW = 3  # columns either side of the line: +-6 A
BACKGROUND_GAP = 10  # columns this far from the line or more are background
CLEAR = 5.0  # a feature this many sigma above the noise is plain to see
ABSENT = 3.0  # a summed feature under this is not seen
PEAK_ABSENT = 4.0  # a single pixel under this is not seen (the noise's own highest pixel
#                    of the 63 in a window is ~2.5 sigma, above 4 in under 1 % of windows)
STRIPE_EACH = 2.0  # a sky stripe's least significant fiber (together they are CLEAR)
COSMIC_PEAK = 8.0  # the one fiber's dot of a cosmic ray: unmistakable


@dataclass
class TeachingCheck:
    """Whether the cutout shows what the text of ``kind`` says, and how clearly."""

    kind: str
    shows: bool
    clarity: float  # the defining feature's significance (sigma); 0 where it does not show
    why: str  # what was measured, for a person reading a report
    numbers: dict = field(default_factory=dict)


def _noise(panel: np.ndarray, bg: np.ndarray) -> float:
    pix = panel[:, bg]
    mad = np.median(np.abs(pix - np.median(pix)))
    return float(max(1.4826 * mad, 1e-6))


def measure(cutout: np.ndarray, line_col: float | None = LINE_COL) -> dict:
    """The numbers of the module docstring for one (5, 9, 100) cutout."""
    cut = np.nan_to_num(np.asarray(cutout, dtype=np.float64), nan=0.0)
    if cut.ndim != 3 or cut.shape[1:] != (CUTOUT_ROWS, CUTOUT_COLS) or len(cut) < 2:
        raise ValueError(f"expected a (5, 9, 100) cutout, got {cut.shape}")
    c = int(round(LINE_COL if line_col is None else line_col))
    cols = np.arange(CUTOUT_COLS)
    win = np.abs(cols - c) <= HALF_WINDOW
    bg = np.abs(cols - c) >= BACKGROUND_GAP
    n_win = int(win.sum())
    out: dict = {"fiber_peak": [], "fiber_sum": [], "column_sn": []}
    for k, panel in enumerate(cut):
        sigma = _noise(panel, bg)
        level = np.median(panel[:, bg], axis=1, keepdims=True)  # each row's background
        excess = panel[:, win] - level
        peak = float(excess.max() / sigma)
        total = float(excess.sum() / (sigma * np.sqrt(excess.size)))
        # the stripe: the best single column of the window, over the whole strip height
        column = float((excess.sum(axis=0) / (sigma * np.sqrt(CUTOUT_ROWS))).max())
        if k == 0:
            out["sum_peak"], out["sum_sn"] = peak, total
            # a band along the whole strip: the background level itself, against the noise
            out["band_sn"] = float(
                np.median(panel[:, bg]) / sigma * np.sqrt(CUTOUT_ROWS * 2 * HALF_WINDOW + 1)
            )
        else:
            out["fiber_peak"].append(peak)
            out["fiber_sum"].append(total)
            out["column_sn"].append(column)
    out["n_window"] = n_win
    return out


def teaching_check(
    kind: str, cutout: np.ndarray, line_col: float | None = LINE_COL, *, strict: bool = False
) -> TeachingCheck:
    """Does ``cutout`` show what the text for ``kind`` says? (gold.FEEDBACK in labelapp).

    ``strict`` is the field guide's bar, a picture shown on its own to teach: a sky stripe
    clear in each fiber by itself (gold, met in the flow of classifying, needs it in each
    fiber and clear over the four)."""
    m = measure(cutout, line_col)
    peaks = np.array(m["fiber_peak"])
    sums = np.array(m["fiber_sum"])
    cols = np.array(m["column_sn"])
    numbers = {k: (np.round(v, 2).tolist() if isinstance(v, list) else round(v, 2))
               for k, v in m.items()}  # fmt: skip
    if kind == "cosmic":
        # "a bright dot in one fiber only": one fiber's peak clear, every other one absent,
        # and the dot visible in the summed strip as well
        order = np.argsort(peaks)[::-1]
        top, second = peaks[order[0]], peaks[order[1]]
        shows = top >= COSMIC_PEAK and second < PEAK_ABSENT and m["sum_peak"] >= CLEAR
        why = f"brightest fiber {top:.1f} sigma, next {second:.1f}, summed {m['sum_peak']:.1f}"
        clarity = min(top - second, m["sum_peak"]) if shows else 0.0
    elif kind == "sky":
        # "a thin vertical stripe through every fiber at the same wavelength": in each
        # fiber (none under STRIPE_EACH), and clear over the four together
        weakest = float(cols.min())
        together = float(cols.sum() / np.sqrt(len(cols)))
        shows = weakest >= (CLEAR if strict else STRIPE_EACH) and together >= CLEAR
        why = (
            f"stripe in each fiber {np.round(cols, 1).tolist()} sigma, "
            f"{together:.1f} sigma together"
        )
        clarity = min(together, 2 * weakest) if shows else 0.0
    elif kind in ("lae", "oii"):
        # "a compact glow / blob at the marks, shared by several fibers": the summed image's
        # window clear, in two fibers or more; for [OII] a blob, not a continuum band (the
        # blob stands out of the strip's own level by more than that level)
        n_fibers = int((sums >= ABSENT).sum())
        band = max(m["band_sn"], 0.0)
        shows = m["sum_sn"] >= CLEAR and n_fibers >= 2 and m["sum_sn"] >= 2 * band
        why = (
            f"summed window {m['sum_sn']:.1f} sigma, in {n_fibers} fibers, "
            f"band along the strip {band:.1f} sigma"
        )
        clarity = m["sum_sn"] - band if shows else 0.0
    elif kind == "noise":
        # "the middle is no brighter than the speckles around it"
        shows = m["sum_peak"] < CLEAR and float(sums.max()) < CLEAR
        why = f"summed peak {m['sum_peak']:.1f} sigma, fibers up to {sums.max():.1f}"
        clarity = CLEAR - m["sum_peak"] if shows else 0.0
    else:  # hotcol, meteor, badfiber, star: something to see, in the fibers or the sum
        best = max(float(peaks.max()), m["sum_peak"], abs(m["band_sn"]))
        shows = best >= CLEAR
        why = f"strongest feature {best:.1f} sigma"
        clarity = best if shows else 0.0
    return TeachingCheck(kind=kind, shows=bool(shows), clarity=float(clarity), why=why,
                         numbers=numbers)  # fmt: skip
