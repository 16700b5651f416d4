"""Progress of long tasks, stored where the console (and the operator) can read it."""

from __future__ import annotations

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
