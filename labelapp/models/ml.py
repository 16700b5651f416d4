"""CNN model versions (weights + card on disk) and their scores per candidate."""

from django.db import models

from labelapp.models.survey import Candidate


class ModelVersion(models.Model):
    class Status(models.TextChoices):
        CANDIDATE = "candidate", "trained, not promoted"
        PROMOTED = "promoted", "live"
        REJECTED = "rejected", "rejected by the promotion gate"
        RETIRED = "retired", "superseded"

    status = models.CharField(max_length=10, choices=Status.choices, default=Status.CANDIDATE)
    label_source = models.CharField(max_length=10, help_text="truth | consensus")
    directory = models.TextField(help_text="Directory with model.pt and card.json.")
    card = models.JSONField(default=dict)
    n_train = models.PositiveIntegerField(default=0)
    data_hash = models.CharField(max_length=64, blank=True)
    status_reason = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    # Whether the consensus may compare votes with this model's confident "real" / "not
    # real" calls (the check that demotes colluders who pass gold): set by the promotion
    # gate from how often such calls were right on its evaluation set (mlcore.aggregation
    # .evidence.trusted_calls). A model with a one-sided bias would otherwise demote the
    # honest volunteers who see through it. True for models from before the measurement.
    trust_real_calls = models.BooleanField(default=True, db_default=True)
    trust_false_calls = models.BooleanField(default=True, db_default=True)

    class Meta:
        ordering = ["-pk"]

    def __str__(self) -> str:
        return f"model v{self.pk} ({self.status})"


class CandidateScore(models.Model):
    """One model version's opinion of one candidate, with its uncertainty."""

    model_version = models.ForeignKey(ModelVersion, on_delete=models.CASCADE, related_name="scores")
    candidate = models.ForeignKey(Candidate, on_delete=models.CASCADE, related_name="scores")
    prob = models.FloatField(
        help_text="P(real) at even odds in its S/N regime (decide at 0.5): MC-dropout mean of "
        "sigmoid(logit / T); the card's prior_shift gives P at the labels' class mix"
    )
    entropy = models.FloatField(help_text="predictive entropy (bits)")
    bald = models.FloatField(help_text="mutual information (bits): the epistemic part")
    # Null: the model as trained. Set: scored by a copy of it whose BatchNorm statistics were
    # re-estimated on this candidate's batch (AdaBN; labelapp.services.learning.adaptation).
    adaptation = models.ForeignKey(
        "labelapp.BatchAdaptation",
        null=True,
        blank=True,
        on_delete=models.RESTRICT,
        related_name="scores",
        help_text="The batch statistics (AdaBN) this score was made with; null: none.",
    )

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["model_version", "candidate"], name="score_unique_model_candidate"
            )
        ]
        indexes = [
            # the console's gallery: most confident / most uncertain of one model, as an
            # index walk instead of a sort of 2.5M rows (bench/bench_console.py)
            models.Index(fields=["model_version", "prob"], name="score_model_prob"),
            models.Index(fields=["model_version", "bald"], name="score_model_bald"),
        ]


class ShiftReport(models.Model):
    """Is a sample of the catalogue (an ingest batch, a field, a group of observing nights)
    like the data the model was trained on? Input statistics, the model's representation
    and its scores against a reference sample of its training data, and a verdict
    (:mod:`mlcore.shift`, :mod:`labelapp.services.learning.shift`)."""

    class Verdict(models.TextChoices):
        IN_DISTRIBUTION = "in distribution"
        SHIFTED = "shifted"
        FAR = "far"

    model_version = models.ForeignKey(
        ModelVersion, on_delete=models.CASCADE, related_name="shift_reports"
    )
    batch = models.ForeignKey(
        "labelapp.IngestBatch",
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="shift_reports",
        help_text="None: every batch (a field across the catalogue).",
    )
    field = models.CharField(max_length=32, blank=True, help_text="blank: every field")
    # A group of observing nights (mlcore.nights.night_groups): the candidates whose shotid
    # falls in first..last (YYYYMMDD). Null: every night.
    night_first = models.PositiveIntegerField(null=True, blank=True, help_text="YYYYMMDD")
    night_last = models.PositiveIntegerField(null=True, blank=True, help_text="YYYYMMDD")
    verdict = models.CharField(max_length=16, choices=Verdict.choices)
    n_new = models.PositiveIntegerField()
    n_ref = models.PositiveIntegerField()
    report = models.JSONField(default=dict)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-pk"]
        indexes = [
            models.Index(fields=["model_version", "batch", "field"], name="shift_mv_batch_field")
        ]

    @property
    def nights(self) -> str | None:
        """The night group as "20190105" or "20190105-20190108"; None: every night."""
        if self.night_first is None:
            return None
        if self.night_first == self.night_last:
            return str(self.night_first)
        return f"{self.night_first}-{self.night_last}"

    def __str__(self) -> str:
        where = f"batch {self.batch_id}" if self.batch_id else "all batches"
        where += f" / {self.field}" if self.field else ""
        where += f" / nights {self.nights}" if self.nights else ""
        return f"shift of {where}: {self.verdict}"


