"""Celery app for ``bench_broker_sigkill.py``: the platform's own app and broker settings
(labelapp.celery, labelapp/settings.py), plus one long task with the options of the
platform's idempotent tasks (acks_late, reject_on_worker_lost) that records each start and
each finish in a file."""

import socket
import time

from labelapp.celery import app


@app.task(name="bench.long_task", acks_late=True, reject_on_worker_lost=True, bind=True)
def long_task(self, path: str, seconds: float) -> None:
    who = f"{self.request.hostname or socket.gethostname()} {self.request.id}"
    with open(path, "a") as fh:
        fh.write(f"start {time.time():.3f} {who}\n")
    time.sleep(seconds)
    with open(path, "a") as fh:
        fh.write(f"done {time.time():.3f} {who}\n")
