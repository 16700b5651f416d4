from django.core.management.base import BaseCommand, CommandError

from labelapp.models import AggregationRun, ModelVersion
from labelapp.services.crowd.aggregation import AggregationError, aggregate_votes


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
        parser.add_argument(
            "--model",
            type=int,
            default=None,
            help="model version whose scores join as one more annotator",
        )

    def handle(self, *args, **opts):
        model = None
        if opts["model"] is not None:
            model = ModelVersion.objects.filter(pk=opts["model"]).first()
            if model is None:
                raise CommandError(f"no model version {opts['model']}")
            if not model.scores.exists():
                raise CommandError(
                    f"model v{model.pk} has no scores yet: run "
                    f"`manage.py score_candidates --model {model.pk}` first"
                )
        try:
            run = aggregate_votes(
                model_version=model,
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
