"""Progress of long tasks, stored where the console (and the operator) can read it."""

from __future__ import annotations

from labelapp.models import TaskProgress


class Tracker:
    """``Tracker("score_catalogue", "model-7", total=N)``; ``.step(k)``, ``.done()``, ``.fail()``.

    Keyed by (name, key): a redelivered task run with the same key continues the same row
    instead of adding a second one.
    """

    def __init__(self, name: str, key: str, *, total: int = 0, message: str = ""):
        self.row, _ = TaskProgress.objects.update_or_create(
            name=name,
            key=key,
            defaults={
                "state": TaskProgress.State.RUNNING,
                "total": total,
                "done": 0,
                "message": message,
            },
        )

    def _set(self, **fields) -> None:
        TaskProgress.objects.filter(pk=self.row.pk).update(**fields)
        for k, v in fields.items():
            setattr(self.row, k, v)

    def step(self, done: int, *, total: int | None = None, message: str | None = None) -> None:
        fields = {"done": done}
        if total is not None:
            fields["total"] = total
        if message is not None:
            fields["message"] = message
        self._set(**fields)

    def advance(self, by: int) -> None:
        from django.db.models import F

        TaskProgress.objects.filter(pk=self.row.pk).update(done=F("done") + by)

    def done(self, message: str = "") -> None:
        self._set(state=TaskProgress.State.DONE, message=message)

    def fail(self, message: str) -> None:
        self._set(state=TaskProgress.State.FAILED, message=message[:2000])
