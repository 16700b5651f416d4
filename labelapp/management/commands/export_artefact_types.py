"""Write the level-3 follow-up answers (which artefact a candidate is) as one training
target per candidate: ``detectid, kind, share, n_answers`` and one count column per kind."""

from __future__ import annotations

import csv
import sys

from django.core.management.base import BaseCommand, CommandError

from labelapp.models import ArtefactAnswer
from labelapp.services.crowd.levels import artefact_targets
from mlcore.csv_safe import safe_cell


class Command(BaseCommand):
    help = __doc__

    def add_arguments(self, parser):
        parser.add_argument("--out", default="-", help="CSV file to write (default: stdout)")
        parser.add_argument(
            "--min-answers", type=int, default=1, help="candidates with at least this many"
        )

    def handle(self, *args, out: str, min_answers: int, **options):
        if min_answers < 1:
            raise CommandError(f"--min-answers must be >= 1, not {min_answers}")
        kinds = ArtefactAnswer.Kind.values
        targets = artefact_targets(min_answers=min_answers)
        fh = sys.stdout if out == "-" else open(out, "w", newline="", encoding="utf-8")
        try:
            w = csv.writer(fh)
            w.writerow(["detectid", "kind", "share", "n_answers", *(f"n_{k}" for k in kinds)])
            for t in targets:
                counts = [t.counts.get(k, 0) for k in kinds]
                w.writerow([t.detectid, safe_cell(t.kind), f"{t.share:.4f}", t.n_answers, *counts])
        finally:
            if fh is not sys.stdout:
                fh.close()
        if out != "-":
            self.stdout.write(f"{len(targets)} candidates with an artefact type written to {out}")
