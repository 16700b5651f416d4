"""Shift reports built without a person, so that the loop's shift-aware parts work by
themselves.

Two features read the newest shift reports of a model: AdaBN scoring of flagged batches
(:func:`labelapp.services.learning.adaptation.prepare_batch`, decided when the model's
scoring run is planned) and the round's shift share
(:func:`labelapp.services.learning.rounds.shifted_mask`). Without reports against a newly
promoted model, both saw nothing. So, with the campaign setting ``auto_shift_reports`` on
(the default):

* before a model version's scoring run decides how it scores a batch
  (:func:`labelapp.services.learning.scoring_runs.plan_scoring`), :func:`ensure_reports`
  builds the whole-batch and per-field reports
  (:func:`labelapp.services.learning.shift.build_batch_reports`) of every such batch that
  has no whole-batch report against that model yet;
* after a new batch is ingested while a model is live, the ingest sends
  ``labelapp.tasks.build_batch_shift_reports`` (cpu queue), which builds that batch's,
  then its night-group reports;
* when a model's scoring run completes, ``labelapp.tasks.build_night_shift_reports`` (cpu
  queue) builds the night-group reports (:func:`ensure_night_reports`) of every batch that
  lacks them against that model, then a report of every field across the catalogue
  (:func:`ensure_field_reports`; an ingest rebuilds the fields it added to); they feed the
  round's shift share, not AdaBN.

Idempotent: a batch is built under a lock on its row and only when no whole-batch report
of (model, batch) exists, so a redelivered task, a second planning or the ingest task
racing a scoring run reuse the report instead of adding another; the reports of one batch
commit together or not at all. Bounded: each report samples at most
:data:`~labelapp.services.learning.shift.N_NEW` candidates against one reference sample
made once per run, and the run stops building after ``settings.SHIFT_AUTO_BUDGET_S``
seconds (the batches left are named in the log and the progress row; a scoring run then
scores them as trained). Never fatal to scoring: a batch with fewer than
:data:`mlcore.shift.MIN_SAMPLE` candidates with cutouts, or a model with too few training
candidates left for a reference, is skipped with the reason logged; any other failure of a
batch is logged and recorded as a failed task for the console (``shift_report`` /
``model-<v>-batch-<b>``), and that batch is scored as trained. Only the database going
away is raised (the scoring task retries).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass, field

from django.conf import settings
from django.db import InterfaceError, OperationalError, transaction
from django.db.models import Count
from django.utils import timezone

from labelapp.models import Candidate, IngestBatch, ModelVersion, ShiftReport, TaskProgress
from labelapp.services.learning import shift
from labelapp.services.learning.acquisition_settings import auto_shift_setting
from labelapp.services.operations.progress import set_progress, start_progress
from mlcore.shift import MIN_SAMPLE, NIGHT_THRESHOLDS

logger = logging.getLogger(__name__)

PROGRESS = "shift_reports"  # TaskProgress name of a run (key: model-<v>, or ingest-...)
FAILED = "shift_report"  # TaskProgress name of one batch's failure (key: model-<v>-batch-<b>)


@dataclass
class Outcome:
    """What happened to one batch: ``built`` (the ids of its new reports), ``exists`` (the
    whole-batch report already there), ``skipped`` or ``failed`` (with why)."""

    batch_id: int | None  # None: a field across the catalogue (``field``)
    status: str
    reason: str = ""
    report_ids: list[int] = field(default_factory=list)
    verdict: str = ""
    seconds: float = 0.0
    n_flagged: int = 0  # night groups: how many of the new reports say shifted or far
    field: str = ""  # with batch_id None: the field reported across every batch

    @property
    def what(self) -> str:
        return f"batch {self.batch_id}" if self.batch_id is not None else f"field {self.field!r}"


def whole_batch_report(model_version: ModelVersion, batch: IngestBatch) -> ShiftReport | None:
    """The newest report of the whole of ``batch`` against ``model_version``, or None."""
    return ShiftReport.objects.filter(
        model_version=model_version, batch=batch, field="", night_first__isnull=True
    ).first()


class _LazyReference:
    """The model's described reference sample, made when the first batch needs it (a run
    whose batches all have reports loads no model); its failure is remembered."""

    def __init__(self, model_version: ModelVersion):
        self.mv = model_version
        self.ref = None
        self.error: str | None = None

    def get(self):
        if self.ref is None and self.error is None:
            try:
                self.ref = shift.reference_sample(self.mv, shift.N_REF, 0)
            except shift.ShiftReportError as exc:
                self.error = str(exc)
        return self.ref


def ensure_batch_reports(
    *, model_version: ModelVersion, batch: IngestBatch, _ref: _LazyReference | None = None
) -> Outcome:
    """Build ``batch``'s whole-batch and per-field reports against ``model_version`` unless
    its whole-batch report exists. Never raises but for the database going away."""
    t0 = time.perf_counter()
    out = Outcome(batch_id=batch.pk, status="skipped")
    n = shift.with_cutouts(Candidate.objects.filter(batch=batch)).count()
    if n < MIN_SAMPLE:
        out.reason = (
            f"batch {batch.pk} has {n} candidates with cutouts; a shift report needs at "
            f"least {MIN_SAMPLE}"
        )
        logger.info("no shift report of batch %s against v%s: %s", batch.pk, model_version.pk,
                    out.reason)  # fmt: skip
        return out
    ref = _ref or _LazyReference(model_version)
    try:
        with transaction.atomic():
            # one builder per batch at a time (a scoring run and the ingest task): the second
            # waits here, then finds the report
            IngestBatch.objects.select_for_update().filter(pk=batch.pk).first()
            existing = whole_batch_report(model_version, batch)
            if existing is not None:
                out.status, out.verdict = "exists", existing.verdict
                out.report_ids = [existing.pk]
                return out
            if ref.get() is None:
                out.reason = f"no reference sample: {ref.error}"
                logger.info("no shift report of batch %s against v%s: %s", batch.pk,
                            model_version.pk, out.reason)  # fmt: skip
                return out
            rows = shift.build_batch_reports(batch=batch, _ref=ref.ref)
    except (OperationalError, InterfaceError):
        raise
    except Exception as exc:  # one batch's report must not stop scoring
        out.status, out.reason = "failed", f"{type(exc).__name__}: {exc}"
        out.seconds = time.perf_counter() - t0
        logger.exception("shift report of batch %s against v%s failed", batch.pk,
                         model_version.pk)  # fmt: skip
        _record_failure(model_version, batch, out.reason)
        return out
    out.status, out.verdict = "built", rows[0].verdict
    out.report_ids = [r.pk for r in rows]
    out.seconds = time.perf_counter() - t0
    logger.info("shift reports %s of batch %s against v%s in %.1f s: %s", out.report_ids,
                batch.pk, model_version.pk, out.seconds, out.verdict)  # fmt: skip
    return out


def ensure_reports(
    *,
    model_version: ModelVersion,
    batches: Iterable[IngestBatch] | None = None,
    progress_key: str | None = None,
    budget_s: float | None = None,
) -> list[Outcome]:
    """:func:`ensure_batch_reports` for each of ``batches`` (default: every ingest batch),
    against one reference sample, under a progress row (``shift_reports`` /
    ``progress_key``, default ``model-<v>``), within ``budget_s`` seconds (default
    ``settings.SHIFT_AUTO_BUDGET_S``; None or 0 there: no limit). Nothing when the campaign
    setting is off."""

    def one(batch: IngestBatch, ref: _LazyReference, deadline: float | None) -> Outcome:
        if (
            deadline is not None
            and time.perf_counter() > deadline
            and not _has_report(model_version, batch)
        ):
            out = Outcome(
                batch_id=batch.pk,
                status="skipped",
                reason=f"the {budget_s:.0f} s budget for automatic shift reports was spent "
                "(SHIFT_AUTO_BUDGET_S)",
            )
            logger.warning("no shift report of batch %s against v%s: %s", batch.pk,
                           model_version.pk, out.reason)  # fmt: skip
            return out
        return ensure_batch_reports(model_version=model_version, batch=batch, _ref=ref)

    if budget_s is None:
        budget_s = getattr(settings, "SHIFT_AUTO_BUDGET_S", None)
    return _run_batches(
        model_version=model_version, batches=batches, budget_s=budget_s, one=one,
        key=progress_key or f"model-{model_version.pk}", what="shift reports",
    )  # fmt: skip


def ensure_night_reports(
    *,
    model_version: ModelVersion,
    batches: Iterable[IngestBatch] | None = None,
    progress_key: str | None = None,
    budget_s: float | None = None,
) -> list[Outcome]:
    """A report per group of observing nights of each of ``batches`` (default: every
    batch) against ``model_version``, for the groups that have none yet, judged with the
    night-level thresholds (:func:`build_nights_of_batch`); one reference sample, a
    progress row (``shift_reports`` / ``progress_key``, default ``nights-model-<v>``), the
    same budget as :func:`ensure_reports`. Nothing when the campaign setting is off."""

    def one(batch: IngestBatch, ref: _LazyReference, deadline: float | None) -> Outcome:
        return build_nights_of_batch(
            model_version=model_version, batch=batch, _ref=ref, deadline=deadline
        )

    return _run_batches(
        model_version=model_version, batches=batches, budget_s=budget_s, one=one,
        key=progress_key or f"nights-model-{model_version.pk}",
        what="night-group shift reports",
    )  # fmt: skip


def _run_batches(*, model_version, batches, budget_s, one, key: str, what: str) -> list[Outcome]:
    """``one(batch, reference, deadline)`` for each batch (default: every batch): see
    :func:`_run`."""
    if not auto_shift_setting():
        logger.info("automatic shift reports are off (campaign setting auto_shift_reports)")
        return []
    batches = list(IngestBatch.objects.order_by("pk") if batches is None else batches)
    return _run(model_version=model_version, items=batches, label=lambda b: f"batch {b.pk}",
                one=one, budget_s=budget_s, key=key, what=what)  # fmt: skip


def _run(*, model_version, items, label, one, budget_s, key: str, what: str) -> list[Outcome]:
    """``one(item, reference, deadline)`` for each item, with one lazily made reference
    sample, a progress row and a budget (default ``settings.SHIFT_AUTO_BUDGET_S``)."""
    if budget_s is None:
        budget_s = getattr(settings, "SHIFT_AUTO_BUDGET_S", None)
    row = start_progress(name=PROGRESS, key=key, total=len(items),
                         message=f"{what} against model v{model_version.pk}")  # fmt: skip
    ref = _LazyReference(model_version)
    t0 = time.perf_counter()
    deadline = t0 + budget_s if budget_s else None
    out: list[Outcome] = []
    for k, item in enumerate(items):
        out.append(one(item, ref, deadline))
        set_progress(row, done=k + 1, message=f"{label(item)}: {_say(out[-1])}")
    summary = _summary(out, time.perf_counter() - t0)
    TaskProgress.objects.filter(pk=row.pk).update(
        state=TaskProgress.State.DONE, message=summary[:2000], updated_at=timezone.now()
    )
    logger.info("%s against v%s: %s", what, model_version.pk, summary)
    return out


def build_nights_of_batch(
    *,
    model_version: ModelVersion,
    batch: IngestBatch,
    _ref: _LazyReference | None = None,
    deadline: float | None = None,
) -> Outcome:
    """The night-group reports of ``batch`` (:func:`shift.night_groups_of`, groups of at
    least ``MIN_SAMPLE`` candidates) that ``model_version`` has none of, one transaction
    each under a lock on the batch's row (a second task waits, then skips the group);
    stops at ``deadline`` (``time.perf_counter()``), naming how many groups are left.
    ``verdict`` sums the verdicts up. Never raises but for the database going away."""
    t0 = time.perf_counter()
    out = Outcome(batch_id=batch.pk, status="skipped")
    try:
        groups = [g for g in shift.night_groups_of(batch=batch) if g.n >= MIN_SAMPLE]
    except shift.ShiftReportError as exc:
        out.reason = str(exc)
        return out
    if not groups:
        out.reason = (
            f"batch {batch.pk} has no group of observing nights with at least {MIN_SAMPLE} "
            "candidates with cutouts"
        )
        return out

    def reported() -> set[tuple[int, int]]:
        return set(
            ShiftReport.objects.filter(
                model_version=model_version, batch=batch, field="", night_first__isnull=False
            ).values_list("night_first", "night_last")
        )

    todo = [g for g in groups if (g.first, g.last) not in reported()]
    if not todo:
        out.status, out.verdict = "exists", f"{len(groups)} groups of nights already reported"
        return out
    ref = _ref or _LazyReference(model_version)
    if ref.get() is None:
        out.reason = f"no reference sample: {ref.error}"
        return out
    try:
        for k, g in enumerate(todo):
            if deadline is not None and time.perf_counter() > deadline:
                out.reason = (
                    f"the budget for automatic shift reports was spent (SHIFT_AUTO_BUDGET_S): "
                    f"{len(todo) - k} of {len(groups)} groups of nights left"
                )
                logger.warning("night-group reports of batch %s against v%s: %s", batch.pk,
                               model_version.pk, out.reason)  # fmt: skip
                break
            with transaction.atomic():
                IngestBatch.objects.select_for_update().filter(pk=batch.pk).first()
                if (g.first, g.last) in reported():  # another task built it meanwhile
                    continue
                r = shift.build_shift_report(
                    batch=batch, nights=(g.first, g.last), thresholds=NIGHT_THRESHOLDS,
                    _ref=ref.ref,
                )  # fmt: skip
            out.report_ids.append(r.pk)
            out.n_flagged += r.verdict != ShiftReport.Verdict.IN_DISTRIBUTION
    except (OperationalError, InterfaceError):
        raise
    except Exception as exc:  # the groups built so far stay; the next run does the rest
        out.status, out.reason = "failed", f"{type(exc).__name__}: {exc}"
        logger.exception("night-group shift reports of batch %s against v%s failed",
                         batch.pk, model_version.pk)  # fmt: skip
        _record_failure(model_version, batch, out.reason, nights=True)
    if out.status != "failed" and out.report_ids:
        out.status = "built"
    if out.report_ids:
        out.verdict = f"{out.n_flagged} of {len(out.report_ids)} groups of nights shifted or far"
    out.seconds = time.perf_counter() - t0
    return out


def field_report(model_version: ModelVersion, field: str) -> ShiftReport | None:
    """The newest report of ``field`` across every batch against ``model_version``."""
    return ShiftReport.objects.filter(
        model_version=model_version, batch__isnull=True, field=field, night_first__isnull=True
    ).first()


def catalogue_fields() -> list[tuple[str, int]]:
    """(field, candidates with cutouts) of every named field in the catalogue, by name."""
    rows = (
        shift.with_cutouts(Candidate.objects.exclude(field=""))
        .values_list("field")
        .annotate(n=Count("pk"))
        .order_by("field")
    )
    return [(f, n) for f, n in rows]


def ensure_field_reports(
    *,
    model_version: ModelVersion,
    fresh: Iterable[str] = (),
    progress_key: str | None = None,
    budget_s: float | None = None,
) -> list[Outcome]:
    """A report of each field across every batch against ``model_version``, for the fields
    it has none of (and again for the fields in ``fresh``: those a new batch added
    candidates to). A field spread thinly over many batches is then measured even where no
    single batch holds enough of it for a per-batch report. One reference sample, a progress
    row (``shift_reports`` / ``progress_key``, default ``fields-model-<v>``), the budget of
    the other automatic reports; one transaction per field under a lock on the model's row,
    so two tasks at once build each once. Nothing when the campaign setting is off. Never
    raises but for the database going away; a failure is recorded as a failed task
    (``shift_report`` / ``model-<v>-field-<name>``)."""
    if not auto_shift_setting():
        logger.info("automatic shift reports are off (campaign setting auto_shift_reports)")
        return []
    fresh = set(fresh)
    if budget_s is None:
        budget_s = getattr(settings, "SHIFT_AUTO_BUDGET_S", None)

    def one(item: tuple[str, int], ref: _LazyReference, deadline: float | None) -> Outcome:
        name, n = item
        return _field_report(model_version, name, n, name in fresh, ref, deadline, budget_s)

    return _run(
        model_version=model_version, items=catalogue_fields(),
        label=lambda item: f"field {item[0]!r}", one=one, budget_s=budget_s,
        key=progress_key or f"fields-model-{model_version.pk}", what="field-wide shift reports",
    )  # fmt: skip


def _field_report(mv, name: str, n: int, fresh: bool, ref, deadline, budget_s) -> Outcome:
    t0 = time.perf_counter()
    out = Outcome(batch_id=None, field=name, status="skipped")
    if n < MIN_SAMPLE:
        out.reason = f"{n} candidates with cutouts; a shift report needs at least {MIN_SAMPLE}"
        return out
    existing = field_report(mv, name)
    if existing is not None and not fresh:
        out.status, out.verdict, out.report_ids = "exists", existing.verdict, [existing.pk]
        return out
    if deadline is not None and time.perf_counter() > deadline:
        out.reason = (
            f"the {budget_s:.0f} s budget for automatic shift reports was spent "
            "(SHIFT_AUTO_BUDGET_S)"
        )
        return out
    if ref.get() is None:
        out.reason = f"no reference sample: {ref.error}"
        return out
    try:
        with transaction.atomic():
            ModelVersion.objects.select_for_update().filter(pk=mv.pk).first()
            newest = field_report(mv, name)
            if newest is not None and newest.pk != getattr(existing, "pk", None):
                # another task built it while this one waited
                out.status, out.verdict, out.report_ids = "exists", newest.verdict, [newest.pk]
                return out
            r = shift.build_shift_report(field=name, _ref=ref.ref)
    except (OperationalError, InterfaceError):
        raise
    except Exception as exc:  # one field's report must not stop the others
        out.status, out.reason = "failed", f"{type(exc).__name__}: {exc}"
        logger.exception("field-wide shift report of %r against v%s failed", name, mv.pk)
        TaskProgress.objects.update_or_create(
            name=FAILED,
            key=f"model-{mv.pk}-field-{name}"[:100],
            defaults={
                "state": TaskProgress.State.FAILED,
                "total": 1,
                "done": 0,
                "message": f"shift report of field {name!r} across the catalogue against "
                f"v{mv.pk}: {out.reason}"[:2000],
            },
        )
        return out
    out.status, out.verdict, out.report_ids = "built", r.verdict, [r.pk]
    out.seconds = time.perf_counter() - t0
    return out


def _has_report(mv: ModelVersion, batch: IngestBatch) -> bool:
    return whole_batch_report(mv, batch) is not None


def _say(o: Outcome) -> str:
    if o.status in ("built", "exists"):
        said = f"{o.verdict} ({'built' if o.status == 'built' else 'already reported'})"
        return said + (f"; {o.reason}" if o.reason else "")
    return f"{o.status}: {o.reason}"


def _summary(out: list[Outcome], seconds: float) -> str:
    counts = {s: sum(o.status == s for o in out) for s in ("built", "exists", "skipped", "failed")}
    text = ", ".join(f"{n} {s}" for s, n in counts.items() if n) or "nothing to report"
    flagged = [o.what for o in out if o.verdict in ("shifted", "far") or o.n_flagged]
    if flagged:
        text += f"; shifted or far: {', '.join(flagged)}"
    return f"{text} ({seconds:.1f} s)"


def _record_failure(
    mv: ModelVersion, batch: IngestBatch, reason: str, *, nights: bool = False
) -> None:
    """A failed row the console's campaign page lists with the other failed tasks."""
    what = (
        f"night-group shift reports of batch {batch.pk} against v{mv.pk}"
        if nights
        else f"shift report of batch {batch.pk} against v{mv.pk} (scored as trained)"
    )
    TaskProgress.objects.update_or_create(
        name=FAILED,
        key=f"model-{mv.pk}-batch-{batch.pk}" + ("-nights" if nights else ""),
        defaults={
            "state": TaskProgress.State.FAILED,
            "total": 1,
            "done": 0,
            "message": f"{what}: {reason}"[:2000],
        },
    )


