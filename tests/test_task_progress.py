"""TaskProgress rows: tracked() marks a task running, then done or failed with the error;
training reports every epoch through them (what the console's campaign page shows)."""

import numpy as np
import pytest

from labelapp.models import TaskProgress
from labelapp.services.operations.progress import set_progress, tracked
from mlcore.cnn.training import TrainConfig, train

pytestmark = pytest.mark.django_db


def test_tracked_marks_done_and_keeps_the_last_message():
    with tracked(name="start_round", key="k1", total=1) as row:
        assert TaskProgress.objects.get(pk=row.pk).state == "running"
        set_progress(row, done=1, message="round 3: 500 queued")
    row = TaskProgress.objects.get(name="start_round", key="k1")
    assert (row.state, row.done, row.message) == ("done", 1, "round 3: 500 queued")


def test_tracked_marks_failed_with_the_error_and_reraises():
    with pytest.raises(ValueError, match="no labels"), tracked(name="retrain_model", key="k2"):
        raise ValueError("no labels")
    row = TaskProgress.objects.get(name="retrain_model", key="k2")
    assert row.state == "failed" and row.message == "ValueError: no labels"


def test_a_queued_row_is_taken_over_by_its_task():
    TaskProgress.objects.create(name="retrain_model", key="console-abc", message="queued")
    with tracked(name="retrain_model", key="console-abc", total=4):
        pass
    assert TaskProgress.objects.filter(name="retrain_model").count() == 1
    assert TaskProgress.objects.get().state == "done"


def test_training_reports_each_epoch():
    rng = np.random.default_rng(0)
    n = 64
    x = rng.normal(size=(n, 5, 9, 100)).astype(np.float32)
    y = (rng.random(n) < 0.5).astype(np.float32)
    sn = rng.uniform(4.8, 7, n).astype(np.float32)
    seen = []
    train(
        x,
        y,
        sn,
        train_idx=np.arange(48),
        val_idx=np.arange(48, 64),
        config=TrainConfig(epochs=3, patience=10, min_epoch_samples=48, seed=0),
        on_epoch=lambda rec, total: seen.append((rec["epoch"], total)),
    )
    assert seen == [(0, 3), (1, 3), (2, 3)]


def test_a_stalled_scoring_run_is_found_and_sent_again(monkeypatch):
    import datetime as dt

    from django.utils import timezone

    from labelapp import tasks
    from labelapp.services.learning.scoring_runs import stalled_runs

    old = timezone.now() - dt.timedelta(hours=1)
    TaskProgress.objects.create(name="score_catalogue", key="model-7", state="running")
    TaskProgress.objects.create(name="score_catalogue", key="model-8", state="running")
    TaskProgress.objects.create(name="score_catalogue", key="model-9", state="done")
    TaskProgress.objects.filter(key__in=["model-7", "model-9"]).update(updated_at=old)
    assert stalled_runs(idle_s=1800) == [7]  # 8 moved recently; 9 is finished
    sent = []
    monkeypatch.setattr(tasks.score_catalogue, "delay", sent.append)
    assert tasks.resume_stalled_scoring() == [7] and sent == [7]


def test_progress_updates_move_updated_at():
    import datetime as dt

    from django.utils import timezone

    with tracked(name="retrain_model", key="k3", total=3) as row:
        old = timezone.now() - dt.timedelta(hours=1)
        TaskProgress.objects.filter(pk=row.pk).update(updated_at=old)
        set_progress(row, done=1)
        assert TaskProgress.objects.get(pk=row.pk).updated_at > old


def test_a_finished_ensemble_retrain_reads_complete(monkeypatch):
    from types import SimpleNamespace

    from labelapp import tasks
    from labelapp.services.learning import promotion, training

    seen = []

    def fake_train(*, epochs, members, on_epoch, **kw):
        for k in range(epochs * members):  # what mlcore.train reports for an ensemble
            on_epoch({"epoch": k, "val_loss": 0.5}, epochs * members)
            seen.append(TaskProgress.objects.get(key="ens").total)
        return SimpleNamespace(pk=7)

    monkeypatch.setattr(training, "train_model_version", fake_train)
    monkeypatch.setattr(
        promotion, "gate_model", lambda **kw: SimpleNamespace(promoted=False, reason="rejected")
    )
    tasks.retrain_model.apply(kwargs={"epochs": 2, "members": 3, "progress_key": "ens"})
    row = TaskProgress.objects.get(name="retrain_model", key="ens")
    assert seen == [6] * 6  # the bar runs over all members' epochs
    assert row.state == "done" and row.done == row.total and row.message == "v7: rejected"
