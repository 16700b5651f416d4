from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from labelapp.management.progress import ProgressBar
from mlcore.simulator.scenarios import SCENARIOS
from mlcore.survey import FIELDS


class Command(BaseCommand):
    help = (
        "Simulate a HETDEX-like survey (candidates found by a line finder on simulated "
        "noisy data, with ground truth) and write it as FITS or HDF5, plus a DESI-like "
        "external confirmation catalogue next to it (<out stem>_external.fits). "
        "--format hetdex writes HETDEX's three real files instead: <out stem>_ml.h5 "
        "(detect_ml layout), <out stem>_detect.h5 (catalogue, --catalogue-factor times the ML "
        "rows) and <out stem>_survey.h5, with the real quirks; ingest them with "
        "manage.py ingest <stem>_ml.h5 --catalogue <stem>_detect.h5 --survey <stem>_survey.h5. "
        "--format pdr1 writes HETDEX's public release layout (no cutouts): <out stem>_hpsc2.fits "
        "(catalogue with p_cnn, p_conf and -999 sentinels) and <out stem>_spectra.fits (HDUs "
        "INFO, SPEC, SPEC_ERR, WAVELENGTH; rows in another order than the catalogue); ingest "
        "them with manage.py ingest <stem>_hpsc2.fits --spectra <stem>_spectra.fits"
    )

    def add_arguments(self, parser):
        parser.add_argument("--n", type=int, default=20000, help="number of candidates")
        parser.add_argument("--seed", type=int, default=1)
        parser.add_argument("--field", choices=FIELDS, default="cosmos")
        parser.add_argument("--out", required=True, help="output file path")
        parser.add_argument(
            "--scenario",
            choices=("none", *SCENARIOS),
            default="none",
            help="a shifted instrument/sky state (docs/shift.md); default: none. Use another "
            "--seed than an unshifted survey of the same field: detectids come from field+seed",
        )
        parser.add_argument(
            "--format",
            choices=("fits", "hdf5", "hetdex", "pdr1"),
            default=None,
            help="default: from the suffix (.h5/.hdf5 -> hdf5, else fits); hetdex: the three "
            "real HETDEX files; pdr1: HETDEX's public catalogue + spectra FITS",
        )
        parser.add_argument(
            "--catalogue-factor",
            type=float,
            default=5.0,
            help="hetdex only: catalogue rows per ML-file row (the real HDR4 ratio is ~5.8)",
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
            scenario=opts["scenario"],
            progress=(lambda done, total: bar("simulate", done, total)) if bar else None,
        )
        if opts["format"] == "hetdex":
            from mlcore.hetdex_io import write_hetdex

            if opts["catalogue_factor"] < 1:
                raise CommandError("--catalogue-factor must be at least 1")
            stem = out.with_suffix("")
            files = write_hetdex(
                survey,
                stem.with_name(f"{stem.name}_ml.h5"),
                stem.with_name(f"{stem.name}_detect.h5"),
                stem.with_name(f"{stem.name}_survey.h5"),
                seed=opts["seed"],
                catalogue_factor=opts["catalogue_factor"],
            )
            quirks = ", ".join(f"{k} {v}" for k, v in files["quirks"].items())
            self.stdout.write(
                f"Wrote {len(survey)} candidates ({opts['field']}, seed {opts['seed']}) as "
                f"HETDEX's three files: {files['ml']} --catalogue {files['catalogue']} "
                f"--survey {files['survey']} (quirk rows: {quirks})"
            )
            return
        if opts["format"] == "pdr1":
            from mlcore.pdr1_io import write_pdr1

            stem = out.with_suffix("")
            files = write_pdr1(
                survey,
                stem.with_name(f"{stem.name}_hpsc2.fits"),
                stem.with_name(f"{stem.name}_spectra.fits"),
                seed=opts["seed"],
            )
            sentinels = ", ".join(f"{k} {v}" for k, v in files["sentinels"].items())
            self.stdout.write(
                f"Wrote {len(survey)} candidates ({opts['field']}, seed {opts['seed']}) as "
                f"HETDEX PDR1's two files: {files['catalogue']} --spectra {files['spectra']} "
                f"(-999 sentinel rows: {sentinels})"
            )
            return
        path = write_survey(out, survey, fmt=opts["format"])
        msg = f"Wrote {len(survey)} candidates ({opts['field']}, seed {opts['seed']}) to {path}"
        if survey.external is not None:
            ext = write_external(
                out.with_name(f"{out.stem}_external.fits"), survey.external, survey.meta
            )
            msg += f"; external catalogue ({len(survey.external['ra'])} LAEs) to {ext}"
        self.stdout.write(msg)
