"""Training and scoring through the platform: labels from the database, pixels from stores."""

import json
import logging
from pathlib import Path

import numpy as np
import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from labelapp.models import Candidate, CandidateScore, ModelVersion
from labelapp.services.learning.training import TrainingError, train_model_version
from labelapp.services.survey.ingest import ingest_survey
from mlcore.simulator import simulate_survey
from mlcore.survey_io import write_survey

pytestmark = pytest.mark.django_db


@pytest.fixture
def simulated(tmp_path, settings):
    settings.MODELS_DIR = tmp_path / "models"
    survey = simulate_survey(1500, seed=11, field="cosmos")
    ingest_survey(path=write_survey(tmp_path / "s.fits", survey))
    return survey


def test_train_on_truth_registers_a_version_with_weights_and_card(
    simulated, settings, capsys, caplog
):
    with caplog.at_level(logging.INFO):
        call_command("train_model", "--labels", "truth", "--epochs", "2", "--max-time", "60")
    out = capsys.readouterr().out
    # progress goes through the module loggers (a worker's log keeps it), not print
    by_logger = {r.name for r in caplog.records}
    assert {"labelapp.services.learning.training", "mlcore.cnn.training"} <= by_logger
    assert any("labelled candidates (truth)" in r.getMessage() for r in caplog.records)
    assert any(r.getMessage().startswith("epoch") or "train /" in r.getMessage()
               for r in caplog.records if r.name == "mlcore.cnn.training")  # fmt: skip
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
    version = train_model_version(label_source="truth", epochs=1, max_time_s=30)
    call_command("score_candidates", "--model", str(version.pk), "--samples", "3", "--no-progress")
    assert CandidateScore.objects.filter(model_version=version).count() == Candidate.objects.count()
    call_command("score_candidates", "--model", str(version.pk), "--samples", "3", "--no-progress")
    scores = CandidateScore.objects.filter(model_version=version)
    assert scores.count() == Candidate.objects.count()
    probs = np.array(scores.values_list("prob", flat=True))
    bald = np.array(scores.values_list("bald", flat=True))
    assert ((probs >= 0) & (probs <= 1)).all() and (bald >= -1e-6).all()
    assert probs.std() > 0.05  # it tells candidates apart


def test_an_ensemble_version_trains_scores_and_embeds(simulated, settings):
    from labelapp.services.learning.scoring import CandidateEmbeddings
    from mlcore.cnn.card import load_checkpoint

    settings.ENSEMBLE_MEMBERS = 2  # the platform default, overridden below by --members
    call_command("train_model", "--members", "3", "--epochs", "2")
    version = ModelVersion.objects.get()
    runs = version.card["member_runs"]
    assert [m["seed"] for m in runs] == [0, 1, 2] and version.card["train_config"]["members"] == 3
    kept = sum(m["kept"] for m in runs)  # a member far below the best one is dropped
    assert kept >= 2, runs  # 2 epochs on 1,200 simulated labels: no member fails outright
    assert version.card["members"] == kept and version.card["model"] == f"EnsembleCNN of {kept}"
    call_command("score_candidates", "--model", str(version.pk), "--samples", "2", "--no-progress")
    assert CandidateScore.objects.filter(model_version=version).count() == Candidate.objects.count()
    ids = np.asarray(Candidate.objects.values_list("pk", flat=True)[:5])
    emb = CandidateEmbeddings(model_version=version, ids=ids)
    member = load_checkpoint(version.directory).members[0]
    assert emb[np.arange(5)].shape == (5, kept * member.feature_dim) == (5, emb.shape[1])
    v2 = train_model_version(label_source="truth", epochs=1, max_time_s=30)
    assert len(v2.card["member_runs"]) == 2  # settings.ENSEMBLE_MEMBERS when not given
    with pytest.raises(TrainingError, match="at least 1 member"):
        train_model_version(label_source="truth", members=0)


def test_consensus_training_needs_an_aggregation_run(simulated):
    with pytest.raises(TrainingError, match="no finished aggregation run"):
        train_model_version(label_source="consensus")
    assert not ModelVersion.objects.exists()


def test_failed_training_leaves_no_version_and_no_directory(simulated, settings, monkeypatch):
    from labelapp.services.learning import training

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


def test_consensus_training_uses_only_settled_labels(db, settings):
    """One noisy vote is not a label to train on: only labels with enough votes and a
    decided posterior, plus gold and expert answers, become targets."""
    from labelapp.models import AggregationRun, ConsensusState, Label
    from labelapp.services.learning.training import consensus_targets
    from tests.factories_volunteers import make_candidates, make_gold

    settings.RETIRE_MIN_VOTES, settings.TRAIN_MIN_CONFIDENCE = 2, 0.9
    c = make_candidates(5)
    run = AggregationRun.objects.create(method="dawid_skene", status="done", n_votes=20)
    for cand, post, n in ((c[0], 0.97, 3), (c[1], 0.75, 1), (c[2], 0.6, 6), (c[3], 0.02, 2)):
        Label.objects.create(
            run=run, candidate=cand, posterior=post, is_real=post >= 0.5,
            confidence=max(post, 1 - post), n_votes=n, info_gain=0.0,
        )  # fmt: skip
    ConsensusState.objects.create(candidate=c[4], posterior=1.0, n_votes=1, expert_label=False)
    make_gold(c[2], is_real=True)
    targets = consensus_targets()
    # c1: one vote; c2: undecided crowd but a gold standard (hard label); c4: an expert
    assert targets == {c[0].pk: 0.97, c[2].pk: 1.0, c[3].pk: 0.02, c[4].pk: 0.0}


def test_fine_tuning_from_the_live_model_is_recorded_on_the_card(simulated, django_user_model):
    from labelapp.services.learning import steering
    from labelapp.services.learning.promotion import promote_model

    user = django_user_model.objects.create_user("sci")
    with pytest.raises(TrainingError, match="no live model to fine-tune from"):
        train_model_version(label_source="truth", epochs=1, max_time_s=20, fine_tune=True)
    with pytest.raises(steering.SteeringError, match="no live model to fine-tune from"):
        steering.request_retrain(user=user, label_source="truth", epochs=1, fine_tune=True)
    first = train_model_version(label_source="truth", epochs=1, max_time_s=20)
    assert "fine_tuned_from" not in first.card
    promote_model(model_version=first, reason="test")
    tuned = train_model_version(label_source="truth", epochs=1, max_time_s=20, fine_tune=True)
    assert tuned.card["fine_tuned_from"] == first.pk
    assert (
        json.loads((Path(tuned.directory) / "model_card.json").read_text())["fine_tuned_from"]
        == first.pk
    )
