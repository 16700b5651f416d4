"""Exports for scientists: the labelled and scored catalogue (FITS, CSV, ECSV or VOTable), the
classification records (CSV, one row per vote), and any model version's card and weights.

Everything is streamed: the database is read in chunks by keyset pagination on the primary
key (``id > last ORDER BY id LIMIT chunk``), one query per chunk with the scores, labels and
rounds LEFT JOINed in the database, and each chunk is turned into bytes and yielded. Memory
stays flat whatever the catalogue size (2.5 M rows are never held at once).

An export is bounded by the largest id seen when it starts, so rows inserted meanwhile are
left out and a FITS file always holds exactly the row count its header declares (the count
and the bound are taken in one statement; a row deleted meanwhile becomes a filler row with
``detectid = -1`` rather than a broken file).

Catalogue columns (CSV and FITS alike): missing values are -1 for integer columns (FITS
``TNULLn``), empty in CSV and NaN in FITS for float columns.

* ``cnn_prob, cnn_entropy, cnn_bald``: the live model's scores, or those of a chosen model
  version; ``model_version`` says which. ``cnn_prob`` is the class-balanced score (real and
  artefact at even odds in each S/N regime; decide "real" at >= 0.5, as the paper's
  balanced accuracy does). ``cnn_p_real`` is the same score shifted to the class mix of
  the model's validation labels (its card's ``prior_shift``): the probability to sum for
  expected counts. Empty for models trained before the shift was fitted.
* ``cnn_adapted``: 1 where ``cnn_*`` were made by the model with the candidate's batch's
  own BatchNorm statistics (AdaBN: its shift report flagged the batch; the model card's
  ``adaptation`` says from what), 0 where by the model as trained, -1 where not scored.
* ``label`` (1 real / 0 not / -1 none), ``posterior``, ``n_votes``: the labels of record,
  i.e. those of the latest succeeded aggregation run (``aggregation_run`` in the header).
* ``expert_label``: an expert's answer from the live consensus, if any.
* ``round``: number of the latest labelling round that put the candidate in the queue.
* ``batch``, ``row``: the ingest batch (its cutout store's directory name) and the row in it,
  so cutouts are found without the database (``mlcore.store.lookup`` finds them by detectid).

ECSV and VOTable (TABLEDATA) carry each column's unit, description and UCD (IVOA UCD1+), and
the FITS header's cards as table metadata (ECSV ``meta``, VOTable ``INFO``); missing integers
are masked (empty), missing floats NaN. Both stream like the others: the header is made once
by astropy, the rows chunk by chunk.

Volunteers appear in the classification export only as a pseudonym: an HMAC-SHA256 of
their id keyed with ``EXPORT_PSEUDONYM_KEY`` (default: ``SECRET_KEY``), so pseudonyms stay
the same across exports and cannot be reversed without the key. Usernames and e-mail
addresses are never read by the export queries.
"""

from __future__ import annotations

import datetime as dt
import functools
import io
import json
import logging
import subprocess
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from xml.sax.saxutils import escape as xml_escape

import numpy as np
from astropy.io import fits
from django.conf import settings
from django.db import connection
from django.utils import timezone

import mlcore
from labelapp.errors import InvalidInput
from labelapp.models import (
    AggregationRun,
    Candidate,
    CandidateScore,
    ConsensusState,
    IngestBatch,
    Label,
    ModelVersion,
    Round,
    RoundCandidate,
    Vote,
)
from labelapp.selectors.models import live_model
from labelapp.selectors.volunteers import pseudonym
from mlcore.cnn.evaluation import apply_prior_shift
from mlcore.csv_safe import SafeWriter
from mlcore.survey import LYA_REST

log = logging.getLogger(__name__)

DEFAULT_CHUNK_SIZE = 10_000
FITS_BLOCK = 2880
CATALOGUE_FORMATS = ("fits", "csv", "ecsv", "vot")
CONTENT_TYPES = {
    "fits": "application/fits",
    "csv": "text/csv; charset=utf-8",
    "ecsv": "text/x-ecsv; charset=utf-8",
    "vot": "application/x-votable+xml",
}


class ExportError(InvalidInput):
    """Something the user asked for does not exist (unknown model, missing file)."""


