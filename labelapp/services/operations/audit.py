"""The audit log: every console action is written here (who, what, when, on what)."""

from __future__ import annotations

from labelapp.models import AuditEvent


def record_audit(*, user, action: str, target: str = "", detail: dict | None = None) -> AuditEvent:
    """Append one event. Call it inside the same transaction as the action it records, so
    an action that rolls back leaves no event and an event never lacks its action."""
    account = user if getattr(user, "is_authenticated", False) else None
    return AuditEvent.objects.create(
        user=account,
        username=account.get_username() if account else "system",
        action=action,
        target=target,
        detail=detail or {},
    )
