"""A corpus of broken survey files, and how to feed one to ingest and judge the outcome.

Used by ``tests/test_ingest_corpus.py`` (the unit corpus) and ``bench/bench_bad_input.py``
(the same plus many more truncation offsets and random byte corruptions); the HETDEX
three-file cases are in :mod:`tests.corpus_hetdex`. Every
:class:`Case` writes one file, from a small valid simulated survey
(:func:`tests.factories.make_survey`, written with :func:`mlcore.survey_io.write_survey`),
and breaks it one way. ``expect`` says what ingest must do with it:

- ``"refuse"``: raise :class:`~labelapp.services.survey.ingest.IngestError` whose message names
  the file and matches ``match`` (a regular expression, case-insensitive);
- ``"accept"``: a valid if odd file (a huge header): ingested completely;
- ``"any"``: random byte corruption, which may hit pixels only and leave a valid file:
  refused or ingested, never anything else.

:func:`run_case` ingests a case next to a good batch ingested before it and reports a
:class:`Outcome`: crash (any other exception), partial data (rows, a batch or a store
directory left behind by a refused file) and data lost (the good batch changed).
"""

from __future__ import annotations

import gzip
import hashlib
import json
import re
import shutil
import tempfile
import traceback
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mlcore.survey import CATALOG_COLUMNS, TRUTH_COLUMNS, Survey
from mlcore.survey_io import FITS_HDU, HDF5_NODE, write_survey
from tests.factories import make_survey

N = 12  # rows of the corpus' base survey
GOOD_N = 8  # rows of the good batch ingested before every case
GOOD_FIRST_ID = 1_000_000
BASE_FIRST_ID = 2_000_000

Builder = Callable[[Path], Path]  # writes the case's file into a directory, returns its path


@dataclass(frozen=True)
class Case:
    id: str  # unique, e.g. "fits-truncated-50pct"
    category: str  # one row of the bench's table
    build: Builder
    expect: str = "refuse"  # "refuse" | "accept" | "any"
    match: str = ""  # regex the refusal must match (case-insensitive)


# --- building blocks ----------------------------------------------------------------------


def base_survey(n: int = N, seed: int = 7) -> Survey:
    return make_survey(n, seed=seed, first_id=BASE_FIRST_ID)


def good_survey() -> Survey:
    return make_survey(GOOD_N, seed=1, first_id=GOOD_FIRST_ID)


def _suffix(fmt: str) -> str:
    return ".fits" if fmt == "fits" else ".h5"


def _survey_file(name: str, fmt: str, edit: Callable[[Survey], None] | None = None) -> Builder:
    """The base survey, edited in memory, written with the project's writer."""

    def build(d: Path) -> Path:
        s = base_survey()
        if edit is not None:
            edit(s)
        return write_survey(d / f"{name}{_suffix(fmt)}", s, fmt=fmt)

    return build


def _raw(name: str, data: bytes | Callable[[], bytes]) -> Builder:
    def build(d: Path) -> Path:
        path = d / name
        path.write_bytes(data() if callable(data) else data)
        return path

    return build


def _valid_bytes(fmt: str) -> bytes:
    tmp = Path(tempfile.mkdtemp(prefix="corpus-"))
    try:
        return write_survey(tmp / f"v{_suffix(fmt)}", base_survey(), fmt=fmt).read_bytes()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _truncated(fmt: str, *, frac: float | None = None, offset: int | None = None) -> Builder:
    """The valid file cut at ``frac`` of its length, or at byte ``offset`` (negative: from
    the end)."""

    def build(d: Path) -> Path:
        path = _survey_file("whole", fmt)(d)
        data = path.read_bytes()
        path.unlink()
        cut = int(len(data) * frac) if frac is not None else offset % len(data)
        out = d / f"truncated-{cut}{_suffix(fmt)}"
        out.write_bytes(data[:cut])
        return out

    return build


def _fits_edit(name: str, edit: Callable[[list], list], survey: Survey | None = None) -> Builder:
    """The valid FITS file, its HDU list rewritten by ``edit`` (astropy)."""

    def build(d: Path) -> Path:
        from astropy.io import fits

        path = write_survey(d / f"{name}.fits", survey or base_survey(), fmt="fits")
        with fits.open(path) as hdul:
            hdus = edit([h.copy() for h in hdul])
            fits.HDUList(hdus).writeto(path, overwrite=True, output_verify="silentfix")
        return path

    return build


def _replace_hdu(name: str, make: Callable[[object], object]) -> Callable[[list], list]:
    def edit(hdus: list) -> list:
        return [make(h) if h.name == name else h for h in hdus]

    return edit


def _catalog_with(col_name: str, fmt: str, array) -> Callable[[list], list]:
    """Replace (or with ``array=None`` drop) one catalogue column."""

    def edit(hdus: list) -> list:
        from astropy.io import fits

        cat = next(h for h in hdus if h.name == "CATALOG")
        cols = [c for c in cat.columns if c.name != col_name]
        if array is not None:
            cols.append(fits.Column(name=col_name, format=fmt, array=array(cat.data)))
        new = fits.BinTableHDU.from_columns(cols, name="CATALOG")
        return [new if h.name == "CATALOG" else h for h in hdus]

    return edit


