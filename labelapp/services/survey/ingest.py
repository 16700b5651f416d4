"""Ingest a survey file: validate all of it, then write Candidate rows + a cutout store atomically.

Order of work, and why:
1. hash the file: the same bytes ingested twice is a no-op that says so;
2. structure + catalogue checks (cheap, all in memory);
3. one streaming pass over the pixel arrays that validates each chunk and writes it into a
   *temporary* store directory (memory stays at one chunk of pixels);
4. only if nothing was wrong: one database transaction inserts the batch, candidates and
   truth, and the store directory is renamed into place just before the commit. A failure
   at any point rolls the transaction back and deletes the store, so the database and the
   store are exactly as they were.
"""

from __future__ import annotations

import hashlib
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from django.conf import settings
from django.db import IntegrityError, transaction

from labelapp.errors import InvalidInput
from labelapp.models import Candidate, CandidateTruth, IngestBatch
from labelapp.services.bulk import insert_rows
from mlcore.store import StoreWriter, remove_store
from mlcore.survey import CATALOG_COLUMNS
from mlcore.survey_io import SurveyFileError, open_survey
from mlcore.validation import Problem, check_catalog, check_chunk, check_structure

Progress = Callable[[str, int, int], None]  # (stage, done, total)
MAX_PROBLEMS = 50  # stop scanning a hopeless file after this many problems
DB_BATCH = 5000


class IngestError(InvalidInput):
    """The file was refused. ``problems`` says where and what; nothing was written."""

    def __init__(self, path: Path | str, problems: list[Problem]):
        self.path = str(path)
        self.problems = problems
        lines = "\n".join(f"  - {p}" for p in problems)
        super().__init__(
            f"{path}: refused, nothing was written ({len(problems)} problem(s)):\n{lines}"
        )


@dataclass
class IngestResult:
    batch: IngestBatch
    created: bool
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)

    @property
    def message(self) -> str:
        if not self.created:
            return (
                f"{self.batch.source_path}: already ingested as batch '{self.batch.name}' "
                f"({self.batch.n_candidates} candidates); nothing changed."
            )
        rate = self.batch.n_candidates / self.seconds if self.seconds else 0.0
        extra = "".join(f"\n  note: {n}" for n in self.notes)
        return (
            f"Ingested {self.batch.n_candidates} candidates as batch '{self.batch.name}' "
            f"in {self.seconds:.1f} s ({rate:,.0f} candidates/s); store: "
            f"{self.batch.store_path}{extra}"
        )


