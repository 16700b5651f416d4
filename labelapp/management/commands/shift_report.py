"""manage.py shift_report [--batch ID] [--field NAME] [--nights [--max-gap DAYS]] [--model ID]
[--n N] [--show] [--batch ID --rescore [--adapt]]"""

from django.core.management.base import BaseCommand, CommandError

from labelapp.errors import PlatformError
from labelapp.models import ModelVersion, ShiftReport
from mlcore.nights import MAX_GAP_DAYS


def format_report(row: ShiftReport) -> str:
    """A shift report as text: verdict, reasons, then every statistic with its threshold."""
    r = row.report
    lines = [
        f"Shift report {row.pk}: {r.get('where', '?')} against model v{row.model_version_id}"
        f" ({r.get('reference', '')})",
        f"verdict: {row.verdict.upper()}  ({row.n_new} new vs {row.n_ref} reference candidates)",
    ]
    lines += [f"  - {x}" for x in r.get("reasons", [])]
    lines.append("input statistics (KS distance / threshold; median reference -> new):")
    for k, v in r.get("inputs", {}).items():
        lines.append(
            f"  {k:16s} {v['ks']:.3f} / {v['threshold']:.3f}   "
            f"{v['median_ref']:.4g} -> {v['median_new']:.4g}"
        )
    rep = r.get("representation", {})
    if rep:
        lines.append(
            f"model's embeddings: domain-classifier AUC {rep['domain_auc']:.3f} "
            f"(threshold {rep['domain_auc_threshold']:.3f}, p = {rep['domain_auc_p']:.3f}); "
            f"MMD^2 {rep['mmd2']:.4f} (threshold {rep['mmd2_threshold']:.4f}, "
            f"p = {rep['mmd2_p']:.3f})"
        )
    sc = r.get("scores", {})
    if sc:
        lines.append(
            f"scores: KS {sc['ks']:.3f} (threshold {sc['ks_threshold']:.3f}); predicted real "
            f"{sc['real_frac_ref']:.3f} (reference) -> {sc['real_frac_new']:.3f} (new)"
        )
    w = r.get("wavelengths")
    if w:
        th = "not set" if w.get("threshold") is None else f"{w['threshold']:.1f}"
        spikes = ", ".join(f"{t['wave']:.0f} A (z {t['z']:.1f})" for t in w.get("top", []))
        lines.append(f"line wavelengths: largest spike z {w['z']:.1f} (threshold {th}): {spikes}")
    return "\n".join(lines)


