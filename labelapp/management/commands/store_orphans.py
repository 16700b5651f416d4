from django.core.management.base import BaseCommand

from labelapp.services.survey.store_orphans import find_store_orphans, remove_store_orphans


class Command(BaseCommand):
    help = (
        "List cutout-store directories that nothing owns (a killed ingest's temporary "
        "directory, or a batch directory no ingest batch points at); --remove deletes them."
    )

    def add_arguments(self, parser):
        parser.add_argument("--remove", action="store_true", help="delete what is listed")
        parser.add_argument(
            "--min-age",
            type=float,
            default=60.0,
            help="minutes a directory from another host, or without a batch row, must have "
            "been untouched before it counts as an orphan (default 60: an ingest on "
            "another machine may still be writing it)",
        )

    def handle(self, *args, **opts):
        min_age_s = opts["min_age"] * 60
        orphans = (
            remove_store_orphans(min_age_s=min_age_s)
            if opts["remove"]
            else find_store_orphans(min_age_s=min_age_s)
        )
        verb = "removed" if opts["remove"] else "orphan"
        for o in orphans:
            self.stdout.write(
                f"{verb}: {o.path} ({o.kind}, {o.bytes / 1e6:.1f} MB on disk; {o.reason})"
            )
        total = sum(o.bytes for o in orphans) / 1e6
        if not orphans:
            self.stdout.write("No orphaned store directories.")
        elif not opts["remove"]:
            self.stdout.write(f"{len(orphans)} orphan(s), {total:.1f} MB; --remove deletes them")
        else:
            self.stdout.write(f"{len(orphans)} orphan(s) removed, {total:.1f} MB freed")
