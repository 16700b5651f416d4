"""The verdict over several campaign seeds (labelapp.research.seeds_verdict)."""

import json

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from labelapp.research.seeds_verdict import SeedSummaryError, seed_summary, write_seed_summary
from labelapp.research.simulated_campaign import first_reach

HELD = "bacc_low_holdout"


def rounds(labels, values):
    return [
        {"labels_trained": x, "bacc_low_holdout": v} for x, v in zip(labels, values, strict=True)
    ]


def comparison(seed, bald, random):
    return {
        "strategies": {
            "bald": {"config": {"seed": seed}, "rounds": rounds(*bald)},
            "random": {"config": {"seed": seed}, "rounds": rounds(*random)},
        }
    }


def test_first_reach_gives_the_round_and_the_interpolated_labels():
    r = rounds([100, 200, 300, 400], [0.70, 0.80, 0.84, 0.90])
    assert first_reach(r, 0.82, HELD) == (300, pytest.approx(250.0))  # halfway from 0.80 to 0.84
    assert first_reach(r, 0.70, HELD) == (100, 100.0)  # the first round: nothing to interpolate
    assert first_reach(r, 0.95, HELD) is None
    r[1]["bacc_low_holdout"] = None  # a round without the figure is skipped
    assert first_reach(r, 0.82, HELD) == (300, pytest.approx(100 + (0.12 / 0.14) * 200))


def test_per_seed_crossings_mean_curve_and_paired_difference():
    # seed 1: bald reaches random's final 0.85 in round 2 (200 of 400 labels: 0.5x);
    # seed 2: never. Random itself first reaches its own final only in its last round.
    one = comparison(1, ([100, 200, 300, 400], [0.80, 0.86, 0.86, 0.87]),
                     ([100, 200, 300, 400], [0.80, 0.82, 0.84, 0.85]))  # fmt: skip
    two = comparison(2, ([100, 200, 300, 400], [0.80, 0.81, 0.82, 0.83]),
                     ([100, 200, 300, 400], [0.80, 0.83, 0.84, 0.87]))  # fmt: skip
    s = seed_summary([one, two])
    first, second = s["seeds"]
    assert (first["seed"], first["labels_to_reach"], first["ratio"]) == (1, 200, 0.5)
    assert first["ratio_interpolated"] == pytest.approx((100 + 0.05 / 0.06 * 100) / 400, abs=1e-3)
    assert first["random_own_ratio"] == 1.0
    assert second["labels_to_reach"] is None and second["ratio"] is None
    assert (s["met_in"], s["never_reached"], s["n_seeds"]) == (1, 1, 2)
    # at equal labels: seed 1 round 2 is 0.86 against random's 0.82
    assert first["diff_at_equal_labels"] == pytest.approx([0.0, 0.04, 0.02, 0.02])
    assert s["diff_mean"][1] == pytest.approx((0.04 - 0.02) / 2)
    assert s["diff_se"][1] == pytest.approx(0.03)  # sd of (0.04, -0.02) over sqrt(2)
    # mean curves round by round; random's mean final is 0.86, bald's mean curve tops at 0.85
    assert s["mean"]["random"]["value"] == pytest.approx([0.80, 0.825, 0.84, 0.86])
    assert s["mean_random_final"] == 0.86 and s["mean_ratio"] is None


def test_paired_difference_only_inside_randoms_range_and_repeats_of_the_live_model():
    # random's gate rejected its round-3 retrain: the live model (200 labels) is repeated
    c = comparison(5, ([150, 250, 450], [0.82, 0.84, 0.85]), ([100, 200, 200], [0.80, 0.84, 0.84]))
    s = seed_summary([c])
    assert s["seeds"][0]["diff_at_equal_labels"] == pytest.approx([0.0, None, None])
    assert s["seeds"][0]["random_labels"] == 200 and s["seeds"][0]["labels_to_reach"] == 250