@dataclass(frozen=True)
class Col:
    name: str
    tform: str  # FITS binary-table format
    dtype: str  # numpy, big-endian as FITS stores it
    unit: str = ""
    null: int | None = None  # TNULLn of integer columns
    doc: str = ""
    ucd: str = ""  # IVOA UCD1+, written to ECSV and VOTable


CATALOGUE_COLUMNS: tuple[Col, ...] = (
    Col("detectid", "K", ">i8", doc="HETDEX detection id", ucd="meta.id;meta.main"),
    Col("ra", "D", ">f8", "deg", doc="right ascension (J2000)", ucd="pos.eq.ra;meta.main"),
    Col("dec", "D", ">f8", "deg", doc="declination (J2000)", ucd="pos.eq.dec;meta.main"),
    Col("wave", "D", ">f8", "Angstrom", doc="observed line wavelength", ucd="em.wl"),
    Col("z", "D", ">f8", doc="redshift if Lyman-alpha: wave / LYAREST - 1", ucd="src.redshift"),
    Col("sn", "D", ">f8", doc="line signal-to-noise", ucd="stat.snr"),
    Col("field", "16A", "S16", doc="survey field", ucd="meta.id;obs.field"),
    Col("status", "8A", "S8", doc="queue status: active, retired, expert", ucd="meta.code.status"),
    Col("cnn_prob", "D", ">f8", doc="CNN P(real line) at even odds: decide at >= 0.5",
        ucd="stat.probability"),
    Col("cnn_p_real", "D", ">f8", doc="CNN P(real line) at the labels' class mix",
        ucd="stat.probability"),
    Col("cnn_entropy", "D", ">f8", "bit", doc="CNN predictive entropy", ucd="stat.value"),
    Col("cnn_bald", "D", ">f8", "bit", doc="CNN mutual information (BALD)", ucd="stat.value"),
    Col("label", "I", ">i2", null=-1, doc="consensus label: 1 real, 0 not real, -1 none",
        ucd="meta.code.class"),
    Col("posterior", "D", ">f8", doc="consensus P(real line)", ucd="stat.probability"),
    Col("n_votes", "J", ">i4", doc="votes behind the consensus label", ucd="meta.number"),
    Col("expert_label", "I", ">i2", null=-1, doc="expert answer: 1 real, 0 not real, -1 none",
        ucd="meta.code.class"),
    Col("model_version", "J", ">i4", null=-1, doc="CNN model version of cnn_* (-1 none)",
        ucd="meta.version"),
    Col("round", "J", ">i4", null=-1, doc="latest labelling round that queued it (-1 none)",
        ucd="meta.number"),
    # width set per export to the longest batch name (Col.tform/dtype "A"/"S" unsized here)
    Col("batch", "A", "S", doc="ingest batch: the cutout store directory", ucd="meta.dataset"),
    Col("row", "J", ">i4", null=-1, doc="row of the candidate in its batch store",
        ucd="meta.record"),
    Col("cnn_adapted", "I", ">i2", null=-1,
        doc="1: cnn_* adapted to its batch (AdaBN), 0: not",
        ucd="meta.code"),
)  # fmt: skip


def catalogue_columns(batch_width: int) -> tuple[Col, ...]:
    """:data:`CATALOGUE_COLUMNS` with the batch column ``batch_width`` characters wide."""
    w = max(1, batch_width)
    return tuple(
        Col(c.name, f"{w}A", f"S{w}", c.unit, c.null, c.doc, c.ucd) if c.name == "batch" else c
        for c in CATALOGUE_COLUMNS
    )


VOTE_COLUMNS = (
    "vote_id",
    "detectid",
    "volunteer",
    "answer",
    "reason",
    "created_at",
    "was_gold",
    "registered",
    "client",
    "response_ms",
)


@dataclass
class Export:
    """A download ready to stream: ``chunks`` yields its bytes; nothing is read before."""

    filename: str
    content_type: str
    n_rows: int
    chunks: Iterator[bytes]
    size: int | None = None  # bytes, when known in advance (FITS)
    detail: dict = field(default_factory=dict)  # for the audit log