def _image(name: str, data) -> Callable[[list], list]:
    def edit(hdus: list) -> list:
        from astropy.io import fits

        return [fits.ImageHDU(data(h.data), name=name) if h.name == name else h for h in hdus]

    return edit


def _h5_layout(survey: Survey) -> dict[str, dict[str, np.ndarray]]:
    """The survey as HDF5 groups of plain datasets (the layout other tools write)."""
    cols = {k: np.asarray(survey.catalog[k]) for k in CATALOG_COLUMNS}
    if survey.truth is not None:
        cols.update({k: np.asarray(survey.truth[k]) for k in TRUTH_COLUMNS})
    cols = {k: (v.astype("S") if v.dtype.kind == "U" else v) for k, v in cols.items()}
    return {
        "Detections": cols,
        "FiberImages": {
            "detectid": cols["detectid"],
            "im_wave": survey.im_wave,
            "im_sum": survey.im_sum,
            "im_array": survey.im_array,
        },
        "Spec1D": {
            "detectid": cols["detectid"],
            "spec1D": survey.spec1d,
            "spec1D_err": survey.spec1d_err,
        },
    }


def _h5_groups(name: str, edit: Callable[[dict, object], None]) -> Builder:
    """An HDF5 file of groups of datasets; ``edit(layout, h5file)`` breaks the layout (a
    dict, before writing) and may also write odd nodes itself (the open file)."""

    def build(d: Path) -> Path:
        import h5py

        s = base_survey()
        layout = _h5_layout(s)
        path = d / f"{name}.h5"
        with h5py.File(path, "w") as h5:
            h5.attrs["SIMMETA"] = json.dumps(s.meta)
            edit(layout, h5)
            for node, members in layout.items():
                if node in h5:
                    continue
                group = h5.create_group(node)
                for member, arr in members.items():
                    group.create_dataset(member, data=arr)
        return path

    return build


def _h5_set(node: str, member: str, value) -> Callable[[dict, object], None]:
    def edit(layout: dict, h5) -> None:
        if value is None:
            layout[node].pop(member)
        else:
            layout[node][member] = value(layout[node][member])

    return edit


def _garbage(data: bytearray, start: int, stop: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    data[start:stop] = rng.integers(0, 256, stop - start, dtype=np.uint8).tobytes()


def _fits_garbage_data(hdu_names: tuple[str, ...], seed: int = 0) -> Builder:
    """Right extension names and headers, random bytes where the data of ``hdu_names`` is."""

    def build(d: Path) -> Path:
        from astropy.io import fits

        path = _survey_file("garbage", "fits")(d)
        with fits.open(path) as hdul:
            spans = [
                (h.fileinfo()["datLoc"], h.fileinfo()["datSpan"])
                for h in hdul
                if h.name in hdu_names
            ]
        data = bytearray(path.read_bytes())
        for k, (loc, span) in enumerate(spans):
            _garbage(data, loc, loc + span, seed + k)
        path.write_bytes(bytes(data))
        return path

    return build


def _h5_data_spans(path: Path) -> list[tuple[str, int, int]]:
    """(node, byte offset, size) of every stored piece of raw data of the survey's nodes."""
    import h5py

    spans = []
    with h5py.File(path, "r") as h5:
        for node in ("Detections", "FiberImages", "Spec1D"):
            ds = h5[node]
            if ds.chunks:
                for i in range(ds.id.get_num_chunks()):
                    info = ds.id.get_chunk_info(i)
                    spans.append((node, info.byte_offset, info.size))
            else:
                spans.append((node, ds.id.get_offset(), ds.id.get_storage_size()))
    return spans


def _h5_garbage_data(nodes: tuple[str, ...], seed: int = 0) -> Builder:
    def build(d: Path) -> Path:
        path = _survey_file("garbage", "hdf5")(d)
        data = bytearray(path.read_bytes())
        for k, (node, loc, size) in enumerate(_h5_data_spans(path)):
            if node in nodes:
                _garbage(data, loc, loc + size, seed + k)
        path.write_bytes(bytes(data))
        return path

    return build


def _corrupted(fmt: str, seed: int, *, n_bytes: int = 16, region: str = "any") -> Builder:
    """The valid file with ``n_bytes`` random bytes overwritten at random places.

    ``region``: ``"any"`` (anywhere), ``"meta"`` (headers / HDF5 object headers and
    B-trees: everything before the first data byte of the catalogue)."""

    def build(d: Path) -> Path:
        path = _survey_file(f"corrupt-{seed}", fmt)(d)
        data = bytearray(path.read_bytes())
        rng = np.random.default_rng(seed)
        hi = len(data)
        if region == "meta":
            hi = (
                _h5_data_spans(path)[0][1]
                if fmt == "hdf5"
                else 2880 * 2  # primary header + start of the CATALOG header
            )
        for pos in rng.integers(0, hi, n_bytes):
            data[int(pos)] = int(rng.integers(0, 256))
        path.write_bytes(bytes(data))
        return path

    return build


def _png() -> bytes:
    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = zlib.crc32(kind + body).to_bytes(4, "big")
        return len(body).to_bytes(4, "big") + kind + body + crc

    ihdr = (1).to_bytes(4, "big") * 2 + bytes([8, 0, 0, 0, 0])
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b"\x00\x00"))
        + chunk(b"IEND", b"")
    )


