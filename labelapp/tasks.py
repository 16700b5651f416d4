"""Celery tasks: thin wrappers that call services."""

from celery import shared_task

from labelapp.services import health


@shared_task(ignore_result=True)
def record_heartbeat() -> None:
    health.record_heartbeat(hostname=record_heartbeat.request.hostname or "unknown")
