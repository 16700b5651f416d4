"""Celery tasks: thin wrappers that call services."""

from celery import shared_task

from labelapp.services import aggregation, health


@shared_task(ignore_result=True)
def record_heartbeat() -> None:
    health.record_heartbeat(hostname=record_heartbeat.request.hostname or "unknown")


@shared_task(ignore_result=True, acks_late=True)
def aggregate_votes() -> None:
    # Safe to redeliver: a run reads a snapshot of the votes and writes a new run's rows.
    aggregation.aggregate_votes()
