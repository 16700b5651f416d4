"""What sits at a candidate position, per truth type: real lines, noise and artefacts.

Each type is described by signal *components*: a spectrum (a parametric function of
wavelength, evaluated on the cutout columns and on the full 1D grid alike), its amplitude
in each of the 4 highest-weight fibers and in the other fibers, and its profile across the
9 cutout rows. Real lines (and stars) put PSF-consistent flux into the fibers of all three
dithers (a bit wider for extended sources); artefacts do not. Noise has no component: its
peak is made by conditioning the Gaussian noise (see :func:`_condition_noise`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mlcore.simulator.detect import measure
from mlcore.simulator.instrument import (
    Footprint,
    correlate_noise,
    footprint,
    moffat_weights,
    noise_profile,
    sigma_inst,
    trace_profile,
)
from mlcore.simulator.params import FieldParams, SimParams
from mlcore.survey import (
    CUTOUT_COLS,
    CUTOUT_ROWS,
    LINE_COL,
    LYA_REST,
    N_FIBERS,
    OII_REST,
    SPEC_DWAVE,
    SPEC_WAVE0,
    USABLE_WAVE_MAX,
    USABLE_WAVE_MIN,
)

C_KMS = 299792.458
# stellar absorption lines around the two false-emission windows (A, air) [S]
STAR_LINES = np.array(
    [3734.37, 3750.15, 3770.63, 3797.90, 3835.38, 3889.05, 3933.66, 3968.47, 3970.07, 4101.74]
)
STAR_IS_CA = np.array([0, 0, 0, 0, 0, 0, 1, 1, 0, 0], dtype=bool)
STAR_PAIR_MID = np.array([(3770.63 + 3797.90) / 2, (3933.66 + 3968.47) / 2])

COL_OFFSETS = (np.arange(CUTOUT_COLS) - LINE_COL) * SPEC_DWAVE  # A from the cutout centre


def erf(x: np.ndarray) -> np.ndarray:
    """Abramowitz & Stegun 7.1.26 (|error| < 1.5e-7); numpy has no erf and scipy is absent."""
    s = np.sign(x)
    a = np.abs(x)
    t = 1.0 / (1.0 + 0.3275911 * a)
    y = 1.0 - (
        ((((1.061405429 * t - 1.453152027) * t) + 1.421413741) * t - 0.284496736) * t + 0.254829592
    ) * t * np.exp(-a * a)
    return s * y


def _gauss(wave: np.ndarray, mu: np.ndarray, sig: np.ndarray) -> np.ndarray:
    """Unit-flux Gaussian (per A); per-row parameters broadcast over columns."""
    x = (wave - mu[:, None]) / sig[:, None]
    return np.exp(-0.5 * x * x) / (np.sqrt(2 * np.pi) * sig[:, None])


@dataclass
class Comp:
    """One signal component: spectrum(kind, par) x fiber amplitudes x row profile."""

    kind: str
    fib: np.ndarray  # (N, 4) amplitude in each im_array fiber
    rest: np.ndarray  # (N,) sum over the other fibers of w_k * amplitude_k
    rows: np.ndarray  # (N, 9) profile across the cutout rows
    par: dict[str, np.ndarray]

    @property
    def local(self) -> bool:
        """Confined to the cutout window (+-100 A), so the 1D grid needs it only there."""
        return self.kind in ("line", "sky", "box", "dipbump")

    def subset(self, idx: np.ndarray) -> Comp:
        return Comp(
            self.kind,
            self.fib[idx],
            self.rest[idx],
            self.rows[idx],
            {k: v[idx] for k, v in self.par.items()},
        )

    def scale(self, f: np.ndarray) -> None:
        self.fib = self.fib * f[:, None]
        self.rest = self.rest * f

    def spectrum(self, wave: np.ndarray) -> np.ndarray:
        """Flux density (per unit amplitude) at ``wave`` (N, M)."""
        q = self.par
        if self.kind == "line":  # skew-normal: red wing for LAE, symmetric otherwise
            a = q["skew"][:, None]
            delta = a / np.sqrt(1 + a * a)
            om = q["sig"][:, None] / np.sqrt(1 - 2 * delta**2 / np.pi)
            xi = q["mu"][:, None] - 0.5 * om * delta * np.sqrt(2 / np.pi)
            x = (wave - xi) / om
            return np.exp(-0.5 * x * x) / (np.sqrt(2 * np.pi) * om) * (1 + erf(a * x / np.sqrt(2)))
        if self.kind == "const":
            return 1.0 + q["slope"][:, None] * (wave - 4500.0) / 1000.0
        if self.kind == "box":  # sharp hit, pixel-aligned
            return ((wave >= q["lo"][:, None]) & (wave <= q["hi"][:, None])).astype(np.float64)
        if self.kind == "dipbump":  # charge trap: deficit then excess along wavelength
            c, wd = q["centre"][:, None], q["width"][:, None]
            bump = (wave >= c) & (wave < c + wd)
            dip = (wave >= c - wd) & (wave < c)
            return bump - q["dip"][:, None] * dip
        if self.kind == "sky":  # emission with optional blue-side absorption (P-Cygni)
            g = _gauss(wave, q["mu"], q["sig"])
            return g - q["dip"][:, None] * _gauss(wave, q["mu"] - 2.2 * q["sig"], q["sig"])
        if self.kind == "star":
            lam = STAR_LINES[None, None, :] * (1 + q["v"][:, None, None] / C_KMS)
            x = (wave[..., None] - lam) / q["asig"][:, None, :]
            absorb = np.prod(1 - q["depth"][:, None, :] * np.exp(-0.5 * x * x), axis=-1)
            return (wave / 4000.0) ** q["slope"][:, None] * absorb
        raise ValueError(self.kind)

    def gain(self, fp: Footprint, tau: np.ndarray) -> np.ndarray:
        """What one unit of this component contributes to the optimal 1D extraction."""
        fib_w = (fp.top * self.fib).sum(1) + self.rest
        return fib_w / fp.w2 * (self.rows @ tau) / (tau @ tau)


@dataclass
class Trials:
    """A batch of would-be candidates of one truth type, before the catalogue cuts."""

    ttype: str
    shot: np.ndarray  # (N,) index into the shot table
    wave0: np.ndarray  # (N,) wavelength of cutout column LINE_COL (on the 1D grid)
    fp: Footprint
    comps: list[Comp]
    noise_scale: np.ndarray  # (N,) field x shot noise multiplier
    truth_flux: np.ndarray
    truth_z: np.ndarray
    nu: np.ndarray  # true significance (flux / typical flux error); 0 for contaminants
    single_fiber: np.ndarray  # (N,) fiber carrying a noise excursion, -1 if spread
    single_frac: np.ndarray  # (N,) share of the conditioned excess carried by that fiber
    mask_fiber: np.ndarray  # (N,) fiber whose hit pixels are zeroed (cosmics), -1 if none
    valid: np.ndarray  # (N,) False where the artefact cannot make a line at all
    sigma: np.ndarray | None = None  # (N, 100) 1D noise sigma on the cutout columns
    eps: np.ndarray | None = None  # (N, 100) 1D noise realisation
    excess: np.ndarray | None = None  # (N, 100) part of eps added by conditioning

    @property
    def cut_wave(self) -> np.ndarray:
        return self.wave0[:, None] + COL_OFFSETS[None, :]

    def signal(self, wave: np.ndarray, tau: np.ndarray, nonlocal_only: bool = False) -> np.ndarray:
        out = np.zeros(wave.shape)
        for c in self.comps:
            if nonlocal_only and c.local:
                continue
            out += c.gain(self.fp, tau)[:, None] * c.spectrum(wave)
        return out

    def subset(self, idx: np.ndarray) -> Trials:
        def s(a):
            return None if a is None else a[idx]

        return Trials(
            self.ttype,
            self.shot[idx],
            self.wave0[idx],
            self.fp.subset(idx),
            [c.subset(idx) for c in self.comps],
            self.noise_scale[idx],
            self.truth_flux[idx],
            self.truth_z[idx],
            self.nu[idx],
            self.single_fiber[idx],
            self.single_frac[idx],
            self.mask_fiber[idx],
            self.valid[idx],
            s(self.sigma),
            s(self.eps),
            s(self.excess),
        )


def recentred(tr: Trials, k: np.ndarray, rng: np.random.Generator, p: SimParams) -> Trials:
    """``tr`` with every cutout moved by ``k`` (N,) whole pixels along wavelength.

    The signal is a function of wavelength, so it moves with the window by itself; the 1D
    noise realisation (``eps``, ``excess``) is carried over on the columns both windows
    share, and the <= |k| columns new at one edge (far from the line) get a fresh
    independent draw (white even where the scenario correlates the noise: a few edge
    columns, ~45 px from the line).
    """
    k = np.asarray(k, dtype=np.int64)
    n, ncol = tr.sigma.shape
    src = np.arange(ncol)[None, :] + k[:, None]
    inside = (src >= 0) & (src < ncol)
    rows = np.arange(n)[:, None]
    srcc = np.clip(src, 0, ncol - 1)
    out = Trials(**{f: getattr(tr, f) for f in tr.__dataclass_fields__})
    out.wave0 = tr.wave0 + SPEC_DWAVE * k
    out.sigma = sigma_1d(out.cut_wave, tr.noise_scale, p)
    fresh = out.sigma * rng.standard_normal((n, ncol))
    out.eps = np.where(inside, tr.eps[rows, srcc], fresh)
    out.excess = np.where(inside, tr.excess[rows, srcc], 0.0)
    return out


def grid_round(wave: np.ndarray) -> np.ndarray:
    """Nearest wavelength of the rectified 1D grid."""
    return SPEC_WAVE0 + SPEC_DWAVE * np.round((wave - SPEC_WAVE0) / SPEC_DWAVE)


def power_law(rng: np.random.Generator, n: int, lo: float, hi: float, slope: float) -> np.ndarray:
    """Samples of dN/dx ~ x^-slope on [lo, hi] (inverse CDF)."""
    u = rng.random(n)
    k = 1.0 - slope
    return (lo**k + u * (hi**k - lo**k)) ** (1.0 / k)


def sigma_1d(wave: np.ndarray, noise_scale: np.ndarray, p: SimParams) -> np.ndarray:
    return p.noise_sigma * noise_scale[:, None] * noise_profile(wave, p)


def _flux_err_ref(wave: np.ndarray, sig: np.ndarray, fp_: FieldParams, p: SimParams):
    """Typical flux error of a Gaussian line of sigma ``sig`` (A) in this field."""
    s1 = p.noise_sigma * fp_.noise_scale * noise_profile(wave, p)
    return s1 * np.sqrt(2 * np.sqrt(np.pi) * sig * SPEC_DWAVE)


def _pick_fiber(rng: np.random.Generator, fp: Footprint) -> np.ndarray:
    """A top-4 fiber, more often a high-weight one (that is where a hit gets detected)."""
    w = fp.top / fp.top.sum(1, keepdims=True)
    return (rng.random(len(w))[:, None] > np.cumsum(w, 1)).sum(1).clip(0, N_FIBERS - 1)


def _onefiber(n: int, j: np.ndarray) -> np.ndarray:
    out = np.zeros((n, N_FIBERS))
    out[np.arange(n), j] = 1.0
    return out


@dataclass
class Context:
    p: SimParams
    field: FieldParams
    shots: dict[str, np.ndarray]
    tau: np.ndarray


def make_context(p: SimParams, field: FieldParams, shots: dict[str, np.ndarray]) -> Context:
    return Context(p, field, shots, trace_profile(p))


def make_trials(ttype: str, m: int, rng: np.random.Generator, ctx: Context) -> Trials:
    """Draw ``m`` would-be candidates of type ``ttype`` with their noisy 1D extraction."""
    p, tau = ctx.p, ctx.tau
    shot = rng.integers(len(ctx.shots["shotid"]), size=m)
    seeing = ctx.shots["seeing"][shot]
    noise_scale = ctx.field.noise_scale * ctx.shots["noise"][shot]
    fp = footprint(m, seeing, rng, p)
    zeros = np.zeros(m)
    rows_tau = np.broadcast_to(tau, (m, CUTOUT_ROWS))
    comps: list[Comp] = []
    truth_flux, truth_z, nu = zeros, np.full(m, np.nan), zeros
    single, single_frac, mask_fiber = np.full(m, -1), zeros, np.full(m, -1)
    art_nu = None

    def uniform_wave() -> np.ndarray:
        return grid_round(rng.uniform(USABLE_WAVE_MIN + 4, USABLE_WAVE_MAX - 4, m))

    if ttype in ("lae", "oii"):
        if ttype == "lae":
            z = rng.uniform(p.lae_z_min, p.lae_z_max, m)
            mu = LYA_REST * (1 + z)
            sig = np.clip(
                p.lae_sigma_median * np.exp(p.lae_sigma_logsd * rng.standard_normal(m)),
                p.lae_sigma_min,
                p.lae_sigma_max,
            )
            skew = rng.uniform(0, p.lae_skew_max, m)
            ext, ew_rest, slope = p.lae_ext_median, p.lae_ew_rest_median, p.lae_count_slope
        else:
            z = p.oii_z_max * rng.random(m) ** (1 / 3)  # ~ volume
            mu = OII_REST * (1 + z)
            sig = rng.uniform(p.oii_sigma_min, p.oii_sigma_max, m)
            broad = rng.random(m) < 0.1  # a tail of broader [OII] up to the cap
            sig = np.where(broad, rng.uniform(p.oii_sigma_max, p.oii_sigma_cap, m), sig)
            skew = zeros
            ext, ew_rest, slope = p.oii_ext_median, p.oii_ew_rest_median, p.oii_count_slope
        sig = np.maximum(sig, 0.8 * sigma_inst(mu, p))
        nu = power_law(rng, m, p.real_nu_min, p.real_nu_max, slope)
        flux = nu * _flux_err_ref(mu, sig, ctx.field, p)
        fwhm_src = np.hypot(seeing, ext * np.exp(0.5 * rng.standard_normal(m)))
        u = moffat_weights(fp.r, fwhm_src, p)  # source flux in every fiber
        rest = fp.rest_by_dither(u).sum(1)
        ew_obs = ew_rest * np.exp(0.6 * rng.standard_normal(m)) * (1 + z)
        cont = flux / ew_obs
        comps.append(
            Comp(
                "line",
                u[:, :N_FIBERS] * flux[:, None],
                rest * flux,
                rows_tau,
                {"mu": mu, "sig": sig, "skew": skew},
            )
        )
        comps.append(
            Comp(
                "const",
                u[:, :N_FIBERS] * cont[:, None],
                rest * cont,
                rows_tau,
                {"slope": rng.uniform(-0.6, 0.6, m)},
            )
        )
        wave0 = grid_round(mu + rng.normal(0, 1.0, m))
        truth_flux, truth_z = flux, z
    elif ttype == "noise":
        wave0 = uniform_wave()
        single = np.where(rng.random(m) < p.noise_single_fiber_prob, _pick_fiber(rng, fp), -1)
        single_frac = rng.uniform(0.4, 1.0, m)
    elif ttype == "sky":
        k = rng.choice(
            len(p.sky_windows),
            size=m,
            p=np.array(p.sky_window_weights) / np.sum(p.sky_window_weights),
        )
        win = np.array(p.sky_windows)[k]
        mu = rng.uniform(win[:, 0], win[:, 1])
        sig = sigma_inst(mu, p) * rng.uniform(0.85, 1.15, m)
        dip = np.where(rng.random(m) < p.sky_pcygni_prob, rng.uniform(0.4, 1.0, m), 0.0)
        # every fiber sees the residual with ~equal amplitude: not PSF-weighted
        fib = 1.0 + p.sky_fiber_scatter * rng.standard_normal((m, N_FIBERS))
        rest = fp.w[:, N_FIBERS:].sum(1)
        flat = np.full(CUTOUT_ROWS, 1.0 / CUTOUT_ROWS)
        rows = 0.7 * rows_tau + 0.3 * flat  # spreads over the whole cutout height
        comps.append(Comp("sky", fib, rest, rows, {"mu": mu, "sig": sig, "dip": dip}))
        wave0 = grid_round(mu + rng.normal(0, 1.0, m))
        art_nu = power_law(rng, m, p.art_nu_min, p.art_nu_max, p.art_slope["sky"])
        art_nu = art_nu * np.sqrt(ctx.field.sky_strength)
    elif ttype == "cosmic":
        wave0 = uniform_wave()
        j = _pick_fiber(rng, fp)
        # 1-4 px hits [S]; longer tracks (a shift scenario) get a share of 0.1 each
        w_len = np.array([0.35, 0.3, 0.2, 0.15] + [0.1] * max(0, p.cosmic_len_max - 4))
        w_len = w_len[: p.cosmic_len_max]
        length = rng.choice(np.arange(1, p.cosmic_len_max + 1), size=m, p=w_len / w_len.sum())
        lo = wave0 + SPEC_DWAVE * rng.integers(-2, 2, m)
        hi = lo + SPEC_DWAVE * (length - 1)
        r0 = rng.integers(1, CUTOUT_ROWS - 1, m)
        rows = np.zeros((m, CUTOUT_ROWS))
        rows[np.arange(m), r0] = 1.0
        spill = rng.uniform(0.0, 0.5, (m, 2))
        rows[np.arange(m), r0 - 1] = spill[:, 0]
        rows[np.arange(m), r0 + 1] = spill[:, 1]
        comps.append(Comp("box", _onefiber(m, j), zeros, rows, {"lo": lo, "hi": hi}))
        mask_fiber = np.where(rng.random(m) < p.cosmic_mask_prob, j, -1)
        art_nu = power_law(rng, m, p.art_nu_min, p.art_nu_max, p.art_slope["cosmic"])
    elif ttype == "hotcol":
        wave0 = uniform_wave()
        j = _pick_fiber(rng, fp)
        width = SPEC_DWAVE * rng.integers(1, p.hotcol_width_max + 1, m)
        centre = (
            wave0
            - SPEC_DWAVE * np.floor(width / SPEC_DWAVE / 2)
            + SPEC_DWAVE * rng.integers(-1, 2, m)
        )
        rows = np.ones((m, CUTOUT_ROWS)) / CUTOUT_ROWS  # a stripe through all 9 rows
        comps.append(
            Comp(
                "dipbump",
                _onefiber(m, j),
                zeros,
                rows,
                {"centre": centre, "width": width, "dip": rng.uniform(0.3, 1.0, m)},
            )
        )
        art_nu = power_law(rng, m, p.art_nu_min, p.art_nu_max, p.art_slope["hotcol"])
    elif ttype == "meteor":
        mu = rng.uniform(USABLE_WAVE_MIN + 4, USABLE_WAVE_MAX - 4, m)
        d = rng.integers(0, 3, m)
        streak = rng.uniform(0.3, 1.0, (m, N_FIBERS))
        fib = streak * (fp.dith[:, :N_FIBERS] == d[:, None])
        rest = 0.65 * fp.rest_by_dither(np.ones_like(fp.w))[np.arange(m), d]
        sig = sigma_inst(mu, p) * rng.uniform(1.0, 1.6, m)
        comps.append(Comp("line", fib, rest, rows_tau, {"mu": mu, "sig": sig, "skew": zeros}))
        wave0 = grid_round(mu + rng.normal(0, 1.0, m))
        art_nu = power_law(rng, m, p.art_nu_min, p.art_nu_max, p.art_slope["meteor"])
    elif ttype == "badfiber":
        wave0 = uniform_wave()
        j = _pick_fiber(rng, fp)
        mu = wave0 + rng.normal(0, 1.5, m)
        sig = rng.uniform(2.5, 9.0, m)
        one = _onefiber(m, j)
        comps.append(Comp("line", one, zeros, rows_tau, {"mu": mu, "sig": sig, "skew": zeros}))
        # the whole trace sits high or low; in units of the bump's peak density
        off = rng.choice([-1.0, 1.0], m) * rng.uniform(0.5, 3.0, m) / (np.sqrt(2 * np.pi) * sig)
        comps.append(
            Comp("const", one * off[:, None], zeros, rows_tau, {"slope": rng.uniform(-0.3, 0.3, m)})
        )
        art_nu = power_law(rng, m, p.art_nu_min, p.art_nu_max, p.art_slope["badfiber"])
    elif ttype == "star":
        k = rng.integers(0, 2, m)
        v = rng.normal(0, 150.0, m)
        wave0 = grid_round(STAR_PAIR_MID[k] * (1 + v / C_KMS) + rng.normal(0, 1.5, m))
        nl = len(STAR_LINES)
        bal = rng.uniform(0.15, 0.6, m)[:, None] * rng.uniform(0.7, 1.0, (m, nl))
        ca = rng.uniform(0.1, 0.7, m)[:, None] * rng.uniform(0.8, 1.0, (m, nl))
        depth = np.where(STAR_IS_CA[None, :], ca, bal)
        asig = np.where(
            STAR_IS_CA[None, :], rng.uniform(2.5, 5.0, (m, nl)), rng.uniform(3.0, 8.0, (m, nl))
        )
        u = fp.w  # a point source
        rest = fp.rest_by_dither(u).sum(1)
        comps.append(
            Comp(
                "star",
                u[:, :N_FIBERS],
                rest,
                rows_tau,
                {"v": v, "depth": depth, "asig": asig, "slope": rng.uniform(-2.5, 0.5, m)},
            )
        )
        art_nu = power_law(rng, m, p.art_nu_min, p.art_nu_max, p.art_slope["star"])
    else:
        raise ValueError(f"unknown truth type {ttype!r}")

    tr = Trials(
        ttype,
        shot,
        wave0,
        fp,
        comps,
        noise_scale,
        truth_flux,
        truth_z,
        nu,
        single,
        single_frac,
        mask_fiber,
        np.ones(m, dtype=bool),
    )
    wave = tr.cut_wave
    tr.sigma = sigma_1d(wave, noise_scale, p)
    if art_nu is not None:
        # scale the artefact so its noise-free matched-filter S/N is the drawn nu; the
        # measured sn then comes out of the noisy pixels like everything else
        unit = tr.signal(wave, tau)
        sn1 = measure(unit, tr.sigma, p).sn
        tr.valid = np.isfinite(sn1) & (sn1 > 0.2)
        f = np.where(tr.valid, art_nu / np.where(tr.valid, sn1, 1.0), 0.0)
        for c in comps:
            c.scale(f)
    z = correlate_noise(rng.standard_normal(wave.shape), p.noise_corr_wave_px, axis=-1)
    tr.excess = np.zeros(wave.shape)
    if ttype == "noise":
        tr.excess = _condition_noise(rng, z, wave, tr.sigma, p)
    tr.eps = tr.sigma * z + tr.excess
    return tr


def _condition_noise(
    rng: np.random.Generator, z: np.ndarray, wave: np.ndarray, sigma: np.ndarray, p: SimParams
) -> np.ndarray:
    """Make a noise peak by conditioning: exact for Gaussian noise, and cheap.

    Draw the matched-filter statistic t of a template h at the candidate from the tail of
    the peak-height distribution, p(t) ~ t exp(-t^2/2) for t > t_min (Rice: the maximum of
    a smooth Gaussian field over many positions and widths), and move the fresh whitened
    realisation z along h so that its projection equals t. Returns the added 1D noise.
    """
    m = len(z)
    t = np.sqrt(p.noise_t_min**2 - 2.0 * np.log(rng.random(m)))
    centre = wave[:, LINE_COL] + SPEC_DWAVE * rng.uniform(-1, 1, m)
    width = np.clip(sigma_inst(centre, p) * np.exp(0.1 + 0.3 * rng.standard_normal(m)), 1.7, 9.0)
    h = _gauss(wave, centre, width) / sigma  # whitened template
    hn = h / np.linalg.norm(h, axis=1, keepdims=True)
    proj = (hn * z).sum(1)
    return sigma * (t - proj)[:, None] * hn
