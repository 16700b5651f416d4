"""Ingest a survey file: validate all of it, then write Candidate rows + a cutout store atomically.

Sources: one survey file (FITS or the project's HDF5 layout, :mod:`mlcore.survey_io`),
HETDEX's three real files -- ML file, catalogue, survey table (:mod:`mlcore.hetdex_io`),
joined on ``detectid`` and ``shotid`` -- or HETDEX's public PDR1 catalogue + spectra
(:mod:`mlcore.pdr1_io`, no cutouts), joined on ``detectid``.

Order of work, and why:
0. every path must be a regular, non-empty file (a FIFO or /dev/zero would never end a
   hash); temporary store directories of this host's killed ingests are removed;
1. hash the file(s): the same bytes ingested twice is a no-op that says so;
2. structure + catalogue checks (cheap, all in memory);
3. one streaming pass over the pixel arrays that validates each chunk and writes it into a
   *temporary* store directory (memory stays at one chunk of pixels);
4. only if nothing was wrong: one database transaction inserts the batch, then the
   candidates (and truth, and external scores such as PDR1's p_cnn) chunk by chunk straight
   from the reader's catalogue (COPY on PostgreSQL; a streaming reader -- HETDEX's three
   files -- keeps only ids in memory), and the store directory is renamed into place just
   before the commit. A failure
   at any point rolls the transaction back and deletes the store, so the database and the
   store are exactly as they were.
"""

from __future__ import annotations

import hashlib
import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from django.conf import settings
from django.db import IntegrityError, connection, transaction

from labelapp.errors import InvalidInput
from labelapp.models import (
    Candidate,
    CandidateTruth,
    ExternalScore,
    IngestBatch,
)
from labelapp.selectors.campaign import campaign_flag
from labelapp.selectors.models import live_model
from labelapp.services.bulk import insert_rows
from labelapp.services.operations.dispatch import send_after_commit
from labelapp.services.survey.store_orphans import remove_store_orphans
from mlcore.cutout_quality import (
    NO_CUTOUT,
    NOT_IN_PRODUCT,
    cutout_flags,
    describe,
    mask_missing,
)
from mlcore.join import id_problems, ids_unusable
from mlcore.store import StoreWriter, remove_store
from mlcore.survey import CATALOG_COLUMNS
from mlcore.survey_io import SurveyFileError, check_regular_file, open_survey
from mlcore.validation import (
    NULLABLE_COLUMNS,
    Problem,
    catalog_location,
    check_catalog,
    check_chunk,
    check_structure,
)

logger = logging.getLogger(__name__)

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


def file_sha256(path: Path, block: int = 1 << 22) -> str:
    digest = hashlib.sha256()
    buf = bytearray(block)  # one buffer for the whole file, not a new bytes object per read
    view = memoryview(buf)
    with open(path, "rb", buffering=0) as fh:
        while n := fh.readinto(buf):
            digest.update(view[:n])
    return digest.hexdigest()


def _default_batch_name(path: Path, sha: str) -> str:
    stem = re.sub(r"[^a-z0-9-]+", "-", path.stem.lower()).strip("-") or "batch"
    return f"{stem[:60]}-{sha[:8]}"


def _file_problem(path: Path, exc: SurveyFileError, others=()) -> Problem:
    """The problem, located at whichever of ``path`` and ``others`` the message names."""
    text = str(exc)
    for p in (*others, path):
        if p is not None and text.startswith(f"{p}: "):
            return Problem(str(p), text.removeprefix(f"{p}: "))
    return Problem(str(path), text)


def _existing_detectids(detectid: np.ndarray) -> np.ndarray:
    """The ids of ``detectid`` already in the database (Python ints made per slice only)."""
    found: list[int] = []
    for start in range(0, len(detectid), 10000):
        ids = detectid[start : start + 10000].tolist()
        found += [d for d, _pk in _detectid_pks(ids)]
    return np.asarray(found, dtype=np.int64)


