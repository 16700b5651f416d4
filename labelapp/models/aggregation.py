"""From votes to labels: aggregation runs, labels with provenance, skills, live consensus.

Two paths, one truth:
* **live** (:class:`ConsensusState`): recomputed from a candidate's own votes (<= a few
  dozen) after every vote, with the current skills, and used for instant retirement;
* **batch** (:class:`AggregationRun` -> :class:`Label`): Dawid-Skene over all votes,
  re-estimating every volunteer's skill; its labels are the labels of record.
A Label's provenance is its run: the method and settings, the model version whose scores
joined as an annotator, and ``max_vote_id`` -- the run used exactly the candidate's votes
with ``id <= max_vote_id``.
"""

from django.conf import settings
from django.db import models

from labelapp.models.survey import Candidate
from labelapp.models.volunteers import Volunteer, Vote


class AggregationRun(models.Model):
    class Method(models.TextChoices):
        MAJORITY = "majority", "majority vote"
        DAWID_SKENE = "dawid_skene", "Dawid-Skene"

    class Status(models.TextChoices):
        RUNNING = "running"
        DONE = "done"
        FAILED = "failed"

    method = models.CharField(max_length=12, choices=Method.choices)
    by_regime = models.BooleanField(default=True, help_text="Skills per S/N regime.")
    model_version = models.ForeignKey(
        "labelapp.ModelVersion",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        help_text="CNN whose scores joined as one more annotator (None: crowd only).",
    )
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.RUNNING)
    max_vote_id = models.BigIntegerField(default=0)
    n_votes = models.PositiveIntegerField(default=0)
    n_candidates = models.PositiveIntegerField(default=0)
    n_volunteers = models.PositiveIntegerField(default=0)
    iterations = models.PositiveIntegerField(default=0)
    converged = models.BooleanField(default=True)
    class_prior = models.JSONField(default=list, help_text="P(real) per regime [low, high].")
    typical_skill = models.JSONField(
        default=dict, help_text="Mean sensitivity/specificity per regime (new volunteers)."
    )
    n_retired = models.PositiveIntegerField(default=0)
    started_at = models.DateTimeField(auto_now_add=True)
    seconds = models.FloatField(default=0.0)
    error = models.TextField(blank=True)

    class Meta:
        ordering = ["-pk"]

    def __str__(self) -> str:
        return f"aggregation run {self.pk} ({self.method}, {self.status})"


class Label(models.Model):
    run = models.ForeignKey(AggregationRun, on_delete=models.CASCADE, related_name="labels")
    candidate = models.ForeignKey(Candidate, on_delete=models.CASCADE, related_name="labels")
    posterior = models.FloatField(help_text="P(real line)")
    is_real = models.BooleanField()
    confidence = models.FloatField()
    n_votes = models.PositiveIntegerField()
    info_gain = models.FloatField(help_text="Expected information (bits) of one more vote.")

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["run", "candidate"], name="label_unique_run_candidate")
        ]


class ConsensusState(models.Model):
    """The live posterior of one candidate; a pure function of its votes and current skills."""

    candidate = models.OneToOneField(
        Candidate, on_delete=models.CASCADE, primary_key=True, related_name="consensus"
    )
    posterior = models.FloatField()
    n_votes = models.PositiveIntegerField(help_text="yes/no votes ('not sure' excluded)")
    n_unsure = models.PositiveIntegerField(default=0)
    expert_label = models.BooleanField(null=True, help_text="Set when an expert answered.")
    updated_at = models.DateTimeField(auto_now=True)


class VolunteerSkill(models.Model):
    """Beta posteriors of a volunteer's sensitivity and specificity in one S/N regime."""

    volunteer = models.ForeignKey(Volunteer, on_delete=models.CASCADE, related_name="skills")
    regime = models.PositiveSmallIntegerField(help_text="0 = low S/N (<= 5.5), 1 = high")
    sens_alpha = models.FloatField()
    sens_beta = models.FloatField()
    spec_alpha = models.FloatField()
    spec_beta = models.FloatField()
    n_votes = models.PositiveIntegerField(default=0)
    run = models.ForeignKey(
        AggregationRun,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        help_text="Batch run that last set it (None: only gold answers so far).",
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["volunteer", "regime"], name="skill_unique_regime")
        ]

    @property
    def sensitivity(self) -> float:
        return self.sens_alpha / (self.sens_alpha + self.sens_beta)

    @property
    def specificity(self) -> float:
        return self.spec_alpha / (self.spec_alpha + self.spec_beta)


class RetirementEvent(models.Model):
    """Every change of a candidate's queue status, with why and on what evidence."""

    class Reason(models.TextChoices):
        CONFIDENT = "confident", "posterior past a retirement threshold"
        MAX_VOTES = "max_votes", "maximum votes reached, still uncertain"
        EXPERT = "expert", "an expert answered"
        BATCH = "batch", "confident after a batch aggregation run"
        MANUAL = "manual", "changed by a scientist"
        PEER_RECHECK = "recheck", "re-opened: a voter who settled it lost proven status"

    candidate = models.ForeignKey(
        Candidate, on_delete=models.CASCADE, related_name="retirement_events"
    )
    from_status = models.CharField(max_length=8)
    to_status = models.CharField(max_length=8)
    reason = models.CharField(max_length=10, choices=Reason.choices)
    posterior = models.FloatField(null=True)
    n_votes = models.PositiveIntegerField(default=0)
    vote = models.ForeignKey(Vote, null=True, blank=True, on_delete=models.SET_NULL)
    run = models.ForeignKey(AggregationRun, null=True, blank=True, on_delete=models.SET_NULL)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-pk"]
