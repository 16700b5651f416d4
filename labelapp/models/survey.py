"""Survey data: ingest batches, candidates and their (simulated) ground truth."""

from django.db import models
from django.db.models import ExpressionWrapper, F, Q

from mlcore.survey import SN_LOW_MAX


class IngestBatch(models.Model):
    """One ingested survey file: its hash makes re-ingest a no-op, its store holds the pixels."""

    name = models.SlugField(max_length=80, unique=True)
    file_sha256 = models.CharField(max_length=64, unique=True)
    source_path = models.TextField()
    file_format = models.CharField(max_length=8)  # fits | hdf5
    n_candidates = models.PositiveIntegerField()
    store_path = models.TextField(help_text="Directory of the cutout store (mlcore.store).")
    store_dtype = models.CharField(max_length=8)
    header_meta = models.JSONField(
        default=dict, blank=True, help_text="Simulator version and parameters, if any."
    )
    nan_pixels_zeroed = models.PositiveBigIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name_plural = "ingest batches"

    def __str__(self) -> str:
        return f"{self.name} ({self.n_candidates} candidates)"


class Candidate(models.Model):
    """One emission-line detection (HETDEX ``Detections`` columns) and where its pixels are."""

    class Status(models.TextChoices):
        ACTIVE = "active", "in the volunteer queue"
        RETIRED = "retired", "retired (label settled)"
        EXPERT = "expert", "waiting for an expert"

    detectid = models.BigIntegerField(unique=True)
    batch = models.ForeignKey(IngestBatch, on_delete=models.PROTECT, related_name="candidates")
    row = models.PositiveIntegerField(help_text="Row of this candidate in the batch store.")
    shotid = models.BigIntegerField()
    field = models.CharField(max_length=16, db_index=True)
    ra = models.FloatField()
    dec = models.FloatField()
    wave = models.FloatField(help_text="Observed line wavelength (A).")
    flux = models.FloatField(help_text="Line flux (1e-17 erg/s/cm2).")
    flux_err = models.FloatField()
    linewidth = models.FloatField(help_text="Gaussian sigma (A).")
    continuum = models.FloatField(null=True, help_text="Null where the file had no value.")
    sn = models.FloatField(db_index=True)
    chi2 = models.FloatField()
    apcor = models.FloatField(
        null=True, default=1.0, help_text="Null where the file had no value (e.g. -999)."
    )
    # What is missing from the cutout (mlcore.cutout_quality bits: 1 no cutout, 2 columns
    # beyond the CCD edge, 4 fewer than four fibres, 8 no column wavelengths), and how many
    # columns are padding. A candidate with no cutout is never queued for volunteers.
    # db_default too: bulk COPY writers (benchmarks, tests, older tools) that do not name the
    # columns get a clean cutout rather than a NOT NULL error.
    cutout_flags = models.PositiveSmallIntegerField(default=0, db_default=0)
    padded_cols = models.PositiveSmallIntegerField(default=0, db_default=0)
    # The labelling queue lives on the candidate: volunteers get active candidates in order
    # of priority (index below, so choosing the next one never scans the table). Ingest
    # puts low S/N first (priority = -sn) until the active-learning loop sets priorities.
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.ACTIVE)
    priority = models.FloatField(default=0.0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["batch", "row"], name="candidate_unique_batch_row"),
        ]
        indexes = [
            models.Index(fields=["status", "-priority"], name="candidate_queue"),
            # Level-1 volunteers are served high S/N only (services.crowd.levels), while the
            # queue puts low S/N first: with candidate_queue alone their next candidate skipped
            # every active low-S/N row (415,000 rows, 1.1 s at 2.5 M candidates). A partial
            # index was not enough: the planner, blind to priority following S/N, kept the
            # other; with the regime in the key it is an index condition (0.08 ms).
            models.Index(
                F("status"),
                ExpressionWrapper(Q(sn__gt=SN_LOW_MAX), output_field=models.BooleanField()),
                F("priority").desc(),
                name="candidate_queue_regime",
            ),
        ]

    def __str__(self) -> str:
        return f"detectid {self.detectid} ({self.wave:.1f} A, S/N {self.sn:.2f})"

    @property
    def cutout_problems(self) -> list[str]:
        from mlcore.cutout_quality import describe

        return describe(self.cutout_flags)

    @property
    def regime(self) -> str:
        from mlcore.survey import regime_name

        return regime_name(self.sn)

    @property
    def z_lya(self) -> float:
        from mlcore.survey import LYA_REST

        return self.wave / LYA_REST - 1


class ExternalScore(models.Model):
    """A score given to a candidate outside the platform, kept to compare with ours.

    HETDEX PDR1's catalogue carries ``p_cnn`` (the team's CNN) and ``p_conf``; ingest keeps
    them here (source ``hetdex-pdr1``) and the console's external page compares them with
    the platform's labels and live model. Null where the file had a sentinel (-999).
    """

    candidate = models.ForeignKey(
        Candidate, on_delete=models.CASCADE, related_name="external_scores"
    )
    source = models.CharField(max_length=32)
    name = models.CharField(max_length=16)
    value = models.FloatField(null=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["candidate", "source", "name"], name="external_score_unique"
            )
        ]
        indexes = [models.Index(fields=["source", "name"], name="external_score_source")]


class CandidateTruth(models.Model):
    """Simulator ground truth. A table of its own so nothing people produce mixes with it."""

    candidate = models.OneToOneField(
        Candidate, on_delete=models.CASCADE, primary_key=True, related_name="truth"
    )
    is_real = models.BooleanField()
    kind = models.CharField(max_length=12, db_index=True)  # mlcore.survey.TRUTH_TYPES
    true_flux = models.FloatField()
    true_z = models.FloatField(null=True)


class WorkerHeartbeat(models.Model):
    """Last time each Celery worker ran the heartbeat task (shown by /healthz)."""

    hostname = models.CharField(max_length=200, unique=True)
    seen_at = models.DateTimeField()
