"""Send a Celery task, by its registered name, once the current transaction commits.

Services that start work (the console's steering) name the task instead of importing
``labelapp.tasks``: the task module imports the services, so importing it back would make
an import cycle (``make lint`` checks there is none). The name is looked up in the app's
registry here, so a misspelt name fails at once, not in a worker.
"""

from __future__ import annotations

from django.db import transaction

from labelapp.celery import app


def send_after_commit(task_name: str, **kwargs) -> None:
    """After commit, so a worker never picks up a task whose rows are not visible yet."""
    app.loader.import_default_modules()  # autodiscovery is lazy: register labelapp.tasks
    task = app.tasks[f"labelapp.tasks.{task_name}"]
    transaction.on_commit(lambda: task.delay(**kwargs))