@dataclass(frozen=True)
class CataloguePlan:
    """What one catalogue export covers, fixed before the first row is read."""

    model_version: ModelVersion | None
    run: AggregationRun | None
    n_rows: int
    max_id: int
    exported_at: dt.datetime
    batch_names: dict = field(default_factory=dict)  # IngestBatch pk -> name (few batches)

    @property
    def columns(self) -> tuple[Col, ...]:
        width = max((len(n.encode()) for n in self.batch_names.values()), default=1)
        return catalogue_columns(width)

    @property
    def dtype(self) -> np.dtype:
        return np.dtype([(c.name, c.dtype) for c in self.columns])

    @property
    def prior_shift(self) -> np.ndarray | None:
        """The model card's (low, high) prior shift; None if it has none (older models)."""
        card = self.model_version.card if self.model_version else None
        sh = (card or {}).get("prior_shift")
        if not isinstance(sh, dict) or not {"low", "high"} <= sh.keys():
            return None
        return np.array([sh["low"], sh["high"]], dtype=np.float64)


def _p_real(plan: CataloguePlan, rows: list[tuple]) -> np.ndarray:
    """cnn_p_real of a chunk: cnn_prob (row[8]) shifted per regime (by sn, row[5]); NaN
    where unscored or where the model has no prior shift."""
    shift = plan.prior_shift
    prob = np.array([np.nan if r[8] is None else r[8] for r in rows], dtype=np.float64)
    if shift is None:
        return np.full(len(rows), np.nan)
    return apply_prior_shift(prob, np.array([r[5] for r in rows], dtype=np.float64), shift)


# ---------------------------------------------------------------------------- catalogue


def plan_catalogue(*, model_version_id: int | None = None) -> CataloguePlan:
    """Pick the model (the live one unless ``model_version_id``), the labels of record (the
    latest succeeded aggregation run), and bound the export by the largest candidate id."""
    if model_version_id is not None:
        model_version = ModelVersion.objects.filter(pk=model_version_id).first()
        if model_version is None:
            raise ExportError(f"there is no model version {model_version_id}")
    else:
        model_version = live_model()
    run = AggregationRun.objects.filter(status=AggregationRun.Status.DONE).order_by("-pk").first()
    with connection.cursor() as cur:
        cur.execute(
            f"SELECT COUNT(*), MAX(id) FROM {_table(Candidate)}"  # noqa: S608 - names from models
        )
        n_rows, max_id = cur.fetchone()
    return CataloguePlan(
        model_version=model_version,
        run=run,
        n_rows=int(n_rows),
        max_id=int(max_id or 0),
        exported_at=timezone.now(),
        batch_names=dict(IngestBatch.objects.values_list("pk", "name")),
    )


def open_catalogue_export(
    *, fmt: str, model_version_id: int | None = None, chunk_size: int | None = None
) -> Export:
    """The catalogue as ``fmt`` ('fits', 'csv', 'ecsv' or 'vot'), planned now, streamed
    when iterated."""
    if fmt not in CATALOGUE_FORMATS:
        raise ExportError(
            f"unknown catalogue format {fmt!r}: ask for catalogue.fits or catalogue.csv "
            "(or catalogue.ecsv, catalogue.vot)"
        )
    plan = plan_catalogue(model_version_id=model_version_id)
    mv = plan.model_version
    version = f"v{mv.pk}" if mv else "nomodel"
    filename = f"hetdex-catalogue-{version}-{plan.exported_at:%Y%m%d}.{fmt}"
    size = fits_catalogue_size(plan) if fmt == "fits" else None
    stream = {
        "fits": catalogue_fits,
        "csv": catalogue_csv,
        "ecsv": catalogue_ecsv,
        "vot": catalogue_votable,
    }[fmt]
    return Export(
        filename=filename,
        content_type=CONTENT_TYPES[fmt],
        n_rows=plan.n_rows,
        chunks=stream(plan, chunk_size=chunk_size),
        size=size,
        detail={
            "format": fmt,
            "rows": plan.n_rows,
            "max_candidate_id": plan.max_id,
            "model_version": mv.pk if mv else None,
            "aggregation_run": plan.run.pk if plan.run else None,
            "filename": filename,
        },
    )