def file_sha256(path: Path, block: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(block):
            digest.update(chunk)
    return digest.hexdigest()


def _default_batch_name(path: Path, sha: str) -> str:
    stem = re.sub(r"[^a-z0-9-]+", "-", path.stem.lower()).strip("-") or "batch"
    return f"{stem[:60]}-{sha[:8]}"


def _file_problem(path: Path, exc: SurveyFileError) -> Problem:
    return Problem(str(path), str(exc).removeprefix(f"{path}: "))


def _existing_detectids(detectid: np.ndarray) -> np.ndarray:
    found: list[int] = []
    ids = [int(i) for i in detectid]
    for start in range(0, len(ids), 10000):
        found += Candidate.objects.filter(detectid__in=ids[start : start + 10000]).values_list(
            "detectid", flat=True
        )
    return np.asarray(found, dtype=np.int64)


def ingest_survey(
    *,
    path: str | Path,
    batch_name: str | None = None,
    nan_policy: str = "reject",
    store_dtype: str | None = None,
    chunk: int | None = None,
    progress: Progress | None = None,
) -> IngestResult:
    """Ingest the survey file at ``path``. Raises :class:`IngestError` if anything is wrong."""
    t0 = time.perf_counter()
    path = Path(path)
    report = progress or (lambda stage, done, total: None)
    try:
        sha = file_sha256(path)
    except OSError as exc:
        raise IngestError(path, [Problem(str(path), f"cannot be read: {exc.strerror}")]) from exc
    existing = IngestBatch.objects.filter(file_sha256=sha).first()
    if existing is not None:
        return IngestResult(batch=existing, created=False)

    name = batch_name or _default_batch_name(path, sha)
    if not re.fullmatch(r"[a-z0-9][a-z0-9_-]{0,79}", name):
        raise IngestError(
            path,
            [
                Problem(
                    "--batch",
                    f"{name!r} is not a valid batch name: use "
                    "lower-case letters, digits, '-' and '_' (max 80)",
                )
            ],
        )
    if IngestBatch.objects.filter(name=name).exists():
        raise IngestError(
            path,
            [
                Problem(
                    "--batch",
                    f"batch name {name!r} is already used by "
                    "another file; choose another with --batch",
                )
            ],
        )

    try:
        reader = open_survey(path)
    except SurveyFileError as exc:
        raise IngestError(path, [_file_problem(path, exc)]) from exc
    with reader:
        problems = check_structure(reader)
        if problems:
            raise IngestError(path, problems)
        problems = check_catalog(
            reader, known_detectids=_existing_detectids(reader.columns["detectid"])
        )
        if problems:
            raise IngestError(path, problems)

        n = reader.n
        dtype = store_dtype or settings.STORE_DTYPE
        store_path = Path(settings.STORE_ROOT) / name
        writer = StoreWriter(store_path, n, dtype=dtype, meta={"source_sha256": sha, "batch": name})
        detectid = reader.columns["detectid"]
        zeroed = 0
        try:
            for start, stop, arrays in reader.iter_chunks(chunk or settings.INGEST_CHUNK):
                for arr_name, rows in arrays.items():
                    found, cleaned, nz = check_chunk(
                        arr_name,
                        rows,
                        start=start,
                        location=reader.location(arr_name),
                        detectid=detectid,
                        nan_policy=nan_policy,
                    )
                    problems += found
                    arrays[arr_name] = cleaned
                    zeroed += nz
                if len(problems) >= MAX_PROBLEMS:
                    problems.append(Problem(str(path), f"stopped checking at row {stop} of {n}"))
                    break
                if not problems:
                    writer.write(start, **arrays)
                report("validate+store", stop, n)
            if problems:
                raise IngestError(path, problems)
            batch = _write_rows(
                reader, path=path, sha=sha, name=name, writer=writer, zeroed=zeroed, report=report
            )
        except SurveyFileError as exc:  # a corrupted block found while streaming pixels
            writer.abort()
            raise IngestError(path, [*problems, _file_problem(path, exc)]) from exc
        except IntegrityError as exc:
            writer.abort()
            # Another process ingested the same file while we validated: that is the
            # idempotent outcome, not an error.
            existing = IngestBatch.objects.filter(file_sha256=sha).first()
            if existing is not None:
                return IngestResult(batch=existing, created=False)
            raise IngestError(
                path,
                [
                    Problem(
                        str(path),
                        "another ingest wrote the same batch "
                        f"name or detectids at the same time ({exc})",
                    )
                ],
            ) from exc
        except BaseException:
            writer.abort()
            raise

    result = IngestResult(batch=batch, created=True, seconds=time.perf_counter() - t0)
    if zeroed:
        result.notes.append(f"{zeroed} NaN pixels stored as 0 (--nan-policy zero)")
    if writer.clipped:
        result.notes.append(
            f"{writer.clipped} pixels beyond the float16 range were clipped "
            "to +-65504 (use --dtype float32 to keep them)"
        )
    return result


CANDIDATE_FIELDS = (
    "detectid",
    "shotid",
    "field",
    "ra",
    "dec",
    "wave",
    "flux",
    "flux_err",
    "linewidth",
    "continuum",
    "sn",
    "chi2",
    "apcor",
)


def _write_rows(reader, *, path, sha, name, writer: StoreWriter, zeroed, report) -> IngestBatch:
    cols = reader.columns
    n = reader.n
    # The batch row is inserted first: a concurrent ingest of the same file blocks on its
    # unique keys and fails there, before it could touch the store directory.
    committed_store = False
    try:
        with transaction.atomic():
            batch = IngestBatch.objects.create(
                name=name,
                file_sha256=sha,
                source_path=str(path.resolve()),
                file_format=reader.fmt,
                n_candidates=n,
                store_path=str(writer.path),
                store_dtype=writer.dtype.name,
                header_meta=reader.meta,
                nan_pixels_zeroed=zeroed,
            )
            values = {
                name: (cols[name] if name in cols else np.ones(n)).astype(CATALOG_COLUMNS[name])
                for name in CANDIDATE_FIELDS
            }
            for start in range(0, n, DB_BATCH):
                sl = slice(start, min(n, start + DB_BATCH))
                # .tolist() turns numpy scalars into Python ones in C, fast
                columns = [values[f][sl].tolist() for f in CANDIDATE_FIELDS]
                k = sl.stop - start
                priority = (-values["sn"][sl].astype(np.float64)).tolist()  # low S/N first
                rows = zip(
                    *columns,
                    [batch.pk] * k,
                    range(start, sl.stop),
                    [Candidate.Status.ACTIVE.value] * k,
                    priority,
                    strict=True,
                )
                fields = (*CANDIDATE_FIELDS, "batch", "row", "status", "priority")
                insert_rows(Candidate, fields, rows)
                report("database", sl.stop, n)
            if "truth_real" in cols and "truth_type" in cols:
                _write_truth(batch, cols)
            writer.commit()
            committed_store = True
    except BaseException:
        if committed_store:
            remove_store(writer.path)
        raise
    return batch


def _write_truth(batch: IngestBatch, cols: dict) -> None:
    n = len(cols["detectid"])
    ids = dict(Candidate.objects.filter(batch=batch).values_list("detectid", "pk"))
    pks = [ids[d] for d in cols["detectid"].tolist()]
    z = cols.get("truth_z", np.full(n, np.nan)).astype(np.float64)
    true_z = [None if not np.isfinite(v) else v for v in z.tolist()]
    flux = cols.get("truth_flux", np.zeros(n)).astype(np.float64).tolist()
    rows = zip(
        pks,
        cols["truth_real"].astype(bool).tolist(),
        cols["truth_type"].astype(str).tolist(),
        flux,
        true_z,
        strict=True,
    )
    insert_rows(CandidateTruth, ("candidate", "is_real", "kind", "true_flux", "true_z"), rows)
