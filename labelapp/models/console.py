"""What the scientist console writes: the audit log and the campaign's steering settings."""

from django.conf import settings
from django.db import models


class AuditEvent(models.Model):
    """One action taken from the console (or by a scientist through a command): who, what,
    when, on what. Append-only; nothing in the platform updates or deletes these rows."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    username = models.CharField(max_length=150, help_text="Kept if the account is deleted.")
    action = models.CharField(max_length=40, db_index=True)
    target = models.CharField(max_length=120, blank=True, help_text="e.g. model:7, round:3")
    detail = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.created_at:%Y-%m-%d %H:%M} {self.username} {self.action} {self.target}"


class CampaignSettings(models.Model):
    """The acquisition settings the next rounds use (one row, pk=1), edited in the console.
    Each round still records its own copy (Round.acquisition), so changing these never
    rewrites history."""

    acquisition = models.JSONField(default=dict, blank=True)
    updated_at = models.DateTimeField(auto_now=True)
    updated_by = models.CharField(max_length=150, blank=True)