# --- the cases ----------------------------------------------------------------------------

TRUNCATED = (
    "truncated|cannot be opened|cannot be read|missing|not a FITS or HDF5|no CATALOG table HDU"
)
TRUNCATION_FRACS = (0.001, 0.01, 0.1, 0.25, 0.5, 0.75, 0.9, 0.99, 0.9999)


def _set_catalog(name: str, row: int, value) -> Callable[[Survey], None]:
    def edit(s: Survey) -> None:
        s.catalog[name] = s.catalog[name].copy()
        s.catalog[name][row] = value

    return edit


def _set_pixel(name: str, index: tuple, value) -> Callable[[Survey], None]:
    def edit(s: Survey) -> None:
        getattr(s, name)[index] = value

    return edit


def _dup_ids(rows: list[int], to: int | None = None) -> Callable[[Survey], None]:
    def edit(s: Survey) -> None:
        ids = s.catalog["detectid"]
        for r in rows:
            ids[r] = ids[0] if to is None else to + r

    return edit


def _fits_cases() -> list[Case]:
    from astropy.io import fits

    cases: list[Case] = []

    def add(id_, category, build, match="", expect="refuse"):
        cases.append(Case(f"fits-{id_}", category, build, expect, match))

    # truncated
    for frac in TRUNCATION_FRACS:
        add(f"truncated-{frac:g}", "truncated", _truncated("fits", frac=frac), TRUNCATED)
    for offset in (8, 80, 2880, 2880 * 2, -1, -2880, -2881):
        add(f"truncated-at-{offset}", "truncated", _truncated("fits", offset=offset), TRUNCATED)
    # wrong shapes
    add(
        "shape-im_sum-99-cols",
        "shape",
        _fits_edit("s", _image("IM_SUM", lambda a: a[..., :99])),
        r"HDU IM_SUM: has shape \(12, 9, 99\); expected \(12, 9, 100\)",
    )
    add(
        "shape-im_array-3-fibers",
        "shape",
        _fits_edit("s", _image("IM_ARRAY", lambda a: a[:, :3])),
        r"HDU IM_ARRAY: has shape",
    )
    add(
        "shape-im_wave-1d",
        "shape",
        _fits_edit("s", _image("IM_WAVE", lambda a: a[:, 0])),
        r"HDU IM_WAVE: has shape \(12,\)",
    )
    add(
        "shape-spec1d-extra-row",
        "shape",
        _fits_edit("s", _image("SPEC1D", lambda a: np.vstack([a, a[:1]]))),
        r"N = 12 catalogue",
    )
    add(
        "shape-spec1d_err-transposed",
        "shape",
        _fits_edit("s", _image("SPEC1D_ERR", lambda a: a.T.copy())),
        r"HDU SPEC1D_ERR: has shape",
    )
    add(
        "shape-im_sum-scalar",
        "shape",
        _fits_edit("s", _replace_hdu("IM_SUM", lambda h: fits.ImageHDU(name="IM_SUM"))),
        r"HDU IM_SUM: has shape",
    )
    add(
        "shape-im_sum-as-table",
        "shape",
        _fits_edit(
            "s",
            _replace_hdu(
                "IM_SUM",
                lambda h: fits.BinTableHDU.from_columns(
                    [fits.Column(name="x", format="E", array=np.zeros(12, np.float32))],
                    name="IM_SUM",
                ),
            ),
        ),
        r"HDU IM_SUM",
    )
    add(
        "shape-flux-vector-column",
        "shape",
        _fits_edit("s", _catalog_with("flux", "2E", lambda d: np.stack([d["flux"]] * 2, 1))),
        r"column 'flux'.*expected one value per row",
    )
    add(
        "shape-images-one-row-short",
        "shape",
        _fits_edit(
            "s",
            lambda hs: [
                fits.ImageHDU(h.data[:-1], name=h.name) if h.name in FITS_HDU.values() else h
                for h in hs
            ],
        ),
        r"N = 12 catalogue rows",
    )
    # NaN / inf
    for col in ("ra", "dec", "wave", "flux", "sn", "apcor"):
        for value, word in ((np.nan, "nan"), (np.inf, "inf"), (-np.inf, "-inf")):
            if col == "apcor" and word == "nan":
                # apcor may be missing (stored as NULL), infinite never
                add(f"{word}-in-{col}", "nan-inf", _survey_file("n", "fits",
                    _set_catalog(col, 4, value)), expect="accept")  # fmt: skip
                continue
            add(
                f"{word}-in-{col}",
                "nan-inf",
                _survey_file("n", "fits", _set_catalog(col, 4, value)),
                rf"column '{col}' row 4 \(detectid 2000004\): value is NaN or infinite",
            )
    for name, index in (
        ("im_sum", (3, 4, 50)),
        ("im_array", (5, 2, 0, 0)),
        ("im_wave", (0, 99)),
        ("spec1d", (11, 0)),
        ("spec1d_err", (7, 1035)),
    ):
        hdu = FITS_HDU[name]
        add(
            f"inf-pixel-{name}",
            "nan-inf",
            _survey_file("p", "fits", _set_pixel(name, index, np.inf)),
            rf"HDU {hdu} row {index[0]} .*infinite pixel",
        )
        add(
            f"nan-pixel-{name}",
            "nan-inf",
            _survey_file("p", "fits", _set_pixel(name, index, np.nan)),
            rf"HDU {hdu} row {index[0]} .*NaN pixel",
        )
    add(
        "nan-every-pixel",
        "nan-inf",
        _survey_file("p", "fits", lambda s: s.spec1d.fill(np.nan)),
        r"HDU SPEC1D rows 0 \(detectid 2000000\), 1 .* and 7 more: contains NaN",
    )
    # duplicated detectids
    add(
        "dup-id-two-rows",
        "duplicate",
        _survey_file("d", "fits", _dup_ids([5])),
        r"rows 0 \(detectid 2000000\), 5 .*appear more than once",
    )
    add(
        "dup-id-all-rows",
        "duplicate",
        _survey_file("d", "fits", lambda s: s.catalog["detectid"].fill(7)),
        r"appear more than once",
    )
    add(
        "dup-id-already-ingested",
        "duplicate",
        _survey_file("d", "fits", _dup_ids([3], to=GOOD_FIRST_ID)),
        r"row 3 \(detectid 1000003\).*already ingested from another file",
    )
    add(
        "dup-id-whole-good-batch",
        "duplicate",
        _survey_file(
            "d",
            "fits",
            lambda s: s.catalog["detectid"].__setitem__(
                slice(None), np.arange(GOOD_FIRST_ID, GOOD_FIRST_ID + N)
            ),
        ),
        r"8 detectid\(s\) were already ingested",
    )
    # wrong dtypes
    for col, fmt_code, conv in (
        ("detectid", "D", lambda d: d["detectid"] + 0.5),
        ("detectid", "20A", lambda d: d["detectid"].astype("S20")),
        ("wave", "12A", lambda d: d["wave"].astype("S12")),
        ("sn", "L", lambda d: d["sn"] > 5),
        ("ra", "8A", lambda d: np.array([b"12h34m"] * len(d))),
        ("field", "E", lambda d: np.zeros(len(d), np.float32)),
        ("truth_real", "5A", lambda d: np.array([b"yes"] * len(d))),
    ):
        add(
            f"dtype-{col}-as-{fmt_code}",
            "dtype",
            _fits_edit("t", _catalog_with(col, fmt_code, conv)),
            rf"column '{col}': has dtype .*; expected",
        )
    add(
        "dtype-im_sum-int32",
        "dtype",
        _fits_edit("t", _image("IM_SUM", lambda a: a.astype(np.int32))),
        r"HDU IM_SUM: has dtype int32; expected float32",
    )
    add(
        "dtype-spec1d-uint8",
        "dtype",
        _fits_edit("t", _image("SPEC1D", lambda a: a.astype(np.uint8))),
        r"HDU SPEC1D: has dtype uint8",
    )
    add(
        "dtype-field-not-text",
        "dtype",
        _fits_edit(
            "t", _catalog_with("field", "6A", lambda d: np.array([b"\xff\xfe\x00ab\x80"] * len(d)))
        ),
        r"column 'field'.*not (ASCII )?text",
    )
    add(
        "unknown-truth-type",
        "dtype",
        _fits_edit(
            "t", _catalog_with("truth_type", "12A", lambda d: np.array([b"unicorn"] * len(d)))
        ),
        r"unknown type 'unicorn'",
    )
    # values out of range
    add(
        "wave-outside-instrument",
        "range",
        _survey_file("r", "fits", _set_catalog("wave", 2, 9000.0)),
        r"row 2 .*9000.0 A is outside",
    )
    add(
        "dec-outside-sky",
        "range",
        _survey_file("r", "fits", _set_catalog("dec", 1, 91.0)),
        r"column 'dec' row 1.*outside",
    )

    # huge headers: valid files, ingested; a broken SIMMETA is refused
    def many_keywords(hs):
        for i in range(3000):
            hs[0].header[f"K{i:06d}"] = (i, "x" * 40)
        return hs

    def long_history(hs):
        for i in range(5000):
            hs[0].header.add_history(f"step {i}: " + "h" * 60)
        return hs

    def huge_meta(hs):
        meta = json.loads(hs[0].header["SIMMETA"])
        meta["notes"] = "n" * 200_000
        hs[0].header["SIMMETA"] = json.dumps(meta)
        return hs

    add("header-3000-keywords", "header", _fits_edit("h", many_keywords), expect="accept")
    add("header-5000-history", "header", _fits_edit("h", long_history), expect="accept")
    add("header-200kB-simmeta", "header", _fits_edit("h", huge_meta), expect="accept")
    add(
        "header-simmeta-not-json",
        "header",
        _fits_edit("h", lambda hs: (hs[0].header.__setitem__("SIMMETA", "{not json"), hs)[1]),
        r"SIMMETA is not valid JSON",
    )
    add(
        "header-huge-on-catalog",
        "header",
        _fits_edit("h", lambda hs: [*hs[:1], _many_cards(hs[1]), *hs[2:]]),
        expect="accept",
    )
    # zero rows
    add(
        "zero-rows",
        "empty",
        lambda d: write_survey(d / "zero.fits", make_survey(0), fmt="fits"),
        r"has no rows",
    )
    add(
        "images-zero-rows",
        "empty",
        _fits_edit(
            "z",
            lambda hs: [
                fits.ImageHDU(h.data[:0], name=h.name) if h.name in FITS_HDU.values() else h
                for h in hs
            ],
        ),
        r"has shape \(0,",
    )
    # missing HDUs / columns
    for hdu in FITS_HDU.values():
        add(
            f"missing-hdu-{hdu}",
            "missing",
            _fits_edit("m", lambda hs, hdu=hdu: [h for h in hs if h.name != hdu]),
            rf"HDU {hdu}: missing",
        )
    add(
        "missing-hdu-CATALOG",
        "missing",
        _fits_edit("m", lambda hs: [h for h in hs if h.name != "CATALOG"]),
        r"no CATALOG table HDU",
    )
    add(
        "catalog-is-an-image",
        "missing",
        _fits_edit(
            "m", _replace_hdu("CATALOG", lambda h: fits.ImageHDU(np.zeros((2, 2)), name="CATALOG"))
        ),
        r"HDU CATALOG is not a binary table",
    )
    add("primary-only", "missing", _fits_edit("m", lambda hs: hs[:1]), r"no CATALOG table HDU")
    for col in ("detectid", "wave", "sn", "field"):
        add(
            f"missing-column-{col}",
            "missing",
            _fits_edit("m", _catalog_with(col, "", None)),
            rf"column '{col}': missing \(required column\)",
        )
    add(
        "missing-every-column",
        "missing",
        _fits_edit(
            "m",
            _replace_hdu(
                "CATALOG",
                lambda h: fits.BinTableHDU.from_columns(
                    [fits.Column(name="other", format="J", array=np.arange(12))], name="CATALOG"
                ),
            ),
        ),
        r"column 'detectid': missing",
    )
    # right extension names, garbage data
    for hdus in (
        ("CATALOG",),
        ("IM_SUM",),
        ("SPEC1D_ERR",),
        tuple(FITS_HDU.values()),
        ("CATALOG", *FITS_HDU.values()),
    ):
        label = "all" if len(hdus) > 2 else "-".join(hdus)
        if len(hdus) == 6:
            label = "everything"
        add(
            f"garbage-data-{label}",
            "garbage",
            _fits_garbage_data(hdus),
            r"NaN|infinite|outside|appear more than once|not (ASCII )?text|unknown type"
            r"|detectid is negative|has no row in|2\*\*63",
        )
    add(
        "garbage-after-magic",
        "garbage",
        _raw("magic.fits", b"SIMPLE  =" + bytes(range(256)) * 20),
        r"cannot be opened as FITS",
    )
    add(
        "header-without-end",
        "garbage",
        _raw("noend.fits", (b"SIMPLE  =                    T" + b" " * 50) * 36),
        r"cannot be opened as FITS|truncated",
    )
    return cases


