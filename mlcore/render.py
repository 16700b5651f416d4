"""Render a candidate the way volunteers see it: summed cutout above the 4 fiber cutouts.

Intensity scaling (fixed, so every candidate looks the same way):
  * NaN pixels are shown as 0 (masked, as ELiXer does).
  * the summed image gets its own zscale interval (IRAF's zscale, via astropy);
  * the 4 fibers share ONE zscale interval computed over all four together, so a fiber
    that is offset high or low (a bad fiber) stands out instead of being rescaled away;
  * values are clipped to the interval, stretched (``linear`` by default; ``asinh``, ``log``
    or ``sqrt`` lift faint features, as DS9 and astropy's stretches do) and mapped onto a
    colour map: viridis by default, a perceptually uniform map that stays readable for the
    common forms of colour blindness and in grey; ``cividis`` (designed for red-green colour
    blindness: blue to yellow, near-identical for deuteranopes) or ``grey`` on request.
The line position is marked with white ticks (black-edged) above and below each panel.
"""

from __future__ import annotations

import io

import numpy as np

from mlcore.survey import CUTOUT_COLS, CUTOUT_ROWS, LINE_COL

# viridis sampled at 9 evenly spaced points (matplotlib's values); interpolated linearly.
_VIRIDIS_ANCHORS = np.array(
    [
        [0.267004, 0.004874, 0.329415],
        [0.282623, 0.140926, 0.457517],
        [0.229739, 0.322361, 0.545706],
        [0.172719, 0.448791, 0.557885],
        [0.127568, 0.566949, 0.550556],
        [0.157851, 0.683765, 0.501686],
        [0.369214, 0.788888, 0.382914],
        [0.678489, 0.863742, 0.189503],
        [0.993248, 0.906157, 0.143936],
    ]
)
_x = np.linspace(0, 1, len(_VIRIDIS_ANCHORS))
_t = np.linspace(0, 1, 256)
VIRIDIS_LUT = np.stack([np.interp(_t, _x, _VIRIDIS_ANCHORS[:, c]) for c in range(3)], axis=1)
VIRIDIS_LUT = (VIRIDIS_LUT * 255).round().astype(np.uint8)

# cividis (Nunez, Anderton & Renslow 2018) as matplotlib publishes it, sampled at every 16th
# of its 256 entries (position, r, g, b); interpolated linearly.
_CIVIDIS_ANCHORS = np.array(
    [
        [0.0000, 0.0000, 0.1351, 0.3048],
        [0.0627, 0.0000, 0.1788, 0.4148],
        [0.1255, 0.1034, 0.2204, 0.4358],
        [0.1882, 0.1951, 0.2644, 0.4259],
        [0.2510, 0.2637, 0.3078, 0.4228],
        [0.3137, 0.3242, 0.3513, 0.4263],
        [0.3765, 0.3808, 0.3952, 0.4357],
        [0.4392, 0.4352, 0.4398, 0.4511],
        [0.5020, 0.4887, 0.4853, 0.4710],
        [0.5647, 0.5478, 0.5319, 0.4717],
        [0.6275, 0.6091, 0.5798, 0.4636],
        [0.6902, 0.6720, 0.6293, 0.4480],
        [0.7529, 0.7365, 0.6806, 0.4240],
        [0.8157, 0.8027, 0.7340, 0.3902],
        [0.8784, 0.8707, 0.7896, 0.3433],
        [0.9412, 0.9411, 0.8475, 0.2758],
        [1.0000, 0.9957, 0.9093, 0.2178],
    ]
)
CIVIDIS_LUT = np.stack(
    [np.interp(_t, _CIVIDIS_ANCHORS[:, 0], _CIVIDIS_ANCHORS[:, c + 1]) for c in range(3)], axis=1
)
CIVIDIS_LUT = (CIVIDIS_LUT * 255).round().astype(np.uint8)
GREY_LUT = np.repeat(np.arange(256, dtype=np.uint8)[:, None], 3, axis=1)

