"""Measure the shift report's thresholds, false-alarm rate and detection rate.

    .venv/bin/python bench/bench_shift.py [--calib 80] [--evaluate 40] [--per-scenario 5]
        [--n-new 1000] [--n-ref 2000] [--threads 1] [--out bench/shift.json]

1. Train a LineCNN (images only) on 6,000 simulated COSMOS candidates for a few epochs on
   CPU (cached in var/bench_shift/); its *reference* sample is 2,000 of its training rows.
2. Calibration: ``--calib`` held-out COSMOS draws (same field, other seeds) of ``--n-new``
   candidates each. Each statistic's threshold is the largest value these draws reached,
   times ``--margin``.
3. False alarms: ``--evaluate`` further COSMOS draws (seeds never used above), judged with
   those thresholds: the share called anything but "in distribution".
4. Detection: ``--per-scenario`` draws of each shift scenario, judged the same way; the
   held-back scenario (``mlcore.simulator.scenarios.HELD_BACK``) is reported apart.
   The model's balanced accuracy per S/N regime on every kind of draw (truth labels) puts
   the verdicts next to what the shift costs.
The thresholds to put into ``mlcore.shift.DEFAULT_THRESHOLDS`` are printed at the end.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import _util  # noqa: F401  (puts the repository root on sys.path)
import numpy as np
import torch

from mlcore.cnn.evaluation import balanced_accuracy
from mlcore.cnn.model import CNNConfig, LineCNN
from mlcore.cnn.training import TrainConfig, train_one
from mlcore.shift import INPUT_STATS, Thresholds, compare, describe, judge
from mlcore.simulator import HELD_BACK, SCENARIOS, simulate_survey
from mlcore.survey import stack_cutouts

ROOT = Path(__file__).resolve().parent.parent
CACHE = ROOT / "var" / "bench_shift"
TRAIN_SEED = 2501


def cutouts_of(s) -> np.ndarray:
    return stack_cutouts(s.im_sum, s.im_array)


def trained_model(n_train: int, epochs: int) -> tuple[LineCNN, np.ndarray, np.ndarray, dict]:
    """The cached (or freshly trained) model, the raw cutouts and catalogue wavelengths of
    its training rows, and its training summary."""
    CACHE.mkdir(parents=True, exist_ok=True)
    path = CACHE / f"model_n{n_train}_e{epochs}.pt"
    s = simulate_survey(n_train, seed=TRAIN_SEED, field="cosmos")
    x = cutouts_of(s)
    y = s.truth["truth_real"].astype(np.float32)
    sn = s.catalog["sn"]
    wave = np.asarray(s.catalog["wave"], np.float64)
    if path.exists():
        blob = torch.load(path, weights_only=False)
        model = LineCNN(CNNConfig(**blob["config"]))
        model.load_state_dict(blob["state"])
        model.eval()
        return model, x[blob["train_idx"]], wave[blob["train_idx"]], blob["summary"]
    t0 = time.perf_counter()
    res = train_one(x, y, sn, config=TrainConfig(epochs=epochs, seed=0, max_time_s=420))
    summary = {"train_time_s": round(time.perf_counter() - t0, 1), "epochs": epochs}
    torch.save(
        {
            "config": res.model.config.to_dict(),
            "state": res.model.state_dict(),
            "train_idx": res.train_idx,
            "summary": summary,
        },
        path,
    )
    res.model.eval()
    return res.model, x[res.train_idx], wave[res.train_idx], summary


def draw(model, ref, seed: int, n: int, scenario: str | None, thresholds: Thresholds,
         n_wave: int, ref_waves: np.ndarray):  # fmt: skip
    """One draw: ``max(n, n_wave)`` simulated candidates; the pixel and model statistics
    on the first ``n``, the wavelength statistic on all of them against every training
    row's wavelength (it needs no pixels, so the platform uses whole batches too)."""
    s = simulate_survey(max(n, n_wave), seed=seed, field="cosmos", scenario=scenario)
    x = cutouts_of(s)[:n]
    sample = describe(model, x, waves=s.catalog["wave"][:n])
    rep = compare(ref, sample, thresholds=thresholds, seed=seed, ref_waves=ref_waves,
                  new_waves=s.catalog["wave"][:n_wave])  # fmt: skip
    truth = s.truth["truth_real"][:n]
    low = s.catalog["sn"][:n] <= 5.5
    rep["bacc"] = {
        "low": balanced_accuracy(truth[low], sample.scores[low] >= 0.5),
        "high": balanced_accuracy(truth[~low], sample.scores[~low] >= 0.5),
    }
    return rep


