"""The survey simulator: data contract, determinism, catalogue cuts and the physics that the
rest of the platform relies on (purity vs S/N, artefact signatures, fields, external cat)."""

from __future__ import annotations

import dataclasses
from functools import lru_cache

import numpy as np

from mlcore.simulator import FIELD_PARAMS, SIMULATOR_VERSION, SimParams, simulate_survey
from mlcore.simulator.instrument import trace_profile
from mlcore.survey import (
    ARRAY_SHAPES,
    CATALOG_COLUMNS,
    CONTAMINANT_TYPES,
    EXTERNAL_COLUMNS,
    LINE_COL,
    LYA_REST,
    OII_REST,
    SPEC_WAVE,
    TRUTH_COLUMNS,
    TRUTH_TYPES,
    USABLE_WAVE_MAX,
    USABLE_WAVE_MIN,
    regime_of,
)

N = 4000


@lru_cache(maxsize=4)
def _survey(n: int = N, seed: int = 11, field: str = "cosmos"):
    return simulate_survey(n, seed=seed, field=field)


def test_shapes_dtypes_and_contract():
    s = _survey()
    assert len(s) == N
    assert set(s.catalog) == set(CATALOG_COLUMNS)
    for k, dt in CATALOG_COLUMNS.items():
        assert s.catalog[k].dtype == dt, k
        assert s.catalog[k].shape == (N,), k
    for k, shape in ARRAY_SHAPES.items():
        a = getattr(s, k)
        assert a.dtype == np.float32, k
        assert a.shape == (N, *shape), k
        assert np.isfinite(a).all(), k
    assert set(s.truth) == set(TRUTH_COLUMNS)
    for k, dt in TRUTH_COLUMNS.items():
        assert s.truth[k].dtype == dt, k
    assert set(np.unique(s.truth["truth_type"])) == set(TRUTH_TYPES)
    assert set(s.external) == set(EXTERNAL_COLUMNS)
    for k, dt in EXTERNAL_COLUMNS.items():
        assert s.external[k].dtype == dt, k
    assert (s.spec1d_err > 0).all()