def _detectid_pks(ids: list[int], batch: IngestBatch | None = None) -> list[tuple[int, int]]:
    """(detectid, pk) of the candidates among ``ids`` (of ``batch``). On PostgreSQL the ids go
    as one array parameter: an ``IN (%s, %s, ...)`` of thousands of parameters cost more CPU
    to build and parse than the rest of the query (measured: ~5 s of an 80,000-row ingest)."""
    if connection.vendor == "postgresql":
        table = connection.ops.quote_name(Candidate._meta.db_table)
        sql = f"SELECT detectid, id FROM {table} WHERE detectid = ANY(%s)"  # noqa: S608
        params: list = [ids]
        if batch is not None:
            sql += " AND batch_id = %s"
            params.append(batch.pk)
        with connection.cursor() as cursor:
            # the driver's own cursor: with DEBUG on, Django's would keep each query's text,
            # thousands of ids long, in connection.queries (memory growing with the file)
            cursor.cursor.execute(sql, params)
            return cursor.cursor.fetchall()
    qs = Candidate.objects.filter(detectid__in=ids)
    if batch is not None:
        qs = qs.filter(batch=batch)
    return list(qs.values_list("detectid", "pk"))


def _open(path: Path, catalogue: Path | None, survey: Path | None, spectra: Path | None = None):
    if spectra is not None:
        from mlcore.pdr1_io import open_pdr1

        return open_pdr1(path, spectra)
    if catalogue is None:
        return open_survey(path)
    from mlcore.hetdex_io import open_hetdex

    return open_hetdex(path, catalogue, survey, stream=True)


