"""Validate the catalogue against an uploaded external confirmation catalogue (DESI-like).

A scientist uploads a FITS table or a CSV with ra, dec, z[, quality]. The upload is checked
(size, type sniffed from its bytes, every row finite and on the sky), cross-matched with the
catalogue (mlcore.cnn.evaluation.crossmatch_external: within 1.5 arcsec and with the line
at Lya of the external redshift within 8 A) and the recovery of confirmed LAEs by the live
model is reported per S/N regime (the paper: 99 % at S/N > 5.5, 93 % at 4.8-5.5).

Everything wrong with a file is raised as :class:`ExternalUploadError` with a list of
problems naming the column and row, for the page to show.
"""

from __future__ import annotations

import csv
import math
import os
import tempfile
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from django.conf import settings

from labelapp.errors import InvalidInput
from labelapp.models import Candidate, CandidateScore
from labelapp.selectors.models import live_model
from mlcore.cnn.evaluation import crossmatch_external, pairs_within
from mlcore.survey import LYA_REST, SN_LOW_MAX, SN_THRESHOLD, regime_index
from mlcore.survey_io import FITS_MAGIC, read_external

DEFAULT_MAX_BYTES = 50 * 1024 * 1024
RADIUS_ARCSEC = 1.5
MAX_DWAVE = 8.0
MAX_PROBLEMS = 10  # listed; the rest are counted
N_EXAMPLES = 4  # matched examples shown per regime
REQUIRED = ("ra", "dec", "z")
_SNIFF_BYTES = 64 * 1024
_CHUNK = 20_000


class ExternalUploadError(InvalidInput):
    """The upload cannot be used; ``problems`` says what is wrong, where."""

    def __init__(self, problems: list[str]):
        super().__init__("; ".join(problems))
        self.problems = problems


@dataclass
class ExternalCatalogue:
    name: str
    kind: str  # fits | csv
    ra: np.ndarray
    dec: np.ndarray
    z: np.ndarray
    quality: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int16))
    row: np.ndarray | None = None  # 1-based row of each source in the file, for messages

    def row_of(self, i: int) -> int:
        return int(self.row[i]) if self.row is not None else i + 1

    def __len__(self) -> int:
        return len(self.ra)


def max_upload_bytes() -> int:
    return int(getattr(settings, "EXTERNAL_UPLOAD_MAX_BYTES", DEFAULT_MAX_BYTES))


def _mb(n: int) -> str:
    return f"{n / 1024 / 1024:.1f} MB" if n >= 1024 * 1024 else f"{n:,} bytes"


# --- reading and checking the upload ---------------------------------------------------


def sniff_upload(head: bytes) -> str:
    """'fits' or 'csv' from the first bytes of the file (never its name or content type)."""
    if head.startswith(FITS_MAGIC):
        return "fits"
    if b"\x00" in head:
        raise ExternalUploadError(
            ["not a FITS file (it does not start with 'SIMPLE  =') and not a CSV text file: "
             "upload a FITS table or a CSV with a header line naming ra, dec, z"]
        )  # fmt: skip
    try:
        text = head.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        if exc.start < len(head) - 4:  # not just a multi-byte character cut at the end
            raise ExternalUploadError(
                ["not a FITS file and not UTF-8 text: upload a FITS table or a CSV with a "
                 "header line naming ra, dec, z"]
            ) from exc  # fmt: skip
        text = head[: exc.start].decode("utf-8-sig")
    first = text.splitlines()[0] if text.strip() else ""
    names = [c.strip().strip('"').lower() for c in first.split(",")]
    if len(names) < 2:
        raise ExternalUploadError(
            ["not a FITS file and not a CSV with a header line: the first line should name "
             "the columns, e.g. 'ra,dec,z,quality'"]
        )  # fmt: skip
    missing = [c for c in REQUIRED if c not in names]
    if missing:
        raise ExternalUploadError(
            [f"CSV header lacks column(s) {', '.join(missing)}: it has "
             f"{', '.join(n for n in names if n) or 'no names'}; ra, dec (degrees) and z are "
             "required"]
        )  # fmt: skip
    return "csv"


def _spool(upload, limit: int) -> tuple[str, bytes, int]:
    """Copy the upload to a temporary file, refusing more than ``limit`` bytes ->
    (path, first bytes, size). The caller deletes the file."""
    size = getattr(upload, "size", None)
    if size is not None and size > limit:
        raise ExternalUploadError([_too_big(size, limit)])
    fd, path = tempfile.mkstemp(prefix="external-", suffix=".upload")
    head = b""
    total = 0
    try:
        with os.fdopen(fd, "wb") as fh:
            upload.seek(0)
            for chunk in upload.chunks():
                total += len(chunk)
                if total > limit:
                    raise ExternalUploadError([_too_big(total, limit, at_least=True)])
                if len(head) < _SNIFF_BYTES:
                    head += chunk[: _SNIFF_BYTES - len(head)]
                fh.write(chunk)
    except BaseException:
        os.unlink(path)
        raise
    return path, head, total


