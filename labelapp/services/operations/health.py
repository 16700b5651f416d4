"""Health of the moving parts: database, broker, workers (via their heartbeat task)."""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.db import connection
from django.utils import timezone

from labelapp.models import WorkerHeartbeat


def record_heartbeat(*, hostname: str) -> None:
    WorkerHeartbeat.objects.update_or_create(
        hostname=hostname, defaults={"seen_at": timezone.now()}
    )


def check_database() -> dict:
    try:
        with connection.cursor() as cur:
            cur.execute("SELECT 1")
            cur.fetchone()
        return {"ok": True, "vendor": connection.vendor}
    except Exception as exc:  # any driver error means "down"; say which
        return {"ok": False, "vendor": connection.vendor, "error": str(exc)[:200]}


def check_broker() -> dict:
    from labelapp.celery import app

    transport = settings.CELERY_BROKER_URL.split("://", 1)[0]
    try:
        with app.connection_for_write() as conn:
            conn.ensure_connection(max_retries=1, timeout=2)
        return {"ok": True, "transport": transport}
    except Exception as exc:
        return {"ok": False, "transport": transport, "error": str(exc)[:200]}


def check_workers() -> dict:
    """Workers seen within HEARTBEAT_MAX_AGE_S. Never raises: the database may be down."""
    try:
        now = timezone.now()
        beats = list(WorkerHeartbeat.objects.order_by("-seen_at")[:50])
    except Exception as exc:
        return {"ok": False, "alive": 0, "error": str(exc)[:200]}
    max_age = timedelta(seconds=settings.HEARTBEAT_MAX_AGE_S)
    workers = [
        {
            "hostname": b.hostname,
            "age_s": round((now - b.seen_at).total_seconds(), 1),
            "alive": now - b.seen_at <= max_age,
        }
        for b in beats
    ]
    alive = sum(w["alive"] for w in workers)
    return {"ok": alive > 0, "alive": alive, "workers": workers}


def health_report() -> dict:
    """Web is healthy when database and broker answer; workers and the vote flow (the beat
    task's last check, services.vote_watch) are reported, not required, so a load balancer
    does not take the site down while workers restart."""
    from labelapp.services.operations.vote_watch import last_vote_flow

    report = {
        "database": check_database(),
        "broker": check_broker(),
        "workers": check_workers(),
        "votes": last_vote_flow(),
    }
    report["ok"] = report["database"]["ok"] and report["broker"]["ok"]
    return report
