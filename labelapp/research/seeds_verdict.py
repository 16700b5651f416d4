"""One verdict from many in-silico campaigns: the comparison of a strategy with random over
several seeds.

A single 8-round campaign decides the target (random's final low-S/N balanced accuracy with
at most half the labels) on a plateau where one retrain moves the figure by 1-2 points, so
one seed's crossing is mostly noise. This reads the ``campaign.json`` of several seeds
(each from ``run_campaign --compare <strategy>,random``) and reports, on the held-out
figure (never trained on; the unbiased one):

* per seed: random's final value, the labels the strategy's live model had trained on when
  it first reached it (the round's count, as in each campaign's own report, and linearly
  interpolated between rounds), their ratio to random's, and the labels random itself first
  reached its own final value with (how flat its curve already was);
* the mean curves over seeds (round by round) and the crossing of the strategy's mean curve
  with random's mean final value;
* the paired difference at equal labels: each round of the strategy against random's curve
  of the same seed, interpolated at the same number of trained labels.

Reads only the JSON reports (no database); the HTML page is built like the campaign reports'
(local plotly).
"""

from __future__ import annotations

import json
import math
from html import escape
from pathlib import Path

import numpy as np

from labelapp.errors import InvalidInput
from labelapp.research.simulated_campaign import first_reach, write_plotly_page

COST = "labels_trained"
# --regime: which held-out figure is judged (the target is about the low-S/N one)
REGIMES = {"low": ("bacc_low_holdout", "4.8-5.5"), "high": ("bacc_high_holdout", "> 5.5")}


class SeedSummaryError(InvalidInput):
    pass


def _curve(rounds: list[dict], key: str) -> tuple[np.ndarray, np.ndarray]:
    """(labels, value) with one point per distinct label count (a rejected retrain repeats
    the live model, and so its labels and value)."""
    pts = {r[COST]: r[key] for r in rounds if r.get(key) is not None and r.get(COST)}
    x = np.asarray(sorted(pts), dtype=np.float64)
    return x, np.asarray([pts[v] for v in sorted(pts)], dtype=np.float64)


def _load(item: dict | str | Path) -> dict:
    if isinstance(item, dict):
        return item
    path = Path(item)
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise SeedSummaryError(f"{path}: no such file") from None
    except json.JSONDecodeError as exc:
        raise SeedSummaryError(f"{path}: not JSON ({exc})") from None
    if not isinstance(data, dict) or "strategies" not in data:
        raise SeedSummaryError(f"{path}: not a campaign comparison (no 'strategies')")
    return data | {"path": str(path)}


