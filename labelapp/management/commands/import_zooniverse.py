import time

from django.core.management.base import BaseCommand, CommandError

from labelapp.services.crowd.zooniverse import ZooniverseError, import_zooniverse

UNKNOWN_SHOWN = 20


class Command(BaseCommand):
    help = (
        "Import a Zooniverse classification export (with the subject and workflow exports) "
        "as votes with provenance: one vote per volunteer per candidate, idempotent, all or "
        "nothing. See docs/zooniverse.md."
    )

    def add_arguments(self, parser):
        parser.add_argument("classifications", help="classification export (CSV)")
        parser.add_argument("--subjects", required=True, help="subject export (CSV)")
        parser.add_argument("--workflow", required=True, help="workflow export (CSV)")
        parser.add_argument(
            "--workflow-id", type=int, default=None, help="needed when the exports hold several"
        )
        parser.add_argument(
            "--versions",
            default=None,
            help="workflow versions to import, e.g. 16.55-18.2, 16-18, 17 (default: all)",
        )
        parser.add_argument(
            "--subject-key",
            default="detectid",
            help="subject metadata key holding the candidate's detectid (#/! prefixes found too)",
        )
        parser.add_argument(
            "--answer-map",
            default=None,
            help="what each answer label means, e.g. 'Yes=yes,No=no,Not sure=unsure' "
            "(default: read from the workflow's task; labels that are not plainly yes/no/"
            "not sure must be mapped)",
        )
        parser.add_argument(
            "--task", default=None, help="the yes/no question's task key (default: first task)"
        )
        parser.add_argument(
            "--no-consensus",
            action="store_true",
            help="skip recomputing the live consensus of the candidates that got votes",
        )
        parser.add_argument("--no-progress", action="store_true")

    def handle(self, *args, **opts):
        t0 = time.perf_counter()

        def progress(n: int) -> None:
            rate = n / max(time.perf_counter() - t0, 1e-9)
            self.stderr.write(f"  read {n:,} rows ({rate:,.0f} rows/s)")

        try:
            result = import_zooniverse(
                classifications=opts["classifications"],
                subjects=opts["subjects"],
                workflows=opts["workflow"],
                workflow_id=opts["workflow_id"],
                versions=opts["versions"],
                subject_key=opts["subject_key"],
                answer_map=opts["answer_map"],
                task=opts["task"],
                refresh_consensus=not opts["no_consensus"],
                progress=None if opts["no_progress"] else progress,
            )
        except ZooniverseError as exc:
            raise CommandError(exc.message) from exc
        c = result.counts
        seconds = time.perf_counter() - t0
        self.stdout.write(
            f"Zooniverse import {result.run.pk} (workflow {result.run.workflow_id}, versions "
            f"{result.run.versions}): {c['rows']:,} rows in {seconds:.1f} s\n"
            f"  votes added: {c['votes_new']:,} ({c['expert_votes_new']:,} expert) from "
            f"{c['classifications']:,} classifications of this workflow\n"
            f"  already imported: {c['already_imported']:,}; later duplicates of a "
            f"volunteer's first classification: {c['duplicates']:,}\n"
            f"  new volunteers: {c['volunteers_new']:,} ({c['anonymous_volunteers_new']:,} "
            f"not logged in)\n"
            f"  skipped: {c['skipped_other_workflow']:,} other workflows, "
            f"{c['skipped_version']:,} other versions, {c['skipped_multi_subject']:,} "
            f"multi-subject\n"
            f"  gold-standard rows: {c['gold_rows']:,} ({c['gold_created']:,} new gold "
            f"standards, {c['gold_unusable']:,} 'not sure')\n"
            f"  candidates with new votes: {c['candidates_with_new_votes']:,}; retired by "
            f"the live consensus: {c['retired_by_consensus']:,}"
        )
        if result.unknown_subject_ids:
            shown = ", ".join(str(s) for s in result.unknown_subject_ids[:UNKNOWN_SHOWN])
            more = len(result.unknown_subject_ids) - UNKNOWN_SHOWN
            self.stdout.write(
                f"  unknown subjects (no candidate with that {opts['subject_key']}): "
                f"{len(result.unknown_subject_ids):,} subjects, {c['unknown_subject_rows']:,} "
                f"rows: {shown}{f' ... and {more:,} more' if more > 0 else ''}"
            )