def _many_cards(hdu):
    for i in range(2000):
        hdu.header[f"C{i:06d}"] = "c" * 60
    return hdu


def _hdf5_cases() -> list[Case]:
    cases: list[Case] = []

    def add(id_, category, build, match="", expect="refuse"):
        cases.append(Case(f"hdf5-{id_}", category, build, expect, match))

    for frac in TRUNCATION_FRACS:
        add(f"truncated-{frac:g}", "truncated", _truncated("hdf5", frac=frac), TRUNCATED)
    for offset in (4, 8, 96, 512, -1, -4096):
        add(f"truncated-at-{offset}", "truncated", _truncated("hdf5", offset=offset), TRUNCATED)
    # wrong shapes (groups of datasets: the layout a scientist's tool may write)
    add(
        "shape-im_sum-99-cols",
        "shape",
        _h5_groups("s", _h5_set("FiberImages", "im_sum", lambda a: a[..., :99])),
        r"/FiberImages/im_sum: has shape \(12, 9, 99\)",
    )
    add(
        "shape-im_array-flat",
        "shape",
        _h5_groups("s", _h5_set("FiberImages", "im_array", lambda a: a.reshape(len(a), -1))),
        r"/FiberImages/im_array: has shape",
    )
    add(
        "shape-spec1D-short",
        "shape",
        _h5_groups("s", _h5_set("Spec1D", "spec1D", lambda a: a[:-2])),
        r"/Spec1D/spec1D: has shape \(10, 1036\)",
    )
    add(
        "shape-spec1D_err-scalar",
        "shape",
        _h5_groups("s", _h5_set("Spec1D", "spec1D_err", lambda a: np.float32(1.0))),
        r"/Spec1D/spec1D_err: has shape \(\)",
    )
    add(
        "shape-column-2d",
        "shape",
        _h5_groups("s", _h5_set("Detections", "flux", lambda a: np.stack([a, a], 1))),
        r"column 'flux'.*expected one value per row",
    )
    add(
        "shape-column-scalar",
        "shape",
        _h5_groups("s", _h5_set("Detections", "sn", lambda a: np.float32(5))),
        r"column 'sn'.*expected one value per row",
    )
    add(
        "shape-detectid-scalar",
        "shape",
        _h5_groups("s", _h5_set("Detections", "detectid", lambda a: np.int64(5))),
        r"column 'detectid'.*expected one value per row",
    )
    add(
        "shape-columns-differ",
        "shape",
        _h5_groups("s", _h5_set("Detections", "wave", lambda a: a[:-3])),
        r"columns have different lengths",
    )

    def member_is_group(layout, h5):
        layout["FiberImages"].pop("im_sum")
        h5.create_group("FiberImages/im_sum")

    add(
        "shape-im_sum-is-a-group", "shape", _h5_groups("s", member_is_group), r"/FiberImages/im_sum"
    )

    def detections_scalar(layout, h5):
        h5.create_dataset("Detections", data=np.int64(3))

    add(
        "detections-scalar-dataset",
        "shape",
        _h5_groups("s", detections_scalar),
        r"/Detections is neither a table nor a group",
    )

    def detections_scalar_compound(layout, h5):
        rec = np.zeros((), dtype=[("detectid", "i8"), ("wave", "f4")])
        h5.create_dataset("Detections", data=rec)

    add(
        "detections-scalar-table",
        "shape",
        _h5_groups("s", detections_scalar_compound),
        r"/Detections|column 'detectid'",
    )
    # NaN / inf
    for col in ("ra", "wave", "flux_err", "chi2"):
        for value, word in ((np.nan, "nan"), (np.inf, "inf")):
            add(
                f"{word}-in-{col}",
                "nan-inf",
                _survey_file("n", "hdf5", _set_catalog(col, 9, value)),
                rf"/Detections column '{col}' row 9 .*NaN or infinite",
            )
    for name, index in (("im_sum", (0, 0, 0)), ("im_array", (11, 3, 8, 99)), ("spec1d", (6, 3))):
        node, member = HDF5_NODE[name]
        for value, word in ((np.nan, "NaN"), (np.inf, "infinite")):
            add(
                f"{word.lower()}-pixel-{name}",
                "nan-inf",
                _survey_file("p", "hdf5", _set_pixel(name, index, value)),
                rf"/{node}/{member} row {index[0]} .*{word} pixel",
            )
    # duplicated detectids
    add(
        "dup-id-two-rows",
        "duplicate",
        _survey_file("d", "hdf5", _dup_ids([11])),
        r"appear more than once",
    )
    add(
        "dup-id-already-ingested",
        "duplicate",
        _survey_file("d", "hdf5", _dup_ids([0, 1], to=GOOD_FIRST_ID)),
        r"2 detectid\(s\) were already ingested",
    )
    # wrong dtypes
    for node, member, conv, what in (
        ("Detections", "detectid", lambda a: a.astype(np.float64), "column 'detectid'"),
        ("Detections", "dec", lambda a: a.astype("S16"), "column 'dec'"),
        ("Detections", "shotid", lambda a: np.array([b"20190101v001"] * len(a)), "column 'shotid'"),
        ("Detections", "linewidth", lambda a: a.astype(np.complex64), "column 'linewidth'"),
        ("FiberImages", "im_sum", lambda a: a.astype(np.int16), "/FiberImages/im_sum"),
        ("FiberImages", "im_wave", lambda a: a.astype("S8"), "/FiberImages/im_wave"),
        ("Spec1D", "spec1D_err", lambda a: a.astype(np.complex64), "/Spec1D/spec1D_err"),
    ):
        add(
            f"dtype-{member}-{np.asarray(conv(np.zeros(2))).dtype.name}",
            "dtype",
            _h5_groups("t", _h5_set(node, member, conv)),
            rf"{what}.*has dtype",
        )
    add(
        "dtype-field-not-text",
        "dtype",
        _h5_groups(
            "t", _h5_set("Detections", "field", lambda a: np.array([b"\xff\x80x"] * len(a)))
        ),
        r"column 'field'.*not (ASCII )?text",
    )

    # huge headers (root attributes)
    def many_attrs(layout, h5):
        for i in range(3000):
            h5.attrs[f"K{i:06d}"] = "x" * 40

    def huge_attr(layout, h5):
        h5.attrs["HISTORY"] = "\n".join(f"step {i}: " + "h" * 60 for i in range(5000))

    add("attrs-3000-keys", "header", _h5_groups("h", many_attrs), expect="accept")
    add("attrs-350kB-history", "header", _h5_groups("h", huge_attr), expect="accept")
    add(
        "attrs-simmeta-not-json",
        "header",
        _h5_groups("h", lambda layout, h5: h5.attrs.__setitem__("SIMMETA", "[1, 2")),
        r"SIMMETA is not valid JSON",
    )
    # zero rows
    add(
        "zero-rows",
        "empty",
        lambda d: write_survey(d / "zero.h5", make_survey(0), fmt="hdf5"),
        r"has no rows",
    )
    # missing nodes / members / columns
    for node in ("FiberImages", "Spec1D"):
        add(
            f"missing-node-{node}",
            "missing",
            _h5_groups("m", lambda layout, h5, node=node: layout.pop(node)),
            rf"/{node}/.*missing",
        )
    add(
        "missing-node-Detections",
        "missing",
        _h5_groups("m", lambda layout, h5: layout.pop("Detections")),
        r"no /Detections table",
    )
    for node, member in HDF5_NODE.values():
        add(
            f"missing-{member}",
            "missing",
            _h5_groups("m", _h5_set(node, member, None)),
            rf"/{node}/{member}: missing",
        )
    for col in ("detectid", "flux", "field"):
        add(
            f"missing-column-{col}",
            "missing",
            _h5_groups("m", _h5_set("Detections", col, None)),
            rf"column '{col}': missing",
        )
    add(
        "empty-hdf5",
        "missing",
        _h5_groups("m", lambda layout, h5: layout.clear()),
        r"no /Detections table",
    )
    # right names, garbage data
    for nodes in (
        ("Detections",),
        ("FiberImages",),
        ("Spec1D",),
        ("Detections", "FiberImages", "Spec1D"),
    ):
        label = "all" if len(nodes) == 3 else nodes[0]
        add(
            f"garbage-data-{label}",
            "garbage",
            _h5_garbage_data(nodes),
            r"NaN|infinite|outside|appear more than once|not (ASCII )?text|unknown type"
            r"|detectid is negative|has no row in|2\*\*63",
        )
    add(
        "garbage-after-magic",
        "garbage",
        _raw("magic.h5", b"\x89HDF\r\n\x1a\n" + bytes(range(256)) * 20),
        r"cannot be opened as HDF5",
    )
    return cases


