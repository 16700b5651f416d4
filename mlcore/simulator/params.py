"""Every tunable number of the simulator, in one place.

[S] marks values taken from public HETDEX material, [E] marks estimates (see
``shared/SIMULATOR.md``). Everything is a plain dataclass field so a caller can override a
value with ``dataclasses.replace`` and the whole set can be flattened into file headers.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields

from mlcore.survey import CONTAMINANT_TYPES, FIELDS


@dataclass(frozen=True)
class FieldParams:
    """What differs between survey fields (a model trained on one is tested on others)."""

    ra0: float  # footprint centre, deg
    dec0: float
    ra_half: float  # half-width of the footprint in RA (deg on the sky) and Dec
    dec_half: float
    noise_scale: float  # multiplies the instrument noise [E]
    seeing_mean: float  # Moffat FWHM per shot ~ N(mean, sd), arcsec [E]
    seeing_sd: float
    sky_strength: float  # sky-residual share and amplitude multiplier [E]
    field_index: int  # encoded into detectid so fields never collide


FIELD_PARAMS: dict[str, FieldParams] = {
    "cosmos": FieldParams(150.10, 2.20, 0.70, 0.70, 1.00, 1.80, 0.30, 1.00, 0),
    "goods-n": FieldParams(189.23, 62.24, 0.25, 0.20, 0.92, 1.65, 0.25, 0.80, 1),
    "dex-spring": FieldParams(195.00, 51.50, 25.0, 5.00, 1.10, 1.90, 0.35, 1.25, 2),
    "dex-fall": FieldParams(22.00, 0.00, 15.0, 1.20, 1.18, 2.00, 0.35, 1.45, 3),
}
assert tuple(FIELD_PARAMS) == FIELDS


@dataclass(frozen=True)
class SimParams:
    """Instrument, population, detection and catalogue parameters (field-independent)."""

    # --- composition of the output catalogue -----------------------------------------
    real_fraction: float = 0.78  # share of real lines among candidates [E]
    lae_share_of_real: float = 0.62  # rest are [OII] [E]
    # contaminant mix (shares among contaminants, renormalised) [E, SIMULATOR.md]
    mix: dict[str, float] = field(
        default_factory=lambda: {
            "noise": 0.40,
            "sky": 0.20,
            "cosmic": 0.10,
            "hotcol": 0.10,
            "meteor": 0.05,
            "badfiber": 0.05,
            "star": 0.10,
        }
    )

    # --- instrument [S unless E] --------------------------------------------------------
    sigma_inst_4500: float = 2.4  # instrumental Gaussian sigma (A) at 4500 A, R ~ 800
    noise_sigma: float = 0.38  # extracted 1D noise, 1e-17 erg/s/cm2/A, at 4500 A [E]
    blue_noise_boost: float = 1.3  # noise multiplier below ~4000 A [E]
    blue_edge: float = 4000.0
    shot_noise_sd: float = 0.12  # lognormal sd of the per-shot noise level [E]
    seeing_min: float = 1.1
    seeing_max: float = 3.2
    moffat_beta: float = 3.5
    fiber_radius: float = 0.75  # arcsec (1.5" fibers)
    fiber_pitch: float = 2.54  # arcsec between fiber centres in one dither
    trace_sigma_px: float = 1.5  # spatial profile of a fiber trace across the 9 rows [E]
    candidates_per_shot: int = 250  # sets how many shots a run spans [E]
    # Instrument states other than the default (used by the shift scenarios in
    # ``scenarios.py``; the defaults leave the simulation unchanged):
    seeing_scale: float = 1.0  # multiplies every shot's drawn seeing (focus, guiding)
    # Gaussian kernel sigma (px) correlating the noise along wavelength (sky subtraction
    # and resampling correlate neighbouring columns), applied to the 1D noise the line
    # finder sees and to the pixel noise of the cutouts; 0 = white
    noise_corr_wave_px: float = 0.0
    noise_corr_rows_px: float = 0.0  # the same across the 9 rows of a fibre trace
    # Student-t degrees of freedom of the pixel noise (heavy tails); 0 = Gaussian
    noise_tail_df: float = 0.0

    # --- real lines ---------------------------------------------------------------------
    lae_z_min: float = 1.9
    lae_z_max: float = 3.5
    lae_sigma_median: float = 3.0  # observed sigma, lognormal [S bounds, E shape]
    lae_sigma_logsd: float = 0.28
    lae_sigma_min: float = 1.7
    lae_sigma_max: float = 14.0
    lae_skew_max: float = 2.5  # skew-normal shape parameter drawn U(0, max): red wing
    lae_ext_median: float = 0.7  # extra spatial FWHM (arcsec) added in quadrature [E]
    lae_ew_rest_median: float = 60.0  # rest equivalent width (A): faint continuum [E]
    oii_z_max: float = 0.475  # keeps [OII] inside the usable range
    oii_sigma_min: float = 2.4
    oii_sigma_max: float = 4.0
    oii_sigma_cap: float = 7.6
    oii_ext_median: float = 1.3
    oii_ew_rest_median: float = 18.0  # [OII] usually sits on visible continuum [E]
    # true significance nu = flux / typical flux_err is drawn from dN/dnu ~ nu^-slope on
    # [nu_min, nu_max]: steep counts, so most detected lines sit near threshold and some
    # scatter up from below it (Eddington bias) [E].
    lae_count_slope: float = 4.0
    oii_count_slope: float = 2.8  # flatter: [OII] dominate the bright end [S-ish]
    real_nu_min: float = 3.5
    real_nu_max: float = 150.0

    # --- noise peaks --------------------------------------------------------------------
    # matched-filter statistic at a noise peak ~ t exp(-t^2/2) for t > t_min
    # (Rice-like tail of the maximum over many positions/widths).
    noise_t_min: float = 4.3
    # CCD noise is heavier-tailed than Gaussian: a share of noise peaks is carried by one
    # fiber's excursion rather than spread with PSF weights [E].
    noise_single_fiber_prob: float = 0.45

    # --- artefacts: injected significance nu ~ nu^-slope on [nu_min, nu_max] [E] ----------
    # Steep: most artefacts are weak features that cross the threshold only with help from
    # a noise fluctuation, so (like noise) they crowd towards sn = 4.8.
    art_nu_min: float = 2.8
    art_nu_max: float = 80.0
    art_slope: dict[str, float] = field(
        default_factory=lambda: {
            "sky": 7.0,
            "cosmic": 7.0,
            "hotcol": 7.0,
            "meteor": 2.0,  # meteors are bright
            "badfiber": 7.0,
            "star": 7.0,
        }
    )
    sky_windows: tuple[tuple[float, float], ...] = (
        (3534.0, 3556.0),
        (5194.0, 5205.0),
        (5456.0, 5466.0),
    )
    sky_window_weights: tuple[float, ...] = (0.6, 0.2, 0.2)
    sky_pcygni_prob: float = 0.3
    sky_fiber_scatter: float = 0.15  # fiber-to-fiber amplitude scatter of a sky residual
    cosmic_mask_prob: float = 0.3  # ELiXer-style zeroing of the hit pixels
    cosmic_len_max: int = 4
    hotcol_width_max: int = 10
    star_windows: tuple[tuple[float, float], ...] = ((3775.0, 3785.0), (3944.0, 3958.0))

    # raw purity (fraction real) the defaults are calibrated to, per S/N regime [E]; the
    # tests hold the simulator to these bands
    purity_low_target: tuple[float, float] = (0.45, 0.60)
    purity_high_target: tuple[float, float] = (0.85, 0.95)

    # --- measurement and catalogue cuts [S] ---------------------------------------------
    sn_min: float = 4.8
    chi2_max: float = 2.5
    linewidth_min: float = 1.6
    linewidth_max: float = 14.0
    low_sn_max: float = 5.5
    low_chi2_max: float = 1.5
    low_linewidth_max: float = 6.0
    fit_half_window: int = 20  # px either side of the candidate used by the line fit
    fit_centre_halfrange: float = 2.0  # px the fitted centre may move
    chi2_half_width_sigmas: float = 3.0  # chi2 is computed within +-3 sigma of the line
    chi2_min_half_width: float = 6.0  # A
    # Centre each kept candidate's cutout (and its 1D window) on the grid pixel nearest the
    # *detected* wavelength, as the real pipeline does, instead of on the trial's own
    # centre (for lines and sky residuals the true wavelength plus 1 A of jitter). False
    # keeps the default simulation bit-for-bit as it was; the robustness benches
    # (bench/bench_centroid.py, bench/bench_augment.py) set it (docs/shift.md).
    centre_on_detected: bool = False

    # --- external (DESI-like) catalogue [E] ---------------------------------------------
    ext_frac_faint: float = 0.02
    ext_frac_bright: float = 0.15
    ext_sn_mid: float = 7.0  # logistic mid-point in true significance
    ext_pos_jitter: float = 0.5  # arcsec
    ext_secure_prob: float = 0.85

    # --- execution ----------------------------------------------------------------------
    chunk: int = 4096  # trials per chunk; bounds temporary memory

    def contaminant_shares(self, fp: FieldParams) -> dict[str, float]:
        mix = {t: float(self.mix.get(t, 0.0)) for t in CONTAMINANT_TYPES}
        mix["sky"] *= fp.sky_strength
        total = sum(mix.values())
        return {t: v / total for t, v in mix.items()}

    def flat(self) -> dict[str, object]:
        """Flat str/int/float/bool view for file headers (nested values get dotted keys)."""
        out: dict[str, object] = {}
        for f in fields(self):
            v = getattr(self, f.name)
            if isinstance(v, dict):
                for k, x in v.items():
                    out[f"{f.name}.{k}"] = float(x)
            elif isinstance(v, tuple):
                out[f.name] = repr(v)
            else:
                out[f.name] = v
        return out
