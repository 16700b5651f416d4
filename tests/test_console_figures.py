"""Console plots read well with a handful of points (issue #27's review of a fresh project):
one tick a day on a short activity chart, no one-point 'time series', labelled target
lines, no sparse-bin zig-zag under a legend."""

from __future__ import annotations

import datetime as dt
from types import SimpleNamespace

from labelapp.selectors.campaign import DAY_MS, activity_figure
from labelapp.selectors.candidates import posterior_figure
from labelapp.selectors.models import RELIABILITY_MIN_BIN, metrics_figure, reliability_figure


def _act(n_days: int) -> dict:
    days = [(dt.date(2026, 12, 1) + dt.timedelta(days=k)).isoformat() for k in range(n_days)]
    return {"days": days, "votes": [5] * n_days, "volunteers": [2] * n_days}


def test_a_short_activity_chart_ticks_once_a_day_and_keeps_titles_off_the_ticks():
    short = activity_figure(_act(2))["layout"]
    assert short["xaxis"]["dtick"] == DAY_MS and short["xaxis"]["automargin"]
    assert short["yaxis"]["automargin"] and short["yaxis2"]["automargin"]
    assert "dtick" not in activity_figure(_act(40))["layout"]["xaxis"]  # plotly's own ticks


def test_one_posterior_value_is_not_a_time_series():
    now = dt.datetime(2026, 12, 6, 12, 0, tzinfo=dt.UTC)
    live = SimpleNamespace(updated_at=now, posterior=0.7, n_votes=3)
    assert posterior_figure({"labels": [], "consensus": live}) is None
    run = {
        "run__started_at": now - dt.timedelta(hours=5),
        "posterior": 0.6,
        "run_id": 1,
        "run__method": "ds",
        "n_votes": 2,
    }
    fig = posterior_figure({"labels": [run], "consensus": live})
    assert fig["data"][0]["y"] == [0.6, 0.7]
    assert fig["layout"]["xaxis"]["type"] == "date"


def test_the_paper_targets_are_labelled():
    row = {
        "mv": SimpleNamespace(pk=3),
        "round": 2,
        "test": {r: {"balanced_accuracy": 0.9} for r in ("overall", "low", "high")},
    }
    notes = metrics_figure([row])["layout"]["annotations"]
    texts = sorted(n["text"] for n in notes)
    assert texts == ["paper's target, 4.8 ≤ S/N ≤ 5.5: 0.85", "paper's target, S/N > 5.5: 0.94"]
    assert sorted(n["y"] for n in notes) == [0.85, 0.94]


def test_reliability_leaves_out_sparse_bins_and_puts_the_legend_below():
    curve = {
        "mean_pred": [0.05, 0.15, 0.25, 0.35],
        "frac_real": [0.02, 1.0, 0.3, 0.0],
        "count": [500, 2, 80, RELIABILITY_MIN_BIN - 1],
    }
    card = {
        "metrics": {
            "calibration": {
                "temperature": 1.3,
                "reliability_uncalibrated": curve,
                "reliability_calibrated": curve,
            }
        }
    }
    fig = reliability_figure(card)
    kept = [t for t in fig["data"] if t["name"].startswith("T =")][0]
    assert kept["x"] == [0.05, 0.25] and kept["y"] == [0.02, 0.3]
    assert fig["layout"]["legend"]["orientation"] == "h" and fig["layout"]["legend"]["y"] < 0


def test_no_votes_draws_no_chart_and_one_day_is_a_day_wide_bar():
    assert activity_figure({"days": [], "votes": [], "volunteers": []}) is None
    one = activity_figure(_act(1))["layout"]
    lo, hi = (dt.datetime.fromisoformat(x) for x in one["xaxis"]["range"])
    assert (hi - lo).days >= 7  # a week of axis: the one bar is a day wide
    assert one["yaxis2"]["dtick"] == 1 and one["yaxis2"]["tickformat"] == "d"
