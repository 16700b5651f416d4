from django.core.management.base import BaseCommand, CommandError

from labelapp.management.progress import ProgressBar
from labelapp.services.survey.ingest import IngestError, ingest_survey
from mlcore.store import STORE_DTYPES
from mlcore.validation import NAN_POLICIES


class Command(BaseCommand):
    # No system checks here: they import every URL module and view (CPU-seconds and tens
    # of MiB at start-up, measured in bench/bench_ingest_hetdex.py) for a command that
    # uses only models and the database; `manage.py check` and the server still run them.
    requires_system_checks = []
    help = (
        "Validate a survey file and ingest it atomically: Candidate rows plus a packed cutout "
        "store. Re-ingesting the same file is a no-op. Either one file in the project's FITS "
        "or HDF5 layout, or HETDEX's three real files: "
        "manage.py ingest detect_ml_4.0.0.h5 --catalogue detect_hdr4.h5 --survey survey_hdr4.h5 "
        "-- or HETDEX's public release PDR1 (no cutouts): "
        "manage.py ingest hpsc2_catalogue.fits --spectra hpsc2_spectra.fits"
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "path",
            help="survey file (.fits or .h5; the format is sniffed), or with --catalogue and "
            "--survey HETDEX's machine-learning file detect_ml_*.h5",
        )
        parser.add_argument(
            "--catalogue",
            help="HETDEX detections catalogue (detect_hdr*.h5, /Detections) for the ML file",
        )
        parser.add_argument(
            "--survey", help="HETDEX survey table (survey_hdr*.h5, /Survey): field by shotid"
        )
        parser.add_argument(
            "--spectra",
            help="HETDEX PDR1: the 1D-spectra FITS (HDUs INFO, SPEC, SPEC_ERR, WAVELENGTH) for "
            "the HPSC-2 catalogue FITS given as path. PDR1 has no cutouts: its candidates are "
            "stored without a picture (status expert, never served to volunteers) and its "
            "p_cnn/p_conf are kept as external scores for the console to compare",
        )
        parser.add_argument("--batch", help="batch name (default: file name + hash prefix)")
        parser.add_argument(
            "--nan-policy",
            choices=NAN_POLICIES,
            default="reject",
            help="NaN pixels: refuse the file (default) or store them as 0",
        )
        parser.add_argument(
            "--dtype",
            choices=STORE_DTYPES,
            default=None,
            help="cutout store dtype (default: settings.STORE_DTYPE)",
        )
        parser.add_argument("--no-progress", action="store_true")

    def handle(self, *args, **opts):
        try:
            result = ingest_survey(
                path=opts["path"],
                catalogue=opts["catalogue"],
                survey=opts["survey"],
                spectra=opts["spectra"],
                batch_name=opts["batch"],
                nan_policy=opts["nan_policy"],
                store_dtype=opts["dtype"],
                progress=None if opts["no_progress"] else ProgressBar(self.stderr),
            )
        except IngestError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(result.message)