def _not_survey_cases() -> list[Case]:
    cases: list[Case] = []

    def add(id_, build, match=r"not a FITS or HDF5 file"):
        cases.append(Case(f"other-{id_}", "not-survey", build, "refuse", match))

    rng = np.random.default_rng(0)
    add("random-bytes", _raw("random.fits", rng.integers(0, 256, 50_000, dtype=np.uint8).tobytes()))
    add("png", _raw("picture.fits", _png()))
    add("text", _raw("notes.fits", b"detectid,wave\n1,4000\n"))
    add("json", _raw("survey.h5", json.dumps({"detectid": [1, 2]}).encode()))
    add("empty-file", _raw("empty.fits", b""), r"is empty")
    add("one-byte", _raw("one.fits", b"S"))
    add("gzip-of-fits", lambda d: _raw("survey.fits.gz", gzip.compress(_valid_bytes("fits")))(d))
    add("zip", _raw("survey.zip", b"PK\x03\x04" + bytes(200)))
    add("npy", lambda d: _npy(d))
    add("utf16-text", _raw("u.fits", "SIMPLE  = T".encode("utf-16")))
    add("lowercase-simple", _raw("lower.fits", b"simple  =                    T" + b" " * 2850))
    add("directory", lambda d: _mkdir(d / "adir.fits"), r"is a directory")
    add("missing-file", lambda d: d / "does-not-exist.fits", r"cannot be read|no such file")
    return cases