def iter_catalogue_rows(plan: CataloguePlan, *, chunk_size: int | None = None):
    """Lists of rows, one database query per list. Each row is a tuple:
    (id, detectid, ra, dec, wave, sn, field, status, prob, entropy, bald, label,
    posterior, n_votes, expert_label, round, batch id, row, score's adaptation id); NULLs of
    the left joins come as None."""
    size = _chunk_size(chunk_size)
    sql = _catalogue_sql()
    mv_id = plan.model_version.pk if plan.model_version else None
    run_id = plan.run.pk if plan.run else None
    last = 0
    while last < plan.max_id:
        with connection.cursor() as cur:
            params = {"last": last, "max_id": plan.max_id, "size": size}
            cur.execute(sql, {**params, "model": mv_id, "run": run_id})
            rows = cur.fetchall()
        if not rows:
            return
        yield rows
        if len(rows) < size:
            return
        last = rows[-1][0]


def catalogue_csv(plan: CataloguePlan, *, chunk_size: int | None = None) -> Iterator[bytes]:
    """The catalogue as UTF-8 CSV with a header line, one chunk of rows per yielded piece."""
    buf = io.StringIO()
    writer = SafeWriter(buf, lineterminator="\n")  # no formulas (mlcore.csv_safe)
    writer.writerow([c.name for c in plan.columns])
    mv = plan.model_version.pk if plan.model_version else -1
    names = plan.batch_names
    for rows in iter_catalogue_rows(plan, chunk_size=chunk_size):
        p_real = [None if np.isnan(v) else float(v) for v in _p_real(plan, rows)]
        for r, pr in zip(rows, p_real, strict=True):
            # (id, detectid, ra, dec, wave, sn, field, status, prob, ent, bald, label, post,
            #  n_votes, expert, round) -> the CATALOGUE_COLUMNS order; None writes as ''.
            writer.writerow(
                (r[1], r[2], r[3], r[4], r[4] / LYA_REST - 1, r[5], r[6], r[7], r[8], pr, r[9],
                 r[10], r[11], r[12], r[13], r[14], mv, -1 if r[15] is None else r[15],
                 names.get(r[16], ""), r[17], _adapted(r))
            )  # fmt: skip
        yield buf.getvalue().encode()
        buf.seek(0)
        buf.truncate()
    if buf.tell():
        yield buf.getvalue().encode()


def catalogue_fits(plan: CataloguePlan, *, chunk_size: int | None = None) -> Iterator[bytes]:
    """The catalogue as a FITS file: an empty primary HDU and one binary table whose header
    (row count included) is written first, then big-endian rows chunk by chunk, then the
    zero padding to a whole 2880-byte block."""
    yield _fits_headers(plan)
    written = 0
    for rows in iter_catalogue_rows(plan, chunk_size=chunk_size):
        rows = rows[: plan.n_rows - written]  # a row committed late with an id <= max_id
        if rows:
            yield _fits_records(rows, plan).tobytes()
            written += len(rows)
    if written < plan.n_rows:  # rows deleted since the count: filler keeps the file valid
        missing = plan.n_rows - written
        log.warning("catalogue export: %d candidates deleted while exporting", missing)
        filler = np.zeros(missing, dtype=plan.dtype)
        for c in plan.columns:
            if c.dtype.startswith(">f"):
                filler[c.name] = np.nan
            elif c.null is not None or c.name == "detectid":
                filler[c.name] = -1
        filler["status"] = b"deleted"
        yield filler.tobytes()
    pad = -(plan.n_rows * plan.dtype.itemsize) % FITS_BLOCK
    if pad:
        yield b"\0" * pad


def fits_catalogue_size(plan: CataloguePlan) -> int:
    data = plan.n_rows * plan.dtype.itemsize
    return len(_fits_headers(plan)) + data + (-data % FITS_BLOCK)


