"""Score a catalogue with a trained model anywhere, without Django.

    python -m mlcore.score --model DIR (--store DIR | --data FILE [--catalogue CAT --survey S])
        --out scores.fits [--T 10] [--batch 4096] [--threads N] [--device cpu|cuda] [--seed 0]
        [--precision float32|bfloat16]

``--store``: one cutout-store batch directory (``mlcore.store``: ``cutouts.npy``, ``spec.npy``,
``im_wave.npy``, ``manifest.json`` and, since issue #27, ``detectid.npy``). ``--data``: a
survey file mlcore reads (the project's FITS or HDF5 layout, :mod:`mlcore.survey_io`), or
HETDEX's ML file ``detect_ml_*.h5`` with ``--catalogue`` and ``--survey``
(:mod:`mlcore.hetdex_io`; every join is by detectid).

Writes one row per candidate, in the input's row order: ``detectid``, ``row`` (row in the
store or file), ``prob`` (P(real) at even odds, MC-dropout mean over T passes), ``entropy``,
``expected_entropy``, ``bald``, ``std`` (of the T probabilities), ``masked_frac`` (fraction of
masked input pixels); the header says which model, T, seed and source. ``.fits`` (or
``.fits.gz``) writes a FITS table, ``.ecsv`` an ECSV file; astropy is needed for either (it is
imported here only, so ``import mlcore`` needs numpy and torch alone). The file appears only
when complete. Values equal :func:`mlcore.cnn.scoring.score` with the same ``--batch`` and
``--seed`` (and ``--precision``: bfloat16 trunks, on CPUs that run them natively, move the
probabilities by about 1e-3 for a ~1.4x speed-up). Progress goes to stderr; bad input exits
with status 2 and says what is wrong.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from mlcore.errors import DataError, MlcoreError
from mlcore.survey import LINE_COL, stack_cutouts

OUT_FIELDS = ("prob", "entropy", "expected_entropy", "bald", "std", "masked_frac")
DESCRIPTIONS = {
    "detectid": "HETDEX detection id",
    "row": "row of the candidate in the input store or file",
    "prob": "P(real emission line) at even odds, mean over T MC-dropout passes",
    "entropy": "predictive entropy of prob (nats)",
    "expected_entropy": "mean entropy of the T passes (aleatoric part, nats)",
    "bald": "entropy - expected_entropy: mutual information (epistemic part, nats)",
    "std": "standard deviation of the T passes' probabilities",
    "masked_frac": "fraction of masked (non-finite) input pixels",
}
PROGRESS_EVERY_S = 5.0


class Source:
    """Rows to score: ``n``, ``detectid`` (or None), ``wave`` (line wavelength, or None) and
    :meth:`chunks` yielding (a, b, cutouts, flux, err) over rows a:b."""

    name: str
    n: int
    detectid: np.ndarray | None
    wave: np.ndarray | None
    notes: list[str]

    def chunks(self, size: int) -> Iterator[tuple]:  # pragma: no cover - overridden
        raise NotImplementedError

    def close(self) -> None:
        pass


class StoreSource(Source):
    def __init__(self, path: Path):
        from mlcore.store import CutoutStore

        try:
            self.store = CutoutStore.open(path)
        except FileNotFoundError as exc:
            raise DataError(str(exc)) from exc
        except (OSError, ValueError) as exc:
            raise DataError(f"{path}: cannot read the cutout store: {exc}") from exc
        st = self.store
        self.name, self.n = str(path), len(st)
        self.notes = []
        self.detectid = st.detectid
        if self.detectid is None:
            self.notes.append(
                f"{path}: the store carries no detectids (written before issue #27); "
                "the table has the store row only"
            )
        self.wave = np.asarray(st.im_wave[:, LINE_COL], np.float64)
        bad = [k for k in ("spec", "im_wave") if len(getattr(st, k)) != self.n]
        if bad:
            raise DataError(f"{path}: {', '.join(bad)} do not have the {self.n} rows of cutouts")

    def chunks(self, size: int):
        st = self.store
        for a in range(0, self.n, size):
            b = min(a + size, self.n)
            sp = np.asarray(st.spec[a:b])  # spec_windows widens only the window
            yield a, b, st.cutouts[a:b], sp[:, 0], sp[:, 1]


class FileSource(Source):
    def __init__(self, path: Path, catalogue: Path | None, survey: Path | None):
        from mlcore.survey_io import check_regular_file, open_survey
        from mlcore.validation import check_structure

        if (catalogue is None) != (survey is None):
            raise DataError("a HETDEX ML file needs both --catalogue and --survey")
        if catalogue is None:
            check_regular_file(path)
            self.reader = open_survey(path)
        else:
            from mlcore.hetdex_io import open_hetdex

            self.reader = open_hetdex(path, catalogue, survey)
        problems = check_structure(self.reader)
        if problems:
            self.reader.close()
            hint = ""
            if catalogue is None and self.reader.fmt == "hdf5":
                hint = " (a HETDEX detect_ml file? pass --catalogue and --survey)"
            listed = "; ".join(str(p) for p in problems[:5])
            more = f"; and {len(problems) - 5} more" if len(problems) > 5 else ""
            raise DataError(f"{path}: cannot be scored{hint}: {listed}{more}")
        cols = self.reader.columns
        self.name, self.n = str(path), self.reader.n
        self.detectid = np.asarray(cols["detectid"], np.int64)
        self.wave = np.asarray(cols["wave"], np.float64) if "wave" in cols else None
        self.notes = list(getattr(self.reader, "notes", []))

    def chunks(self, size: int):
        for a, b, arr in self.reader.iter_chunks(size):
            cut = stack_cutouts(arr["im_sum"], arr["im_array"])
            yield a, b, cut, arr["spec1d"], arr["spec1d_err"]

    def close(self) -> None:
        self.reader.close()


def _astropy_table():
    try:
        from astropy.table import Table
    except ImportError as exc:  # mlcore itself needs only numpy and torch
        raise MlcoreError(
            "writing the score table needs astropy (pip install astropy); mlcore's scoring "
            "functions (mlcore.cnn.scoring.score) work without it"
        ) from exc
    return Table


def _out_format(out: Path) -> str:
    name = out.name.lower()
    if name.endswith((".fits", ".fit", ".fits.gz")):
        return "fits"
    if name.endswith(".ecsv"):
        return "ascii.ecsv"
    raise DataError(f"--out {out}: write .fits (or .fits.gz) or .ecsv")


def score_source(
    model,
    source: Source,
    *,
    n_samples: int = 10,
    batch_size: int = 4096,
    seed: int = 0,
    progress=None,
    precision: str = "float32",
) -> dict[str, np.ndarray]:
    """{field: (N,) float32} for :data:`OUT_FIELDS`, batch by batch as ``score`` does."""
    import torch

    from mlcore.cnn.data import spec_windows
    from mlcore.cnn.scoring import batch_generator, score_batch

    device = next(model.parameters()).device
    out = {k: np.empty(source.n, np.float32) for k in OUT_FIELDS}
    half = model.config.spec_len // 2
    if half and source.wave is None:
        raise DataError(f"{source.name}: this model has a 1D branch but the input has no 'wave'")
    with torch.inference_mode():
        for a, b, cut, flux, err in source.chunks(batch_size):
            win = spec_windows(flux, err, source.wave[a:b], half) if half else None
            res = score_batch(
                model,
                cut,
                spec=win,
                n_samples=n_samples,
                generator=batch_generator(device, seed, a),
                precision=precision,
            )
            for k in OUT_FIELDS:
                out[k][a:b] = res[k]
            if progress is not None:
                progress(b, source.n)
    return out


def write_table(out: Path, columns: dict[str, np.ndarray], meta: dict) -> None:
    """Write the table to a temporary name, then rename: never a half-written file."""
    Table = _astropy_table()
    table = Table()
    for name, col in columns.items():
        table[name] = col
        table[name].description = DESCRIPTIONS.get(name, "")
    table.meta.update(meta)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    try:
        table.write(tmp, format=_out_format(out), overwrite=True)
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)


class _Progress:
    def __init__(self, stream=sys.stderr):
        self.t0 = self.last = time.perf_counter()
        self.stream = stream

    def __call__(self, done: int, n: int) -> None:
        now = time.perf_counter()
        if now - self.last >= PROGRESS_EVERY_S or done == n:
            self.last = now
            rate = done / max(now - self.t0, 1e-9)
            print(f"scored {done:,}/{n:,} ({rate:,.0f} candidates/s)", file=self.stream)


def run(a: argparse.Namespace) -> dict:
    out = Path(a.out)
    fmt = _out_format(out)
    _astropy_table()  # fail before scoring, not after
    if out.exists() and not a.overwrite:
        raise DataError(f"--out {out} exists; pass --overwrite to replace it")
    import torch

    from mlcore.cnn.card import CARD_NAME, WEIGHTS_NAME
    from mlcore.cnn.scoring import load_for_scoring

    if a.threads:
        torch.set_num_threads(a.threads)
    model_dir = Path(a.model)
    weights = model_dir / WEIGHTS_NAME if model_dir.is_dir() else model_dir
    if not weights.is_file():
        raise DataError(f"--model {a.model}: no {WEIGHTS_NAME} (a model directory from training)")
    if a.device == "cuda" and not torch.cuda.is_available():
        raise DataError("--device cuda: no CUDA device is available here")
    try:
        model = load_for_scoring(weights, device=a.device)
    except (RuntimeError, KeyError, OSError, TypeError) as exc:
        raise DataError(f"--model {a.model}: cannot load {weights.name}: {exc}") from exc
    version = ""
    card_path = weights.parent / CARD_NAME
    if card_path.is_file():
        version = str(json.loads(card_path.read_text()).get("version", ""))
    if a.T < 1 or a.batch < 1:
        raise DataError("--T and --batch must be at least 1")
    from mlcore.cnn.scoring import check_precision

    try:
        check_precision(a.precision, next(model.parameters()).device)
    except ValueError as exc:
        raise DataError(f"--precision {a.precision}: {exc}") from exc
    source = (
        StoreSource(Path(a.store))
        if a.store
        else FileSource(
            Path(a.data),
            Path(a.catalogue) if a.catalogue else None,
            Path(a.survey) if a.survey else None,
        )
    )
    try:
        for note in source.notes:
            print(f"note: {note}", file=sys.stderr)
        t0 = time.perf_counter()
        scores = score_source(
            model,
            source,
            n_samples=a.T,
            batch_size=a.batch,
            seed=a.seed,
            progress=_Progress(),
            precision=a.precision,
        )
        seconds = time.perf_counter() - t0
        columns = {} if source.detectid is None else {"detectid": source.detectid}
        columns["row"] = np.arange(source.n, dtype=np.int64)
        columns.update(scores)
        meta = {
            "MODEL": str(model_dir.resolve()),
            "MODELVER": version,
            "NSAMPLES": a.T,
            "SEED": a.seed,
            "BATCH": a.batch,
            "SOURCE": str(Path(source.name).resolve()),
            "DEVICE": str(next(model.parameters()).device),
            "PRECISN": a.precision,
        }
        if a.store and getattr(source, "store", None) is not None:
            meta["STBATCH"] = source.store.batch
        write_table(out, columns, meta)
    finally:
        source.close()
    return {
        "out": str(out),
        "format": fmt,
        "n": source.n,
        "seconds": round(seconds, 2),
        "candidates_per_s": round(source.n / max(seconds, 1e-9)),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m mlcore.score", description=__doc__.split("\n")[0])
    ap.add_argument("--model", required=True, help="model directory (model.pt + card)")
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--store", help="a cutout-store batch directory")
    src.add_argument("--data", help="a survey file (FITS / HDF5) or a HETDEX ML file")
    ap.add_argument("--catalogue", help="with a HETDEX ML file: the detections catalogue")
    ap.add_argument("--survey", help="with a HETDEX ML file: the survey table")
    ap.add_argument("--out", required=True, help="output table: .fits, .fits.gz or .ecsv")
    ap.add_argument("--T", type=int, default=10, help="MC-dropout passes (default 10)")
    ap.add_argument("--batch", type=int, default=4096, help="rows per batch (default 4096)")
    ap.add_argument("--seed", type=int, default=0, help="dropout seed (default 0)")
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    ap.add_argument("--device", choices=("cpu", "cuda"), default=None)
    ap.add_argument(
        "--precision",
        choices=("float32", "bfloat16"),
        default="float32",
        help="CPU trunk precision (default float32; bfloat16 about 1.4x faster end to end "
        "on CPUs with AMX / AVX512-BF16, probabilities within about 1e-3)",
    )
    ap.add_argument("--overwrite", action="store_true", help="replace --out if it exists")
    a = ap.parse_args(argv)
    if a.store and (a.catalogue or a.survey):
        print("error: --catalogue and --survey go with --data", file=sys.stderr)
        return 2
    try:
        summary = run(a)
    except MlcoreError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
