"""The active-learning loop: rounds, and the progress of long tasks the console shows."""

from django.db import models

from labelapp.models.ml import ModelVersion
from labelapp.models.survey import Candidate


class Round(models.Model):
    """One labelling round: the model that scored the catalogue, how the queue was chosen,
    which candidates were put first, and what came out (votes, labels, the next model)."""

    class Status(models.TextChoices):
        OPEN = "open", "volunteers labelling"
        CLOSED = "closed", "closed"

    number = models.PositiveIntegerField(unique=True)
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.OPEN)
    scored_by = models.ForeignKey(
        ModelVersion,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="rounds_scored",
        help_text="Model whose scores set this round's priorities (None: low S/N first).",
    )
    acquisition = models.JSONField(default=dict, help_text="Acquisition settings used.")
    n_queued = models.PositiveIntegerField(default=0)
    started_at = models.DateTimeField(auto_now_add=True)
    closed_at = models.DateTimeField(null=True, blank=True)
    max_vote_id_start = models.BigIntegerField(default=0)
    max_vote_id_end = models.BigIntegerField(null=True, blank=True)
    votes_gained = models.PositiveIntegerField(default=0)
    labels_gained = models.PositiveIntegerField(default=0)
    trained_model = models.ForeignKey(
        ModelVersion,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="trained_from_round",
        help_text="Model trained on the labels after it.",
    )

    class Meta:
        ordering = ["-number"]

    def __str__(self) -> str:
        return f"round {self.number} ({self.status})"


class RoundCandidate(models.Model):
    """A candidate put at the front of the queue by a round, with its rank and why."""

    round = models.ForeignKey(Round, on_delete=models.CASCADE, related_name="queued")
    candidate = models.ForeignKey(Candidate, on_delete=models.CASCADE, related_name="rounds")
    rank = models.PositiveIntegerField()
    reason = models.CharField(max_length=12, help_text="carry | exploit | random | fallback")
    score = models.FloatField(null=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["round", "candidate"], name="round_unique_candidate")
        ]


class TaskProgress(models.Model):
    """Progress of one long task run (by name and key, e.g. score_catalogue / model 7)."""

    class State(models.TextChoices):
        QUEUED = "queued"
        RUNNING = "running"
        DONE = "done"
        FAILED = "failed"

    name = models.CharField(max_length=60)
    key = models.CharField(max_length=120)
    state = models.CharField(max_length=8, choices=State.choices, default=State.QUEUED)
    done = models.PositiveBigIntegerField(default=0)
    total = models.PositiveBigIntegerField(default=0)
    message = models.TextField(blank=True)
    started_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["name", "key"], name="progress_unique")]
        ordering = ["-updated_at"]

    @property
    def fraction(self) -> float:
        return self.done / self.total if self.total else 0.0


class ScoreChunk(models.Model):
    """One slice of a scoring run. Chunks are done by any worker; the last one to finish
    (compare-and-swap on ``done``) triggers what follows, so no result backend is needed."""

    model_version = models.ForeignKey(
        ModelVersion, on_delete=models.CASCADE, related_name="score_chunks"
    )
    batch = models.ForeignKey("labelapp.IngestBatch", on_delete=models.CASCADE)
    start = models.PositiveIntegerField()
    stop = models.PositiveIntegerField()
    done = models.BooleanField(default=False)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["model_version", "batch", "start"], name="score_chunk_unique"
            )
        ]
