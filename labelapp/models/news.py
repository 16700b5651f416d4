"""News for volunteers: short posts by the science team, shown on the results page."""

from django.conf import settings
from django.db import models
from django.utils import timezone


class NewsItem(models.Model):
    """A news post. The body is plain text: it is escaped on display (paragraphs and line
    breaks kept, links made clickable), so no HTML a scientist types ever reaches a page."""

    title = models.CharField(max_length=120)
    body = models.TextField(max_length=5000)
    published_at = models.DateTimeField(
        default=timezone.now, db_index=True, help_text="Shown from this time on (UTC)."
    )
    published = models.BooleanField(default=True, help_text="Untick to keep it as a draft.")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-published_at", "-pk"]

    def __str__(self) -> str:
        return self.title
