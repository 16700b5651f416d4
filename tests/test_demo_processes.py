"""The demo's promise: a real Celery worker and beat run with no system service installed
(SQLite + kombu's filesystem broker), and beat's tasks reach the worker."""

import sqlite3

import pytest

from tests.processes import manage, start_celery, stop, wait_for


@pytest.mark.slow
def test_worker_and_beat_run_on_the_embedded_broker(tmp_path):
    env = {
        "LABELAPP_DATA_DIR": str(tmp_path),
        "LABELAPP_HEARTBEAT_INTERVAL_S": "1",
        "DATABASE_URL": "",
        "REDIS_URL": "",
    }
    migrated = manage(env, "migrate", "--no-input")
    assert migrated.returncode == 0, migrated.stderr
    logs = [tmp_path / "worker.log", tmp_path / "beat.log"]
    worker = start_celery("worker", env, logs[0], "-Q", "web")
    beat = start_celery("beat", env, logs[1])
    try:

        def heartbeat_rows():
            with sqlite3.connect(tmp_path / "db.sqlite3", timeout=10) as db:
                return db.execute("select hostname from labelapp_workerheartbeat").fetchall()

        rows = wait_for(heartbeat_rows, 90, "a heartbeat sent by beat and run by the worker", logs)
        assert rows[0][0].startswith("celery@")
        assert (tmp_path / "broker" / "queue").is_dir()  # messages went through the files
        health = manage(
            env,
            "shell",
            "-c",
            "import json; from labelapp.services.operations.health import health_report;"
            "print(json.dumps(health_report()))",
        )
        assert '"alive": 1' in health.stdout and '"transport": "filesystem"' in health.stdout
    finally:
        stop(beat)
        stop(worker)
