from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from labelapp.management.progress import ProgressBar
from mlcore.survey import FIELDS


class Command(BaseCommand):
    help = (
        "Simulate a HETDEX-like survey (candidates found by a line finder on simulated "
        "noisy data, with ground truth) and write it as FITS or HDF5, plus a DESI-like "
        "external confirmation catalogue next to it (<out stem>_external.fits)."
    )

    def add_arguments(self, parser):
        parser.add_argument("--n", type=int, default=20000, help="number of candidates")
        parser.add_argument("--seed", type=int, default=1)
        parser.add_argument("--field", choices=FIELDS, default="cosmos")
        parser.add_argument("--out", required=True, help="output file path")
        parser.add_argument(
            "--format",
            choices=("fits", "hdf5"),
            default=None,
            help="default: from the suffix (.h5/.hdf5 -> hdf5, else fits)",
        )
        parser.add_argument("--no-progress", action="store_true")

    def handle(self, *args, **opts):
        from mlcore.simulator import simulate_survey
        from mlcore.survey_io import write_external, write_survey

        if opts["n"] <= 0:
            raise CommandError(f"--n must be a positive number of candidates, not {opts['n']}")
        out = Path(opts["out"])
        bar = None if opts["no_progress"] else ProgressBar(self.stderr)
        survey = simulate_survey(
            opts["n"],
            opts["seed"],
            field=opts["field"],
            progress=(lambda done, total: bar("simulate", done, total)) if bar else None,
        )
        path = write_survey(out, survey, fmt=opts["format"])
        msg = f"Wrote {len(survey)} candidates ({opts['field']}, seed {opts['seed']}) to {path}"
        if survey.external is not None:
            ext = write_external(
                out.with_name(f"{out.stem}_external.fits"), survey.external, survey.meta
            )
            msg += f"; external catalogue ({len(survey.external['ra'])} LAEs) to {ext}"
        self.stdout.write(msg)
