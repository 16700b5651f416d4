from django.core.management.base import BaseCommand, CommandError

from labelapp.management.progress import ProgressBar
from labelapp.models import ModelVersion
from labelapp.services.learning.scoring import score_all


class Command(BaseCommand):
    help = "Score every candidate with a model version (P(real), entropy, BALD) in this process."

    def add_arguments(self, parser):
        parser.add_argument("--model", type=int, required=True, help="model version id")
        parser.add_argument("--samples", type=int, default=None, help="MC-dropout passes")
        parser.add_argument("--no-progress", action="store_true")

    def handle(self, *args, **opts):
        version = ModelVersion.objects.filter(pk=opts["model"]).first()
        if version is None:
            raise CommandError(f"no model version {opts['model']} (see the admin's list)")
        n = score_all(
            model_version=version,
            n_samples=opts["samples"],
            progress=None if opts["no_progress"] else ProgressBar(self.stderr),
        )
        self.stdout.write(f"Scored {n} candidates with model v{version.pk}")