def _too_big(size: int, limit: int, at_least: bool = False) -> str:
    return (
        f"the file is {'over ' if at_least else ''}{_mb(size)}; the limit is {_mb(limit)} "
        "(setting EXTERNAL_UPLOAD_MAX_BYTES): split the catalogue or keep only the columns "
        "ra, dec, z, quality"
    )


QUALITY_MIN, QUALITY_MAX = -(2**15), 2**15 - 1  # quality flags are kept as int16


def _read_csv(path: str) -> dict[str, np.ndarray]:
    """Parse a CSV upload into ra, dec, z, quality (+ the row number of each), listing every
    row that cannot be read. The header may name more columns, in any order and case, and
    may start with a byte-order mark; fields may be quoted."""
    problems: list[str] = []
    values: dict[str, list[float]] = {"ra": [], "dec": [], "z": [], "quality": [], "row": []}
    try:
        with open(path, encoding="utf-8-sig", newline="") as fh:
            reader = csv.reader(fh)
            header = [c.strip().lower() for c in next(reader, [])]
            cols = {c: header.index(c) for c in REQUIRED}
            q_col = header.index("quality") if "quality" in header else None
            for row_no, row in enumerate(reader, start=1):
                if not row or all(not c.strip() for c in row):
                    continue
                if len(row) != len(header):
                    problems.append(
                        f"row {row_no}: {len(row)} values for {len(header)} columns in the header"
                    )
                    continue
                parsed = {}
                for name, i in cols.items():
                    text = row[i].strip()
                    try:
                        parsed[name] = float(text)
                    except ValueError:
                        problems.append(f"column '{name}' row {row_no}: {text!r} is not a number")
                quality = 0
                if q_col is not None and row[q_col].strip():
                    try:
                        quality = int(row[q_col])
                    except ValueError:
                        problems.append(
                            f"column 'quality' row {row_no}: {row[q_col].strip()!r} is not "
                            "an integer (0 = secure, 1 = probable)"
                        )
                    else:
                        if not QUALITY_MIN <= quality <= QUALITY_MAX:  # stored as int16
                            problems.append(
                                f"column 'quality' row {row_no}: {quality} is out of range "
                                f"({QUALITY_MIN} to {QUALITY_MAX}; 0 = secure, 1 = probable)"
                            )
                            quality = 0
                if len(parsed) == len(cols):
                    for name, v in parsed.items():
                        values[name].append(v)
                    values["quality"].append(quality)
                    values["row"].append(row_no)
    except UnicodeDecodeError as exc:
        raise ExternalUploadError(
            [f"the CSV is not UTF-8 text (byte {exc.start} cannot be decoded): save it as UTF-8"]
        ) from exc
    except csv.Error as exc:
        raise ExternalUploadError([f"the CSV cannot be parsed: {exc}"]) from exc
    if not problems and not values["row"]:
        problems.append("the CSV has a header but no rows")
    if problems:
        raise ExternalUploadError(_limit(problems))
    out = {k: np.asarray(values[k], np.float64) for k in REQUIRED}
    out["quality"] = np.asarray(values["quality"], np.int16)
    out["row"] = np.asarray(values["row"], np.int64)
    return out


def _array_problems(cat: ExternalCatalogue) -> list[str]:
    problems: list[str] = []
    if len(cat) == 0:
        return ["the catalogue has no rows"]
    checks = [
        ("ra", cat.ra, ~np.isfinite(cat.ra), "is not a finite number"),
        ("dec", cat.dec, ~np.isfinite(cat.dec), "is not a finite number"),
        ("z", cat.z, ~np.isfinite(cat.z), "is not a finite number"),
        ("ra", cat.ra, np.isfinite(cat.ra) & ((cat.ra < 0) | (cat.ra >= 360)),
         "is outside [0, 360) degrees"),
        ("dec", cat.dec, np.isfinite(cat.dec) & ((cat.dec < -90) | (cat.dec > 90)),
         "is outside [-90, 90] degrees"),
        ("z", cat.z, np.isfinite(cat.z) & (cat.z < 0), "is negative"),
    ]  # fmt: skip
    for name, values, bad, what in checks:
        for i in np.flatnonzero(bad)[:MAX_PROBLEMS]:
            problems.append(f"column '{name}' row {cat.row_of(i)}: {float(values[i])!r} {what}")
        if bad.sum() > MAX_PROBLEMS:
            problems.append(f"column '{name}': {int(bad.sum()) - MAX_PROBLEMS} more such rows")
    return problems


