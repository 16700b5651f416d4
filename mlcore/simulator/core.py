"""simulate_survey: draw would-be candidates per truth type, measure them all with the same
line finder, keep what passes the catalogue cuts, and render the kept ones."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from mlcore.simulator.detect import Measurement, measure, passes_cuts
from mlcore.simulator.params import FIELD_PARAMS, FieldParams, SimParams
from mlcore.simulator.pixels import render
from mlcore.simulator.scenarios import apply_scenario
from mlcore.simulator.sources import make_context, make_trials, recentred
from mlcore.survey import (
    ARRAY_SHAPES,
    CATALOG_COLUMNS,
    FIELDS,
    SPEC_DWAVE,
    TRUTH_COLUMNS,
    TRUTH_TYPES,
    USABLE_WAVE_MAX,
    USABLE_WAVE_MIN,
    Survey,
)

SIMULATOR_VERSION = "1.0.0"
_TYPE_CODE = {t: i for i, t in enumerate(TRUTH_TYPES)}


def _rng(seed: int, *keys: int) -> np.random.Generator:
    # SFC64: about twice as fast as PCG64 for the ~5500 normals each candidate needs
    return np.random.Generator(np.random.SFC64(np.random.SeedSequence([seed, *keys])))


def type_quotas(n: int, p: SimParams, fp: FieldParams) -> dict[str, int]:
    """How many candidates of each truth type the catalogue holds (largest remainder)."""
    shares = {
        "lae": p.real_fraction * p.lae_share_of_real,
        "oii": p.real_fraction * (1 - p.lae_share_of_real),
    }
    for t, s in p.contaminant_shares(fp).items():
        shares[t] = (1 - p.real_fraction) * s
    raw = {t: n * shares[t] for t in TRUTH_TYPES}
    q = {t: int(math.floor(v)) for t, v in raw.items()}
    left = n - sum(q.values())
    for t in sorted(TRUTH_TYPES, key=lambda t: q[t] - raw[t])[:left]:
        q[t] += 1
    return q


def make_shots(n: int, seed: int, fp: FieldParams, p: SimParams) -> dict[str, np.ndarray]:
    """Shots (one pointing each): HETDEX-style ids yyyymmddNNN, seeing, noise, centre."""
    rng = _rng(seed, fp.field_index, 7001)
    ns = max(3, math.ceil(n / p.candidates_per_shot))
    day = rng.integers(0, 6 * 365, ns)
    dates = np.datetime64("2017-01-03") + day.astype("timedelta64[D]")
    ymd = np.array([int(str(d).replace("-", "")) for d in dates], dtype=np.int64)
    shotid = ymd * 1000 + rng.integers(5, 30, ns)
    shotid = np.unique(shotid)  # sorted; at most a few collide, drop duplicates
    ns = len(shotid)
    seeing = np.clip(rng.normal(fp.seeing_mean, fp.seeing_sd, ns), p.seeing_min, p.seeing_max)
    seeing = seeing * p.seeing_scale
    noise = np.exp(p.shot_noise_sd * rng.standard_normal(ns))
    dec = fp.dec0 + rng.uniform(-fp.dec_half, fp.dec_half, ns)
    ra = (fp.ra0 + rng.uniform(-fp.ra_half, fp.ra_half, ns) / np.cos(np.radians(dec))) % 360
    return {"shotid": shotid, "seeing": seeing, "noise": noise, "ra": ra, "dec": dec}


def _cast(m: Measurement) -> Measurement:
    # the catalogue stores float32; cut on exactly what is stored
    return Measurement(*(getattr(m, k).astype(np.float32) for k in m.__dataclass_fields__))


def simulate_survey(
    n: int,
    seed: int,
    field: str = "cosmos",
    params: SimParams | None = None,
    progress: Callable[[int, int], None] | None = None,
    scenario: str | None = None,
) -> Survey:
    """Simulate ``n`` HETDEX-like candidates (those passing detection + catalogue cuts).

    ``scenario``: the name of a shifted instrument state from
    :data:`mlcore.simulator.scenarios.SCENARIOS` (applied on top of ``params``); None or
    ``"none"`` is the default instrument.
    """
    if field not in FIELD_PARAMS:
        raise ValueError(f"unknown field {field!r}: use one of {', '.join(FIELDS)}")
    if n < 0:
        raise ValueError("n must be >= 0")
    p = apply_scenario(params or SimParams(), scenario)
    fp = FIELD_PARAMS[field]
    shots = make_shots(n, seed, fp, p)
    ctx = make_context(p, fp, shots)
    quotas = type_quotas(n, p, fp)
    slots = _rng(seed, fp.field_index, 7002).permutation(n)

    cat = {k: np.zeros(n, dtype=dt) for k, dt in CATALOG_COLUMNS.items()}
    truth = {k: np.zeros(n, dtype=dt) for k, dt in TRUTH_COLUMNS.items()}
    arrays = {k: np.zeros((n, *s), dtype=np.float32) for k, s in ARRAY_SHAPES.items()}
    shot_idx = np.zeros(n, dtype=np.int64)
    nu_all = np.zeros(n)
    trials_made: dict[str, int] = {}
    done, start = 0, 0
    if progress:
        progress(0, n)
    for t in TRUTH_TYPES:
        q = quotas[t]
        got, chunk_i, acc = 0, 0, 0.3
        trials_made[t] = 0
        while got < q:
            need = q - got
            m = int(min(p.chunk, max(256, 1.2 * need / max(acc, 0.01) + 64)))
            rng = _rng(seed, fp.field_index, _TYPE_CODE[t], chunk_i)
            tr = make_trials(t, m, rng, ctx)
            meas = _cast(measure(tr.signal(tr.cut_wave, ctx.tau) + tr.eps, tr.sigma, p))
            wave = tr.wave0 + meas.wave_off
            ok = passes_cuts(meas, p) & tr.valid
            ok &= (wave >= USABLE_WAVE_MIN) & (wave <= USABLE_WAVE_MAX)
            trials_made[t] += m
            acc = 0.5 * acc + 0.5 * max(ok.mean(), 1e-3)
            keep = np.nonzero(ok)[0][:need]
            chunk_i += 1
            if chunk_i > 50 and got == 0:
                raise RuntimeError(
                    f"type {t!r}: no trial passes the catalogue cuts after {trials_made[t]} "
                    "trials; check the SimParams for this type (amplitudes, cuts)"
                )
            if len(keep) == 0:
                continue
            tr, meas = tr.subset(keep), meas.subset(keep)
            out = slots[start + got : start + got + len(keep)]
            wave_det = tr.wave0 + meas.wave_off
            if p.centre_on_detected:  # the real pipeline cuts around the fitted wavelength
                tr = recentred(tr, np.round(meas.wave_off / SPEC_DWAVE).astype(int), rng, p)
            img = render(tr, rng, ctx.tau, p)
            for k, v in img.items():
                arrays[k][out] = v
            cat["wave"][out] = wave_det.astype(np.float32)
            for k in ("flux", "flux_err", "sn", "linewidth", "continuum", "chi2"):
                cat[k][out] = getattr(meas, k)
            cat["apcor"][out] = tr.fp.apcor
            shot_idx[out] = tr.shot
            truth["truth_real"][out] = t in ("lae", "oii")
            truth["truth_type"][out] = t
            truth["truth_flux"][out] = tr.truth_flux
            truth["truth_z"][out] = tr.truth_z
            nu_all[out] = tr.nu
            got += len(keep)
            done += len(keep)
            if progress:
                progress(done, n)
        start += q

    # positions: inside the shot's focal plane (~9' radius)
    prng = _rng(seed, fp.field_index, 7003)
    r = 0.15 * np.sqrt(prng.random(n))
    th = prng.uniform(0, 2 * np.pi, n)
    cat["dec"] = shots["dec"][shot_idx] + r * np.sin(th)
    cat["ra"] = (shots["ra"][shot_idx] + r * np.cos(th) / np.cos(np.radians(cat["dec"]))) % 360
    cat["shotid"] = shots["shotid"][shot_idx]
    cat["detectid"] = (
        np.int64(fp.field_index + 1) * 10**15 + np.int64(seed % 10**6) * 10**9 + np.arange(n)
    ).astype(np.int64)
    cat["field"][:] = field
    truth["truth_z"] = truth["truth_z"].astype(np.float32)
    truth["truth_z"][~truth["truth_real"]] = np.nan

    external = _external(cat, truth, nu_all, _rng(seed, fp.field_index, 7004), p)
    meta: dict[str, object] = {
        "simulator_version": SIMULATOR_VERSION,
        "seed": int(seed),
        "field": field,
        "n": int(n),
        "n_shots": int(len(shots["shotid"])),
        "scenario": scenario or "none",
    }
    meta.update({f"field.{k}": v for k, v in vars(fp).items()})
    meta.update(p.flat())
    for t in TRUTH_TYPES:
        meta[f"quota.{t}"] = int(quotas[t])
        meta[f"trials.{t}"] = int(trials_made.get(t, 0))
    meta = {k: (v.item() if isinstance(v, np.generic) else v) for k, v in meta.items()}
    return Survey(catalog=cat, truth=truth, external=external, meta=meta, **arrays)


def _external(cat, truth, nu, rng: np.random.Generator, p: SimParams) -> dict[str, np.ndarray]:
    """DESI-like confirmations: a few percent of the true LAEs, more of the bright ones."""
    lae = np.nonzero(truth["truth_type"] == "lae")[0]
    frac = p.ext_frac_faint + (p.ext_frac_bright - p.ext_frac_faint) / (
        1 + np.exp(-(nu[lae] - p.ext_sn_mid) / 1.5)
    )
    pick = lae[rng.random(len(lae)) < frac]
    k = len(pick)
    jit = p.ext_pos_jitter / 3600.0 / np.sqrt(2)
    dec = cat["dec"][pick] + rng.normal(0, jit, k)
    ra = cat["ra"][pick] + rng.normal(0, jit, k) / np.cos(np.radians(dec))
    z = truth["truth_z"][pick] + rng.normal(0, 3e-4, k) * (1 + truth["truth_z"][pick])
    quality = np.where(rng.random(k) < p.ext_secure_prob, 0, 1).astype(np.int16)
    return {
        "ra": ra.astype(np.float64),
        "dec": dec.astype(np.float64),
        "z": z.astype(np.float32),
        "quality": quality,
    }


__all__ = ["simulate_survey", "SIMULATOR_VERSION", "type_quotas"]
