"""Training and scoring through the platform: labels from the database, pixels from stores."""

import json
from pathlib import Path

import numpy as np
import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from labelapp.models import Candidate, CandidateScore, ModelVersion
from labelapp.services.ingest import ingest_survey
from labelapp.services.training import TrainingError, train_model_version
from mlcore.simulator import simulate_survey
from mlcore.survey_io import write_survey

pytestmark = pytest.mark.django_db


@pytest.fixture
def simulated(tmp_path, settings):
    settings.MODELS_DIR = tmp_path / "models"
    survey = simulate_survey(1500, seed=11, field="cosmos")
    ingest_survey(path=write_survey(tmp_path / "s.fits", survey))
    return survey


def test_train_on_truth_registers_a_version_with_weights_and_card(simulated, settings, capsys):
    call_command("train_model", "--labels", "truth", "--epochs", "2", "--max-time", "60")
    out = capsys.readouterr().out
    version = ModelVersion.objects.get()
    assert version.status == "candidate" and version.label_source == "truth"
    assert f"Model v{version.pk} trained on {version.n_train} labels" in out
    folder = Path(version.directory)
    assert folder == Path(settings.MODELS_DIR) / f"v{version.pk}"
    assert (folder / "model.pt").exists()
    card = json.loads((folder / "model_card.json").read_text())
    assert card == version.card
    assert (
        card["data_hash"] == version.data_hash and card["metrics"]["evaluated_against"] == "truth"
    )
    assert {"high", "low", "overall"} <= set(card["metrics"]["regimes"])
    assert card["metrics"]["regimes"]["overall"]["balanced_accuracy"] > 0.6  # beats chance
    assert not list(Path(settings.MODELS_DIR).glob(".training-*"))  # no temp dir left


def test_scores_every_candidate_and_rescoring_replaces(simulated):
    version = train_model_version(label_source="truth", epochs=1, max_time_s=30, log=lambda m: None)
    call_command("score_candidates", "--model", str(version.pk), "--samples", "3", "--no-progress")
    assert CandidateScore.objects.filter(model_version=version).count() == Candidate.objects.count()
    call_command("score_candidates", "--model", str(version.pk), "--samples", "3", "--no-progress")
    scores = CandidateScore.objects.filter(model_version=version)
    assert scores.count() == Candidate.objects.count()
    probs = np.array(scores.values_list("prob", flat=True))
    bald = np.array(scores.values_list("bald", flat=True))
    assert ((probs >= 0) & (probs <= 1)).all() and (bald >= -1e-6).all()
    assert probs.std() > 0.05  # it tells candidates apart


def test_consensus_training_needs_an_aggregation_run(simulated):
    with pytest.raises(TrainingError, match="no finished aggregation run"):
        train_model_version(label_source="consensus")
    assert not ModelVersion.objects.exists()


def test_failed_training_leaves_no_version_and_no_directory(simulated, settings, monkeypatch):
    from labelapp.services import training

    def boom(*args, **kwargs):
        raise RuntimeError("out of memory")

    monkeypatch.setattr(training, "fit_evaluate_write", boom)
    with pytest.raises(RuntimeError):
        train_model_version(label_source="truth")
    assert not ModelVersion.objects.exists()
    models = Path(settings.MODELS_DIR)
    assert not models.exists() or list(models.iterdir()) == []


def test_unknown_model_version_is_a_clear_error():
    with pytest.raises(CommandError, match="no model version 99"):
        call_command("score_candidates", "--model", "99")
