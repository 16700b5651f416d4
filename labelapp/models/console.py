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
    """The acquisition settings the next rounds use and where retrains start from (one row,
    pk=1), edited in the console. Each round still records its own copy
    (Round.acquisition) and each model its start (its card's ``start``), so changing these
    never rewrites history."""

    acquisition = models.JSONField(default=dict, blank=True)
    retrain_encoder = models.ForeignKey(
        "labelapp.PretrainedEncoder",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        help_text="The pretrained encoder retrains start from unless a request says "
        "otherwise (null: from scratch); labelapp.services.learning.encoders.",
    )
    adapt_shifted_batches = models.BooleanField(
        default=True,
        help_text="Score a batch its newest shift report calls shifted or far with the live "
        "model's BatchNorm statistics re-estimated on that batch (AdaBN); "
        "labelapp.services.learning.adaptation.",
    )
    auto_shift_reports = models.BooleanField(
        default=True,
        help_text="Build the shift reports of every ingest batch against a model before its "
        "scoring run is planned, and of a new batch against the live model after ingest; "
        "labelapp.services.learning.auto_shift.",
    )
    self_training = models.BooleanField(
        default=False,
        help_text="Retrains fit, let the model label a sample of the unlabelled catalogue "
        "with its confident answers, and fit again on labels and those answers; "
        "mlcore.cnn.self_training.",
    )
    updated_at = models.DateTimeField(auto_now=True)
    updated_by = models.CharField(max_length=150, blank=True)


class ScienceToken(models.Model):
    """A scientist's key to the read-only science API (/api/science/v1/). Only the SHA-256
    of the secret is stored: the secret is shown once, when the token is created. A revoked
    token stays (its uses stay in the audit log) but no longer authenticates."""

    name = models.CharField(max_length=80, help_text="What the scientist calls it.")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="science_tokens"
    )
    prefix = models.CharField(max_length=16, help_text="First characters, to recognise it.")
    key_hash = models.CharField(max_length=64, unique=True, help_text="sha256 of the secret")
    scopes = models.JSONField(default=list, help_text="e.g. catalogue:read, votes:read")
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        state = "revoked" if self.revoked_at else "active"
        return f"token {self.prefix}… {self.name} ({state})"