COLOUR_MAPS: dict[str, np.ndarray] = {
    "viridis": VIRIDIS_LUT,
    "cividis": CIVIDIS_LUT,
    "grey": GREY_LUT,
}
STRETCHES = ("linear", "asinh", "log", "sqrt")
DEFAULT_STRETCH, DEFAULT_CMAP = "linear", "viridis"
# How hard the non-linear stretches lift faint values (astropy's defaults: AsinhStretch
# a=0.1; a gentler log than its a=1000, which turns all the sky noise bright).
_ASINH_A, _LOG_A = 0.1, 100.0


def check_view(stretch: str, cmap: str) -> None:
    """Raise ValueError (saying what is allowed) unless ``stretch`` and ``cmap`` are known."""
    if stretch not in STRETCHES:
        raise ValueError(f"stretch must be one of {', '.join(STRETCHES)}, not {stretch!r}")
    if cmap not in COLOUR_MAPS:
        raise ValueError(f"cmap must be one of {', '.join(COLOUR_MAPS)}, not {cmap!r}")


def apply_stretch(x: np.ndarray, stretch: str) -> np.ndarray:
    """Values in [0, 1] -> [0, 1] through ``stretch`` (monotonic, 0 -> 0 and 1 -> 1)."""
    if stretch == "linear":
        return x
    if stretch == "sqrt":
        return np.sqrt(x)
    if stretch == "asinh":
        return np.arcsinh(x / _ASINH_A) / np.arcsinh(1.0 / _ASINH_A)
    if stretch == "log":
        return np.log1p(_LOG_A * x) / np.log1p(_LOG_A)
    raise ValueError(f"stretch must be one of {', '.join(STRETCHES)}, not {stretch!r}")


RENDER_VERSION = 1  # bump when the look changes, so on-disk caches are rebuilt


def zscale_limits(pixels: np.ndarray) -> tuple[float, float]:
    """IRAF zscale interval of ``pixels`` (NaN ignored); a flat image gets a unit range."""
    from astropy.visualization import ZScaleInterval

    finite = pixels[np.isfinite(pixels)]
    if finite.size == 0:
        return 0.0, 1.0
    lo, hi = ZScaleInterval().get_limits(finite.astype(np.float32))
    if not hi > lo:
        lo, hi = float(finite.min()), float(finite.max())
        if not hi > lo:
            hi = lo + 1.0
    return float(lo), float(hi)


def view_limits(pixels: np.ndarray, stretch: str = DEFAULT_STRETCH) -> tuple[float, float]:
    """The interval a stretch maps onto the colour map.

    ``linear``: IRAF zscale (the noise fills the range; anything brighter is clipped). The
    non-linear stretches run from the sky level (the median) to the brightest pixel, as
    asinh and log are used on sky images: the sky dark, faint excesses lifted out of it,
    and what linear clips (a cosmic ray's sharp core against a line's soft blob) keeping
    its shape."""
    lo, hi = zscale_limits(pixels)
    if stretch == "linear":
        return lo, hi
    finite = pixels[np.isfinite(pixels)]
    if finite.size == 0:
        return lo, hi
    sky, top = float(np.median(finite)), float(finite.max())
    return (sky, top) if top > sky else (lo, hi)


def colourise(
    image: np.ndarray,
    lo: float,
    hi: float,
    *,
    stretch: str = DEFAULT_STRETCH,
    cmap: str = DEFAULT_CMAP,
) -> np.ndarray:
    """(H, W) values -> (H, W, 3) uint8: clipped to ``lo``..``hi``, stretched, colour-mapped."""
    check_view(stretch, cmap)
    img = np.nan_to_num(image.astype(np.float32), nan=0.0)
    idx = apply_stretch(np.clip((img - lo) / (hi - lo), 0, 1), stretch) * 255
    return COLOUR_MAPS[cmap][idx.round().astype(np.int32)]