def seed_summary(comparisons: list, strategy: str = "bald", regime: str = "low") -> dict:
    """The verdict over seeds; ``comparisons``: campaign.json paths or their parsed dicts."""
    if regime not in REGIMES:
        raise SeedSummaryError(f"regime must be one of {sorted(REGIMES)}, not {regime!r}")
    key = REGIMES[regime][0]
    seeds, curves = [], []
    for item in comparisons:
        data = _load(item)
        where = data.get("path", "a comparison")
        reps = data["strategies"]
        for name in (strategy, "random"):
            if name not in reps:
                raise SeedSummaryError(f"{where}: has no {name!r} campaign")
        s, r = reps[strategy]["rounds"], reps["random"]["rounds"]
        if len(s) != len(r):
            raise SeedSummaryError(f"{where}: {len(s)} {strategy} rounds, {len(r)} random")
        final = r[-1].get(key)
        if final is None:
            raise SeedSummaryError(f"{where}: random's last round has no {key}")
        seed = (reps[strategy].get("config") or {}).get("seed")
        if seed is not None and seed in (x["seed"] for x in seeds):
            raise SeedSummaryError(f"{where}: seed {seed} given twice")
        base = r[-1][COST]
        reach, own = first_reach(s, final, key), first_reach(r, final, key)
        rx, ry = _curve(r, key)
        # the strategy's rounds against random's curve at the same trained labels
        diff = [
            None
            if row.get(key) is None or not rx[0] <= row[COST] <= rx[-1]
            else round(row[key] - float(np.interp(row[COST], rx, ry)), 4)
            for row in s
        ]
        seeds.append(
            {
                "seed": seed,
                "random_final": round(final, 4),
                "random_labels": base,
                "labels_to_reach": reach[0] if reach else None,
                "ratio": round(reach[0] / base, 3) if reach else None,
                "ratio_interpolated": round(reach[1] / base, 3) if reach else None,
                "random_own_ratio": round(own[0] / base, 3) if own else None,
                "diff_at_equal_labels": diff,
            }
        )
        curves.append((s, r))
    if not seeds:
        raise SeedSummaryError("no campaigns given")
    n_rounds = {len(s) for s, _ in curves}
    if len(n_rounds) > 1:
        raise SeedSummaryError(f"campaigns of different lengths: {sorted(n_rounds)} rounds")
    mean = {strategy: _mean_curve([s for s, _ in curves], key)}
    mean["random"] = _mean_curve([r for _, r in curves], key)
    target = mean["random"]["value"][-1]
    m = mean[strategy]
    mean_rounds = [{COST: x, key: y} for x, y in zip(m["labels"], m["value"], strict=True)]
    reach = first_reach(mean_rounds, target, key)
    base = mean["random"]["labels"][-1]
    diffs = np.asarray(
        [[math.nan if d is None else d for d in s["diff_at_equal_labels"]] for s in seeds]
    )
    return {
        "strategy": strategy,
        "key": key,
        "regime": regime,
        "n_seeds": len(seeds),
        "seeds": seeds,
        "met_in": sum(1 for s in seeds if s["ratio"] is not None and s["ratio"] <= 0.5),
        "never_reached": sum(1 for s in seeds if s["ratio"] is None),
        "mean": mean,
        "mean_random_final": round(target, 4),
        "mean_labels_to_reach": round(reach[1], 1) if reach else None,
        "mean_ratio": round(reach[0] / base, 3) if reach else None,
        "mean_ratio_interpolated": round(reach[1] / base, 3) if reach else None,
        "diff_mean": [_round(v) for v in _nanmean(diffs)],
        "diff_se": [_round(v) for v in _nanse(diffs)],
    }


def _mean_curve(rounds: list[list[dict]], key: str) -> dict:
    x = np.asarray([[row[COST] for row in r] for r in rounds], dtype=np.float64)
    y = np.asarray([[math.nan if row.get(key) is None else row[key] for row in r] for r in rounds])
    return {
        "labels": [round(v, 1) for v in x.mean(axis=0)],
        "value": [_round(v) for v in _nanmean(y)],
        "se": [_round(v) for v in _nanse(y)],
    }


def _nanmean(a: np.ndarray) -> np.ndarray:
    n = np.sum(~np.isnan(a), axis=0)
    return np.where(n > 0, np.nansum(a, axis=0) / np.maximum(n, 1), math.nan)


def _nanse(a: np.ndarray) -> np.ndarray:
    """Standard error of the mean over seeds (nan with fewer than two values)."""
    n = np.sum(~np.isnan(a), axis=0)
    dev = np.where(np.isnan(a), 0.0, a - _nanmean(a)) ** 2
    var = np.sum(dev, axis=0) / np.maximum(n - 1, 1)
    return np.where(n > 1, np.sqrt(var / np.maximum(n, 1)), math.nan)


def _round(v: float) -> float | None:
    return None if math.isnan(v) else round(float(v), 4)