def effect_sizes(rep: dict) -> dict[str, float]:
    out = {f"ks.{k}": rep["inputs"][k]["ks"] for k in INPUT_STATS}
    out["auc"] = rep["representation"]["domain_auc"]
    out["mmd"] = rep["representation"]["mmd2"]
    out["score_ks"] = rep["scores"]["ks"]
    out["real_frac"] = abs(rep["scores"]["real_frac_new"] - rep["scores"]["real_frac_ref"])
    out["wave_z"] = rep["wavelengths"]["z"]
    return out


def thresholds_from(null: list[dict], margin: float, n_new: int, n_ref: int) -> Thresholds:
    es = [effect_sizes(r) for r in null]
    top = {k: max(e[k] for e in es) for k in es[0]}
    return Thresholds(
        ks_input={k: round(top[f"ks.{k}"] * margin, 4) for k in INPUT_STATS},
        auc=round(0.5 + (top["auc"] - 0.5) * margin, 4),
        mmd=round(top["mmd"] * margin, 6),
        score_ks=round(top["score_ks"] * margin, 4),
        real_frac=round(top["real_frac"] * margin, 4),
        wave_spike_z=round(top["wave_z"] * margin, 3),
        n_new=n_new,
        n_ref=n_ref,
        source=f"bench/bench_shift.py: max over {len(null)} held-out COSMOS draws x {margin}",
    )


def rejudge(rep: dict, th: Thresholds, *, wave: bool = True) -> str:
    """Verdict of a report computed under other thresholds, with ``th`` (same n);
    ``wave=False``: without the wavelength statistic (the report as it was before it)."""
    r = json.loads(json.dumps(rep))
    t = th.scaled(r["n_new"], r["n_ref"])
    for k in INPUT_STATS:
        r["inputs"][k]["threshold"] = t.ks_input[k]
    r["representation"]["domain_auc_threshold"] = t.auc
    r["representation"]["mmd2_threshold"] = t.mmd
    r["scores"]["ks_threshold"] = t.score_ks
    r["scores"]["real_frac_threshold"] = t.real_frac
    r["wavelengths"]["threshold"] = t.wave_spike_z if wave else None
    return judge(r, t)[0]