def _npy(d: Path) -> Path:
    path = d / "cutouts.fits"
    with open(path, "wb") as fh:
        np.save(fh, np.zeros((3, 9, 100), np.float32))
    return path


def _mkdir(path: Path) -> Path:
    path.mkdir()
    return path


def random_cases(n_per_format: int, *, first_seed: int = 0) -> list[Case]:
    """Random byte corruptions (anywhere, and in headers / HDF5 metadata only)."""
    cases = []
    for fmt in ("fits", "hdf5"):
        for seed in range(first_seed, first_seed + n_per_format):
            region = "meta" if seed % 2 else "any"
            cases.append(
                Case(
                    f"{fmt}-random-{region}-{seed}",
                    "random",
                    _corrupted(fmt, seed, region=region),
                    expect="any",
                )
            )
    return cases


def truncation_sweep(n_per_format: int) -> list[Case]:
    """Truncations at ``n_per_format`` offsets spread evenly over each format's file."""
    cases = []
    for fmt in ("fits", "hdf5"):
        for k in range(1, n_per_format + 1):
            frac = k / (n_per_format + 1)
            cases.append(
                Case(
                    f"{fmt}-sweep-truncated-{frac:.4f}",
                    "truncated",
                    _truncated(fmt, frac=frac),
                    "refuse",
                    TRUNCATED,
                )
            )
    return cases


