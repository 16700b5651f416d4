"""An in-silico campaign through the real Celery chain (Redis broker, PostgreSQL): each
round's aggregation, training (gpu worker), chunked scoring and the next round (cpu
worker) run as tasks; the campaign only casts the simulated votes and waits."""

import pytest

from labelapp.models import ModelVersion, Round, TaskProgress
from labelapp.research.simulated_campaign import CampaignConfig, run_campaign
from labelapp.services.survey.ingest import ingest_survey
from mlcore.simulator import simulate_survey
from mlcore.survey_io import write_survey
from tests.processes import start_celery, stop, worker_env

pytestmark = [pytest.mark.integration, pytest.mark.broker, pytest.mark.django_db(transaction=True)]


def test_campaign_runs_round_after_round_on_workers(tmp_path, settings, own_cache):
    settings.MODELS_DIR = tmp_path / "models"
    settings.VOTE_RATE_LIMIT = 1_000_000
    ingest_survey(path=write_survey(tmp_path / "s.fits", simulate_survey(900, seed=44)))
    logs = [tmp_path / "gpu.log", tmp_path / "cpu.log"]
    env = worker_env(settings, LABELAPP_SCORE_MC_SAMPLES="2")
    gpu = start_celery("worker", env, logs[0], "-Q", "gpu,web", "--hostname", "gpu@%h")
    cpu = start_celery("worker", env, logs[1], "-Q", "cpu", "--hostname", "cpu@%h")
    try:
        report = run_campaign(
            config=CampaignConfig(
                strategy="entropy",
                rounds=2,
                labels_per_round=60,
                volunteers=30,
                epochs=1,
                gold_per_kind=6,
                executor="celery",
                step_timeout_s=240,
            ),
        )
    except Exception:
        for log in logs:
            print(f"--- {log}:\n{log.read_text()[-3000:]}")
        raise
    finally:
        stop(gpu)
        stop(cpu)
    assert [r["round"] for r in report.rounds] == [1, 2]
    assert all(r["promoted"] is not None and r["bacc_overall"] for r in report.rounds)
    # every training went through the gpu worker and reported its progress row
    trained = TaskProgress.objects.filter(name="retrain_model", key__startswith="campaign-")
    assert sorted(trained.values_list("state", flat=True)) == ["done", "done"]
    # the round after round 1 was opened by the chain (cpu worker) with the campaign's strategy
    second = Round.objects.get(number=2)
    assert second.scored_by is not None and second.acquisition["strategy"] == "entropy"
    assert Round.objects.get(number=1).trained_model == ModelVersion.objects.order_by("pk")[0]
    assert "tasks.score_chunk[" in logs[1].read_text()
    assert "tasks.retrain_model[" in logs[0].read_text()