def reference(model, x_train, w_train, n_ref: int):
    """The reference sample: ``n_ref`` of the model's training rows (seed 0), described."""
    rng = np.random.default_rng(0)
    rows = np.sort(rng.choice(len(x_train), min(n_ref, len(x_train)), replace=False))
    return describe(model, x_train[rows], waves=w_train[rows])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--calib", type=int, default=80)
    ap.add_argument("--evaluate", type=int, default=40)
    ap.add_argument("--per-scenario", type=int, default=5)
    ap.add_argument("--n-new", type=int, default=1000)
    ap.add_argument("--n-ref", type=int, default=2000)
    ap.add_argument(
        "--n-wave", type=int, default=5000,
        help="candidates per draw for the wavelength statistic (against all training rows)",
    )  # fmt: skip
    ap.add_argument("--n-train", type=int, default=6000)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--margin", type=float, default=1.5)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument(
        "--eval-seed",
        type=int,
        default=40_000,
        help="first seed of the false-alarm draws (never used for calibration)",
    )
    ap.add_argument("--out", default=str(ROOT / "bench" / "shift.json"))
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    t0 = time.perf_counter()

    model, x_train, w_train, summary = trained_model(a.n_train, a.epochs)
    ref = reference(model, x_train, w_train, a.n_ref)
    print(
        f"model: {summary}; reference: {len(ref)} training rows ({time.perf_counter() - t0:.0f} s)"
    )

    loose = Thresholds(ks_input={k: 1.01 for k in INPUT_STATS}, auc=1.01, mmd=1e9,
                       score_ks=1.01, real_frac=1.01, wave_spike_z=1e9, n_new=a.n_new,
                       n_ref=len(ref))  # fmt: skip
    calib = [
        draw(model, ref, 10_000 + i, a.n_new, None, loose, a.n_wave, w_train)
        for i in range(a.calib)
    ]
    th = thresholds_from(calib, a.margin, a.n_new, len(ref))
    print(f"calibration: {a.calib} draws ({time.perf_counter() - t0:.0f} s)")
    print("thresholds:", json.dumps(th.to_dict()))

    def verdicts(reps, wave=True):
        return [rejudge(r, th, wave=wave) for r in reps]

    null = [
        draw(model, ref, a.eval_seed + i, a.n_new, None, th, a.n_wave, w_train)
        for i in range(a.evaluate)
    ]
    v_null = verdicts(null)
    fa = sum(v != "in distribution" for v in v_null) / len(v_null)
    fa_old = sum(v != "in distribution" for v in verdicts(null, wave=False)) / len(v_null)
    p_auc = np.array([r["representation"]["domain_auc_p"] for r in null + calib])
    p_mmd = np.array([r["representation"]["mmd2_p"] for r in null + calib])
    print(
        f"held-out COSMOS: {len(null)} draws, false alarms {fa:.3f} (without the "
        f"wavelength statistic {fa_old:.3f}) "
        f"(in distribution {1 - fa:.3f}); under the null p_auc < 0.05 in "
        f"{(p_auc < 0.05).mean():.2f}, p_mmd < 0.05 in {(p_mmd < 0.05).mean():.2f} of "
        f"{len(p_auc)} draws ({time.perf_counter() - t0:.0f} s)"
    )
    scen = {}
    for k, name in enumerate(SCENARIOS):
        reps = [
            draw(model, ref, 30_000 + 100 * k + i, a.n_new, name, th, a.n_wave, w_train)
            for i in range(a.per_scenario)
        ]
        v = verdicts(reps)
        v_old = verdicts(reps, wave=False)
        scen[name] = {
            "held_back": name == HELD_BACK,
            "draws": len(reps),
            "flagged": sum(x != "in distribution" for x in v) / len(v),
            "far": sum(x == "far" for x in v) / len(v),
            "flagged_without_wave": sum(x != "in distribution" for x in v_old) / len(v),
            "wave_spikes": [r["wavelengths"]["top"] for r in reps],
            "median_effects": {
                key: float(np.median([effect_sizes(r)[key] for r in reps]))
                for key in effect_sizes(reps[0])
            },
            "bacc_low": float(np.mean([r["bacc"]["low"] for r in reps])),
            "bacc_high": float(np.mean([r["bacc"]["high"] for r in reps])),
            "reasons_first_draw": reps[0]["reasons"],
        }
        tag = " (HELD BACK: the final test)" if name == HELD_BACK else ""
        print(
            f"{name}{tag}: flagged {scen[name]['flagged']:.2f} (without the wavelength "
            f"statistic {scen[name]['flagged_without_wave']:.2f}), far {scen[name]['far']:.2f}, "
            f"strongest spike z {scen[name]['median_effects']['wave_z']:.1f}; "
            f"bacc high/low {scen[name]['bacc_high']:.3f} / {scen[name]['bacc_low']:.3f} "
            f"({time.perf_counter() - t0:.0f} s)"
        )
    null_effects = {
        key: {
            "median": float(np.median([effect_sizes(r)[key] for r in null])),
            "max": float(np.max([effect_sizes(r)[key] for r in null])),
        }
        for key in effect_sizes(null[0])
    }
    out = {
        "config": vars(a),
        "model": summary,
        "thresholds": th.to_dict(),
        "null": {
            "draws": len(null),
            "false_alarm_rate": fa,
            "false_alarm_rate_without_wave": fa_old,
            "in_distribution_rate": 1 - fa,
            "bacc_low": float(np.mean([r["bacc"]["low"] for r in null])),
            "bacc_high": float(np.mean([r["bacc"]["high"] for r in null])),
            "effects": null_effects,
            "p_auc_below_0.05": float((p_auc < 0.05).mean()),
            "p_mmd_below_0.05": float((p_mmd < 0.05).mean()),
            "verdicts": v_null,
            "alarms": [
                {"draw": i, "verdict": v, "effects": effect_sizes(r)}
                for i, (v, r) in enumerate(zip(v_null, null, strict=True))
                if v != "in distribution"
            ],
        },
        "scenarios": scen,
        "held_back": HELD_BACK,
        "wall_s": round(time.perf_counter() - t0, 1),
    }
    Path(a.out).write_text(json.dumps(out, indent=1) + "\n")
    print(
        f"held-out COSMOS bacc high/low {out['null']['bacc_high']:.3f} / "
        f"{out['null']['bacc_low']:.3f}"
    )
    print(f"wrote {a.out} ({out['wall_s']} s)")


if __name__ == "__main__":
    main()
