"""TaskProgress rows: tracked() marks a task running, then done or failed with the error;
training reports every epoch through them (what the console's campaign page shows)."""

import numpy as np
import pytest

from labelapp.models import TaskProgress
from labelapp.services.progress import set_progress, tracked
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
        log=None,
        on_epoch=lambda rec, total: seen.append((rec["epoch"], total)),
    )
    assert seen == [(0, 3), (1, 3), (2, 3)]
