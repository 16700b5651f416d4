"""Zooniverse (Panoptes) as a second front end: who classified there, which subject is
which candidate, where each imported vote came from, and every import run.

An imported vote is an ordinary :class:`Vote` (so aggregation, consensus and training see
it like any other) of a volunteer who has a :class:`ZooniverseVolunteer` row; its provenance
is its :class:`ZooniverseClassification`.
"""

from django.db import models

from labelapp.models.survey import Candidate
from labelapp.models.volunteers import Volunteer, Vote


class ZooniverseImport(models.Model):
    """One run of ``import_zooniverse``: the files, the choices, and what came of them."""

    workflow_id = models.BigIntegerField()
    versions = models.CharField(max_length=40, help_text="Version range imported ('all').")
    classifications_path = models.TextField()
    subjects_path = models.TextField()
    workflows_path = models.TextField()
    counts = models.JSONField(default=dict)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-pk"]

    def __str__(self) -> str:
        return f"zooniverse import {self.pk} (workflow {self.workflow_id})"


class ZooniverseVolunteer(models.Model):
    """A Zooniverse classifier: logged in (keyed by user_id) or not (``not-logged-in-<hash>``,
    each hash its own anonymous volunteer, marked ``anonymous``)."""

    volunteer = models.OneToOneField(
        Volunteer, on_delete=models.CASCADE, primary_key=True, related_name="zooniverse"
    )
    key = models.CharField(max_length=100, unique=True, help_text="user:<id> or anon:<hash>")
    zooniverse_user_id = models.BigIntegerField(null=True, blank=True)
    user_name = models.CharField(max_length=150, blank=True)
    anonymous = models.BooleanField()

    def __str__(self) -> str:
        return f"zooniverse {self.key}"


class ZooniverseSubject(models.Model):
    """A Panoptes subject and the candidate it shows (through the subject key, e.g. the
    ``#detectid`` metadata the manifest wrote)."""

    subject_id = models.BigIntegerField(primary_key=True)
    candidate = models.ForeignKey(
        Candidate, on_delete=models.CASCADE, related_name="zooniverse_subjects"
    )
    retired_at = models.CharField(
        max_length=40, blank=True, help_text="Retired on Zooniverse (subject export), if so."
    )

    def __str__(self) -> str:
        return f"subject {self.subject_id} -> candidate {self.candidate_id}"


class ZooniverseClassification(models.Model):
    """Provenance of one imported vote: the classification it came from."""

    classification_id = models.BigIntegerField(primary_key=True)
    vote = models.OneToOneField(Vote, on_delete=models.CASCADE, related_name="zooniverse")
    source = models.CharField(max_length=16, default="zooniverse")
    subject_id = models.BigIntegerField()
    workflow_id = models.BigIntegerField()
    workflow_version = models.CharField(max_length=20)
    created_at = models.DateTimeField(help_text="When Zooniverse recorded the classification.")
    expert = models.BooleanField(default=False)
    import_run = models.ForeignKey(ZooniverseImport, on_delete=models.PROTECT, related_name="+")

    def __str__(self) -> str:
        return f"classification {self.classification_id} -> vote {self.vote_id}"


class ZooniverseComparison(models.Model):
    """One ``zooniverse_report``: on the candidates with Zooniverse votes, the skill-weighted
    labels of an aggregation run against DEE's fixed-count majority rule (what the console's
    Zooniverse page shows)."""

    aggregation_run = models.ForeignKey(
        "labelapp.AggregationRun", on_delete=models.CASCADE, related_name="+"
    )
    fixed_votes = models.PositiveSmallIntegerField(help_text="DEE's rule: the first N votes.")
    n_candidates = models.PositiveIntegerField(help_text="Candidates with Zooniverse votes.")
    settled_fixed = models.PositiveIntegerField()
    settled_platform = models.PositiveIntegerField()
    settled_both = models.PositiveIntegerField()
    agree = models.PositiveIntegerField(help_text="Same label, among those settled by both.")
    votes_needed = models.JSONField(
        default=dict,
        help_text="Skill-weighted posterior: {votes needed: candidates}, in vote time order.",
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-pk"]

    def __str__(self) -> str:
        return f"zooniverse comparison {self.pk} (aggregation run {self.aggregation_run_id})"
