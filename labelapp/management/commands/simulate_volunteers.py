from django.core.management.base import BaseCommand, CommandError

from labelapp.management.progress import ProgressBar
from labelapp.services.simulated_volunteers import SimulationError, run_simulated_volunteers


class Command(BaseCommand):
    help = (
        "Simulated volunteers classify through the real services (queue, votes, live "
        "consensus, retirement). Needs a simulated survey (ground truth)."
    )

    def add_arguments(self, parser):
        parser.add_argument("--volunteers", type=int, default=100)
        parser.add_argument("--votes", type=int, default=2000)
        parser.add_argument("--seed", type=int, default=0)
        parser.add_argument("--no-progress", action="store_true")

    def handle(self, *args, **opts):
        try:
            report = run_simulated_volunteers(
                n_volunteers=opts["volunteers"],
                n_votes=opts["votes"],
                seed=opts["seed"],
                progress=None if opts["no_progress"] else ProgressBar(self.stderr),
            )
        except SimulationError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(report.message)