class BatchAdaptation(models.Model):
    """How a model version scores one ingest batch that its newest shift report flags
    (``shifted`` or ``far``): with a copy whose BatchNorm running statistics were
    re-estimated on the batch's own cutouts (AdaBN,
    :func:`mlcore.cnn.domain_adapt.adapt_batchnorm`), or -- ``adapted`` False -- as
    trained, with the reason (too few candidates, the campaign setting off). Decided once
    per batch per model version when its scoring run is planned (again only on request);
    the scores made with it point here (:attr:`CandidateScore.adaptation`).
    :mod:`labelapp.services.learning.adaptation`."""

    model_version = models.ForeignKey(
        ModelVersion, on_delete=models.CASCADE, related_name="batch_adaptations"
    )
    batch = models.ForeignKey(
        "labelapp.IngestBatch", on_delete=models.CASCADE, related_name="adaptations"
    )
    adapted = models.BooleanField(help_text="False: scored as trained, see reason")
    reason = models.TextField()
    shift_report = models.ForeignKey(
        ShiftReport,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        help_text="The report whose verdict asked for it.",
    )
    verdict = models.CharField(max_length=16, blank=True)
    n_used = models.PositiveIntegerField(
        default=0, help_text="candidates whose cutouts gave the statistics"
    )
    n_batch = models.PositiveIntegerField(default=0, help_text="candidates with cutouts")
    seed = models.IntegerField(default=0)
    bn_state = models.JSONField(
        default=dict, blank=True, help_text="The re-estimated BatchNorm buffers, by name."
    )
    requested_by = models.CharField(max_length=150, blank=True, help_text="blank: a scoring run")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["batch_id"]
        constraints = [
            models.UniqueConstraint(
                fields=["model_version", "batch"], name="adaptation_unique_model_batch"
            )
        ]

    def __str__(self) -> str:
        how = "adapted" if self.adapted else "not adapted"
        return f"v{self.model_version_id} on batch {self.batch_id}: {how}"


class PretrainedEncoder(models.Model):
    """A self-supervised encoder: LineCNN trunks pretrained on unlabelled candidates
    (:mod:`mlcore.cnn.pretrain`), weights + card on disk, which retrains can start from.

    A table of its own rather than a kind of :class:`ModelVersion`: its head is untrained,
    so it must never be gated, promoted, scored with or served, and every query that picks
    or lists classifiers (the live model, the gate, scoring, exports, the science API)
    cannot meet one by construction."""

    approach = models.CharField(max_length=16, help_text="contrastive | masked")
    directory = models.TextField(help_text="Directory with model.pt and model_card.json.")
    card = models.JSONField(default=dict)
    n_candidates = models.PositiveIntegerField(default=0)
    data_hash = models.CharField(max_length=64, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    # Retired from the console (labelapp.services.learning.encoders.retire_encoder): kept for
    # the provenance of the models started from it, no longer offered to retrains.
    retired_at = models.DateTimeField(null=True, blank=True)
    retired_by = models.CharField(max_length=150, blank=True)
    retired_reason = models.TextField(blank=True)

    class Meta:
        ordering = ["-pk"]

    def __str__(self) -> str:
        state = ", retired" if self.retired_at else ""
        return f"encoder v{self.pk} ({self.approach}{state})"