class Command(BaseCommand):
    help = (
        "Is a batch (or a field) like the data the live model was trained on? Builds and "
        "prints shift reports (docs/shift.md): without --batch, every batch; with --field, "
        "that field only (across the catalogue without --batch); with --nights, one per group "
        "of observing nights (of the batch and field if given). --show prints the stored "
        "latest reports without computing."
    )

    def add_arguments(self, parser):
        parser.add_argument("--batch", type=int, default=None, help="ingest batch id")
        parser.add_argument("--field", default="", help="survey field, e.g. goods-n")
        parser.add_argument(
            "--nights", action="store_true", help="one report per group of observing nights"
        )
        parser.add_argument(
            "--max-gap", type=int, default=None,
            help=f"with --nights: nights further apart than this many days are in different "
            f"observing runs and never grouped (default {MAX_GAP_DAYS})",
        )  # fmt: skip
        parser.add_argument("--model", type=int, default=None, help="default: the live model")
        parser.add_argument("--n", type=int, default=2000, help="new candidates sampled")
        parser.add_argument("--seed", type=int, default=0)
        parser.add_argument("--show", action="store_true", help="print stored reports only")
        parser.add_argument(
            "--rescore", action="store_true",
            help="with --batch: after the reports, decide again how the model scores the batch "
            "(its own batch statistics, AdaBN, when a report says shifted or far and the "
            "campaign setting is on) and replace the batch's scores in this process",
        )  # fmt: skip
        parser.add_argument(
            "--adapt", action="store_true",
            help="with --rescore: use the batch's statistics even with the campaign setting off "
            "(still only when a report flags the batch)",
        )  # fmt: skip

    def handle(self, *args, **opts):
        from labelapp.models import IngestBatch
        from labelapp.selectors.models import live_model
        from labelapp.services.learning.shift import (
            MIN_SAMPLE,
            build_batch_reports,
            build_night_reports,
            build_shift_report,
            get_batch,
            latest_reports,
        )

        mv = None
        if opts["model"] is not None:
            mv = ModelVersion.objects.filter(pk=opts["model"]).first()
            if mv is None:
                raise CommandError(f"no model version {opts['model']}")
        if opts["n"] < 100:
            raise CommandError(f"--n must be at least 100, not {opts['n']}")
        if opts["max_gap"] is not None and not opts["nights"]:
            raise CommandError("--max-gap goes with --nights")
        if opts["rescore"] and (opts["batch"] is None or opts["nights"] or opts["field"]):
            raise CommandError("--rescore goes with --batch (no --field, no --nights)")
        if opts["adapt"] and not opts["rescore"]:
            raise CommandError("--adapt goes with --rescore")
        small = []
        try:
            if opts["show"]:
                mv = mv or live_model()
                if mv is None:
                    raise CommandError("no live model, so no shift reports")
                rows = latest_reports(mv)
                if not rows:
                    self.stdout.write(f"No shift report for model v{mv.pk} yet.")
            elif opts["nights"]:
                rows, small = build_night_reports(
                    model_version=mv,
                    batch=get_batch(opts["batch"]) if opts["batch"] is not None else None,
                    field=opts["field"],
                    max_gap_days=MAX_GAP_DAYS if opts["max_gap"] is None else opts["max_gap"],
                    n_new=opts["n"],
                    seed=opts["seed"],
                )
                if not rows and not small:
                    self.stdout.write("No candidates with cutouts to group by night.")
            elif opts["batch"] is not None:
                batch = get_batch(opts["batch"])
                if opts["field"]:
                    rows = [
                        build_shift_report(model_version=mv, batch=batch, field=opts["field"],
                                           n_new=opts["n"], seed=opts["seed"])
                    ]  # fmt: skip
                else:
                    rows = build_batch_reports(batch=batch, model_version=mv, seed=opts["seed"])
            elif opts["field"]:
                rows = [
                    build_shift_report(model_version=mv, field=opts["field"], n_new=opts["n"],
                                       seed=opts["seed"])
                ]  # fmt: skip
            else:
                rows = []
                for batch in IngestBatch.objects.order_by("pk"):
                    rows += build_batch_reports(batch=batch, model_version=mv, seed=opts["seed"])
        except PlatformError as exc:
            raise CommandError(str(exc)) from exc
        for row in rows:
            self.stdout.write(format_report(row) + "\n")
        if opts["rescore"]:
            self._rescore(mv or live_model(), get_batch(opts["batch"]), adapt=opts["adapt"])
        for g in small:
            self.stdout.write(
                f"Nights {g.label}: {g.n} candidates with cutouts in {g.n_nights} night(s), "
                f"no other night within the gap; a shift report needs at least {MIN_SAMPLE}: "
                "not checked."
            )

    def _rescore(self, mv, batch, *, adapt: bool) -> None:
        from labelapp.services.learning.scoring import rescore_batch

        if mv is None:
            raise CommandError("no live model to score with")
        row, n = rescore_batch(
            model_version=mv,
            batch=batch,
            force=adapt,
            requested_by="manage.py shift_report --adapt" if adapt else "manage.py shift_report",
        )
        how = (
            "as trained: no shift report of it says shifted or far"
            if row is None
            else ("with its own batch statistics: " if row.adapted else "") + row.reason
        )
        self.stdout.write(f"Rescored batch {batch.pk} with model v{mv.pk}: {n} candidates, {how}")