def _limit(problems: list[str]) -> list[str]:
    if len(problems) <= MAX_PROBLEMS:
        return problems
    return problems[:MAX_PROBLEMS] + [f"... and {len(problems) - MAX_PROBLEMS} more problem(s)"]


def read_upload(upload, *, max_bytes: int | None = None) -> ExternalCatalogue:
    """Check and read an uploaded external catalogue (Django UploadedFile or any object with
    ``name``, ``chunks()`` and ``seek()``). Raises :class:`ExternalUploadError`."""
    limit = max_upload_bytes() if max_bytes is None else max_bytes
    name = os.path.basename(getattr(upload, "name", "") or "upload")
    path, head, size = _spool(upload, limit)
    try:
        if size == 0:
            raise ExternalUploadError(["the file is empty"])
        kind = sniff_upload(head)
        typed = f"{path}.{kind}"  # read_external tells FITS from CSV by the suffix
        os.replace(path, typed)
        path = typed
        if kind == "csv":
            # Our own reader: read_external's CSV path (numpy.genfromtxt) cannot name the
            # bad row, and trips on a byte-order mark and on quoted fields.
            cols = _read_csv(path)
        else:
            try:
                with warnings.catch_warnings():  # astropy's verify warnings: we report errors
                    warnings.simplefilter("ignore")
                    cols = read_external(path)
            except Exception as exc:  # any parser failure (astropy, numpy) is a bad upload
                message = str(exc).replace(path, name) or type(exc).__name__
                raise ExternalUploadError(
                    [f"could not be read as a FITS catalogue: {message}"]
                ) from exc
        cat = ExternalCatalogue(
            name=name,
            kind=kind,
            ra=np.atleast_1d(np.asarray(cols["ra"], np.float64)),
            dec=np.atleast_1d(np.asarray(cols["dec"], np.float64)),
            z=np.atleast_1d(np.asarray(cols["z"], np.float64)),
            quality=np.atleast_1d(np.asarray(cols["quality"])),
            row=cols.get("row"),
        )
        problems = _array_problems(cat)
        if problems:
            raise ExternalUploadError(_limit(problems))
        return cat
    finally:
        Path(path).unlink(missing_ok=True)


# --- cross-match against the catalogue ---------------------------------------------------


def _candidate_arrays(cat: ExternalCatalogue, radius_arcsec: float) -> dict[str, np.ndarray]:
    """Catalogue candidates (S/N >= threshold) in the external catalogue's Dec band, read in
    chunks straight into numpy (never one Python object per candidate for the whole set)."""
    pad = radius_arcsec / 3600.0
    qs = Candidate.objects.filter(
        sn__gte=SN_THRESHOLD,
        dec__gte=float(cat.dec.min()) - pad,
        dec__lte=float(cat.dec.max()) + pad,
    ).order_by("pk")
    names = ("pk", "detectid", "ra", "dec", "wave", "sn")
    parts: list[np.ndarray] = []
    buf: list[tuple] = []
    for row in qs.values_list(*names).iterator(chunk_size=_CHUNK):
        buf.append(row)
        if len(buf) >= _CHUNK:
            parts.append(np.array(buf, dtype=np.float64))
            buf = []
    if buf:
        parts.append(np.array(buf, dtype=np.float64))
    table = np.concatenate(parts) if parts else np.zeros((0, len(names)))
    out = {n: table[:, i] for i, n in enumerate(names)}
    out["pk"] = out["pk"].astype(np.int64)
    out["detectid"] = out["detectid"].astype(np.int64)
    return out


def _live_probs(model, pks: np.ndarray) -> np.ndarray:
    """The live model's probability per candidate (NaN where it has not scored it)."""
    prob = np.full(len(pks), np.nan)
    if model is None or len(pks) == 0:
        return prob
    rows = (
        CandidateScore.objects.filter(
            model_version=model, candidate__sn__gte=SN_THRESHOLD,
            candidate_id__gte=int(pks.min()), candidate_id__lte=int(pks.max()),
        )
        .values_list("candidate_id", "prob")
        .iterator(chunk_size=_CHUNK)
    )  # fmt: skip
    ids, ps = [], []
    for cid, p in rows:
        ids.append(cid)
        ps.append(p)
    if ids:
        ids_a, ps_a = np.asarray(ids, np.int64), np.asarray(ps, np.float64)
        pos = np.searchsorted(pks, ids_a)
        ok = (pos < len(pks)) & (pks[np.minimum(pos, len(pks) - 1)] == ids_a)
        prob[pos[ok]] = ps_a[ok]
    return prob


