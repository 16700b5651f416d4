"""Mark the clearest simulated candidates of each kind as gold standard (demo / simulation)."""

from django.core.management.base import BaseCommand

from labelapp.services.crowd.gold import seed_gold_from_truth


class Command(BaseCommand):
    help = (
        "Mark --per-kind candidates of each simulated truth kind as gold standard, with the "
        "kind's teaching feedback; about half of each kind become exam gold "
        "(LABELAPP_EXAM_GOLD_SHARE: never told, what proves a volunteer). Real surveys have "
        "no truth: scientists mark gold in the console or the admin."
    )

    def add_arguments(self, parser):
        parser.add_argument("--per-kind", type=int, default=20)

    def handle(self, *args, per_kind: int, **options):
        total = seed_gold_from_truth(per_kind=per_kind)
        if total == 0:
            self.stdout.write("No simulated truth found: nothing marked (ingest a simulated file).")
        else:
            from labelapp.models import GoldStandard

            exam = GoldStandard.objects.filter(active=True, exam=True).count()
            self.stdout.write(
                f"{total} gold-standard candidates active: {total - exam} teaching, {exam} exam."
            )