def markdown(summary: dict) -> str:
    """The per-seed table and the mean verdict, as Markdown (for bench/RESULTS.md)."""
    s = summary["strategy"]
    out = [
        f"| seed | random final (trained labels) | {s} first reaches it at | ratio | "
        "interpolated | random reaches its own final at |",
        "|---|---|---|---|---|---|",
    ]
    for row in summary["seeds"]:
        reach = f"{row['labels_to_reach']:,}" if row["labels_to_reach"] else "never"
        ratios = (row["ratio"], row["ratio_interpolated"], row["random_own_ratio"])
        out.append(
            f"| {row['seed']} | {row['random_final']:.3f} ({row['random_labels']:,}) | {reach} | "
            + " | ".join(map(_x, ratios))
            + " |"
        )
    m = summary["mean"]
    out += [
        "",
        f"Mean over {summary['n_seeds']} seeds (held-out, S/N {REGIMES[summary['regime']][1]}): "
        f"random's final {summary['mean_random_final']:.3f} "
        f"at {m['random']['labels'][-1]:,.0f} labels; {s}'s mean curve reaches it at "
        f"{_x(summary['mean_ratio'])} (interpolated {_x(summary['mean_ratio_interpolated'])}). "
        f"Half of random's labels or fewer in {summary['met_in']} of {summary['n_seeds']} seeds.",
        "",
        f"| round | {s}: labels, mean ± SE | random: labels, mean ± SE | "
        f"{s} - random at equal labels, mean ± SE |",
        "|---|---|---|---|",
    ]
    for k in range(len(m[s]["labels"])):
        a, b = m[s], m["random"]
        out.append(
            f"| {k + 1} | {a['labels'][k]:,.0f}: {_pm(a['value'][k], a['se'][k])} | "
            f"{b['labels'][k]:,.0f}: {_pm(b['value'][k], b['se'][k])} | "
            f"{_pm(summary['diff_mean'][k], summary['diff_se'][k], signed=True)} |"
        )
    return "\n".join(out) + "\n"


def _x(v) -> str:
    return "never" if v is None else f"{v:.2f}x"


def _pm(v, se, signed: bool = False) -> str:
    if v is None:
        return "-"
    text = f"{v:+.3f}" if signed else f"{v:.3f}"
    return text if se is None else f"{text} ± {se:.3f}"


def write_seed_summary(
    comparisons: list, out_dir: Path, strategy: str = "bald", regime: str = "low"
) -> dict:
    """``seeds.json``, ``seeds.md`` and ``seeds.html`` (plotly, local script) in ``out_dir``."""
    comparisons = [_load(c) for c in comparisons]  # read once, for the summary and figure
    summary = seed_summary(comparisons, strategy, regime)
    sn = REGIMES[regime][1]
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "seeds.json").write_text(json.dumps(summary, indent=2))
    (out_dir / "seeds.md").write_text(markdown(summary))
    seeds = ", ".join(str(s["seed"]) for s in summary["seeds"])
    heading = f"{escape(strategy)} against random over {summary['n_seeds']} seeds ({seeds})"
    write_plotly_page(
        out_dir / "seeds.html",
        title="Campaigns over seeds",
        before=f"""<h1>{heading}</h1>
<p>Balanced accuracy at S/N {sn} on the held-out sample (never trained on) against
the labels the live model trained on. Thin lines: each seed; thick: the mean over seeds,
band ±1 standard error (a seed's first round may lie below the axis). Dashed grey:
random's mean final value and half of its labels: the target is to cross the line left of
the half mark. Target met in {summary["met_in"]} of {summary["n_seeds"]} seeds; the mean
curve reaches it at {_x(summary["mean_ratio_interpolated"])} (interpolated between
rounds).</p>
""",
        figs=[_curves_figure(summary, comparisons), _diff_figure(summary)],
    )
    return summary


COLOURS = {"random": "#7f7f7f"}
DEFAULT_COLOUR = "#1f77b4"