def _fits_headers(plan: CataloguePlan) -> bytes:
    cols = fits.ColDefs(
        [
            fits.Column(name=c.name, format=c.tform, unit=c.unit or None, null=c.null)
            for c in plan.columns
        ]
    )
    table = fits.BinTableHDU.from_columns(cols, nrows=0, name="CATALOGUE")
    hdr = table.header
    assert hdr["NAXIS1"] == plan.dtype.itemsize
    hdr["NAXIS2"] = plan.n_rows  # the rows follow as a stream; nothing is allocated here
    for i, c in enumerate(plan.columns, start=1):
        hdr.comments[f"TTYPE{i}"] = c.doc
    primary = fits.PrimaryHDU()
    for key, value, comment in _header_cards(plan):
        primary.header[key] = (value, comment)
        hdr[key] = (value, comment)
    return primary.header.tostring().encode("ascii") + hdr.tostring().encode("ascii")


def _header_cards(plan: CataloguePlan) -> list[tuple[str, object, str]]:
    """(keyword, value, comment) describing the export: FITS header cards, ECSV ``meta``
    and VOTable ``INFO`` alike."""
    mv, run = plan.model_version, plan.run
    when = plan.exported_at.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S")
    cards = [
        ("ORIGIN", "Dark Energy Explorers labelapp", "exporting software"),
        ("DATE", when, "UTC time of the export"),
        ("EXPORTED", when, "UTC time of the export"),
        ("CODEVER", code_version(), "code version"),
        ("NROWS", plan.n_rows, "candidates in the table"),
        ("MAXID", plan.max_id, "largest candidate id exported"),
        ("MODELVER", mv.pk if mv else -1, "CNN model version of cnn_* (-1: none)"),
        ("MODELSTA", mv.status if mv else "none", "its status at export time"),
        ("AGGRUN", run.pk if run else -1, "aggregation run of label/posterior (-1: none)"),
        ("AGGMETH", run.method if run else "none", "its aggregation method"),
        ("LYAREST", LYA_REST, "[Angstrom] Lyman-alpha rest wavelength for z"),
    ]
    if plan.prior_shift is not None:
        lo, hi = plan.prior_shift
        cards += [
            ("PSHIFTLO", float(lo), "cnn_p_real logit shift, S/N <= 5.5"),
            ("PSHIFTHI", float(hi), "cnn_p_real logit shift, S/N > 5.5"),
        ]
    return cards


def _fits_records(rows: list[tuple], plan: CataloguePlan) -> np.ndarray:
    cols = list(zip(*rows, strict=True))
    out = np.empty(len(rows), dtype=plan.dtype)
    out["detectid"] = cols[1]
    for name, i in (("ra", 2), ("dec", 3), ("wave", 4), ("sn", 5)):
        out[name] = cols[i]
    out["z"] = np.asarray(cols[4], dtype=np.float64) / LYA_REST - 1
    out["field"] = [s.encode("ascii", "replace") for s in cols[6]]
    out["status"] = [s.encode("ascii", "replace") for s in cols[7]]
    for name, i in (("cnn_prob", 8), ("cnn_entropy", 9), ("cnn_bald", 10), ("posterior", 12)):
        out[name] = np.asarray(cols[i], dtype=np.float64)  # None -> NaN
    out["cnn_p_real"] = _p_real(plan, rows)
    out["label"] = cols[11]
    out["n_votes"] = cols[13]
    out["expert_label"] = cols[14]
    out["model_version"] = plan.model_version.pk if plan.model_version else -1
    out["round"] = [-1 if v is None else v for v in cols[15]]
    out["batch"] = [plan.batch_names.get(b, "").encode() for b in cols[16]]
    out["row"] = cols[17]
    out["cnn_adapted"] = [_adapted(r) for r in rows]
    return out


def _adapted(r: tuple) -> int:
    """cnn_adapted of a row: -1 not scored, 1 scored with its batch's statistics, else 0."""
    return -1 if r[8] is None else int(r[18] is not None)


# ------------------------------------------------------------- ECSV and VOTable (astropy)


def _astropy_table(plan: CataloguePlan, records: np.ndarray):
    """A chunk of records as an astropy Table with units, descriptions and UCDs; integer
    columns with a null value masked where they hold it; text as str."""
    from astropy.table import MaskedColumn, Table

    t = Table()
    for c in plan.columns:
        v = records[c.name]
        if c.dtype.startswith("S"):
            v = np.char.decode(v, "utf-8") if len(v) else np.array([], dtype="U1")
        elif v.dtype.byteorder == ">":
            v = v.astype(v.dtype.newbyteorder("="))
        t[c.name] = MaskedColumn(v, mask=v == c.null) if c.null is not None else v
        t[c.name].unit = c.unit or None
        t[c.name].description = c.doc
        t[c.name].meta["ucd"] = c.ucd
    for key, value, _ in _header_cards(plan):
        t.meta[key] = value
    return t