def test_ids_positions_and_meta():
    s = _survey()
    c = s.catalog
    assert len(np.unique(c["detectid"])) == N
    shots = np.unique(c["shotid"])
    assert 1 < len(shots) < N / 20  # candidates share shots
    assert ((shots // 1000 >= 20170101) & (shots // 1000 <= 20231231)).all()
    assert (c["field"] == "cosmos").all()
    assert np.abs(c["ra"] - 150.1).max() < 1.5 and np.abs(c["dec"] - 2.2).max() < 1.5
    # the line sits near column 50 of the cutout, on the 2 A grid
    assert np.abs(s.im_wave[:, LINE_COL] - c["wave"]).max() <= 6.0
    assert np.allclose(np.diff(s.im_wave, axis=1), 2.0)
    assert ((c["wave"] >= USABLE_WAVE_MIN) & (c["wave"] <= USABLE_WAVE_MAX)).all()
    m = s.meta
    assert m["simulator_version"] == SIMULATOR_VERSION and m["seed"] == 11 and m["n"] == N
    assert all(isinstance(v, str | int | float | bool) for v in m.values())
    assert m["sn_min"] == 4.8


def test_deterministic_for_a_seed_and_seeds_differ():
    a = simulate_survey(500, seed=5, field="goods-n")
    b = simulate_survey(500, seed=5, field="goods-n")
    c = simulate_survey(500, seed=6, field="goods-n")
    for k in ARRAY_SHAPES:
        assert np.array_equal(getattr(a, k), getattr(b, k)), k
    for k in CATALOG_COLUMNS:
        assert np.array_equal(a.catalog[k], b.catalog[k]), k
    assert np.array_equal(a.truth["truth_type"], b.truth["truth_type"])
    assert not np.array_equal(a.im_sum, c.im_sum)
    assert not np.array_equal(a.catalog["sn"], c.catalog["sn"])


def test_catalogue_cuts_respected():
    c = _survey().catalog
    p = SimParams()
    assert (c["sn"] >= p.sn_min).all()
    assert (c["chi2"] <= p.chi2_max).all()
    assert ((c["linewidth"] >= p.linewidth_min) & (c["linewidth"] <= p.linewidth_max)).all()
    low = c["sn"] <= p.low_sn_max
    assert (c["chi2"][low] <= p.low_chi2_max).all()
    assert (c["linewidth"][low] <= p.low_linewidth_max).all()
    # sn is what the fit measured, not a stamped label
    assert np.allclose(c["sn"], c["flux"] / c["flux_err"], rtol=1e-4)


def test_purity_falls_towards_threshold_within_targets():
    s = _survey()
    p = SimParams()
    reg = regime_of(s.catalog["sn"])
    real = s.truth["truth_real"]
    low, high = real[reg == "low"].mean(), real[reg == "high"].mean()
    assert low < high - 0.2
    tol = 0.05
    assert p.purity_low_target[0] - tol <= low <= p.purity_low_target[1] + tol
    assert p.purity_high_target[0] - tol <= high <= p.purity_high_target[1] + tol
    # noise peaks are genuine Gaussian fluctuations: nearly all just above the threshold
    noise_sn = s.catalog["sn"][s.truth["truth_type"] == "noise"]
    assert np.mean(noise_sn > 5.5) < 0.15
    assert np.median(noise_sn) < 5.2


def test_purity_follows_real_fraction_parameter():
    p = dataclasses.replace(SimParams(), real_fraction=0.5)
    s = simulate_survey(1500, seed=2, params=p)
    assert abs(s.truth["truth_real"].mean() - 0.5) < 0.01
    reg = regime_of(s.catalog["sn"])
    assert s.truth["truth_real"][reg == "low"].mean() < 0.4


def test_sky_residuals_at_known_bad_wavelengths():
    s = _survey()
    p = SimParams()
    wave = s.catalog["wave"][s.truth["truth_type"] == "sky"]
    assert len(wave) > 50
    hits = np.zeros(len(wave), dtype=bool)
    for lo, hi in p.sky_windows:
        inside = (wave >= lo - 6) & (wave <= hi + 6)  # fitted centre within a few A
        assert inside.sum() > 5, (lo, hi)
        hits |= inside
    assert hits.all()
    # a sky residual fills all rows: its edge rows carry far more of the line than an LAE's
    assert _edge_row_ratio(s, "sky") > 2 * _edge_row_ratio(s, "lae")


def _edge_row_ratio(s, ttype: str) -> float:
    """Median (edge rows)/(central row) line excess in im_sum near the centre columns."""
    m = (s.truth["truth_type"] == ttype) & (s.catalog["sn"] > 6)
    cut = s.im_sum[m][:, :, LINE_COL - 3 : LINE_COL + 4].sum(2)
    base = np.median(s.im_sum[m][:, :, :20], axis=2) * 7
    ex = cut - base
    return float(np.median((ex[:, [0, 1, 7, 8]].mean(1)) / np.maximum(ex[:, 4], 1e-6)))


def test_contaminant_mix_matches_configuration():
    s = _survey()
    p = SimParams()
    shares = p.contaminant_shares(FIELD_PARAMS["cosmos"])
    tt = s.truth["truth_type"]
    for t in CONTAMINANT_TYPES:
        expect = (1 - p.real_fraction) * shares[t]
        assert abs(np.mean(tt == t) - expect) < 0.005, t
    assert abs(s.truth["truth_real"].mean() - p.real_fraction) < 0.005


def test_real_lines_redshifts_and_wavelengths():
    s = _survey()
    tt, z, w = s.truth["truth_type"], s.truth["truth_z"], s.catalog["wave"]
    lae, oii = tt == "lae", tt == "oii"
    assert ((z[lae] > 1.9) & (z[lae] < 3.5)).all()
    assert ((z[oii] >= 0) & (z[oii] < 0.5)).all()
    assert np.abs(w[lae] - LYA_REST * (1 + z[lae])).max() < 10
    assert np.abs(w[oii] - OII_REST * (1 + z[oii])).max() < 10
    assert np.isnan(z[~s.truth["truth_real"]]).all()
    assert (s.truth["truth_flux"][lae] > 0).all()
    assert (s.truth["truth_flux"][~s.truth["truth_real"]] == 0).all()
    # LAE widths: lognormal around ~3 A; [OII] sits on more continuum than LAEs
    assert 2.4 < np.median(s.catalog["linewidth"][lae]) < 3.8
    c = s.catalog["continuum"]
    assert np.median(c[oii]) > 2 * np.median(c[lae])


def test_external_catalogue_is_a_subset_of_true_laes():
    s = _survey()
    ext, c = s.external, s.catalog
    lae = s.truth["truth_type"] == "lae"
    n_ext = len(ext["ra"])
    assert 0.01 * lae.sum() < n_ext < 0.2 * lae.sum()
    cosd = np.cos(np.radians(c["dec"][lae]))
    matched = np.zeros(lae.sum(), dtype=bool)
    for ra, dec, z in zip(ext["ra"], ext["dec"], ext["z"], strict=True):
        d = np.hypot((c["ra"][lae] - ra) * cosd, c["dec"][lae] - dec) * 3600
        j = np.argmin(d)
        assert d[j] < 2.0
        assert abs(s.truth["truth_z"][lae][j] - z) < 0.01
        matched[j] = True
    # brighter LAEs are confirmed more often
    sn = c["sn"][lae]
    assert matched[sn > 8].mean() > matched[sn < 5.5].mean()
    assert set(np.unique(ext["quality"])) <= {0, 1}


def test_fields_have_their_own_parameters_and_ids():
    fp = FIELD_PARAMS
    assert len({f.noise_scale for f in fp.values()}) == len(fp)
    assert len({f.sky_strength for f in fp.values()}) == len(fp)
    assert len({(f.seeing_mean, f.seeing_sd) for f in fp.values()}) == len(fp)
    a = simulate_survey(800, seed=3, field="goods-n")
    b = simulate_survey(800, seed=3, field="dex-fall")
    assert np.median(b.catalog["flux_err"]) > np.median(a.catalog["flux_err"])  # noisier
    assert np.mean(b.truth["truth_type"] == "sky") > np.mean(a.truth["truth_type"] == "sky")
    assert not set(a.catalog["detectid"]) & set(b.catalog["detectid"])
    assert np.abs(a.catalog["dec"] - 62.24).max() < 1 and np.abs(b.catalog["dec"]).max() < 2


def _assert_spec1d_is_the_extraction(s) -> np.ndarray:
    """The first 200 candidates' 1D spectra are the optimal extraction of their summed
    cutouts, pixel for pixel where the cutout's wavelengths fall on the 1D grid. Returns
    the extractions."""
    tau = trace_profile(SimParams())
    ext = np.einsum("r,nrc->nc", tau, s.im_sum[:200]) / (tau @ tau)
    k = np.round((s.im_wave[:200] - SPEC_WAVE[0]) / 2).astype(int)
    inside = (k >= 0) & (k < len(SPEC_WAVE))
    rows = np.broadcast_to(np.arange(200)[:, None], k.shape)
    got = s.spec1d[:200][rows[inside], k[inside]]
    assert np.allclose(got, ext[inside], atol=1e-3 * np.abs(ext).max())
    return ext


def test_spec1d_is_the_extraction_of_the_summed_cutout():
    _assert_spec1d_is_the_extraction(_survey())


def test_artefact_signatures_in_the_cutouts():
    s = _survey()
    tt = s.truth["truth_type"]
    # masked cosmic rays: exact zeros in one fiber, and only for cosmics
    zero = (s.im_array == 0).any(axis=(1, 2, 3))
    assert zero[tt == "cosmic"].any()
    assert not zero[tt != "cosmic"].any()
    # hot columns run through all 9 rows; LAE light follows the fiber trace
    assert _edge_row_ratio(s, "hotcol") > 3 * _edge_row_ratio(s, "lae")
    # stars sit on bright continuum in their windows
    star = tt == "star"
    assert np.median(s.catalog["continuum"][star]) > 5 * np.median(
        s.catalog["continuum"][tt == "lae"]
    )


def test_progress_is_reported():
    calls = []
    simulate_survey(300, seed=1, progress=lambda d, t: calls.append((d, t)))
    assert calls[0] == (0, 300) and calls[-1] == (300, 300)
    assert all(b[0] >= a[0] for a, b in zip(calls, calls[1:], strict=False))


@lru_cache(maxsize=1)
def _centred_pair():
    p = SimParams(centre_on_detected=True)
    return simulate_survey(600, seed=13), simulate_survey(600, seed=13, params=p)


def test_centre_on_detected_cuts_around_the_fitted_wavelength():
    base, det = _centred_pair()
    # the catalogue (detection and cuts) is the same; only where the cutout sits moves
    for k in ("wave", "sn", "flux", "linewidth"):
        assert np.array_equal(base.catalog[k], det.catalog[k])
    assert np.array_equal(base.truth["truth_type"], det.truth["truth_type"])
    off_det = det.catalog["wave"] - det.im_wave[:, LINE_COL]
    off_base = base.catalog["wave"] - base.im_wave[:, LINE_COL]
    assert np.abs(off_det).max() <= 1.0 + 1e-3  # nearest grid pixel of the detection
    assert np.abs(off_base).max() > 1.5  # the default centres on the trial, not the fit
    assert det.meta["centre_on_detected"] is True and base.meta["centre_on_detected"] is False


def test_centre_on_detected_keeps_pixels_and_1d_spectrum_consistent():
    _, s = _centred_pair()
    ext = _assert_spec1d_is_the_extraction(s)
    # bright real lines peak at the cutout centre
    bright = np.flatnonzero(s.truth["truth_real"] & (s.catalog["sn"] > 8))[:50]
    peak = ext[bright[bright < 200], LINE_COL - 10 : LINE_COL + 11].argmax(1) - 10
    assert np.abs(peak).max() <= 3
