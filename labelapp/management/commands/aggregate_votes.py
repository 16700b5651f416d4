from django.core.management.base import BaseCommand, CommandError

from labelapp.models import AggregationRun
from labelapp.services.aggregation import AggregationError, aggregate_votes


class Command(BaseCommand):
    help = (
        "Aggregate all votes (Dawid-Skene with per-regime skills by default) into labels "
        "with provenance, refresh volunteer skills, retire confident candidates."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--method",
            choices=AggregationRun.Method.values,
            default=AggregationRun.Method.DAWID_SKENE,
        )
        parser.add_argument(
            "--no-regimes",
            action="store_true",
            help="one skill per volunteer instead of one per S/N regime",
        )
        parser.add_argument("--no-retire", action="store_true")

    def handle(self, *args, **opts):
        try:
            run = aggregate_votes(
                method=opts["method"],
                by_regime=not opts["no_regimes"],
                retire=not opts["no_retire"],
            )
        except AggregationError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(
            f"Aggregation run {run.pk} ({run.method}): {run.n_votes} votes, {run.n_candidates} "
            f"candidates, {run.n_volunteers} volunteers, {run.iterations} iterations, "
            f"{run.n_retired} retired, {run.seconds:.1f} s"
        )