def catalogue_ecsv(plan: CataloguePlan, *, chunk_size: int | None = None) -> Iterator[bytes]:
    """The catalogue as ECSV: astropy writes the YAML header (units, descriptions, UCDs,
    the export's metadata) once, then each chunk's data lines (its header dropped)."""
    buf = io.StringIO()
    _astropy_table(plan, np.zeros(0, plan.dtype)).write(buf, format="ascii.ecsv")
    yield buf.getvalue().encode()
    for rows in iter_catalogue_rows(plan, chunk_size=chunk_size):
        buf = io.StringIO()
        _astropy_table(plan, _fits_records(rows, plan)).write(buf, format="ascii.ecsv")
        lines = buf.getvalue().splitlines(keepends=True)
        yield "".join([ln for ln in lines if not ln.startswith("#")][1:]).encode()


def _votable_frame(plan: CataloguePlan) -> tuple[bytes, bytes]:
    """(everything up to <TABLEDATA>, everything from </TABLEDATA>) of the VOTable, made by
    astropy from a one-row table, with variable-length text fields and INFO metadata."""
    from astropy.io.votable import from_table
    from astropy.io.votable.tree import Info
    from astropy.units import UnitsWarning

    one = np.zeros(1, plan.dtype)
    for c in plan.columns:
        if c.dtype.startswith("S"):
            one[c.name] = b"x"
    with warnings.catch_warnings():
        # VOUnit deprecates 'Angstrom' (it suggests 0.1nm) but it is still valid VOUnit
        warnings.simplefilter("ignore", UnitsWarning)
        vot = from_table(_astropy_table(plan, one))
        table = vot.get_first_table()
        for fld in table.fields:
            if fld.datatype in ("char", "unicodeChar"):
                fld.arraysize = "*"
        for key, value, comment in _header_cards(plan):
            info = Info(name=key, value=str(value))
            info.content = comment
            table.infos.append(info)
        buf = io.BytesIO()
        vot.to_xml(buf, tabledata_format="tabledata")
    xml = buf.getvalue()
    head = xml[: xml.index(b"<TABLEDATA>") + len(b"<TABLEDATA>")] + b"\n"
    tail = xml[xml.index(b"</TABLEDATA>") :]
    return head, b"     " + tail


def _td(value, null) -> str:
    if null is not None and value == null:
        return "<TD/>"
    if isinstance(value, bytes):
        return f"<TD>{xml_escape(value.decode('utf-8'))}</TD>"
    if isinstance(value, float | np.floating):
        return "<TD>NaN</TD>" if np.isnan(value) else f"<TD>{float(value)!r}</TD>"
    return f"<TD>{int(value)}</TD>"


def catalogue_votable(plan: CataloguePlan, *, chunk_size: int | None = None) -> Iterator[bytes]:
    """The catalogue as a VOTable 1.4 (TABLEDATA): the frame from astropy, the rows as
    <TR> elements chunk by chunk. Floats are written with ``repr`` (exact round trip)."""
    head, tail = _votable_frame(plan)
    yield head
    cols = [(c.name, c.null) for c in plan.columns]
    for rows in iter_catalogue_rows(plan, chunk_size=chunk_size):
        recs = _fits_records(rows, plan)
        out = []
        for rec in recs:
            tds = "".join(_td(rec[name], null) for name, null in cols)
            out.append(f"     <TR>{tds}</TR>\n")
        yield "".join(out).encode()
    yield tail


