"""What is missing from a cutout, recorded per candidate instead of passed on as sky.

HETDEX's ML file writes a row even when an extraction failed (hetdex_api
``hetdex_tools/get_spec2D.py``: each of ``im_wave``, ``im_sum``, ``im_array`` is filled in its
own ``try``; a failure leaves the row's zeros). A cutout within 50 columns of the CCD edge
(1032 native pixels) is padded with columns whose ``im_wave`` is 0.0 and whose pixels are 0;
with fewer than four fibres the missing ``im_array`` planes are 0. Those zeros are not sky:
ingest records them here, keeps candidates without a picture out of the volunteers' queue,
and the renderer places the line from the real (non-zero) ``im_wave`` columns only.
"""

from __future__ import annotations

import numpy as np

NO_CUTOUT = 1  # im_sum and im_array are all zero: the extraction failed, nothing to show
PADDED = 2  # some columns lie beyond the CCD edge (im_wave 0.0, pixels 0)
MISSING_FIBERS = 4  # one to three im_array planes are all zero (fewer than four fibres)
NO_WAVE = 8  # im_wave is all zero: the column wavelengths are unknown
# The data product has no cutouts at all (HETDEX PDR1: catalogue + 1D spectra). Always set
# with NO_CUTOUT, so everything that keeps picture-less candidates away from volunteers and
# training applies; the word says why there is no picture.
NOT_IN_PRODUCT = 16

FLAG_WORDS = {
    NO_CUTOUT: "no cutout (extraction failed: all pixels zero)",
    PADDED: "columns beyond the CCD edge (zero-padded)",
    MISSING_FIBERS: "fewer than four fibres (zero planes)",
    NO_WAVE: "no column wavelengths (im_wave all zero)",
    NOT_IN_PRODUCT: "no cutout in this data product (catalogue and 1D spectrum only)",
}


def cutout_flags(
    im_sum: np.ndarray, im_array: np.ndarray, im_wave: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """(flags, padded column count) per row, for (n, 9, 100), (n, 4, 9, 100), (n, 100)."""
    n = len(im_sum)
    sum_zero = ~im_sum.reshape(n, -1).any(axis=1)
    plane_zero = ~im_array.reshape(n, im_array.shape[1], -1).any(axis=2)  # (n, 4)
    wave_zero = im_wave == 0
    n_pad = wave_zero.sum(axis=1)
    flags = np.zeros(n, np.int16)
    no_cut = sum_zero & plane_zero.all(axis=1)
    flags[no_cut] |= NO_CUTOUT
    flags[~no_cut & plane_zero.any(axis=1)] |= MISSING_FIBERS
    all_pad = n_pad == im_wave.shape[1]
    flags[all_pad] |= NO_WAVE
    flags[(n_pad > 0) & ~all_pad] |= PADDED
    return flags, np.where(all_pad, 0, n_pad).astype(np.int16)


def describe(flags: int) -> list[str]:
    """Words for a candidate's flags, for the console."""
    if flags & NOT_IN_PRODUCT:  # not a failed extraction: there never was a picture
        return [FLAG_WORDS[NOT_IN_PRODUCT]]
    return [word for bit, word in FLAG_WORDS.items() if flags & bit]


def servable(flags: int) -> bool:
    """Whether volunteers can be shown this candidate: there is a picture to look at."""
    return not flags & NO_CUTOUT


def mask_missing(
    im_sum: np.ndarray, im_array: np.ndarray, im_wave: np.ndarray, flags: np.ndarray
) -> tuple[np.ndarray, np.ndarray, int]:
    """(im_sum, im_array, pixels masked) with the missing pixels set to NaN, in place.

    Missing: every pixel of a row with no cutout, the columns beyond the CCD edge (im_wave
    0.0, unless the whole im_wave is zero: then the column positions are unknown, not
    padded), and the all-zero fibre planes. Rows without flags are returned untouched.
    """
    rows = np.flatnonzero(flags & (NO_CUTOUT | PADDED | MISSING_FIBERS))
    if rows.size == 0:
        return im_sum, im_array, 0
    # in place: the caller's chunk was read for this and is not used elsewhere
    if im_sum.dtype.kind != "f" or im_array.dtype.kind != "f":
        im_sum, im_array = im_sum.astype(np.float32), im_array.astype(np.float32)
    before = int(np.isnan(im_sum[rows]).sum() + np.isnan(im_array[rows]).sum())
    for i in rows:
        if flags[i] & NO_CUTOUT:
            im_sum[i] = np.nan
            im_array[i] = np.nan
            continue
        # dead planes first: NaN counts as non-zero for .any()
        dead = ~im_array[i].reshape(im_array.shape[1], -1).any(axis=1)
        if flags[i] & PADDED:
            pad = im_wave[i] == 0
            im_sum[i][:, pad] = np.nan
            im_array[i][:, :, pad] = np.nan
        if flags[i] & MISSING_FIBERS:
            im_array[i][dead] = np.nan
    after = int(np.isnan(im_sum[rows]).sum() + np.isnan(im_array[rows]).sum())
    return im_sum, im_array, after - before
