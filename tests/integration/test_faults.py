"""Faults under load on the real stack: gunicorn + PostgreSQL + Redis + Celery workers, with
simulated volunteers voting through the HTTP API (bench/bench_load_faults.py, smaller).

* Redis restarted mid-run: requests fail cleanly (JSON 503) or keep working, voting recovers,
  every acknowledged vote is stored exactly once.
* PostgreSQL restarted mid-run (while a scoring run works): clean failures, recovery, no vote
  lost, and the scoring chunks that met the outage are retried so the round still opens.
* Disk full while a new model is written: nothing half-written is registered, the live model
  and its files are unchanged, the temporary directory is gone, the task's progress row says
  it failed.
* Redis down at the very moment a scoring run's join sends the next task: the run stays
  unfinished instead of done-without-a-round, and ``score_catalogue`` sent again finishes it.
* A cpu worker SIGKILLed mid-scoring (the whole worker, then only its pool process, as the
  OOM killer does): the chunk comes back (to a new worker / a new pool process), the run
  completes exactly once and exactly one round opens from it, with the queue from that round.

Redis and PostgreSQL are stopped and started with the machine's own commands
(``pg_ctlcluster``, ``redis-server``) and always started again by a fixture finalizer, even
when a test fails; the tests skip, saying why, where that is not possible (not root, no
``pg_ctlcluster``, services not on this machine). Integration tests run one at a time.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
import subprocess
import threading
import time
from pathlib import Path
from types import SimpleNamespace
from urllib.parse import urlparse

import pytest
from django.db import connections

from bench._util import free_port
from bench.bench_load_faults import (
    SECRET,
    Stack,
    check_acknowledged,
    check_loop,
    fault_thread,
    restart_unavailable_reason,
    restore_services,
    run_load,
    stack_env,
    start_gunicorn,
    stop_group,
    summarise,
)
from labelapp.models import Candidate, ModelVersion, Round, TaskProgress
from labelapp.services.survey.ingest import ingest_survey
from tests.processes import wait_for, worker_env

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.django_db(transaction=True)]

VOLUNTEERS = 20
SECONDS = 14


@pytest.fixture(scope="module")
def survey_file(tmp_path_factory):
    from mlcore.simulator import simulate_survey
    from mlcore.survey_io import write_survey

    return write_survey(tmp_path_factory.mktemp("faults") / "s.fits", simulate_survey(2000, seed=8))


@pytest.fixture
def services_restored():
    """Whatever happens in the test, PostgreSQL and Redis are running afterwards."""
    yield
    restore_services()
    connections.close_all()  # the test's own connection died with a PostgreSQL restart


def _local(url: str, port: int) -> bool:
    parts = urlparse(url)
    return parts.hostname in ("127.0.0.1", "localhost", "::1") and (parts.port or port) == port


def _need_restartable(service: str) -> None:
    url, port = (
        (os.environ["DATABASE_URL"], 5432)
        if service == "postgres"
        else (os.environ["REDIS_URL"], 6379)
    )
    if not _local(url, port):
        pytest.skip(f"{service} is not the local server on port {port}: not restarting it")
    why = restart_unavailable_reason(service)
    if why:
        pytest.skip(f"cannot restart {service} here: {why}")


@pytest.fixture
def live_model(console_model_dir):
    """A promoted model version (the conftest's briefly trained model)."""
    card = json.loads((console_model_dir / "model_card.json").read_text())
    return ModelVersion.objects.create(
        label_source="truth",
        directory=str(console_model_dir),
        card=card,
        n_train=card["n_train"],
        status=ModelVersion.Status.PROMOTED,
    )


@pytest.fixture
def stack(tmp_path, settings, survey_file, services_restored):
    """The ingested survey and gunicorn serving it (2 workers x 2 threads, DEBUG off)."""
    ingest_survey(path=survey_file)
    settings.SECRET_KEY = SECRET  # the server's key: this process reads its sessions
    db_url = worker_env(settings)["DATABASE_URL"]
    env = stack_env(
        db_url,
        os.environ["REDIS_URL"],
        str(tmp_path),
        LABELAPP_MODELS_DIR=str(tmp_path / "models"),
        LABELAPP_VISIBILITY_TIMEOUT_S="3",
        LABELAPP_SCORE_MC_SAMPLES="50",  # slow chunks, so faults land in the middle of one
    )
    s = Stack(env=env, data_dir=tmp_path, port=free_port(), base_version=None)
    web = start_gunicorn(env, s.port, tmp_path / "gunicorn.log", workers=2, threads=2)
    yield s
    stop_group(s.worker)
    stop_group(web)


def _run(stack: Stack, scenario: str, fault_at: float, outage: float, before=None):
    """Load for SECONDS with the scenario's fault; ``before(t_start)`` runs at t = 1 s."""
    marks, notes = {}, []
    args = SimpleNamespace(fault_at=fault_at, outage=outage, visibility_timeout=3)
    connections.close_all()
    t_start = time.time() + 2.0
    threads = [
        threading.Thread(target=fault_thread, args=(scenario, stack, args, t_start, marks, notes))
    ]
    if before is not None:
        threads.append(threading.Timer(max(0.0, t_start + 1 - time.time()), before))
    for t in threads:
        t.start()
    try:
        rec = run_load(
            port=stack.port,
            seconds=SECONDS,
            volunteers=VOLUNTEERS,
            processes=2,
            inflight=8,
            t_start=t_start,
        )
    finally:
        for t in threads:
            t.join()
        restore_services()
        connections.close_all()
    assert "fault" in marks, notes
    return rec, summarise(rec, SECONDS, marks), notes


def _assert_clean_and_nothing_lost(rec, summary, logs=()):
    tails = "\n".join(f"--- {p}:\n{Path(p).read_text()[-3000:]}" for p in logs if Path(p).exists())
    # every failure is a JSON 5xx (503 'unavailable') or a connection error; no 2xx unstored
    assert summary["unclean"] == {}, (summary["errors"], tails)
    fault = summary["fault"]
    assert fault["errors_before"] == 0, summary["errors"]
    assert fault["recovered_after_s"] is not None and fault["recovered_after_s"] < 10, fault
    acks = check_acknowledged(rec.acks)
    assert acks["acked"] > 100, acks
    assert acks["no_session"] == 0 and acks["missing"] == 0 and acks["duplicates"] == 0, acks
    assert acks["counters_off"] == 0, acks
    return acks


def test_redis_restarted_under_load_fails_cleanly_recovers_and_loses_no_vote(stack):
    _need_restartable("redis")
    rec, summary, notes = _run(stack, "redis-restart", fault_at=4, outage=3)
    _assert_clean_and_nothing_lost(rec, summary, [stack.data_dir / "gunicorn.log"])
    # while Redis was down, requests failed with the API's JSON 503, not HTML 500 pages
    assert any("503 unavailable" in k for k in summary["errors"]), summary["errors"]


def test_postgres_restarted_under_load_fails_cleanly_and_the_scoring_run_still_completes(
    stack, live_model
):
    from labelapp.services.learning.scoring_runs import plan_scoring
    from labelapp.tasks import score_catalogue

    _need_restartable("postgres")
    plan_scoring(model_version=live_model, chunk=250)  # 8 chunks, running through the outage
    stack.new_worker()
    wait_for(lambda: "ready" in stack.worker_log.read_text(), 60, "the cpu worker", [])
    rec, summary, notes = _run(
        stack,
        "pg-restart",
        fault_at=4,
        outage=4,
        before=lambda: score_catalogue.delay(live_model.pk),
    )
    logs = [stack.data_dir / "gunicorn.log", stack.worker_log]
    _assert_clean_and_nothing_lost(rec, summary, logs)
    # chunks that met the database down were retried, not dropped: the round opens
    wait_for(
        lambda: Round.objects.filter(scored_by=live_model).exists(),
        180,
        "the scoring run to finish and open the round",
        logs,
    )
    loop = check_loop(live_model.pk)
    assert loop["ok"], loop
    assert "Retry in" in stack.worker_log.read_text()  # the outage did hit the scoring run


@pytest.mark.parametrize(
    "scenario",
    [
        "kill-scoring-worker",  # the whole worker (machine lost): a new worker takes over
        "kill-scoring-child",  # its pool process only (the OOM killer): the message is requeued
    ],
)
def test_cpu_worker_killed_mid_scoring_the_run_completes_once_and_the_round_opens(
    stack, live_model, scenario
):
    from labelapp.services.learning.scoring_runs import plan_scoring
    from labelapp.tasks import score_catalogue

    plan_scoring(model_version=live_model, chunk=1000)  # 2 chunks of a few seconds each
    stack.new_worker()
    first_log = stack.worker_log
    wait_for(lambda: "ready" in first_log.read_text(), 60, "the cpu worker", [])
    rec, summary, notes = _run(
        stack,
        scenario,
        fault_at=1,
        outage=4,
        before=lambda: score_catalogue.delay(live_model.pk),
    )
    logs = sorted(stack.data_dir.glob("worker-cpu*.log"))
    killed = [ln for ln in first_log.read_text().splitlines() if "score_chunk[" in ln]
    if scenario == "kill-scoring-worker":
        assert stack.worker_log != first_log, notes  # a new worker started
        # the killed worker had a chunk in hand
        assert sum("received" in ln for ln in killed) > sum("succeeded" in ln for ln in killed)
    else:
        assert "WorkerLostError" in first_log.read_text(), notes
    _assert_clean_and_nothing_lost(rec, summary, logs)
    assert summary["errors"] == {}  # voting never noticed the worker
    wait_for(
        lambda: Round.objects.filter(scored_by=live_model).exists(),
        180,
        "the redelivered chunk to finish the run and open the round",
        logs,
    )
    time.sleep(2)  # a second (wrong) join would have sent a second start_round by now
    loop = check_loop(live_model.pk)
    assert loop["ok"], loop
    assert Round.objects.count() == 1
    opened = sum(
        "tasks.start_round[" in ln and "succeeded" in ln
        for log in logs
        for ln in log.read_text().splitlines()
    )
    assert opened == 1


def test_a_join_that_cannot_send_the_next_task_is_finished_by_score_catalogue_sent_again(
    console_survey_file, live_model, monkeypatch
):
    """Redis down just as the last chunk finishes: sending start_round fails, the run stays
    'running' (the swap is undone), and score_catalogue sent again finishes it, once."""
    from kombu.exceptions import OperationalError as BrokerDown

    from labelapp.services.learning.scoring_runs import plan_scoring, run_chunk
    from labelapp.tasks import score_catalogue, start_round

    ingest_survey(path=console_survey_file)
    chunks = plan_scoring(model_version=live_model, chunk=250)
    assert run_chunk(chunk_id=chunks[0].pk, n_samples=2) is False

    def broker_down(model_version_id: int):
        raise BrokerDown("Error 111 connecting to 127.0.0.1:6379. Connection refused.")

    with pytest.raises(BrokerDown):
        run_chunk(chunk_id=chunks[1].pk, n_samples=2, on_complete=broker_down)
    progress = TaskProgress.objects.get(name="score_catalogue", key=f"model-{live_model.pk}")
    assert progress.state == TaskProgress.State.RUNNING  # not 'done' with no round to follow

    sent = []
    monkeypatch.setattr(start_round, "delay", lambda *a, **k: sent.append(k))
    score_catalogue.apply(args=[live_model.pk])  # what an operator (or the bench) re-sends
    score_catalogue.apply(args=[live_model.pk])  # twice: still one start_round
    progress.refresh_from_db()
    # one round, handed the version this run scored
    assert progress.state == TaskProgress.State.DONE
    assert sent == [{"model_version_id": live_model.pk}]


# --- disk full while writing a model -------------------------------------------------------------
def _tree_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def _mount_tiny_tmpfs(path: Path, size_bytes: int) -> bool:
    """A tmpfs of ``size_bytes`` at ``path`` (needs root / CAP_SYS_ADMIN); False if refused."""
    if os.geteuid() != 0 or not shutil.which("mount"):
        return False
    path.mkdir(parents=True, exist_ok=True)
    size_k = -(-size_bytes // 4096) * 4
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size_k}k,mode=0755", "tmpfs", str(path)],
        capture_output=True,
    )
    return done.returncode == 0


