"""One verdict over several in-silico campaigns (seeds): per-seed crossings, mean curves and
the paired difference at equal labels, judged on the held-out figure."""

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from labelapp.research.seeds_verdict import (
    REGIMES,
    SeedSummaryError,
    markdown,
    write_seed_summary,
)


class Command(BaseCommand):
    help = (
        "Summarise campaign comparisons of several seeds (each campaign.json written by "
        "run_campaign --compare STRATEGY,random): whether the strategy reaches random's "
        "final held-out accuracy (low S/N unless --regime high) with half the labels, per "
        "seed and on the mean curve. Writes seeds.json, seeds.md and seeds.html to --out."
    )

    def add_arguments(self, parser):
        parser.add_argument("reports", nargs="+", help="campaign.json files, one per seed")
        parser.add_argument("--strategy", default="bald", help="compared with random")
        parser.add_argument(
            "--regime",
            choices=sorted(REGIMES),
            default="low",
            help="which held-out figure to judge: low (4.8-5.5, the target's) or high S/N",
        )
        parser.add_argument("--out", default="var/campaign_seeds", help="report directory")

    def handle(self, *args, **opts):
        out = Path(opts["out"])
        try:
            summary = write_seed_summary(
                opts["reports"], out, strategy=opts["strategy"], regime=opts["regime"]
            )
        except SeedSummaryError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(markdown(summary))
        self.stdout.write(f"Report: {out / 'seeds.html'} (and seeds.json, seeds.md)")