def cutout_rgb(
    cutouts: np.ndarray,
    *,
    line_col: float | None = LINE_COL,
    px_col: int = 5,
    px_row: int = 6,
    gap: int = 8,
    stretch: str = DEFAULT_STRETCH,
    cmap: str = DEFAULT_CMAP,
) -> np.ndarray:
    """(5, 9, 100) cutouts -> an RGB image: summed panel, then the 4 fibers, ticks at the line.

    ``stretch`` and ``cmap`` (see :data:`STRETCHES`, :data:`COLOUR_MAPS`) change the look
    only: the zscale intervals are the same for every view."""
    check_view(stretch, cmap)
    cutouts = np.nan_to_num(np.asarray(cutouts, dtype=np.float32), nan=0.0)
    if cutouts.shape[1:] != (CUTOUT_ROWS, CUTOUT_COLS):
        raise ValueError(f"expected cutouts of shape (5, 9, 100), got {cutouts.shape}")
    limits = [view_limits(cutouts[0], stretch)] + [view_limits(cutouts[1:], stretch)] * (
        len(cutouts) - 1
    )
    width = CUTOUT_COLS * px_col
    panel_h = CUTOUT_ROWS * px_row
    height = len(cutouts) * panel_h + (len(cutouts) + 1) * gap
    canvas = np.full((height, width, 3), 24, dtype=np.uint8)  # dark grey background
    for k, (panel, (lo, hi)) in enumerate(zip(cutouts, limits, strict=True)):
        rgb = colourise(panel, lo, hi, stretch=stretch, cmap=cmap)
        rgb = rgb.repeat(px_row, axis=0).repeat(px_col, axis=1)  # crisp nearest-neighbour
        top = gap + k * (panel_h + gap)
        canvas[top : top + panel_h] = rgb
        if line_col is not None:
            x = int(round((line_col + 0.5) * px_col))
            x0, x1 = max(0, x - 2), min(width, x + 2)
            for y0 in (top - gap + 1, top + panel_h + 1):  # tick above and below
                canvas[y0 : y0 + gap - 2, x0 - 1 : x1 + 1] = 0
                canvas[y0 + 1 : y0 + gap - 3, x0:x1] = 255
    return canvas


def render_cutout_png(cutouts: np.ndarray, *, line_col: float | None = LINE_COL, **kw) -> bytes:
    """PNG bytes of :func:`cutout_rgb`."""
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(cutout_rgb(cutouts, line_col=line_col, **kw)).save(
        buf, format="PNG", optimize=True
    )
    return buf.getvalue()


def line_column(im_wave: np.ndarray, wave: float) -> float | None:
    """Fractional column of wavelength ``wave`` in a cutout with column wavelengths ``im_wave``.

    ``im_wave`` is the native CCD wavelength of each column, 0.0 in columns padded beyond the
    CCD edge: only the real columns place the line. None when fewer than two columns are real
    or the line falls outside them (no tick is better than a wrong one).
    """
    im_wave = np.asarray(im_wave, np.float64)
    cols = np.flatnonzero(im_wave > 0)
    if cols.size < 2:
        return None
    w = im_wave[cols]
    if not (w[0] <= wave <= w[-1]) or np.any(np.diff(w) <= 0):
        return None
    return float(np.interp(wave, w, cols.astype(np.float64)))


def spectrum_window(
    spec_wave: np.ndarray, flux: np.ndarray, err: np.ndarray, centre: float, half_width: float = 80
) -> dict[str, list[float]]:
    """The 1D spectrum within ``half_width`` A of the line, as plain lists for JSON."""
    sel = np.abs(spec_wave - centre) <= half_width
    as_list = lambda a: [round(float(v), 4) for v in np.nan_to_num(a[sel])]  # noqa: E731
    return {"wave": as_list(spec_wave), "flux": as_list(flux), "err": as_list(err)}