def test_disk_full_while_writing_a_model_keeps_the_old_model_live(
    tmp_path, settings, console_survey_file, console_model_dir, monkeypatch
):
    from labelapp.selectors.models import live_model
    from labelapp.tasks import retrain_model

    ingest_survey(path=console_survey_file)
    models = tmp_path / "models"
    # A models directory with room for the live model and 64 KiB more: the new model's
    # weights (a few hundred KiB) hit ENOSPC half-way through the write.
    old_size = _tree_bytes(console_model_dir)
    tmpfs = _mount_tiny_tmpfs(models, old_size + 64 * 1024 + 16 * 4096)
    try:
        if not tmpfs:  # no mount allowed here: the checkpoint writer raises ENOSPC instead
            import mlcore.cnn.card as card_module

            def full(path, model):
                Path(path).parent.mkdir(parents=True, exist_ok=True)
                Path(path).write_bytes(b"\0" * 4096)  # a partial file, as a full disk leaves
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))

            monkeypatch.setattr(card_module, "save_checkpoint", full)
        shutil.copytree(console_model_dir, models / "v1")
        weights = (models / "v1" / "model.pt").read_bytes()
        card = json.loads((models / "v1" / "model_card.json").read_text())
        old = ModelVersion.objects.create(
            label_source="truth",
            directory=str(models / "v1"),
            card=card,
            n_train=card["n_train"],
            status=ModelVersion.Status.PROMOTED,
        )
        settings.MODELS_DIR = models

        result = retrain_model.apply(
            kwargs={"label_source": "truth", "epochs": 1, "max_time_s": 20, "progress_key": "df"}
        )

        assert result.failed()
        row = TaskProgress.objects.get(name="retrain_model", key="df")
        assert row.state == TaskProgress.State.FAILED
        # the error, for the console's failed-task list, says what happened
        assert "disk is full" in row.message or "No space left" in row.message, row.message
        # nothing half-written is registered; the live model and its files are unchanged
        assert list(ModelVersion.objects.values_list("pk", flat=True)) == [old.pk]
        assert live_model() == old
        assert (models / "v1" / "model.pt").read_bytes() == weights
        assert hashlib.sha256(weights).hexdigest() == card["weights_sha256"]
        # the temporary directory is cleaned up: only the live model is left
        assert sorted(p.name for p in models.iterdir()) == ["v1"]
        # and the live model still scores
        from labelapp.services.learning.scoring import score_chunk

        batch = Candidate.objects.first().batch
        assert score_chunk(model_version=old, batch=batch, start=0, stop=20, n_samples=2) == 20
        print(
            "disk full simulated with "
            + (f"a tmpfs of {old_size // 1024 + 128} KiB" if tmpfs else "a patched writer")
            + f": {row.message[:120]}"
        )
    finally:
        if tmpfs:
            subprocess.run(["umount", "-l", str(models)], check=False)
