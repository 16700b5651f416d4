from django.core.management.base import BaseCommand, CommandError

from labelapp.services.crowd.zooniverse import (
    ZooniverseError,
    export_manifest,
    retire_on_zooniverse,
    upload_manifest,
    write_retired,
)


class Command(BaseCommand):
    help = (
        "Zooniverse out. 'manifest': a round's batch as a subject manifest with its PNGs, "
        "for `panoptes subject-set upload-subjects SET DIR/manifest.csv`. 'retired': the "
        "subjects whose candidates the platform settled, with Panoptes' retirement reasons "
        "(CSV, and the JSON bodies for POST /workflows/{id}/retired_subjects)."
    )

    def add_arguments(self, parser):
        parser.add_argument("what", choices=["manifest", "retired"])
        parser.add_argument("--round", type=int, help="round number (manifest)")
        parser.add_argument("--workflow-id", type=int, help="Zooniverse workflow (retired)")
        parser.add_argument("--out", required=True, help="directory (manifest) or CSV (retired)")
        parser.add_argument(
            "--upload-to",
            type=int,
            default=None,
            metavar="SUBJECT_SET_ID",
            help="also upload the manifest into this subject set with panoptes-client "
            "(optional; needs --project-id, the network and PANOPTES_USERNAME / "
            "PANOPTES_PASSWORD)",
        )
        parser.add_argument(
            "--new-subject-set",
            default=None,
            metavar="NAME",
            help="also upload the manifest into a new subject set of this name (as --upload-to)",
        )
        parser.add_argument("--project-id", type=int, help="Zooniverse project (upload)")
        parser.add_argument(
            "--retire-now",
            action="store_true",
            help="also retire the listed subjects on Zooniverse with panoptes-client "
            "(optional; needs the network and PANOPTES_USERNAME / PANOPTES_PASSWORD)",
        )

    def handle(self, *args, **opts):
        try:
            if opts["what"] == "manifest":
                if opts["round"] is None:
                    raise CommandError("--round is required for a manifest")
                result = export_manifest(round_number=opts["round"], out_dir=opts["out"])
                self.stdout.write(
                    f"Wrote {result.path} ({result.n_subjects} subjects, PNGs beside it). "
                    f"Upload: panoptes subject-set upload-subjects SUBJECT_SET_ID {result.path}"
                )
                if opts["upload_to"] is not None or opts["new_subject_set"] is not None:
                    if opts["project_id"] is None:
                        raise CommandError("--project-id is required to upload")
                    up = upload_manifest(
                        manifest=result.path,
                        project_id=opts["project_id"],
                        subject_set_id=opts["upload_to"],
                        subject_set_name=opts["new_subject_set"],
                    )
                    self.stdout.write(
                        f"Uploaded {up.n_subjects} subjects to subject set {up.subject_set_id}"
                    )
            else:
                if opts["workflow_id"] is None:
                    raise CommandError("--workflow-id is required for the retired list")
                counts = write_retired(out=opts["out"], workflow_id=opts["workflow_id"])
                total = sum(counts.values())
                by = ", ".join(f"{k}: {v}" for k, v in sorted(counts.items())) or "none"
                self.stdout.write(f"Wrote {opts['out']}: {total} subjects to retire ({by})")
                if opts["retire_now"]:
                    done = retire_on_zooniverse(workflow_id=opts["workflow_id"])
                    self.stdout.write(
                        f"Retired {sum(done.values())} subjects on Zooniverse (workflow "
                        f"{opts['workflow_id']})"
                    )
        except ZooniverseError as exc:
            raise CommandError(exc.message) from exc
