"""The held-out evaluation sample (the promotion gate's set): draw it, load experts'
answers, or (simulations) answer it from truth. Without options: what is held out now."""

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from labelapp.services.learning.holdout import (
    HoldoutError,
    draw_sample,
    hold_out,
    hold_out_from_truth,
    holdout_summary,
    read_answers,
    write_sample,
)


class Command(BaseCommand):
    help = (
        "Manage the held-out expert sample that the promotion gate judges models on and "
        "training never sees. --draw N --out FILE writes a random sample for experts to "
        "answer; --import FILE loads their answers (CSV: detectid,is_real); --from-truth N "
        "answers a sample from the simulator's truth."
    )

    def add_arguments(self, parser):
        what = parser.add_mutually_exclusive_group()
        what.add_argument("--draw", type=int, metavar="N", help="draw N candidates to answer")
        what.add_argument("--import", dest="import_", metavar="FILE", help="experts' answers")
        what.add_argument("--from-truth", type=int, metavar="N", help="simulations only")
        parser.add_argument("--out", help="with --draw: the CSV to write")
        parser.add_argument(
            "--low-share",
            type=float,
            default=None,
            help="share of the sample with 4.8 <= S/N <= 5.5 (default: as in the catalogue)",
        )
        parser.add_argument(
            "--per-field",
            action="store_true",
            help="N from every survey field (a held-out accuracy per field on the console)",
        )
        parser.add_argument("--seed", type=int, default=0)

    def handle(self, *args, **opts):
        try:
            if opts["draw"] is not None:
                if not opts["out"]:
                    raise CommandError("--draw needs --out FILE.csv")
                ids = draw_sample(
                    n=opts["draw"],
                    low_share=opts["low_share"],
                    seed=opts["seed"],
                    per_field=opts["per_field"],
                )
                write_sample(ids, Path(opts["out"]))
                self.stdout.write(
                    f"Wrote {len(ids)} candidates to {opts['out']}: fill in is_real, then "
                    f"`manage.py holdout --import {opts['out']}`"
                )
            elif opts["import_"]:
                answers = read_answers(Path(opts["import_"]))
                new = hold_out(labels=answers, source="expert")
                self.stdout.write(f"Loaded {len(answers)} answers ({new} new)")
            elif opts["from_truth"] is not None:
                hold_out_from_truth(
                    n=opts["from_truth"],
                    low_share=opts["low_share"],
                    seed=opts["seed"],
                    per_field=opts["per_field"],
                )
        except HoldoutError as exc:
            raise CommandError(str(exc)) from exc
        h = holdout_summary()
        self.stdout.write(
            f"Held out: {h['n']} candidates; 4.8-5.5: {h['low']} ({h['low_real']} real), "
            f"> 5.5: {h['high']} ({h['high_real']} real)"
        )
        for field, c in sorted(h["fields"].items()):
            self.stdout.write(f"  {field}: {c['n']} (4.8-5.5: {c['low']}, > 5.5: {c['high']})")