def ingest_survey(
    *,
    path: str | Path,
    catalogue: str | Path | None = None,
    survey: str | Path | None = None,
    spectra: str | Path | None = None,
    batch_name: str | None = None,
    nan_policy: str = "reject",
    store_dtype: str | None = None,
    chunk: int | None = None,
    progress: Progress | None = None,
) -> IngestResult:
    """Ingest the survey file at ``path``. Raises :class:`IngestError` if anything is wrong.

    With ``catalogue`` and ``survey``, ``path`` is HETDEX's ML file (``detect_ml_*.h5``),
    ``catalogue`` its detections catalogue (``detect_hdr*.h5``) and ``survey`` the survey
    table (``survey_hdr*.h5``): only the ML file's candidates are ingested, joined by id.

    With ``spectra``, ``path`` is HETDEX PDR1's HPSC-2 catalogue (FITS) and ``spectra`` its
    1D-spectra FITS (:mod:`mlcore.pdr1_io`): candidates without pictures (status expert,
    never served to volunteers) whose ``p_cnn``/``p_conf`` are kept as external scores.
    """
    t0 = time.perf_counter()
    path = Path(path)
    report = progress or (lambda stage, done, total: None)
    if (catalogue is None) != (survey is None):
        raise IngestError(
            path,
            [Problem("--catalogue/--survey", "give both (HETDEX's three files) or neither")],
        )
    if spectra is not None and catalogue is not None:
        raise IngestError(
            path,
            [
                Problem(
                    "--spectra",
                    "--spectra (HETDEX PDR1: catalogue FITS + spectra FITS) cannot be combined "
                    "with --catalogue/--survey (HETDEX's internal three files)",
                )
            ],
        )
    catalogue = Path(catalogue) if catalogue is not None else None
    survey = Path(survey) if survey is not None else None
    spectra = Path(spectra) if spectra is not None else None
    sources = [p for p in (path, catalogue, survey, spectra) if p is not None]
    for p in sources:
        try:
            check_regular_file(p)
        except SurveyFileError as exc:
            raise IngestError(path, [_file_problem(p, exc)]) from exc
    orphans_removed = remove_store_orphans(temporary_only=True)
    try:
        digests = [file_sha256(p) for p in sources]
    except OSError as exc:
        raise IngestError(path, [Problem(str(path), f"cannot be read: {exc.strerror}")]) from exc
    # One key for the three files together: the same ML file with another catalogue is
    # another ingest.
    sha = digests[0] if len(digests) == 1 else hashlib.sha256("".join(digests).encode()).hexdigest()
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
        reader = _open(path, catalogue, survey, spectra)
    except SurveyFileError as exc:
        raise IngestError(path, [_file_problem(path, exc, (catalogue, survey, spectra))]) from exc
    with reader:
        problems = check_structure(reader)
        if problems:
            raise IngestError(path, problems)
        ids = reader.columns["detectid"]
        if ids_unusable(ids):  # before the database sees them: 2**63 does not fit a bigint
            where = f"{catalog_location(reader.fmt, reader)} column 'detectid'"
            raise IngestError(path, id_problems(ids, where))
        problems = check_catalog(reader, known_detectids=_existing_detectids(ids))
        if problems:
            raise IngestError(path, problems)

        n = reader.n
        dtype = store_dtype or settings.STORE_DTYPE
        store_path = Path(settings.STORE_ROOT) / name
        detectid = reader.columns["detectid"]
        writer = StoreWriter(
            store_path,
            n,
            dtype=dtype,
            meta={"source_sha256": sha, "batch": name},
            detectid=detectid,  # the store is joinable by id without the database
            direct=settings.STORE_DIRECT_IO,
        )
        zeroed = 0
        flags = np.zeros(n, np.int16)
        padded = np.zeros(n, np.int16)
        masked_pixels = 0
        try:
            for start, stop, arrays in reader.iter_chunks(
                chunk or settings.INGEST_CHUNK, reuse=True
            ):
                if getattr(reader, "no_cutouts", False):
                    # the product has no pictures (PDR1): not a failed extraction
                    flags[start:stop], padded[start:stop] = NO_CUTOUT | NOT_IN_PRODUCT, 0
                else:
                    flags[start:stop], padded[start:stop] = cutout_flags(
                        arrays["im_sum"], arrays["im_array"], arrays["im_wave"]
                    )
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
                    # Zeros that are not sky (failed extraction, beyond the CCD edge, a
                    # missing fibre) go into the store as NaN: masked for the CNN and renderer.
                    arrays["im_sum"], arrays["im_array"], k = mask_missing(
                        arrays["im_sum"], arrays["im_array"], arrays["im_wave"], flags[start:stop]
                    )
                    masked_pixels += k
                    writer.write(start, **arrays)
                report("validate+store", stop, n)
            if problems:
                raise IngestError(path, problems)
            batch = _write_rows(
                reader,
                path=path,
                sha=sha,
                name=name,
                writer=writer,
                zeroed=zeroed,
                flags=flags,
                padded=padded,
                report=report,
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
    result.notes += list(getattr(reader, "notes", []))
    result.notes += [
        f"removed an orphaned temporary store: {o.path.name} ({o.reason})" for o in orphans_removed
    ]
    result.notes += _flag_notes(flags, padded)
    if masked_pixels:
        result.notes.append(f"{masked_pixels} pixels that are not sky stored as NaN (masked)")
    if zeroed:
        result.notes.append(f"{zeroed} NaN pixels stored as 0 (--nan-policy zero)")
    if writer.clipped:
        result.notes.append(
            f"{writer.clipped} pixels beyond the float16 range were clipped "
            "to +-65504 (use --dtype float32 to keep them)"
        )
    note = _queue_shift_reports(batch)
    if note:
        result.notes.append(note)
    return result


def _queue_shift_reports(batch: IngestBatch) -> str | None:
    """With a live model (and the campaign setting ``auto_shift_reports`` on), send the new
    batch's shift reports against it to the cpu queue (labelapp.services.learning.auto_shift),
    so the next round's shift share and the next scoring run see the batch's verdict. A
    broker that does not answer costs the note only: the ingest is committed, and the next
    scoring run builds the reports it finds missing."""
    mv = live_model()
    if mv is None or not campaign_flag("auto_shift_reports"):
        return None
    try:
        send_after_commit("build_batch_shift_reports", batch_id=batch.pk, model_version_id=mv.pk)
    except Exception as exc:  # the broker down must not fail a committed ingest
        logger.warning("shift reports of batch %s not queued: %s", batch.pk, exc)
        return (
            f"the shift reports of this batch against live model v{mv.pk} were not queued "
            f"({type(exc).__name__}: {exc}); the next scoring run builds them, or run "
            f"manage.py shift_report --batch {batch.pk}"
        )
    return f"shift reports of this batch against live model v{mv.pk} queued (cpu queue)"


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


def _flag_notes(flags: np.ndarray, padded: np.ndarray) -> list[str]:
    notes = []
    product = int(np.count_nonzero(flags & NOT_IN_PRODUCT))
    if product:
        notes.append(
            f"{product} candidate(s): {describe(NOT_IN_PRODUCT)[0]} -- stored without a "
            "picture and kept out of the volunteers' queue (status expert)"
        )
    flags = np.where(flags & NOT_IN_PRODUCT, 0, flags)
    for bit in (1, 2, 4, 8):
        k = int(np.count_nonzero(flags & bit))
        if k:
            extra = " -- kept out of the volunteers' queue (status expert)" if bit == 1 else ""
            if bit == 2:
                extra = f" ({int(padded.sum())} padded columns in all, masked)"
            notes.append(f"{k} candidate(s): {describe(bit)[0]}{extra}")
    return notes


def _nullable(values: np.ndarray) -> list:
    """Floats with NaN (a missing value or sentinel in the file) as None (SQL NULL)."""
    out = values.astype(np.float64)
    return [None if v != v else v for v in out.tolist()]


def _write_rows(
    reader, *, path, sha, name, writer: StoreWriter, zeroed, flags, padded, report
) -> IngestBatch:
    """Candidate rows (and truth) streamed from the reader's catalogue, ``DB_BATCH`` at a
    time, into one transaction: COPY on PostgreSQL, so nothing per candidate is held in
    Python beyond the chunk being sent. The store is renamed into place just before the
    commit; any failure rolls back the rows and removes the store."""
    n = reader.n
    # The batch row is inserted first: a concurrent ingest of the same file blocks on its
    # unique keys and fails there, before it could touch the store directory.
    committed_store = False
    fields = (
        *CANDIDATE_FIELDS,
        "batch",
        "row",
        "status",
        "priority",
        "cutout_flags",
        "padded_cols",
    )
    done = 0
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
            for rows, cols in _pieces(reader.iter_catalogue(), DB_BATCH):
                k = len(rows)
                columns = []
                for f in CANDIDATE_FIELDS:
                    v = (cols[f] if f in cols else np.ones(k)).astype(CATALOG_COLUMNS[f])
                    # .tolist() turns numpy scalars into Python ones in C, fast
                    columns.append(_nullable(v) if f in NULLABLE_COLUMNS else v.tolist())
                priority = (-cols["sn"].astype(np.float64)).tolist()  # low S/N first
                # No picture, nothing for a volunteer to judge: a scientist looks at the
                # spectrum instead.
                status = np.where(
                    flags[rows] & NO_CUTOUT,
                    Candidate.Status.EXPERT.value,
                    Candidate.Status.ACTIVE.value,
                ).tolist()
                insert_rows(
                    Candidate,
                    fields,
                    zip(
                        *columns,
                        [batch.pk] * k,
                        rows.tolist(),
                        status,
                        priority,
                        flags[rows].tolist(),
                        padded[rows].tolist(),
                        strict=True,
                    ),
                )
                if "truth_real" in cols and "truth_type" in cols:
                    _write_truth(batch, cols)
                scores = [c for c in EXTERNAL_SCORE_COLUMNS if c in cols]
                if scores and getattr(reader, "score_source", None):
                    _write_external_scores(batch, cols, reader.score_source, scores)
                done += k
                report("database", done, n)
            if done != n:  # the reader's join guarantees one row per candidate
                raise RuntimeError(f"{done} catalogue rows written for {n} candidates")
            writer.commit()
            committed_store = True
    except BaseException:
        if committed_store:
            remove_store(writer.path)
        raise
    return batch


def _pieces(chunks, size: int):
    """(rows, columns) of at most ``size`` candidates from the reader's catalogue chunks."""
    for rows, cols, _file_rows in chunks:
        for a in range(0, len(rows), size):
            yield rows[a : a + size], {k: v[a : a + size] for k, v in cols.items()}


def _pks(batch: IngestBatch, ids: list[int]) -> list[int]:
    """Primary keys of this batch's candidates ``ids`` (just inserted), in that order."""
    found = dict(_detectid_pks(ids, batch))
    return [found[d] for d in ids]


EXTERNAL_SCORE_COLUMNS = ("p_cnn", "p_conf")


def _write_external_scores(batch: IngestBatch, cols: dict, source: str, names) -> None:
    """A score from outside the platform per candidate and name (NULL where the file had a
    sentinel), for one chunk of candidates just inserted."""
    pks = _pks(batch, cols["detectid"].astype(np.int64).tolist())
    for name in names:
        insert_rows(
            ExternalScore,
            ("candidate", "source", "name", "value"),
            zip(pks, [source] * len(pks), [name] * len(pks), _nullable(cols[name]), strict=True),
        )


def _write_truth(batch: IngestBatch, cols: dict) -> None:
    """Truth rows for one chunk of candidates just inserted (their pks looked up by id)."""
    n = len(cols["detectid"])
    pks = _pks(batch, cols["detectid"].astype(np.int64).tolist())
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
