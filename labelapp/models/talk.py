"""Talk: discussion boards, a thread per candidate, comments, hashtags, flags to the science
team, moderation (reports, hidden comments, suspensions) and notifications (issue 28).

Everything here is written by an account (posting needs one). Bodies are stored as typed
and rendered at read time by ``labelapp.services.community.markup`` (HTML-escaped first, a
small markdown subset after), so a fix to the renderer applies to every comment at once.
A hidden comment is kept (``hidden_at`` set, with an audit event), never deleted.
"""

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _

from labelapp.models.survey import Candidate


class Board(models.Model):
    """A general discussion board ("General", "Science", "Help", "Bugs")."""

    slug = models.SlugField(max_length=40, unique=True)
    name = models.CharField(max_length=60)
    description = models.CharField(max_length=200, blank=True, default="")
    position = models.PositiveSmallIntegerField(default=0)

    class Meta:
        ordering = ["position", "pk"]

    def __str__(self) -> str:
        return self.name


class Thread(models.Model):
    """A board's thread (``board`` set, a title) or a candidate's thread (``candidate`` set,
    one per candidate, created with its first comment)."""

    board = models.ForeignKey(
        Board, null=True, blank=True, on_delete=models.CASCADE, related_name="threads"
    )
    candidate = models.OneToOneField(
        Candidate, null=True, blank=True, on_delete=models.CASCADE, related_name="talk_thread"
    )
    title = models.CharField(max_length=120, blank=True, default="")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    last_post_at = models.DateTimeField(db_index=True)
    # Visible comments (hidden ones are not counted): kept by services.community.talk.
    n_comments = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=(models.Q(board__isnull=False) & models.Q(candidate__isnull=True))
                | (models.Q(board__isnull=True) & models.Q(candidate__isnull=False)),
                name="talk_thread_board_xor_candidate",
            )
        ]
        indexes = [models.Index(fields=["board", "-last_post_at"], name="talk_thread_board")]

    def __str__(self) -> str:
        return self.title or f"candidate {self.candidate_id}"


class Comment(models.Model):
    thread = models.ForeignKey(Thread, on_delete=models.CASCADE, related_name="comments")
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="talk_comments"
    )
    body = models.TextField()
    reply_to = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # The author was on the science team when posting: the comment carries the badge.
    science_team = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)
    hidden_at = models.DateTimeField(null=True, blank=True)
    hidden_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    hidden_reason = models.CharField(max_length=200, blank=True, default="")

    class Meta:
        indexes = [
            models.Index(fields=["thread", "created_at"], name="talk_comment_thread"),
            models.Index(fields=["author", "-created_at"], name="talk_comment_author"),
        ]

    @property
    def hidden(self) -> bool:
        return self.hidden_at is not None

    def __str__(self) -> str:
        return f"comment {self.pk} in thread {self.thread_id}"


class Hashtag(models.Model):
    """A ``#tag`` (lower case). ``n_comments`` counts the visible comments using it, kept with
    each post and hide, so "most used" is an index scan, never a COUNT over comments."""

    name = models.CharField(max_length=40, unique=True)
    n_comments = models.PositiveIntegerField(default=0)
    last_used_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [models.Index(fields=["-n_comments", "name"], name="talk_hashtag_top")]

    def __str__(self) -> str:
        return f"#{self.name} ({self.n_comments})"


class CommentHashtag(models.Model):
    comment = models.ForeignKey(Comment, on_delete=models.CASCADE, related_name="tags")
    hashtag = models.ForeignKey(Hashtag, on_delete=models.CASCADE, related_name="uses")
    # Copied from the comment's thread, so a tag's page groups by candidate without a join.
    candidate = models.ForeignKey(
        Candidate, null=True, blank=True, on_delete=models.CASCADE, related_name="+"
    )

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["comment", "hashtag"], name="talk_comment_tag_unique")
        ]
        indexes = [models.Index(fields=["hashtag", "candidate"], name="talk_tag_candidate")]


class Flag(models.Model):
    """A volunteer's note to the science team about a candidate (its comment is in the
    candidate's thread, where the team answers)."""

    class Reason(models.TextChoices):
        # labels shown to volunteers in their language (no migration: labels are not stored)
        INTERESTING = "interesting", _("interesting")
        ARTEFACT = "artefact", _("possible artefact")
        BROKEN = "broken", _("something is broken")

    candidate = models.ForeignKey(Candidate, on_delete=models.CASCADE, related_name="talk_flags")
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="talk_flags"
    )
    reason = models.CharField(max_length=12, choices=Reason.choices)
    comment = models.OneToOneField(Comment, on_delete=models.CASCADE, related_name="flag")
    created_at = models.DateTimeField(auto_now_add=True)
    resolved_at = models.DateTimeField(null=True, blank=True, db_index=True)
    resolved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    resolution = models.CharField(max_length=20, blank=True, default="")  # gold|expert|closed

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["candidate", "author"],
                condition=models.Q(resolved_at__isnull=True),
                name="talk_flag_one_open_per_author",
            )
        ]


class Report(models.Model):
    """A volunteer's report of a comment to the moderators."""

    comment = models.ForeignKey(Comment, on_delete=models.CASCADE, related_name="reports")
    reporter = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+"
    )
    reason = models.CharField(max_length=300, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    resolved_at = models.DateTimeField(null=True, blank=True, db_index=True)
    resolved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    resolution = models.CharField(max_length=20, blank=True, default="")  # hidden|dismissed

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["comment", "reporter"], name="talk_report_unique")
        ]


class Suspension(models.Model):
    """An account may not post on Talk (comments, threads, flags, reports) while one of its
    suspensions is active: not lifted, and ``until`` unset (indefinite) or in the future."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="talk_suspensions"
    )
    reason = models.CharField(max_length=300)
    until = models.DateTimeField(null=True, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    lifted_at = models.DateTimeField(null=True, blank=True)
    lifted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        indexes = [models.Index(fields=["user", "lifted_at"], name="talk_suspension_user")]


class Notification(models.Model):
    """Someone answered in a thread the recipient took part in (posted or flagged in)."""

    class Kind(models.TextChoices):
        REPLY = "reply", "a reply"
        SCIENCE = "science", "a reply from the science team"

    recipient = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="talk_notifications"
    )
    comment = models.ForeignKey(Comment, on_delete=models.CASCADE, related_name="+")
    kind = models.CharField(max_length=8, choices=Kind.choices, default=Kind.REPLY)
    created_at = models.DateTimeField(auto_now_add=True)
    read_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["recipient", "comment"], name="talk_notification_unique"
            )
        ]
        indexes = [
            # the nav's unread count and the notifications page
            models.Index(fields=["recipient", "read_at"], name="talk_notification_unread"),
        ]
