"""Simulated volunteers vote through the services; aggregation turns their votes into labels."""

import numpy as np
import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from labelapp.models import AggregationRun, Candidate, CandidateTruth, ConsensusState, Label, Vote
from labelapp.services.survey.ingest import ingest_survey
from mlcore.simulator import simulate_survey
from mlcore.survey_io import write_survey

pytestmark = pytest.mark.django_db


def test_simulated_volunteers_then_aggregation(tmp_path, capsys, settings):
    settings.VOTE_RATE_LIMIT = 100_000
    ingest_survey(path=write_survey(tmp_path / "s.fits", simulate_survey(120, seed=2)))
    call_command(
        "simulate_volunteers",
        "--volunteers",
        "25",
        "--votes",
        "500",
        "--seed",
        "1",
        "--no-progress",
    )
    assert "500 votes from 25 simulated volunteers" in capsys.readouterr().out
    assert Vote.objects.count() == 500
    assert ConsensusState.objects.count() > 0
    assert Candidate.objects.exclude(status="active").exists()  # some retired by the live rule
    call_command("aggregate_votes")
    run = AggregationRun.objects.get()
    assert run.status == "done" and run.n_votes == 500
    truth = dict(CandidateTruth.objects.values_list("candidate_id", "is_real"))
    labels = list(
        Label.objects.filter(run=run, n_votes__gte=3).values_list("candidate_id", "is_real")
    )
    accuracy = np.mean([truth[c] == real for c, real in labels])
    assert len(labels) > 20 and accuracy > 0.75


def test_simulated_volunteers_need_ground_truth():
    with pytest.raises(CommandError, match="ingest a simulated survey first"):
        call_command("simulate_volunteers", "--votes", "5", "--no-progress")


@pytest.mark.django_db(transaction=True)
def test_simulated_volunteers_vote_through_the_real_http_api(
    live_server, tmp_path, settings, capsys
):
    settings.VOTE_RATE_LIMIT = 100_000
    ingest_survey(path=write_survey(tmp_path / "s.fits", simulate_survey(80, seed=3)))
    call_command(
        "simulate_volunteers",
        "--volunteers",
        "6",
        "--votes",
        "40",
        "--via-http",
        live_server.url,
        "--no-progress",
    )
    assert "40 votes from 6 simulated volunteers" in capsys.readouterr().out
    assert Vote.objects.count() == 40
    assert set(Vote.objects.values_list("client", flat=True)) == {"api"}
    # each simulated browser is its own session volunteer, made by the site, not by us
    from django.contrib.sessions.models import Session

    assert 1 <= Vote.objects.values("volunteer").distinct().count() <= 6
    assert Session.objects.count() == Vote.objects.values("volunteer").distinct().count()
    assert ConsensusState.objects.count() > 0


def test_http_mode_needs_a_url():
    with pytest.raises(CommandError, match="needs an http"):
        call_command(
            "simulate_volunteers", "--votes", "5", "--via-http", "ftp://x", "--no-progress"
        )


def test_if_no_votes_leaves_an_active_site_alone(tmp_path, settings, capsys):
    settings.VOTE_RATE_LIMIT = 100_000
    ingest_survey(path=write_survey(tmp_path / "s.fits", simulate_survey(60, seed=5)))
    call_command("simulate_volunteers", "--volunteers", "3", "--votes", "10", "--no-progress")
    call_command(
        "simulate_volunteers",
        "--volunteers",
        "3",
        "--votes",
        "10",
        "--if-no-votes",
        "--no-progress",
    )
    assert "no simulated volunteers added" in capsys.readouterr().out
    assert Vote.objects.count() == 10