def after_ingest(*, batch_id: int, model_version_id: int) -> Outcome | None:
    """The ingest task's body: ``batch_id``'s reports against ``model_version_id`` (the
    model live when the batch arrived). None: the setting is off."""
    mv = ModelVersion.objects.get(pk=model_version_id)
    batch = IngestBatch.objects.get(pk=batch_id)
    out = ensure_reports(model_version=mv, batches=[batch], progress_key=f"ingest-batch-{batch_id}")
    # then its groups of nights (for the round's shift share; AdaBN reads the batch report)
    ensure_night_reports(
        model_version=mv, batches=[batch], progress_key=f"nights-ingest-batch-{batch_id}"
    )
    # and its fields across the catalogue again, now that they hold its candidates too
    ensure_field_reports(
        model_version=mv,
        fresh=Candidate.objects.filter(batch=batch).values_list("field", flat=True).distinct(),
        progress_key=f"fields-ingest-batch-{batch_id}",
    )
    return out[0] if out else None


def after_scoring(*, model_version_id: int) -> list[Outcome]:
    """After a model's scoring run: the night-group reports of every batch against it (the
    batch reports were built when the run was planned), then every field across the
    catalogue, for the next rounds' shift share."""
    mv = ModelVersion.objects.get(pk=model_version_id)
    return ensure_night_reports(model_version=mv) + ensure_field_reports(model_version=mv)
