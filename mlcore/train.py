"""Train the line CNN from a survey file, evaluate it on a held-out split, write a model dir.

    python -m mlcore.train --data survey.fits --out models/v1 [--epochs 30] [--seed 0]
        [--labels truth | labels.npz | labels.csv] [--max-train N] [--external desi.fits]
        [--init models/encoder-v1] [--self-train [--self-train-threshold 0.9]]
    python -m mlcore.train pretrain (--data survey.fits | --simulate N [--field cosmos])
        --out models/encoder-v1 [--approach contrastive|masked] [--epochs 5] [--seed 0]

Training writes ``model.pt``, ``model_card.json`` (provenance + held-out metrics per S/N
regime, field, contaminant type, calibration, external-LAE recovery) and, with
``--attributions K``, integrated-gradient PNGs of K test candidates; ``--init DIR`` starts
from the weights in DIR (fine-tuning, e.g. from a pretrained encoder) instead of a fresh
net; ``--self-train`` fits, lets the model label the file's rows outside every split with its
confident answers, and fits again on both (:mod:`mlcore.cnn.self_training`). ``pretrain``
fits the trunks on every candidate of the file without labels
(:mod:`mlcore.cnn.pretrain`) and writes the encoder as a model directory with its own card.
Django-free. A thin wrapper: the pipeline is :mod:`mlcore.cnn.pipeline`, which the
platform's retrain task uses too.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys

from mlcore.cnn.pipeline import SPEC_HALF_WIDTH, PipelineConfig, run, summarise
from mlcore.cnn.self_training import SelfTrainConfig
from mlcore.cnn.training import TrainConfig
from mlcore.errors import DataError, MlcoreError


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["pretrain"]:
        return pretrain_main(argv[1:])
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
    ap.add_argument("--init", default=None, help="model directory to fine-tune from")
    ap.add_argument(
        "--self-train",
        action="store_true",
        help="fit, then label the file's rows outside every split with the model's confident "
        "answers and fit again on both (mlcore/cnn/self_training.py)",
    )
    ap.add_argument("--self-train-threshold", type=float, default=0.9)
    ap.add_argument(
        "--self-train-max-per-class", type=int, default=4000, help="per class and S/N regime"
    )
    ap.add_argument(
        "--self-train-weight", type=float, default=0.25, help="a pseudo-labelled row's weight"
    )
    a = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    self_training = None
    if a.self_train:
        try:
            self_training = SelfTrainConfig(
                threshold=a.self_train_threshold, max_per_class=a.self_train_max_per_class,
                weight=a.self_train_weight, seed=a.seed,
            )  # fmt: skip
        except MlcoreError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
    config = PipelineConfig(
        data=a.data, out=a.out, labels=a.labels, max_train=a.max_train, test_frac=a.test_frac,
        external=a.external, spec1d=not a.no_spec1d, width=a.width, threads=a.threads,
        attributions=a.attributions, eval_data=tuple(a.eval_data or ()), init=a.init,
        self_training=self_training,
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


def pretrain_main(argv: list[str]) -> int:
    """``python -m mlcore.train pretrain ...``: a self-supervised encoder, no labels read."""
    from mlcore.cnn.pretrain import APPROACHES, PretrainConfig

    ap = argparse.ArgumentParser(
        prog="python -m mlcore.train pretrain",
        description="Self-supervised pretraining of the CNN trunks on unlabelled candidates",
    )
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--data", help="survey file (FITS or HDF5); every candidate is used")
    src.add_argument("--simulate", type=int, metavar="N", help="simulate N candidates instead")
    ap.add_argument("--field", default="cosmos", help="with --simulate")
    ap.add_argument("--out", required=True, help="output directory for model.pt + card")
    ap.add_argument("--approach", choices=APPROACHES, default="contrastive")
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--width", type=int, default=12, help="channels of the first conv")
    ap.add_argument("--no-spec1d", action="store_true", help="images only")
    ap.add_argument("--device", default=None)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--max-time-s", type=float, default=None)
    a = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    cfg = PretrainConfig(
        approach=a.approach, epochs=a.epochs, seed=a.seed, batch_size=a.batch_size, lr=a.lr,
        device=a.device, num_threads=a.threads, max_time_s=a.max_time_s,
    )  # fmt: skip
    try:
        card = run_pretrain(a.data, a.simulate, a.field, a.out, cfg, a.width, not a.no_spec1d)
    except MlcoreError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    keys = ("approach", "n_candidates", "loss_curve")
    print(json.dumps({"out": a.out, **{k: card[k] for k in keys}}))
    return 0


def run_pretrain(data, simulate, field, out, cfg, width: int, spec1d: bool) -> dict:
    """Read (or simulate) the candidates, pretrain, write the encoder dir; -> its card."""
    import numpy as np

    from mlcore.cnn.card import hash_arrays, hash_file, write_model_dir
    from mlcore.cnn.data import spec_windows
    from mlcore.cnn.model import CNNConfig
    from mlcore.cnn.pipeline import read_rows
    from mlcore.cnn.pretrain import build_pretrain_card, pretrain
    from mlcore.survey import stack_cutouts

    if data:
        from mlcore.survey_io import open_survey

        with open_survey(data) as reader:
            cols = reader.columns
            names = ("im_sum", "im_array") + (("spec1d", "spec1d_err") if spec1d else ())
            arr = read_rows(reader, np.arange(reader.n), names)
        wave = np.asarray(cols["wave"])
        source, data_hash = f"file {data}", hash_file(data)
    else:
        from mlcore.simulator import SIMULATOR_VERSION, simulate_survey

        if simulate < 2:
            raise DataError("--simulate needs at least 2 candidates")
        s = simulate_survey(simulate, seed=cfg.seed, field=field)
        arr = {"im_sum": s.im_sum, "im_array": s.im_array}
        if spec1d:
            arr.update(spec1d=s.spec1d, spec1d_err=s.spec1d_err)
        wave = s.catalog["wave"]
        source = (
            f"simulate_survey({simulate}, seed={cfg.seed}, field={field!r}) v{SIMULATOR_VERSION}"
        )
        data_hash = None
    cut = stack_cutouts(arr.pop("im_sum"), arr.pop("im_array")).astype(np.float16)
    spec = None
    if spec1d:
        spec = spec_windows(arr.pop("spec1d"), arr.pop("spec1d_err"), wave, SPEC_HALF_WIDTH)
    if data_hash is None:
        data_hash = hash_arrays(cut)
    mcfg = CNNConfig(width=width, spec_len=0 if spec is None else spec.shape[-1])
    res = pretrain(cut, spec=spec, model_config=mcfg, config=cfg)
    card = build_pretrain_card(res, data_hash=data_hash, data_source=source)
    write_model_dir(out, res.model, card)
    return card


if __name__ == "__main__":
    sys.exit(main())