def best_matches(cand: dict, cat: ExternalCatalogue, *, radius_arcsec, max_dwave):
    """Per external source, the index of the nearest candidate within the radius whose line
    sits at Lya of the external z (-1 for none), and its separation (arcsec): the same rule
    as :func:`mlcore.cnn.evaluation.crossmatch_external`, for listing examples."""
    best = np.full(len(cat), -1, np.int64)
    best_sep = np.full(len(cat), np.nan)
    if len(cat) == 0 or len(cand["ra"]) == 0:
        return best, best_sep
    i_ext, i_cand, sep = pairs_within(cand["ra"], cand["dec"], cat.ra, cat.dec, radius_arcsec)
    lya = LYA_REST * (1.0 + cat.z)
    ok = np.abs(cand["wave"][i_cand] - lya[i_ext]) <= max_dwave
    i_ext, i_cand, sep = i_ext[ok], i_cand[ok], sep[ok]
    order = np.lexsort((sep, i_ext))
    i_ext, i_cand, sep = i_ext[order], i_cand[order], sep[order]
    first = np.ones(len(i_ext), bool)
    first[1:] = i_ext[1:] != i_ext[:-1]
    best[i_ext[first]] = i_cand[first]
    best_sep[i_ext[first]] = sep[first]
    return best, best_sep


def validate_against_external(
    cat: ExternalCatalogue,
    *,
    cut: float = 0.5,
    radius_arcsec: float = RADIUS_ARCSEC,
    max_dwave: float = MAX_DWAVE,
) -> dict:
    """Cross-match ``cat`` with the catalogue; recovery per regime by the live model (or
    the matches alone, without one). Returns a JSON-friendly report with a few examples."""
    model = live_model()
    cand = _candidate_arrays(cat, radius_arcsec)
    prob = _live_probs(model, cand["pk"])
    result = crossmatch_external(
        cand["ra"], cand["dec"], cand["wave"], cand["sn"], prob,
        cat.ra, cat.dec, cat.z,
        radius_arcsec=radius_arcsec, max_dwave=max_dwave, threshold=cut,
    )  # fmt: skip
    best, sep = best_matches(cand, cat, radius_arcsec=radius_arcsec, max_dwave=max_dwave)
    matched = best >= 0
    sn_best = np.where(matched, cand["sn"][np.maximum(best, 0)] if len(cand["sn"]) else 0, -1.0)
    high = regime_index(sn_best) == 1
    masks = {"high": matched & high, "low": matched & ~high}
    masks["overall"] = matched
    regimes = []
    labels = {
        "high": f"S/N > {SN_LOW_MAX}",
        "low": f"{SN_THRESHOLD} ≤ S/N ≤ {SN_LOW_MAX}",
        "overall": f"S/N ≥ {SN_THRESHOLD}",
    }
    for key in ("high", "low", "overall"):
        r = result[key]
        in_reg = masks[key]
        n_unscored = int(np.isnan(prob[best[in_reg]]).sum()) if in_reg.any() else 0
        regimes.append(
            {
                "key": key,
                "label": labels[key],
                "n_matched": r["n_matched"],
                "n_recovered": r["n_recovered"] if model is not None else None,
                "recovery": r["recovery"] if model is not None else None,
                "recovery_pct": (
                    round(100 * r["recovery"], 1)
                    if model is not None and r["recovery"] is not None
                    else None
                ),
                "n_unscored": n_unscored if model is not None else None,
            }
        )
    examples = []
    for key in ("high", "low"):
        for i in np.flatnonzero(masks[key])[:N_EXAMPLES]:
            b = best[i]
            p = prob[b]
            examples.append(
                {
                    "row": int(i) + 1,
                    "ra": round(float(cat.ra[i]), 6),
                    "dec": round(float(cat.dec[i]), 6),
                    "z": round(float(cat.z[i]), 4),
                    "detectid": int(cand["detectid"][b]),
                    "sep_arcsec": round(float(sep[i]), 2),
                    "dwave": round(float(cand["wave"][b] - LYA_REST * (1 + cat.z[i])), 2),
                    "sn": round(float(cand["sn"][b]), 2),
                    "regime": key,
                    "prob": None if math.isnan(p) else round(float(p), 3),
                    "recovered": None if (model is None or math.isnan(p)) else bool(p >= cut),
                }
            )
    return {
        "name": cat.name,
        "kind": cat.kind,
        "n_external": result["n_external"],
        "n_matched": int(matched.sum()),
        "n_unmatched": result["n_unmatched"],
        "n_candidates_searched": len(cand["ra"]),
        "radius_arcsec": radius_arcsec,
        "max_dwave": max_dwave,
        "cut": cut,
        "model": {"id": model.pk, "name": str(model)} if model is not None else None,
        "regimes": regimes,
        "examples": examples,
        # per external row, the detectid it matched (None: no match)
        "matched_detectid": [int(cand["detectid"][b]) if b >= 0 else None for b in best],
    }
