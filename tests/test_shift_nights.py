"""mlcore.nights: observing nights from HETDEX shot ids and the night groups of the shift
reports (one group per night with enough candidates, small nights merged within a run)."""

import numpy as np
import pytest

from mlcore.errors import DataError
from mlcore.nights import NightGroup, in_nights, night_groups, nights_of
from mlcore.simulator import simulate_survey


def _shots(**per_night):
    """{"20190105": 120, ...} -> shot ids, two observations per night, shuffled."""
    out = []
    for night, n in per_night.items():
        base = int(night.lstrip("n")) * 1000
        out += [base + 7] * (n // 2) + [base + 12] * (n - n // 2)
    return np.random.default_rng(0).permutation(np.asarray(out, np.int64))


def test_nights_of_reads_the_date_part():
    assert nights_of(np.array([20190105012, 20190105001, 20211231999])).tolist() == [
        20190105,
        20190105,
        20211231,
    ]
    assert nights_of(np.array([], np.int64)).tolist() == []


@pytest.mark.parametrize(
    "bad",
    [[0], [-999], [20190105], [20191305012], [20190431001], [20190229001], [12345678901234]],
)
def test_shot_ids_that_are_no_night_are_refused_by_name(bad):
    with pytest.raises(DataError, match=rf"do not encode an observing night.*{bad[0]}"):
        nights_of(np.array([20190105012, *bad], np.int64))


def test_non_integer_shot_ids_are_refused():
    with pytest.raises(DataError, match="must be integers"):
        nights_of(np.array([20190105012.0]))
    with pytest.raises(DataError, match="1-D"):
        nights_of(np.zeros((2, 2), np.int64))


def test_one_night_is_one_group():
    (g,) = night_groups(_shots(n20190105=150))
    assert g == NightGroup(first=20190105, last=20190105, n=150, n_nights=1)
    assert g.label == "20190105" and g.shotid_range == (20190105000, 20190105999)


def test_big_nights_stand_alone_and_small_ones_merge_with_their_neighbours():
    shots = _shots(
        n20190103=40,  # small: merges forward with the 4th
        n20190104=300,
        n20190105=150,  # alone
        n20190107=30,  # small, then 8th: 30 + 80 reaches 100 -> a group
        n20190108=80,
        n20190110=20,  # left at the run's end: joins the run's last group
    )
    groups = night_groups(shots, min_size=100)
    assert [(g.label, g.n, g.n_nights) for g in groups] == [
        ("20190103-20190104", 340, 2),
        ("20190105", 150, 1),
        ("20190107-20190110", 130, 3),
    ]
    assert sum(g.n for g in groups) == len(shots)


def test_groups_never_cross_a_gap_between_runs_and_a_small_run_stays_small():
    shots = _shots(n20190105=150, n20190120=30, n20190121=40, n20190301=60, n20190302=50)
    groups = night_groups(shots, min_size=100, max_gap_days=5)
    assert [(g.label, g.n) for g in groups] == [
        ("20190105", 150),
        ("20190120-20190121", 70),  # a whole run under 100: the caller reports it too small
        ("20190301-20190302", 110),
    ]
    # a wider gap joins the runs: the small nights join the group before them
    wide = night_groups(shots, min_size=100, max_gap_days=20)
    assert [(g.label, g.n) for g in wide] == [
        ("20190105-20190121", 220),
        ("20190301-20190302", 110),
    ]
    one_run = night_groups(shots, min_size=100, max_gap_days=60)
    assert [(g.label, g.n) for g in one_run] == [("20190105", 150), ("20190120-20190302", 180)]


def test_month_and_year_ends_are_one_day_apart():
    shots = _shots(n20181231=60, n20190101=60)
    assert [g.label for g in night_groups(shots, min_size=100, max_gap_days=1)] == [
        "20181231-20190101"
    ]
    assert len(night_groups(shots, min_size=100, max_gap_days=0)) == 2


def test_every_candidate_is_in_exactly_one_group_and_in_nights_finds_them():
    rng = np.random.default_rng(3)
    days = np.datetime64("2019-01-01") + rng.integers(0, 90, 40).astype("timedelta64[D]")
    ymd = np.array([int(str(d).replace("-", "")) for d in days])
    shots = np.repeat(ymd * 1000 + 11, rng.integers(1, 90, 40))
    groups = night_groups(shots, min_size=100)
    member = np.stack([in_nights(shots, g.first, g.last) for g in groups])
    assert (member.sum(0) == 1).all()
    assert [int(m.sum()) for m in member] == [g.n for g in groups]
    assert all(g.n >= 100 for g in groups[:-1]) or len(groups) == 1


def test_bad_arguments_are_refused():
    with pytest.raises(DataError, match="min_size"):
        night_groups(_shots(n20190105=10), min_size=0)
    with pytest.raises(DataError, match="max_gap_days"):
        night_groups(_shots(n20190105=10), max_gap_days=-1)
    assert night_groups(np.array([], np.int64)) == []


def test_simulated_surveys_spread_over_nights_of_several_years():
    """What night groups look like in simulation: a shot per night, ~250 candidates each,
    on random dates in 2017-2022, so nights are far apart and each is its own group (a
    night under 100 candidates, alone in its run, is a small group)."""
    s = simulate_survey(1200, seed=12)
    groups = night_groups(s.catalog["shotid"])
    assert len(groups) >= 3 and all(g.n_nights == 1 for g in groups)
    assert all(20170101 <= g.first <= 20230131 for g in groups)
    assert sum(g.n for g in groups) == 1200
