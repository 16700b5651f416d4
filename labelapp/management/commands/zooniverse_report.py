from django.core.management.base import BaseCommand, CommandError

from labelapp.models import AggregationRun
from labelapp.services.crowd.aggregation import AggregationError, aggregate_votes
from labelapp.services.crowd.zooniverse import compare_with_fixed_rule, record_comparison


class Command(BaseCommand):
    help = (
        "After a Zooniverse import: aggregate imported and native votes together "
        "(Dawid-Skene, skills per S/N regime), then compare the skill-weighted labels with "
        "DEE's fixed-count majority rule on the candidates with Zooniverse votes."
    )

    def add_arguments(self, parser):
        parser.add_argument("--fixed-votes", type=int, default=10, help="DEE's rule: 10")
        parser.add_argument(
            "--run", type=int, default=None, help="compare an existing aggregation run instead"
        )
        parser.add_argument("--no-retire", action="store_true", help="aggregate without retiring")
        parser.add_argument(
            "--no-save",
            action="store_true",
            help="print only (by default the report is kept for the console's Zooniverse page)",
        )

    def handle(self, *args, **opts):
        if opts["run"] is not None:
            run = AggregationRun.objects.filter(pk=opts["run"], status="done").first()
            if run is None:
                raise CommandError(f"no finished aggregation run {opts['run']}")
        else:
            try:
                run = aggregate_votes(retire=not opts["no_retire"])
            except AggregationError as exc:
                raise CommandError(exc.message) from exc
            self.stdout.write(
                f"Aggregation run {run.pk}: {run.n_votes:,} votes, {run.n_candidates:,} "
                f"candidates, {run.n_volunteers:,} volunteers"
            )
        if opts["no_save"]:
            report, saved = compare_with_fixed_rule(run=run, fixed_votes=opts["fixed_votes"]), None
        else:
            report, saved = record_comparison(run=run, fixed_votes=opts["fixed_votes"])
        for line in report.lines():
            self.stdout.write("  " + line)
        if saved is not None:
            self.stdout.write(f"  kept as comparison {saved.pk}: see the console's Zooniverse page")
