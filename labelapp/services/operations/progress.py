"""Progress of long tasks, stored where the console (and the operator) can read it."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from django.utils import timezone

from labelapp.models import TaskProgress


def start_progress(*, name: str, key: str, total: int, message: str = "") -> TaskProgress:
    """Open (or restart) the progress row of one run, keyed by (name, key): a redelivered
    task with the same key continues the same row instead of adding a second one. Workers
    then move ``done`` and ``state`` with conditional updates on that row."""
    row, _ = TaskProgress.objects.update_or_create(
        name=name,
        key=key,
        defaults={
            "state": TaskProgress.State.RUNNING,
            "total": total,
            "done": 0,
            "message": message,
        },
    )
    return row


def set_progress(row: TaskProgress, *, done: int, total: int | None = None, message: str = ""):
    fields = {"done": done, "message": message, "updated_at": timezone.now()}
    if total is not None:
        fields["total"] = total
    TaskProgress.objects.filter(pk=row.pk).update(**fields)


@contextmanager
def tracked(*, name: str, key: str, total: int = 0, message: str = "") -> Iterator[TaskProgress]:
    """Run a task body under a progress row: running while it works, done when it returns,
    failed (with the error) when it raises -- the console lists failed tasks from these."""
    row = start_progress(name=name, key=key, total=total, message=message)
    try:
        yield row
    except BaseException as exc:
        TaskProgress.objects.filter(pk=row.pk).update(
            state=TaskProgress.State.FAILED,
            message=f"{type(exc).__name__}: {exc}"[:2000],
            updated_at=timezone.now(),
        )
        raise
    row.refresh_from_db(fields=["message"])
    TaskProgress.objects.filter(pk=row.pk).update(
        state=TaskProgress.State.DONE, updated_at=timezone.now()
    )