def test_bad_input_says_what_is_wrong(tmp_path):
    ok = comparison(1, ([100], [0.8]), ([100], [0.8]))
    with pytest.raises(SeedSummaryError, match="no 'random' campaign"):
        seed_summary([{"strategies": {"bald": ok["strategies"]["bald"]}}])
    with pytest.raises(SeedSummaryError, match="seed 1 given twice"):
        seed_summary([ok, ok])
    unseeded = {"strategies": {k: {"rounds": v["rounds"]} for k, v in ok["strategies"].items()}}
    assert seed_summary([unseeded, unseeded])["n_seeds"] == 2  # old reports without a config
    with pytest.raises(SeedSummaryError, match="1 bald rounds, 2 random"):
        seed_summary([comparison(2, ([100], [0.8]), ([100, 200], [0.8, 0.9]))])
    with pytest.raises(SeedSummaryError, match="different lengths"):
        seed_summary([ok, comparison(2, ([1, 2], [0.8, 0.9]), ([1, 2], [0.8, 0.9]))])
    no_figure = comparison(3, ([100], [0.8]), ([100], [None]))
    with pytest.raises(SeedSummaryError, match="random's last round has no bacc_low_holdout"):
        seed_summary([no_figure])
    with pytest.raises(SeedSummaryError, match="no campaigns given"):
        seed_summary([])
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(SeedSummaryError, match=r"bad\.json: not JSON"):
        seed_summary([tmp_path / "bad.json"])
    (tmp_path / "other.json").write_text('{"rows": []}')
    with pytest.raises(SeedSummaryError, match="not a campaign comparison"):
        seed_summary([tmp_path / "other.json"])
    with pytest.raises(SeedSummaryError, match="missing.json: no such file"):
        seed_summary([tmp_path / "missing.json"])


def test_command_writes_the_report_and_prints_the_tables(tmp_path, capsys):
    paths = []
    for seed, lift in ((1, 0.03), (2, 0.01)):
        c = comparison(seed, ([100, 200, 300], [0.80, 0.82 + lift, 0.84 + lift]),
                       ([100, 200, 300], [0.80, 0.82, 0.84]))  # fmt: skip
        paths.append(tmp_path / f"seed{seed}.json")
        paths[-1].write_text(json.dumps(c))
    out = tmp_path / "out"
    call_command("campaign_seeds", *map(str, paths), "--out", str(out))
    printed = capsys.readouterr().out
    assert "| 1 | 0.840 (300) | 200 | 0.67x |" in printed
    assert "Half of random's labels or fewer in 0 of 2 seeds." in printed
    assert "Mean over 2 seeds (held-out, S/N 4.8-5.5)" in printed
    html = (out / "seeds.html").read_text()
    assert "bald against random over 2 seeds (1, 2)" in html and "plotly.min.js" in html
    assert (out / "plotly.min.js").exists()
    assert json.loads((out / "seeds.json").read_text())["n_seeds"] == 2
    with pytest.raises(CommandError, match="no such file"):
        call_command("campaign_seeds", str(tmp_path / "nope.json"), "--out", str(out))


def test_write_seed_summary_for_another_strategy(tmp_path):
    c = comparison(7, ([100, 200], [0.8, 0.9]), ([100, 200], [0.8, 0.85]))
    c["strategies"]["entropy"] = c["strategies"].pop("bald")
    s = write_seed_summary([c], tmp_path, strategy="entropy")
    assert s["seeds"][0]["labels_to_reach"] == 200 and s["strategy"] == "entropy"
    assert "entropy against random" in (tmp_path / "seeds.html").read_text()


def test_the_high_sn_figure_on_request():
    c = comparison(3, ([100, 200], [0.8, 0.9]), ([100, 200], [0.8, 0.85]))
    for name, high in (("bald", [0.9, 0.95]), ("random", [0.9, 0.97])):
        for row, v in zip(c["strategies"][name]["rounds"], high, strict=True):
            row["bacc_high_holdout"] = v
    low, high = seed_summary([c]), seed_summary([c], regime="high")
    assert low["seeds"][0]["labels_to_reach"] == 200 and low["key"] == "bacc_low_holdout"
    assert high["seeds"][0]["labels_to_reach"] is None and high["seeds"][0]["random_final"] == 0.97
    with pytest.raises(SeedSummaryError, match="regime must be one of"):
        seed_summary([c], regime="mid")
