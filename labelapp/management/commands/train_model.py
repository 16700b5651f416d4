from django.core.management.base import BaseCommand, CommandError

from labelapp.services.learning.training import LABEL_SOURCES, TrainingError, train_model_version
from mlcore.cnn.training import KEEP


class Command(BaseCommand):
    help = (
        "Train a CNN model version on the ingested candidates, from ground truth "
        "(simulated surveys) or from the latest consensus labels; writes weights + a model "
        "card and registers the version (not promoted)."
    )

    def add_arguments(self, parser):
        parser.add_argument("--labels", choices=LABEL_SOURCES, default="truth")
        parser.add_argument("--epochs", type=int, default=12)
        parser.add_argument(
            "--keep",
            choices=KEEP,
            default="best",
            help="weights to keep: lowest validation loss, or the end of the schedule",
        )
        parser.add_argument(
            "--members",
            type=int,
            default=None,
            help="CNNs in the model: a deep ensemble on one split from seeds seed, seed+1, "
            "... (default: LABELAPP_ENSEMBLE_MEMBERS, 1)",
        )
        parser.add_argument("--seed", type=int, default=0)
        parser.add_argument(
            "--max-train", type=int, default=None, help="use at most this many training labels"
        )
        parser.add_argument(
            "--max-time",
            type=float,
            default=None,
            help="wall-clock cap on the training loop, seconds",
        )
        parser.add_argument(
            "--encoder",
            type=int,
            default=None,
            help="start from pretrained encoder vN's trunks (manage.py pretrain_encoder)",
        )

    def handle(self, *args, **opts):
        try:
            version = train_model_version(
                label_source=opts["labels"],
                epochs=opts["epochs"],
                keep=opts["keep"],
                members=opts["members"],
                seed=opts["seed"],
                max_train=opts["max_train"],
                max_time_s=opts["max_time"],
                encoder_id=opts["encoder"],
            )
        except TrainingError as exc:
            raise CommandError(str(exc)) from exc
        m = version.card.get("metrics", {})
        parts = []
        for regime in ("high", "low"):
            r = m.get("regimes", {}).get(regime) or {}
            if "balanced_accuracy" in r:
                parts.append(f"{regime} S/N balanced accuracy {r['balanced_accuracy']:.3f}")
        self.stdout.write(
            f"Model v{version.pk} trained on {version.n_train} labels "
            f"({version.label_source}); {'; '.join(parts)}; {version.directory}"
        )
