from django.core.management.base import BaseCommand, CommandError

from labelapp.management.progress import ProgressBar
from labelapp.models import Vote
from labelapp.research.simulated_volunteers import SimulationError, run_simulated_volunteers


class Command(BaseCommand):
    help = (
        "Simulated volunteers classify through the real services (queue, votes, live "
        "consensus, retirement), or through the site's JSON API with --via-http. Needs a "
        "simulated survey (ground truth)."
    )

    def add_arguments(self, parser):
        parser.add_argument("--volunteers", type=int, default=100)
        parser.add_argument("--votes", type=int, default=2000)
        parser.add_argument("--seed", type=int, default=0)
        parser.add_argument(
            "--via-http",
            metavar="URL",
            help="vote through the real site's JSON API at URL (e.g. http://127.0.0.1:8000/) "
            "instead of calling the services in this process",
        )
        parser.add_argument(
            "--if-no-votes",
            action="store_true",
            help="do nothing when votes exist already (for make demo)",
        )
        parser.add_argument("--no-progress", action="store_true")

    def handle(self, *args, **opts):
        if opts["if_no_votes"] and Vote.objects.exists():
            self.stdout.write("Votes exist already; no simulated volunteers added.")
            return
        kwargs = {
            "n_volunteers": opts["volunteers"],
            "n_votes": opts["votes"],
            "seed": opts["seed"],
            "progress": None if opts["no_progress"] else ProgressBar(self.stderr),
        }
        try:
            report = run_simulated_volunteers(base_url=opts["via_http"], **kwargs)
        except SimulationError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(report.message)