def corpus(*, random_per_format: int = 4) -> list[Case]:
    """The unit corpus: every category for both formats, plus a few random corruptions."""
    from tests.corpus_hetdex import hetdex_cases

    cases = _fits_cases() + _hdf5_cases() + _not_survey_cases() + hetdex_cases()
    cases += random_cases(random_per_format)
    ids = [c.id for c in cases]
    assert len(ids) == len(set(ids)), "case ids must be unique"
    return cases


# --- running a case -----------------------------------------------------------------------


@dataclass
class Outcome:
    case: Case
    status: str  # "refused" | "accepted" | "crash"
    message: str
    partial: list[str]  # what a refused / crashed attempt left behind
    lost: list[str]  # what changed in the good batch
    expected: bool  # refused / accepted as the case expects, with a matching message

    @property
    def ok(self) -> bool:
        return self.status != "crash" and self.expected and not self.partial and not self.lost


def ingest_good_batch(work: Path):
    """Ingest the good batch the corpus must never disturb; returns its snapshot."""
    from labelapp.services.survey.ingest import ingest_survey

    path = write_survey(work / "good.fits", good_survey())
    batch = ingest_survey(path=path).batch
    return _snapshot(batch)


def _hash_dir(path: Path) -> dict[str, str]:
    return {
        p.name: hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(Path(path).iterdir())
        if p.is_file()
    }


