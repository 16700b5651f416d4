"""An in-silico campaign runs the loop round after round and reports per-regime accuracy."""

import json

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from labelapp.models import ModelVersion, Round, Vote
from labelapp.services.campaign import labels_to_reach, write_comparison
from labelapp.services.ingest import ingest_survey
from mlcore.simulator import simulate_survey
from mlcore.survey_io import write_survey

pytestmark = pytest.mark.django_db


@pytest.mark.slow
def test_two_rounds_of_the_loop(tmp_path, settings, capsys):
    settings.MODELS_DIR = tmp_path / "models"
    settings.VOTE_RATE_LIMIT = 10**6
    ingest_survey(path=write_survey(tmp_path / "s.fits", simulate_survey(500, seed=6)))
    call_command(
        "run_campaign",
        "--strategy",
        "bald",
        "--rounds",
        "2",
        "--labels-per-round",
        "30",
        "--volunteers",
        "20",
        "--epochs",
        "1",
        "--out",
        str(tmp_path / "out"),
    )
    report = json.loads((tmp_path / "out" / "bald.json").read_text())
    assert [r["round"] for r in report["rounds"]] == [1, 2]
    assert report["rounds"][1]["votes_total"] > report["rounds"][0]["votes_total"] > 0
    assert all(r["bacc_high"] is not None for r in report["rounds"])
    assert ModelVersion.objects.count() == 2
    # round 1 is low-S/N first; round 2 was chosen from the live model's scores
    assert [r.scored_by_id is not None for r in Round.objects.order_by("number")] == [False, True]
    assert Vote.objects.count() == report["rounds"][1]["votes_total"]
    last = report["rounds"][1]
    live = ModelVersion.objects.get(pk=last["live_model"])
    assert last["labels_trained"] == live.card["n_labels"] > 0


def test_a_campaign_needs_a_fresh_database(tmp_path):
    with pytest.raises(CommandError, match="needs a simulated survey"):
        call_command("run_campaign", "--rounds", "1")


def test_comparison_report_counts_labels_and_votes_saved(tmp_path):
    def rounds(values, votes_per_label, trained):
        return [
            {
                "labels_total": 100 * (k + 1),
                "labels_trained": trained * (k + 1),
                "votes_total": votes_per_label * 100 * (k + 1),
                "bacc_low": v,
                "bacc_high": 0.9,
            }
            for k, v in enumerate(values)
        ]

    # bald needs half the labels but each of its (harder) labels costs twice the votes
    reports = {
        "random": {"rounds": rounds([0.6, 0.7, 0.8, 0.85], 3, 50)},
        "bald": {"rounds": rounds([0.7, 0.86, 0.88, 0.9], 6, 30)},
    }
    assert labels_to_reach(reports["bald"]["rounds"], 0.85) == 200
    path = write_comparison(reports, tmp_path)
    summary = json.loads((tmp_path / "campaign.json").read_text())["summary"]
    assert summary["bald_labels_to_reach_random_final"] == 200
    assert summary["bald_label_ratio"] == 0.5
    assert summary["bald_votes_to_reach_random_final"] == 1200
    assert summary["bald_vote_ratio"] == 1.0
    # its live model had trained on 60 labels then; random's final one on 200
    assert summary["bald_trained_labels_to_reach_random_final"] == 60
    assert summary["bald_trained_label_ratio"] == 0.3
    html = path.read_text()
    assert "plotly.min.js" in html and (tmp_path / "plotly.min.js").exists()
    assert "volunteer votes used" in html and "consensus labels used" in html
    assert "labels the live model trained on" in html
    assert "<th>random_final_bacc_low</th><td>0.850</td>" in html