# One chunk of the catalogue. ``chunk.hi`` is the id of the chunk's last candidate (an
# index-only scan of at most ``size`` primary-key entries), so the main scan is bounded on
# both sides whatever plan is chosen. Scores, labels and the live consensus are found by
# unique-index lookups per row. On PostgreSQL the lookups are LATERAL subqueries (LIMIT 1
# keeps the planner from flattening them back into joins; the indexes are unique) so that no
# plan, even one made on stale statistics (say, right after a new model scored 2.5 M
# candidates), can turn a chunk into a hash or merge join over a whole table. SQLite always
# runs a LEFT JOIN as exactly that nested loop, so there it is a plain LEFT JOIN.
_CATALOGUE_SQL = """
WITH chunk AS (
  SELECT MAX(t.id) AS hi FROM (
    SELECT c0.{id} AS id FROM {candidate} c0
    WHERE c0.{id} > %(last)s AND c0.{id} <= %(max_id)s ORDER BY c0.{id} LIMIT %(size)s
  ) t
)
SELECT c.{id}, c.{detectid}, c.{ra}, c.{dec}, c.{wave}, c.{sn}, c.{field}, c.{status},
       s.{prob}, s.{entropy}, s.{bald},
       CASE WHEN l.{is_real} IS NULL THEN -1 WHEN l.{is_real} THEN 1 ELSE 0 END,
       l.{posterior}, COALESCE(l.{n_votes}, 0),
       CASE WHEN cs.{expert_label} IS NULL THEN -1 WHEN cs.{expert_label} THEN 1 ELSE 0 END,
       (SELECT MAX(r.{number}) FROM {roundcandidate} rc JOIN {round} r ON r.{id} = rc.{rc_round}
        WHERE rc.{rc_candidate} = c.{id}),
       c.{batch}, c.{row}, s.{adaptation}
FROM {candidate} c
{joins}
WHERE c.{id} > %(last)s AND c.{id} <= (SELECT hi FROM chunk)
ORDER BY c.{id}
"""
_JOINS_LATERAL = """
LEFT JOIN LATERAL (SELECT x.{prob}, x.{entropy}, x.{bald}, x.{adaptation} FROM {score} x
  WHERE x.{s_candidate} = c.{id} AND x.{s_model} = %(model)s LIMIT 1) s ON TRUE
LEFT JOIN LATERAL (SELECT x.{is_real}, x.{posterior}, x.{n_votes} FROM {label} x
  WHERE x.{l_candidate} = c.{id} AND x.{l_run} = %(run)s LIMIT 1) l ON TRUE
LEFT JOIN LATERAL (SELECT x.{expert_label} FROM {consensus} x
  WHERE x.{cs_candidate} = c.{id} LIMIT 1) cs ON TRUE
"""
_JOINS_PLAIN = """
LEFT JOIN {score} s ON s.{s_candidate} = c.{id} AND s.{s_model} = %(model)s
LEFT JOIN {label} l ON l.{l_candidate} = c.{id} AND l.{l_run} = %(run)s
LEFT JOIN {consensus} cs ON cs.{cs_candidate} = c.{id}
"""


def _catalogue_sql() -> str:
    """The chunk query; table and column names from model metadata, values as parameters."""
    q = connection.ops.quote_name

    def col(model, name: str) -> str:
        return q(model._meta.get_field(name).column)

    names = {f: col(Candidate, f) for f in ("id", "detectid", "ra", "dec", "wave", "sn")}
    names |= {f: col(Candidate, f) for f in ("field", "status", "batch", "row")}
    names |= {f: col(CandidateScore, f) for f in ("prob", "entropy", "bald", "adaptation")}
    names |= {f: col(Label, f) for f in ("is_real", "posterior", "n_votes")}
    names |= {
        "expert_label": col(ConsensusState, "expert_label"),
        "number": col(Round, "number"),
        "rc_round": col(RoundCandidate, "round"),
        "rc_candidate": col(RoundCandidate, "candidate"),
        "s_candidate": col(CandidateScore, "candidate"),
        "s_model": col(CandidateScore, "model_version"),
        "l_candidate": col(Label, "candidate"),
        "l_run": col(Label, "run"),
        "cs_candidate": col(ConsensusState, "candidate"),
        "candidate": _table(Candidate),
        "score": _table(CandidateScore),
        "label": _table(Label),
        "consensus": _table(ConsensusState),
        "round": _table(Round),
        "roundcandidate": _table(RoundCandidate),
    }
    joins = _JOINS_LATERAL if connection.vendor == "postgresql" else _JOINS_PLAIN
    return _CATALOGUE_SQL.format(joins=joins.format(**names), **names)


