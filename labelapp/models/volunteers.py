"""Volunteers, their votes, and the gold-standard candidates that teach them.

A volunteer is a person classifying, with or without an account: anonymous volunteers are
found through an id kept in their session, and keep their votes when they sign up. One vote
per volunteer per candidate is enforced by the database (``vote_unique_volunteer_candidate``),
which also makes the index the queue's "never seen twice" anti-join uses.
"""

from django.conf import settings
from django.db import models

from labelapp.models.survey import Candidate


class Volunteer(models.Model):
    user = models.OneToOneField(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="volunteer",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    tutorial_done = models.BooleanField(default=False)
    # Counters kept up to date by services.votes (the queue reads n_votes on every request,
    # so experience never needs a COUNT over the vote table).
    n_votes = models.PositiveIntegerField(default=0)
    n_unsure = models.PositiveIntegerField(default=0)
    n_gold = models.PositiveIntegerField(default=0)
    n_gold_correct = models.PositiveIntegerField(default=0)
    # The part of those on exam gold (GoldStandard.exam: never told its answer): what proves
    # a volunteer (mlcore.aggregation.evidence.is_proven), since a teaching gold's answer is
    # told after each vote and so can be learned by a script and replayed by new sessions.
    n_exam = models.PositiveIntegerField(default=0, db_default=0)
    n_exam_correct = models.PositiveIntegerField(default=0, db_default=0)
    # Yes/no answers compared with a proven volunteer's on the same candidate, and how many
    # agreed (mlcore.aggregation.evidence.peer_disagrees; each vote's share is on the Vote).
    n_peer = models.PositiveIntegerField(default=0, db_default=0)
    n_peer_agree = models.PositiveIntegerField(default=0, db_default=0)
    # Yes/no answers on candidates the live model called confidently (P >= MODEL_CONFIDENT or
    # <= 1 - MODEL_CONFIDENT), and how many agreed with it: an independent voter that a group
    # of accounts cannot outvote (each vote's share is its model_agree).
    n_model = models.PositiveIntegerField(default=0, db_default=0)
    n_model_agree = models.PositiveIntegerField(default=0, db_default=0)
    # Probation (PROOF_MIN_CHECKS) passed at some point: kept, so a later dip of the running
    # agreement under half does not demote an honest volunteer (evidence.passes_probation).
    probation_passed = models.BooleanField(default=False, db_default=False)
    last_vote_at = models.DateTimeField(null=True, blank=True)
    # Streak: consecutive UTC days with at least one vote.
    streak_days = models.PositiveIntegerField(default=0)
    best_streak_days = models.PositiveIntegerField(default=0)
    last_active_day = models.DateField(null=True, blank=True)
    # Level by shown skill (services.crowd.levels, mlcore.aggregation.levels): 1 high-S/N
    # candidates only, 2 low S/N unlocked, 3 the artefact-type follow-up. Read by the queue
    # with the row it already has; recomputed after each gold answer.
    level = models.PositiveSmallIntegerField(default=1, db_default=1)
    level_changed_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        who = self.user.get_username() if self.user_id else "anonymous"
        return f"volunteer {self.pk} ({who}, {self.n_votes} votes)"


class Vote(models.Model):
    class Answer(models.TextChoices):
        YES = "yes", "yes, a real line"
        NO = "no", "no"
        UNSURE = "unsure", "not sure"

    class Reason(models.TextChoices):
        # Why a 'no': names match mlcore.survey truth types, so they become training targets.
        NOISE = "noise", "noise"
        SKY = "sky", "sky line"
        COSMIC = "cosmic", "cosmic ray"
        HOTCOL = "hotcol", "hot column"
        METEOR = "meteor", "meteor / satellite"
        BADFIBER = "badfiber", "bad fiber"
        OTHER = "other", "other"

    class Client(models.TextChoices):
        KEYBOARD = "keyboard", "keyboard"
        TOUCH = "touch", "tap"
        SWIPE = "swipe", "swipe"
        MOUSE = "mouse", "mouse"
        API = "api", "other client"

    # No index of its own: the unique (volunteer, candidate) and vote_volunteer_recent indexes
    # both lead with the volunteer, and every vote's INSERT paid for a third copy (#24).
    volunteer = models.ForeignKey(
        Volunteer, on_delete=models.CASCADE, related_name="votes", db_index=False
    )
    candidate = models.ForeignKey(Candidate, on_delete=models.CASCADE, related_name="votes")
    answer = models.CharField(max_length=6, choices=Answer.choices)
    reason = models.CharField(max_length=8, choices=Reason.choices, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    was_gold = models.BooleanField(default=False)
    response_ms = models.PositiveIntegerField(null=True, blank=True)
    client = models.CharField(max_length=8, choices=Client.choices, default=Client.API)
    # The comparisons this vote added to its volunteer's n_peer / n_peer_agree when it was
    # cast (proven voters before it on the candidate), so an undo takes back exactly those.
    peer_n = models.PositiveSmallIntegerField(default=0, db_default=0)
    peer_agree = models.PositiveSmallIntegerField(default=0, db_default=0)
    # [[volunteer_id, agreed], ...]: the earlier voters on the candidate this (proven) vote was
    # a peer for, credited after commit; undo and void take exactly these back.
    peer_credits = models.JSONField(null=True, blank=True)
    # Agreed with the live model's confident call on the candidate (None: no confident call).
    model_agree = models.BooleanField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["volunteer", "candidate"], name="vote_unique_volunteer_candidate"
            ),
        ]
        indexes = [
            # undo ("my last vote") and the personal page read a volunteer's votes by time
            models.Index(fields=["volunteer", "-created_at"], name="vote_volunteer_recent"),
        ]

    def __str__(self) -> str:
        return f"{self.volunteer_id} -> {self.candidate_id}: {self.answer}"


class GoldStandard(models.Model):
    """A candidate whose answer scientists know, mixed into the queue to teach and to measure."""

    candidate = models.OneToOneField(
        Candidate, on_delete=models.CASCADE, primary_key=True, related_name="gold"
    )
    is_real = models.BooleanField()
    kind = models.CharField(
        max_length=12, help_text="lae, oii, or the artefact type (mlcore.survey.TRUTH_TYPES)."
    )
    feedback = models.TextField(help_text="Shown after a volunteer answers: teach, briefly.")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    active = models.BooleanField(default=True, db_index=True)
    # Exam gold measures and never teaches: no feedback, its answer is never told, and a vote
    # on it looks exactly like a vote on any candidate (undo included). Only exam answers
    # prove a volunteer; teaching gold (the rest) teaches and sets levels (docs/security.md).
    exam = models.BooleanField(
        default=False,
        db_default=False,
        help_text="Exam gold: never shows its answer; only these answers prove a volunteer.",
    )

    def __str__(self) -> str:
        kind = "exam" if self.exam else "gold"
        return f"{kind} {self.candidate_id} ({'real' if self.is_real else self.kind})"


class HoldoutLabel(models.Model):
    """An expert's answer for a candidate kept out of training: the promotion gate's
    representative evaluation sample.

    Gold standards are the clearest examples of each kind (they teach volunteers) and are
    trained on, so a gate on them cannot see a model getting worse on the ambiguous bulk.
    A random sample labelled by experts and never trained on can.
    """

    candidate = models.OneToOneField(
        Candidate, on_delete=models.CASCADE, primary_key=True, related_name="holdout"
    )
    is_real = models.BooleanField()
    source = models.CharField(
        max_length=32, help_text="Who answered: 'expert' (imported), or 'simulated truth'."
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"held-out {self.candidate_id} ({'real' if self.is_real else 'not real'})"
