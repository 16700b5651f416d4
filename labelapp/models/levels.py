"""The level-3 follow-up task's answers: which artefact a candidate is (a training target).

A volunteer at level 3 (skill shown in both S/N regimes, services.crowd.levels) who answers
'no' is asked which artefact it is; each answer is kept here, per candidate, with the level
the volunteer held when giving it. The vote it follows owns it: undoing or voiding the vote
removes it. ``services.crowd.levels.artefact_targets`` turns them into one target per
candidate; ``manage.py export_artefact_types`` writes them to CSV.
"""

from django.db import models

from labelapp.models.survey import Candidate
from labelapp.models.volunteers import Volunteer, Vote


class ArtefactAnswer(models.Model):
    class Kind(models.TextChoices):
        # the artefact types of mlcore.survey.TRUTH_TYPES (so they line up with the
        # simulator's truth and the CNN's targets), plus noise and other
        COSMIC = "cosmic", "cosmic ray"
        SKY = "sky", "sky residual"
        HOTCOL = "hotcol", "hot column"
        METEOR = "meteor", "meteor / satellite"
        BADFIBER = "badfiber", "bad fibre"
        NOISE = "noise", "noise"
        OTHER = "other", "other"

    vote = models.OneToOneField(Vote, on_delete=models.CASCADE, related_name="artefact")
    candidate = models.ForeignKey(Candidate, on_delete=models.CASCADE, related_name="+")
    volunteer = models.ForeignKey(Volunteer, on_delete=models.CASCADE, related_name="+")
    kind = models.CharField(max_length=8, choices=Kind.choices)
    level = models.PositiveSmallIntegerField()
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        indexes = [models.Index(fields=["candidate"], name="artefact_candidate")]

    def __str__(self) -> str:
        return f"{self.volunteer_id} -> {self.candidate_id}: {self.kind}"
