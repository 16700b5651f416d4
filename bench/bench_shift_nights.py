"""Shift reports per group of observing nights: are shifted nights flagged, clean ones not?

    .venv/bin/python bench/bench_shift_nights.py [--surveys 5] [--n 2500] [--threads 1]
        [--out bench/shift_nights.json]

The model and reference sample of ``bench/bench_shift.py`` (a LineCNN trained on 6,000
simulated COSMOS candidates, cached in var/bench_shift/; 2,000 of its training rows as the
reference). ``--surveys`` unshifted COSMOS surveys and as many of each shift scenario
(seeds never used for training or calibration), ``--n`` candidates each, are split into
night groups (``mlcore.nights.night_groups``, the platform's rule) and every group with
at least 100 candidates is judged against the reference with the shipped thresholds
(``mlcore.shift.DEFAULT_THRESHOLDS``, widened for the group's size as on the platform;
pixel statistics on up to 1,000 of the group, the wavelength spike on all of it).
Prints, per kind of survey, how many night groups were called shifted or far.

``--calibrate K``: also K further unshifted surveys (seeds of their own) whose night groups
calibrate thresholds *for night groups* the way bench_shift.py calibrates its own (largest
value reached x ``--margin``), and every night group above re-judged with them: what a
night-level calibration would change (not used by the platform).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import _util  # noqa: F401  (puts the repository root on sys.path)
import numpy as np
import torch
from bench_shift import cutouts_of, reference, rejudge, thresholds_from, trained_model

from mlcore.nights import in_nights, night_groups
from mlcore.shift import DEFAULT_THRESHOLDS, MIN_SAMPLE, compare, describe
from mlcore.simulator import SCENARIOS, simulate_survey

SEED0 = 91_000  # bench_shift uses 2501 (training) and 10_000+ for its draws


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--surveys", type=int, default=5, help="surveys per kind")
    ap.add_argument("--n", type=int, default=2500, help="candidates per survey")
    ap.add_argument("--n-ref", type=int, default=2000)
    ap.add_argument("--n-train", type=int, default=6000)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--calibrate", type=int, default=0, help="surveys for night thresholds")
    ap.add_argument("--margin", type=float, default=1.5)
    ap.add_argument("--out", default="bench/shift_nights.json")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    model, x_train, w_train, summary = trained_model(args.n_train, args.epochs)
    ref = reference(model, x_train, w_train, args.n_ref)
    kinds = [None, *SCENARIOS]
    out = {"args": vars(args), "model": summary, "kinds": {}}
    reports: dict[str, list[dict]] = {}
    if args.calibrate:
        kinds.append("calibration")
    for k, scenario in enumerate(kinds):
        calib = scenario == "calibration"
        scenario = None if calib else scenario
        surveys = args.calibrate if calib else args.surveys
        name = "calibration" if calib else (scenario or "none (held-out COSMOS)")
        reports[name] = []
        groups_out = []
        for j in range(surveys):
            seed = SEED0 + 1000 * k + j
            s = simulate_survey(args.n, seed=seed, field="cosmos", scenario=scenario)
            shot = s.catalog["shotid"]
            x_all = cutouts_of(s)
            waves = np.asarray(s.catalog["wave"], np.float64)
            for g in night_groups(shot):
                rows = np.flatnonzero(in_nights(shot, g.first, g.last))
                if len(rows) < MIN_SAMPLE:
                    groups_out.append({"seed": seed, "nights": g.label, "n": g.n, "verdict": None})
                    continue
                px = rows[:1000]
                new = describe(model, x_all[px], waves=waves[px])
                rep = compare(
                    ref, new, thresholds=DEFAULT_THRESHOLDS, seed=seed,
                    ref_waves=w_train, new_waves=waves[rows],
                )  # fmt: skip
                reports[name].append(rep)
                groups_out.append(
                    {"seed": seed, "nights": g.label, "n": g.n, "n_nights": g.n_nights,
                     "verdict": rep["verdict"], "reasons": rep["reasons"],
                     "domain_auc": rep["representation"]["domain_auc"],
                     "noise_level_ks": rep["inputs"]["noise_level"]["ks"],
                     "sky_row_share_ks": rep["inputs"]["sky_row_share"]["ks"]}
                )  # fmt: skip
        judged = [g for g in groups_out if g["verdict"]]
        flagged = [g for g in judged if g["verdict"] != "in distribution"]
        sizes = [g["n"] for g in judged]
        out["kinds"][name] = {
            "night_groups": len(groups_out),
            "too_small": len(groups_out) - len(judged),
            "judged": len(judged),
            "flagged": len(flagged),
            "far": sum(g["verdict"] == "far" for g in judged),
            "group_size_median": float(np.median(sizes)) if sizes else None,
            "group_size_range": [min(sizes), max(sizes)] if sizes else None,
            "groups": groups_out,
        }
        o = out["kinds"][name]
        print(
            f"{name:26s} night groups {o['night_groups']:3d} (too small {o['too_small']}), "
            f"judged {o['judged']:3d}: shifted or far {o['flagged']:3d} (far {o['far']}); "
            f"group size median {o['group_size_median']}, range {o['group_size_range']}",
            flush=True,
        )
    if args.calibrate:
        n_med = int(np.median([r["n_new"] for r in reports["calibration"]]))
        th = thresholds_from(reports["calibration"], args.margin, n_med, len(ref))
        out["night_thresholds"] = th.__dict__ if hasattr(th, "__dict__") else str(th)
        print(f"night-group thresholds ({len(reports['calibration'])} null groups, n {n_med}):")
        print(f"  {out['night_thresholds']}")
        for name, reps in reports.items():
            if name == "calibration":
                continue
            v = [rejudge(r, th) for r in reps]
            flagged = sum(x != "in distribution" for x in v)
            out["kinds"][name]["flagged_night_thresholds"] = flagged
            print(f"{name:26s} with night thresholds: shifted or far {flagged} of {len(v)}")
    out["wall_s"] = round(time.perf_counter() - t0, 1)
    Path(args.out).write_text(json.dumps(out, indent=1))
    print(f"wrote {args.out} ({out['wall_s']} s)")


if __name__ == "__main__":
    main()
