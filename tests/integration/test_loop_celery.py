"""The loop on real Celery workers (Redis broker, PostgreSQL): retrain -> gate -> shift
reports -> chunked scoring -> join -> new round; a duplicated message changes nothing."""

import pytest

from labelapp.models import (
    CandidateScore,
    ModelVersion,
    Round,
    ScoreChunk,
    ShiftReport,
    TaskProgress,
)
from labelapp.services.crowd.gold import seed_gold_from_truth
from labelapp.services.survey.ingest import ingest_survey
from mlcore.simulator import simulate_survey
from mlcore.survey_io import write_survey
from tests.processes import start_celery, stop, wait_for, worker_env

pytestmark = [pytest.mark.integration, pytest.mark.broker, pytest.mark.django_db(transaction=True)]


def test_a_round_runs_end_to_end_on_workers(tmp_path, settings):
    from labelapp.tasks import retrain_model, score_chunk

    settings.MODELS_DIR = tmp_path / "models"
    ingest_survey(path=write_survey(tmp_path / "s.fits", simulate_survey(700, seed=31)))
    assert seed_gold_from_truth(per_kind=8) > 20
    logs = [tmp_path / "gpu.log", tmp_path / "cpu.log"]
    # one worker per queue, as on separate machines
    gpu = start_celery(
        "worker",
        worker_env(settings, LABELAPP_SCORE_MC_SAMPLES="2"),
        logs[0],
        "-Q",
        "gpu",
        "--hostname",
        "gpu@%h",
    )
    cpu = start_celery(
        "worker",
        worker_env(settings, LABELAPP_SCORE_MC_SAMPLES="2"),
        logs[1],
        "-Q",
        "cpu",
        "--hostname",
        "cpu@%h",
    )
    try:
        retrain_model.delay(label_source="truth", epochs=2, max_time_s=30)
        rnd = wait_for(
            lambda: Round.objects.filter(scored_by__isnull=False).first(),
            300,
            "a round opened from the new model's scores",
            logs,
        )
        version = ModelVersion.objects.get()
        assert version.status == "promoted" and rnd.scored_by == version
        assert rnd.n_queued > 0
        assert CandidateScore.objects.filter(model_version=version).count() == 700
        # the batch's shift report against the new model was built before it was scored
        # (services.learning.auto_shift), with no command
        whole = ShiftReport.objects.filter(model_version=version, field="")
        assert whole.filter(night_first__isnull=True).count() == 1
        # ... and, after the run, one per group of its observing nights (cpu queue)
        wait_for(
            lambda: whole.filter(night_first__isnull=False).exists(),
            120,
            "the night-group shift reports after the scoring run",
            logs,
        )
        # ... then one per field across every batch, by the same task
        wait_for(
            lambda: TaskProgress.objects.filter(
                name="shift_reports", key=f"fields-model-{version.pk}", state="done"
            ).exists(),
            120,
            "the field-wide shift reports after the night groups",
            logs,
        )
        assert (
            ShiftReport.objects.filter(
                model_version=version, batch__isnull=True, night_first__isnull=True
            )
            .exclude(field="")
            .exists()
        )

        # a duplicated chunk message: rescoring replaces rows, the join does not fire again
        def chunk_runs() -> int:
            return sum(
                "tasks.score_chunk[" in line and "succeeded" in line
                for line in logs[1].read_text().splitlines()
            )

        before = chunk_runs()
        chunk = ScoreChunk.objects.filter(model_version=version).first()
        score_chunk.delay(chunk.pk)
        wait_for(lambda: chunk_runs() > before, 120, "the duplicated chunk to run", logs)
        assert CandidateScore.objects.filter(model_version=version).count() == 700
        assert Round.objects.count() == 1
    finally:
        stop(gpu)
        stop(cpu)
