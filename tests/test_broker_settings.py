"""Which broker the settings choose: CELERY_BROKER_URL (RabbitMQ on quorum queues, or
Redis), else REDIS_URL, else the embedded filesystem broker; a bad URL names the variable."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SHOW = (
    "import json; from django.conf import settings as s;"
    "q = [{'name': x.name, 'args': x.queue_arguments, 'exchange': x.exchange.type}"
    " for x in getattr(s, 'CELERY_TASK_QUEUES', [])];"
    "print(json.dumps({'url': s.CELERY_BROKER_URL, 'kind': s.BROKER_KIND, 'queues': q,"
    " 'cache': s.CACHES['default']['BACKEND'],"
    " 'options': sorted(s.CELERY_BROKER_TRANSPORT_OPTIONS)}))"
)


def settings_with(tmp_path, **env: str) -> subprocess.CompletedProcess:
    full = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "LABELAPP_"))}
    for key in ("CELERY_BROKER_URL", "REDIS_URL", "DATABASE_URL"):
        full.pop(key, None)
    full.update(DJANGO_SETTINGS_MODULE="labelapp.settings", LABELAPP_DATA_DIR=str(tmp_path))
    full.update(env)
    code = f"import django; django.setup(); {SHOW}"
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env=full,
        capture_output=True,
        text=True,
        timeout=120,
    )


def shown(run: subprocess.CompletedProcess) -> dict:
    assert run.returncode == 0, run.stderr[-2000:]
    return json.loads(run.stdout.strip().splitlines()[-1])


def test_rabbitmq_gets_quorum_queues_for_every_queue_and_redis_stays_the_cache(tmp_path):
    amqp = "amqp://u:p@rabbit:5672/labelapp"
    cfg = shown(settings_with(tmp_path, CELERY_BROKER_URL=amqp, REDIS_URL="redis://r:6379/0"))
    assert cfg["url"] == amqp and cfg["kind"] == "amqp"
    assert sorted(q["name"] for q in cfg["queues"]) == ["cpu", "gpu", "web"]
    for queue in cfg["queues"]:
        assert queue["args"]["x-queue-type"] == "quorum"
        assert queue["args"]["x-consumer-timeout"] == 6 * 3600 * 1000  # > a nightly training
        assert queue["exchange"] == "topic"  # Celery's native delayed delivery needs it
    assert cfg["cache"].endswith("RedisCache")
    assert cfg["options"] == ["confirm_publish"]


def test_redis_alone_is_broker_and_cache_with_a_visibility_timeout(tmp_path):
    cfg = shown(settings_with(tmp_path, REDIS_URL="redis://r:6379/0"))
    assert cfg["url"] == "redis://r:6379/0" and cfg["queues"] == []
    assert cfg["options"] == ["visibility_timeout"]


def test_nothing_set_is_the_embedded_broker(tmp_path):
    cfg = shown(settings_with(tmp_path))
    assert cfg["url"] == "filesystem://" and cfg["kind"] == "filesystem"


def test_an_unknown_broker_scheme_names_the_variable(tmp_path):
    run = settings_with(tmp_path, CELERY_BROKER_URL="sqs://queue")
    assert run.returncode != 0
    assert "CELERY_BROKER_URL (or REDIS_URL) sqs://... is not a broker" in run.stderr
