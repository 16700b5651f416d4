"""Train the line CNN from a survey file, evaluate it on a held-out split, write a model dir.

    python -m mlcore.train --data survey.fits --out models/v1 [--epochs 30] [--seed 0]
        [--labels truth | labels.npz | labels.csv] [--max-train N] [--external desi.fits]

Writes ``model.pt``, ``model_card.json`` (provenance + held-out metrics per S/N regime,
field, contaminant type, calibration, external-LAE recovery) and, with ``--attributions K``,
integrated-gradient PNGs of K test candidates. Django-free. A thin wrapper: the pipeline is
:mod:`mlcore.cnn.pipeline`, which the platform's retrain task uses too.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys

from mlcore.cnn.pipeline import PipelineConfig, run, summarise
from mlcore.cnn.training import TrainConfig
from mlcore.errors import MlcoreError


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m mlcore.train", description=__doc__.split("\n")[0])
    ap.add_argument("--data", required=True, help="survey file (FITS or HDF5)")
    ap.add_argument("--out", required=True, help="output directory for model.pt + card")
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--labels", default="truth", help="'truth' or a .npz/.csv label file")
    ap.add_argument("--max-train", type=int, default=None, help="cap on training labels")
    ap.add_argument("--test-frac", type=float, default=0.2)
    ap.add_argument("--val-frac", type=float, default=0.15)
    ap.add_argument("--external", default=None, help="DESI-like catalogue to cross-match")
    ap.add_argument(
        "--no-spec1d", action="store_true", help="images only (default adds the 1D branch)"
    )
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--width", type=int, default=12, help="channels of the first conv")
    ap.add_argument("--device", default=None, help="cuda / cpu (default: cuda if available)")
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    ap.add_argument("--max-time-s", type=float, default=None)
    ap.add_argument("--members", type=int, default=1, help="a deep ensemble of K CNNs")
    ap.add_argument("--attributions", type=int, default=0, help="PNGs for K test candidates")
    ap.add_argument(
        "--eval-data",
        nargs="*",
        default=(),
        help="other survey files (e.g. other fields) to evaluate on",
    )
    a = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    config = PipelineConfig(
        data=a.data, out=a.out, labels=a.labels, max_train=a.max_train, test_frac=a.test_frac,
        external=a.external, spec1d=not a.no_spec1d, width=a.width, threads=a.threads,
        attributions=a.attributions, eval_data=tuple(a.eval_data or ()),
        train=TrainConfig(
            epochs=a.epochs, seed=a.seed, val_frac=a.val_frac, batch_size=a.batch_size,
            lr=a.lr, device=a.device, max_time_s=a.max_time_s, members=a.members,
        ),
    )  # fmt: skip
    try:
        card = run(config)
    except MlcoreError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(summarise(card))
    print(json.dumps({"out": a.out, "n_parameters": card["n_parameters"]}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
