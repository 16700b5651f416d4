"""Integration tier: real PostgreSQL, real Redis, real Celery worker processes.

Runs under ``make integration`` (part of ``make test``), which sets DATABASE_URL and
REDIS_URL when the services answer; CI requires it (REQUIRE_INTEGRATION=1). The tests marked
``broker`` run twice: on Redis, then with CELERY_BROKER_URL on RabbitMQ.
"""

import os
from pathlib import Path

import pytest
from django.db import connection

from labelapp.models import Candidate, IngestBatch, WorkerHeartbeat
from labelapp.services.survey.ingest import ingest_survey
from mlcore.survey_io import write_survey
from tests.factories import make_survey
from tests.processes import start_celery, stop, wait_for, worker_env
from tests.threads import errors, in_threads

pytestmark = [pytest.mark.integration, pytest.mark.broker, pytest.mark.django_db(transaction=True)]


def test_database_and_broker_are_the_real_services():
    from django.conf import settings

    assert connection.vendor == "postgresql"
    expected = os.environ.get("CELERY_BROKER_URL") or os.environ["REDIS_URL"]
    assert settings.CELERY_BROKER_URL == expected
    assert settings.BROKER_KIND in ("redis", "amqp")
    assert settings.CACHES["default"]["LOCATION"] == os.environ["REDIS_URL"]  # cache: Redis


def test_worker_on_the_broker_runs_tasks_and_healthz_sees_it(client, tmp_path, settings):
    from labelapp.tasks import record_heartbeat

    log = tmp_path / "worker.log"
    worker = start_celery("worker", worker_env(), log, "-Q", "web", "--hostname", "itest@%h")
    try:
        record_heartbeat.delay()
        beat = wait_for(
            lambda: WorkerHeartbeat.objects.filter(hostname__startswith="itest@").first(),
            90,
            "the worker to run record_heartbeat",
            [log],
        )
        assert beat.hostname.startswith("itest@")
        report = client.get("/healthz").json()
        assert report["ok"] is True
        assert report["database"]["vendor"] == "postgresql"
        assert report["broker"]["transport"] == settings.BROKER_KIND
        assert report["workers"]["alive"] >= 1
    finally:
        stop(worker)


def test_healthz_reports_a_dead_broker_as_503(client, settings):
    from labelapp.celery import app

    old = app.conf.broker_url, app.conf.broker_write_url
    # nothing listens on port 1; the same transport as the broker under test
    dead = {"amqp": "amqp://guest:guest@127.0.0.1:1//", "redis": "redis://127.0.0.1:1/0"}
    app.conf.broker_url = app.conf.broker_write_url = dead[settings.BROKER_KIND]
    try:
        resp = client.get("/healthz")
    finally:
        app.conf.broker_url, app.conf.broker_write_url = old
    assert resp.status_code == 503
    assert resp.json()["broker"]["ok"] is False


def test_ingest_on_postgres_is_atomic_when_the_database_step_fails(tmp_path, settings, monkeypatch):
    from labelapp.services.survey import ingest as ingest_module

    def boom(*args, **kwargs):
        raise RuntimeError("connection lost")

    monkeypatch.setattr(ingest_module, "_write_truth", boom)
    with pytest.raises(RuntimeError):
        ingest_survey(path=write_survey(tmp_path / "a.fits", make_survey(30)))
    assert Candidate.objects.count() == 0 and IngestBatch.objects.count() == 0
    root = Path(settings.STORE_ROOT)
    assert not root.exists() or list(root.iterdir()) == []


def test_concurrent_ingests_of_one_file_make_exactly_one_batch(tmp_path, settings):
    path = write_survey(tmp_path / "same.fits", make_survey(300, seed=5))
    results = in_threads(3, lambda i: ingest_survey(path=path, chunk=50))
    assert errors(results) == []
    assert sorted(r.created for r in results) == [False, False, True]
    assert IngestBatch.objects.count() == 1 and Candidate.objects.count() == 300
    batch = IngestBatch.objects.get()
    assert Path(batch.store_path, "manifest.json").exists()
    assert [p.name for p in Path(settings.STORE_ROOT).iterdir()] == [batch.name]  # no temp left
