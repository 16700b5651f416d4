from django.core.management.base import BaseCommand, CommandError

from labelapp.services.learning.pretraining import PretrainingError, pretrain_encoder
from mlcore.cnn.pretrain import APPROACHES


class Command(BaseCommand):
    help = (
        "Pretrain a self-supervised encoder (the CNN's trunks, no labels read) on the "
        "catalogue's active candidates from the cutout stores, write its weights + card and "
        "record it. Encoders are never live; a retrain can start from one "
        "(`train_model --encoder N`, or the console's Retrain form)."
    )

    def add_arguments(self, parser):
        parser.add_argument("--approach", choices=APPROACHES, default="masked")
        parser.add_argument("--epochs", type=int, default=5)
        parser.add_argument(
            "--n", type=int, default=None, help="a random sample of N candidates (default all)"
        )
        parser.add_argument("--field", default="", help="only this field (default all)")
        parser.add_argument("--seed", type=int, default=0)
        parser.add_argument("--batch-size", type=int, default=256)
        parser.add_argument(
            "--width",
            type=int,
            default=12,
            help="channels of the first conv; a retrain only starts from the default 12",
        )
        parser.add_argument(
            "--max-time", type=float, default=None, help="wall-clock cap on the loop, seconds"
        )

    def handle(self, *args, **opts):
        try:
            enc = pretrain_encoder(
                approach=opts["approach"], epochs=opts["epochs"], n=opts["n"],
                field=opts["field"], seed=opts["seed"], batch_size=opts["batch_size"],
                width=opts["width"], max_time_s=opts["max_time"],
            )  # fmt: skip
        except PretrainingError as exc:
            raise CommandError(str(exc)) from exc
        curve = enc.card.get("loss_curve") or []
        self.stdout.write(
            f"Encoder v{enc.pk} ({enc.approach}) pretrained on {enc.n_candidates} candidates, "
            f"{len(curve)} epochs, loss {' -> '.join(f'{v:.4f}' for v in curve[:1] + curve[-1:])}; "
            f"{enc.directory}"
        )
