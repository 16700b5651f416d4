"""The held-out expert sample: drawn at random, never trained on, the gate's evaluation set."""

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from labelapp.models import Candidate, HoldoutLabel, ModelVersion
from labelapp.services.learning.holdout import (
    HoldoutError,
    draw_sample,
    hold_out,
    hold_out_from_truth,
    holdout_labels,
    read_answers,
)
from labelapp.services.learning.promotion import evaluation_set
from labelapp.services.learning.rounds import start_round
from labelapp.services.learning.training import train_model_version, training_set
from labelapp.services.survey.ingest import ingest_survey
from mlcore.simulator import simulate_survey
from mlcore.survey import SN_LOW_MAX
from mlcore.survey_io import write_survey
from tests.factories_volunteers import make_candidates, make_gold

pytestmark = pytest.mark.django_db


@pytest.fixture
def simulated(tmp_path, settings):
    settings.MODELS_DIR = tmp_path / "models"
    ingest_survey(path=write_survey(tmp_path / "s.fits", simulate_survey(900, seed=13)))


def test_draw_is_stratified_seeded_and_skips_gold_and_held_out():
    cands = make_candidates(200)
    make_gold(cands[0], is_real=True)
    ids = draw_sample(n=40, low_share=0.25, seed=3)
    assert ids == draw_sample(n=40, low_share=0.25, seed=3) and len(set(ids)) == 40
    assert cands[0].pk not in ids
    sn = dict(Candidate.objects.filter(pk__in=ids).values_list("pk", "sn"))
    assert sum(sn[i] <= SN_LOW_MAX for i in ids) == 10  # 25% of 40 from the low regime
    hold_out(labels={i: True for i in ids}, source="expert")
    assert not set(draw_sample(n=100, seed=4)) & set(ids)


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"n": 0}, "at least 1"),
        ({"n": 10, "low_share": 1.5}, "between 0 and 1"),
        ({"n": 10_000}, "only 50 can be held out"),
    ],
)
def test_bad_draws_say_what_is_wrong(kw, message):
    make_candidates(50)
    with pytest.raises(HoldoutError, match=message):
        draw_sample(**kw)


def test_gold_cannot_be_held_out_and_nothing_is_stored():
    c = make_candidates(3)
    make_gold(c[1], is_real=False)
    with pytest.raises(HoldoutError, match="gold standards"):
        hold_out(labels={c[0].pk: True, c[1].pk: False}, source="expert")
    assert not HoldoutLabel.objects.exists()


def test_a_re_import_corrects_answers_and_counts_only_new_ones():
    c = make_candidates(3)
    assert hold_out(labels={c[0].pk: True, c[1].pk: True}, source="expert") == 2
    assert hold_out(labels={c[1].pk: False, c[2].pk: True}, source="expert") == 1
    assert holdout_labels() == {c[0].pk: True, c[1].pk: False, c[2].pk: True}


def test_held_out_candidates_go_to_the_back_of_the_queue():
    c = make_candidates(20)
    lowest = min(c, key=lambda x: x.sn)  # first in the low-S/N-first queue
    hold_out(labels={lowest.pk: True}, source="expert")
    assert Candidate.objects.order_by("-priority").last().pk == lowest.pk
    start_round(model_version=None)  # a new round keeps them there
    assert Candidate.objects.order_by("-priority").last().pk == lowest.pk


def test_training_never_sees_the_sample_and_tests_on_it(simulated):
    total = Candidate.objects.count()
    assert hold_out_from_truth(n=200, low_share=0.5, seed=1) == 200
    ts = training_set(label_source="truth")
    held = holdout_labels()
    assert ts.holdout.sum() == 200 and set(ts.candidate_id[ts.holdout].tolist()) == set(held)
    assert len(ts.candidate_id) == total  # the other 700 are the training labels
    version = train_model_version(label_source="truth", epochs=1, max_time_s=30)
    card = version.card
    assert card["test_set"] == "held-out expert sample" and card["n_labels"] == total - 200
    assert card["metrics"]["n_test"] == 200
    # every other label went to train + validation (no 20% test split taken from them)
    assert version.n_train == pytest.approx(0.85 * (total - 200), abs=4)