@dataclass(frozen=True)
class Snapshot:
    batch_pk: int
    rows: tuple
    truth: tuple
    store: tuple


def _snapshot(batch) -> Snapshot:
    from labelapp.models import Candidate, CandidateTruth

    rows = tuple(
        Candidate.objects.filter(batch=batch)
        .order_by("row")
        .values_list("detectid", "row", "wave", "sn", "ra", "dec", "field")
    )
    truth = tuple(
        CandidateTruth.objects.filter(candidate__batch=batch)
        .order_by("candidate__row")
        .values_list("is_real", "kind")
    )
    return Snapshot(batch.pk, rows, truth, tuple(_hash_dir(batch.store_path).items()))


def _state(store_root: Path) -> tuple:
    from labelapp.models import Candidate, CandidateTruth, IngestBatch

    entries = sorted(p.name for p in store_root.iterdir()) if store_root.exists() else []
    return (
        IngestBatch.objects.count(),
        Candidate.objects.count(),
        CandidateTruth.objects.count(),
        tuple(entries),
    )


def run_case(case: Case, work: Path, good: Snapshot) -> Outcome:
    """Build ``case`` in ``work``, ingest it, judge the outcome; an accepted file's batch is
    removed again so the next case starts from the good batch alone."""
    from django.conf import settings

    from labelapp.models import IngestBatch
    from labelapp.services.survey.ingest import IngestError, ingest_survey

    store_root = Path(settings.STORE_ROOT)
    work.mkdir(parents=True, exist_ok=True)
    path = case.build(work)
    # HETDEX's three files: (ML file, catalogue, survey table)
    paths = path if isinstance(path, tuple) else (path, None, None)
    path = paths[0]
    before = _state(store_root)
    status, message, batch = "refused", "", None
    try:
        batch = ingest_survey(path=path, catalogue=paths[1], survey=paths[2]).batch
        status = "accepted"
    except IngestError as exc:
        message = str(exc)
    except Exception as exc:
        status = "crash"
        message = "".join(traceback.format_exception_only(exc)).strip()
        message += "\n" + "".join(traceback.format_tb(exc.__traceback__)[-3:])
    after = _state(store_root)

    partial: list[str] = []
    if status == "accepted":
        n_rows = batch.candidates.count()
        store = Path(batch.store_path)
        if n_rows != batch.n_candidates or not (store / "manifest.json").exists():
            partial.append(f"accepted batch incomplete: {n_rows}/{batch.n_candidates} rows")
        _remove_batch(batch)
        after = _state(store_root)
    for label, b, a in zip(("batches", "candidates", "truth rows"), before, after, strict=False):
        if a != b:
            partial.append(f"{label}: {b} -> {a}")
    if after[3] != before[3]:
        partial.append(f"store directory entries: {list(before[3])} -> {list(after[3])}")

    lost: list[str] = []
    try:
        now = _snapshot(IngestBatch.objects.get(pk=good.batch_pk))
    except (IngestBatch.DoesNotExist, OSError) as exc:
        lost.append(f"good batch gone: {exc}")
    else:
        for name in ("rows", "truth", "store"):
            if getattr(now, name) != getattr(good, name):
                lost.append(f"good batch {name} changed")

    if case.expect == "refuse":
        expected = status == "refused" and bool(
            re.search(case.match, message, re.IGNORECASE | re.DOTALL)
        )
        expected = expected and path.name in message
    elif case.expect == "accept":
        expected = status == "accepted"
    else:
        expected = status in ("refused", "accepted")
    return Outcome(case, status, message, partial, lost, expected)


def _remove_batch(batch) -> None:
    from labelapp.models import Candidate
    from mlcore.store import remove_store

    Candidate.objects.filter(batch=batch).delete()
    batch.delete()
    remove_store(batch.store_path)