def _curves_figure(summary: dict, comparisons: list) -> dict:
    s, key = summary["strategy"], summary["key"]
    sn = REGIMES[summary["regime"]][1]
    traces = []
    for item in comparisons:
        data = _load(item)
        seed = (data["strategies"][s].get("config") or {}).get("seed")
        for name in (s, "random"):
            rows = data["strategies"][name]["rounds"]
            traces.append(
                {
                    "x": [r[COST] for r in rows],
                    "y": [r.get(key) for r in rows],
                    "mode": "lines",
                    "line": {"width": 1, "color": COLOURS.get(name, DEFAULT_COLOUR)},
                    "opacity": 0.35,
                    "name": f"{name}, seed {seed}",
                    "showlegend": False,
                }
            )
    for name in (s, "random"):
        m = summary["mean"][name]
        colour = COLOURS.get(name, DEFAULT_COLOUR)
        hi = [None if v is None else v + (e or 0) for v, e in zip(m["value"], m["se"], strict=True)]
        lo = [None if v is None else v - (e or 0) for v, e in zip(m["value"], m["se"], strict=True)]
        traces += [
            {"x": m["labels"], "y": hi, "mode": "lines", "line": {"width": 0},
             "showlegend": False, "hoverinfo": "skip"},
            {"x": m["labels"], "y": lo, "mode": "lines", "line": {"width": 0}, "fill": "tonexty",
             "fillcolor": "rgba(31,119,180,0.15)" if name == s else "rgba(127,127,127,0.2)",
             "showlegend": False, "hoverinfo": "skip"},
            {"x": m["labels"], "y": m["value"], "mode": "lines+markers",
             "line": {"width": 3, "color": colour},
             "name": f"{name}, mean of {summary['n_seeds']} seeds"},
        ]  # fmt: skip
    target, half = summary["mean_random_final"], summary["mean"]["random"]["labels"][-1] / 2
    line = {"color": "#888", "dash": "dash", "width": 1}
    # The axis spans the mean curves, so one seed's poor first model does not squash them.
    means = [v for name in (s, "random") for v in summary["mean"][name]["value"] if v is not None]
    tops = [v for t in traces for v in t["y"] if v is not None]
    y_range = [min(means) - 0.02, max(tops) + 0.01]
    return {
        "data": traces,
        "layout": {
            "title": {"text": f"Balanced accuracy at S/N {sn} (held-out) against trained labels"},
            "xaxis": {"title": {"text": "labels the live model trained on"}},
            "yaxis": {
                "title": {"text": f"balanced accuracy, S/N {sn} (held-out sample)"},
                "range": y_range,
            },
            "shapes": [
                {"type": "line", "xref": "paper", "x0": 0, "x1": 1, "y0": target, "y1": target,
                 "line": line},
                {"type": "line", "yref": "paper", "y0": 0, "y1": 1, "x0": half, "x1": half,
                 "line": line},
            ],
            "annotations": [
                {"xref": "paper", "x": 0, "y": target, "yanchor": "bottom", "xanchor": "left",
                 "showarrow": False, "text": "random's mean final"},
                {"yref": "paper", "y": 1, "x": half, "xanchor": "left", "showarrow": False,
                 "text": "half of random's labels"},
            ],
            "height": 520,
        },
    }  # fmt: skip


def _diff_figure(summary: dict) -> dict:
    s = summary["strategy"]
    sn = REGIMES[summary["regime"]][1]
    rounds = list(range(1, len(summary["diff_mean"]) + 1))
    return {
        "data": [
            {
                "x": rounds,
                "y": summary["diff_mean"],
                "error_y": {"type": "data", "array": summary["diff_se"], "visible": True},
                "type": "bar",
                "name": f"{s} - random",
            }
        ],
        "layout": {
            "title": {"text": f"{s} minus random at equal trained labels (held-out, S/N {sn})"},
            "xaxis": {"title": {"text": f"{s}'s round"}, "dtick": 1},
            "yaxis": {"title": {"text": "difference in balanced accuracy (mean ± SE over seeds)"}},
            "height": 400,
        },
    }