# ------------------------------------------------------------------- classifications


def open_votes_export(*, chunk_size: int | None = None) -> Export:
    """Every vote, one CSV row each (see VOTE_COLUMNS), bounded by the largest vote id now."""
    now = timezone.now()
    with connection.cursor() as cur:
        cur.execute(f"SELECT COUNT(*), MAX(id) FROM {_table(Vote)}")  # noqa: S608
        n_rows, max_id = cur.fetchone()
    filename = f"hetdex-classifications-{now:%Y%m%d}.csv"
    return Export(
        filename=filename,
        content_type=CONTENT_TYPES["csv"],
        n_rows=int(n_rows),
        chunks=votes_csv(max_id=int(max_id or 0), chunk_size=chunk_size),
        detail={"format": "csv", "rows": int(n_rows), "max_vote_id": max_id, "filename": filename},
    )


def votes_csv(*, max_id: int, chunk_size: int | None = None) -> Iterator[bytes]:
    size = _chunk_size(chunk_size)
    buf = io.StringIO()
    writer = SafeWriter(buf, lineterminator="\n")  # no formulas (mlcore.csv_safe)
    writer.writerow(VOTE_COLUMNS)
    names: dict[int, str] = {}  # pseudonyms of this export's volunteers, computed once each
    last = 0
    while last < max_id:
        rows = list(
            Vote.objects.filter(pk__gt=last, pk__lte=max_id)
            .order_by("pk")
            .values_list(
                "pk",
                "candidate__detectid",
                "volunteer_id",
                "answer",
                "reason",
                "created_at",
                "was_gold",
                "volunteer__user_id",
                "client",
                "response_ms",
            )[:size]
        )
        for vid, detectid, vol, answer, reason, created, gold, user_id, client, ms in rows:
            if vol not in names:
                names[vol] = pseudonym(vol)
            writer.writerow(
                (vid, detectid, names[vol], answer, reason, created.isoformat(), int(gold),
                 int(user_id is not None), client, ms)
            )  # fmt: skip
        yield buf.getvalue().encode()
        buf.seek(0)
        buf.truncate()
        if len(rows) < size:
            return
        last = rows[-1][0]
    if buf.tell():
        yield buf.getvalue().encode()


# ---------------------------------------------------------------------------- models


def get_model_version(pk: int) -> ModelVersion:
    mv = ModelVersion.objects.filter(pk=pk).first()
    if mv is None:
        raise ExportError(f"there is no model version {pk}")
    return mv


def model_card(mv: ModelVersion) -> dict:
    """The card stored with the version, else the card.json in its directory."""
    if mv.card:
        return mv.card
    path = Path(mv.directory) / "card.json"
    if not path.is_file():
        raise ExportError(f"model v{mv.pk} has no card (card.json is missing from {path.parent})")
    return json.loads(path.read_text())


def model_weights_path(mv: ModelVersion) -> Path:
    path = Path(mv.directory) / "model.pt"
    if not path.is_file():
        raise ExportError(
            f"model v{mv.pk} has no weights file: model.pt is missing from {path.parent} "
            "(was the model directory moved or deleted?)"
        )
    return path


# ---------------------------------------------------------------------------- helpers


@functools.cache
def code_version() -> str:
    """'mlcore <version> git:<short commit>' where git knows the checkout."""
    out = f"mlcore {mlcore.__version__}"
    try:
        proc = subprocess.run(
            ["git", "rev-parse", "--short=12", "HEAD"],
            cwd=settings.BASE_DIR,
            capture_output=True,
            text=True,
            timeout=5,
        )
    except (OSError, subprocess.SubprocessError):
        return out
    commit = proc.stdout.strip()
    return f"{out} git:{commit}" if proc.returncode == 0 and commit else out


def _table(model) -> str:
    return connection.ops.quote_name(model._meta.db_table)


def _chunk_size(chunk_size: int | None) -> int:
    size = chunk_size or getattr(settings, "EXPORT_CHUNK_SIZE", DEFAULT_CHUNK_SIZE)
    if size < 1:
        raise ValueError("chunk size must be at least 1")
    return int(size)