def test_the_gate_judges_on_the_held_out_sample_when_there_is_one():
    c = make_candidates(10)
    make_gold(c[0], is_real=True)
    labels, kind = evaluation_set()
    assert kind == "gold/expert" and set(labels) == {c[0].pk}
    hold_out(labels={c[1].pk: False, c[2].pk: True}, source="expert")
    labels, kind = evaluation_set()
    assert kind == "held-out expert" and labels == {c[1].pk: False, c[2].pk: True}


def test_answers_file_is_checked_whole_before_anything_is_stored(tmp_path):
    c = make_candidates(3)
    good = tmp_path / "a.csv"
    good.write_text(f"detectid,is_real\n{c[0].detectid},yes\n{c[1].detectid},0\n")
    assert read_answers(good) == {c[0].pk: True, c[1].pk: False}
    cases = {
        "detectid,answer\n1,1\n": "needs the columns is_real",
        f"detectid,is_real\n{c[0].detectid},maybe\n": "line 2: is_real 'maybe'",
        f"detectid,is_real\n{c[0].detectid},1\nabc,1\n": "line 3: detectid 'abc'",
        f"detectid,is_real\n{c[0].detectid},1\n{c[0].detectid},0\n": "line 3: .* twice",
        "detectid,is_real\n999999999,1\n": "not in the catalogue",
        "detectid,is_real\n": "no answers",
    }
    for text, message in cases.items():
        bad = tmp_path / "bad.csv"
        bad.write_text(text)
        with pytest.raises(HoldoutError, match=message):
            read_answers(bad)
    with pytest.raises(HoldoutError, match="cannot read"):
        read_answers(tmp_path / "missing.csv")
    assert not HoldoutLabel.objects.exists()


def test_command_draws_imports_and_reports(tmp_path, capsys):
    make_candidates(60, sn0=5.2)  # 31 at S/N <= 5.5, 29 above
    sheet = tmp_path / "sample.csv"
    call_command("holdout", "--draw", "12", "--out", str(sheet), "--low-share", "0.5")
    lines = sheet.read_text().splitlines()
    assert lines[0] == "detectid,sn,wave,field,is_real" and len(lines) == 13
    answered = ["detectid,is_real"] + [f"{ln.split(',')[0]},1" for ln in lines[1:]]
    sheet.write_text("\n".join(answered) + "\n")
    call_command("holdout", "--import", str(sheet))
    out = capsys.readouterr().out
    assert "Loaded 12 answers (12 new)" in out and "Held out: 12 candidates" in out
    assert HoldoutLabel.objects.filter(source="expert", is_real=True).count() == 12
    with pytest.raises(CommandError, match="--draw needs --out"):
        call_command("holdout", "--draw", "3")
    with pytest.raises(CommandError, match="only 48 can be held out"):
        call_command("holdout", "--from-truth", "100")


def test_a_bad_campaign_holdout_fails_before_anything_is_stored(simulated):
    from labelapp.research.simulated_campaign import CampaignConfig, CampaignError, run_campaign

    with pytest.raises(CampaignError, match="--holdout must be 0 or more"):
        run_campaign(config=CampaignConfig(holdout=-1))
    assert not HoldoutLabel.objects.exists() and not ModelVersion.objects.exists()


def test_consensus_targets_drop_held_out_candidates(settings):
    """A held-out candidate the crowd also settled is still never a training label (and
    does not count as a new label for the nightly retrain)."""
    from labelapp.models import AggregationRun, Label
    from labelapp.services.learning.training import consensus_targets

    settings.RETIRE_MIN_VOTES, settings.TRAIN_MIN_CONFIDENCE = 2, 0.9
    c = make_candidates(3)
    run = AggregationRun.objects.create(method="dawid_skene", status="done", n_votes=9)
    for cand in c:
        Label.objects.create(
            run=run, candidate=cand, posterior=0.98, is_real=True, confidence=0.98,
            n_votes=3, info_gain=0.0,
        )  # fmt: skip
    hold_out(labels={c[1].pk: True}, source="expert")
    assert set(consensus_targets()) == {c[0].pk, c[2].pk}
