"""Broken and quirky HETDEX three-file inputs (ML file + catalogue + survey table).

Cases for :mod:`tests.corpus`: each build writes the corpus' base survey with
:func:`mlcore.hetdex_io.write_hetdex` (the real layouts) and then breaks one thing, as a
hostile or unlucky file would. A build returns the three paths; ``run_case`` ingests them
with ``--catalogue``/``--survey``. Accepted cases are the real quirks, which must ingest.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import numpy as np

from tests.corpus import Case, base_survey

Paths = tuple[Path, Path, Path]


def _files(d: Path, rates=None, factor: float = 3.0) -> Paths:
    from mlcore.hetdex_io import write_hetdex

    s = base_survey()
    s.catalog["wave"][:2] = [3515.0, 5490.0]  # two cutouts at the CCD edges
    out = write_hetdex(
        s,
        d / "detect_ml.h5",
        d / "detect_hdr.h5",
        d / "survey_hdr.h5",
        seed=5,
        catalogue_factor=factor,
        rates=rates or {"failed_cutout": 0.0, "missing_fibers": 0.0},
    )
    return out["ml"], out["catalogue"], out["survey"]


def _build(edit: Callable[[Paths], None] | None = None, **kw) -> Callable[[Path], Paths]:
    def build(d: Path) -> Paths:
        paths = _files(d, **kw)
        if edit is not None:
            edit(paths)
        return paths

    return build


def _set(role: int, node: str, row: int | str, **values):
    """Set columns of one row (``"ml-row-of-catalogue"``: the catalogue row of ML row 4)."""

    def edit(paths: Paths) -> None:
        import h5py

        r = row
        if row == "ml4":  # the catalogue row of the 5th ML candidate
            with h5py.File(paths[0], "r") as h5:
                target = h5["FiberImages"][4]["detectid"]
            with h5py.File(paths[role], "r") as h5:
                r = int(np.flatnonzero(h5[node].fields("detectid")[()] == target)[0])
        with h5py.File(paths[role], "r+") as h5:
            rec = h5[node][r]
            for k, v in values.items():
                rec[k] = v
            h5[node][r] = rec

    return edit


def _retype(role: int, nodes: tuple[str, ...], column: str, dtype: str, row: int, value):
    def edit(paths: Paths) -> None:
        import h5py

        with h5py.File(paths[role], "r+") as h5:
            for node in nodes:
                rows = h5[node][()]
                dt = [(n, dtype if n == column else rows.dtype[n]) for n in rows.dtype.names]
                new = rows.astype(dt)
                new[column][row] = value
                del h5[node]
                h5.create_dataset(node, data=new)

    return edit


def _delete(role: int, node: str, replace_with_group: bool = False):
    def edit(paths: Paths) -> None:
        import h5py

        with h5py.File(paths[role], "r+") as h5:
            del h5[node]
            if replace_with_group:
                h5.create_group(node)

    return edit


def _pixel(member: str, row: int, value):
    def edit(paths: Paths) -> None:
        import h5py

        with h5py.File(paths[0], "r+") as h5:
            rec = h5["FiberImages"][row]
            rec[member].flat[7] = value
            h5["FiberImages"][row] = rec

    return edit


def _truncate(role: int, frac: float = 0.5):
    def edit(paths: Paths) -> None:
        p = paths[role]
        p.write_bytes(p.read_bytes()[: int(p.stat().st_size * frac)])

    return edit


def _swap(role: int, make: Callable[[Path], Path]):
    def build(d: Path) -> Paths:
        paths = list(_files(d))
        paths[role] = make(d)
        return tuple(paths)

    return build


def _fifo(d: Path) -> Path:
    p = d / "pipe.h5"
    os.mkfifo(p)
    return p


def _reorder_spec(paths: Paths) -> None:
    import h5py

    with h5py.File(paths[0], "r+") as h5:
        data = h5["Spec1D"][()]
        h5["Spec1D"][...] = data[::-1]


def _survey_field(value: bytes, width: int = 12):
    def edit(paths: Paths) -> None:
        import h5py

        with h5py.File(paths[2], "r+") as h5:
            rows = h5["Survey"][()]
            dt = [(n, f"S{width}" if n == "field" else rows.dtype[n]) for n in rows.dtype.names]
            new = rows.astype(dt)
            new["field"] = value
            del h5["Survey"]
            h5.create_dataset("Survey", data=new)

    return edit


def _survey_clash(paths: Paths) -> None:
    import h5py

    with h5py.File(paths[2], "r+") as h5:
        rows = h5["Survey"][()]
        twin = rows[:1].copy()
        twin["field"] = b"goods-n"
        del h5["Survey"]
        h5.create_dataset("Survey", data=np.concatenate([rows, twin]))


def _pytables_extras(paths: Paths) -> None:
    """What PyTables adds around a table: CLASS/FIELD_n_NAME attributes and, for an index on
    detectid (the real ML file has one per table), a hidden ``/_i_<table>`` group."""
    import h5py

    for path, tables in ((paths[0], ("FiberImages", "Spec1D")), (paths[1], ("Detections",))):
        with h5py.File(path, "r+") as h5:
            for t in tables:
                h5[t].attrs["CLASS"] = np.bytes_(b"TABLE")
                h5[t].attrs["VERSION"] = np.bytes_(b"2.7")
                for i, name in enumerate(h5[t].dtype.names):
                    h5[t].attrs[f"FIELD_{i}_NAME"] = np.bytes_(name.encode())
                idx = h5.create_group(f"_i_{t}/detectid")
                idx.create_dataset("sorted", data=np.sort(h5[t].fields("detectid")[()]))


def hetdex_cases() -> list[Case]:
    cases: list[Case] = []

    def add(id_, category, build, match="", expect="refuse"):
        cases.append(Case(f"hetdex-{id_}", category, build, expect, match))

    # the real quirks: ingested, masked and recorded
    add(
        "quirks",
        "quirk",
        _build(rates={"failed_cutout": 0.2, "missing_fibers": 0.2, "sentinel_apcor": 0.2}),
        expect="accept",
    )
    add("spec1d-reversed", "quirk", _build(_reorder_spec), expect="accept")
    add("pytables-attributes-and-index", "quirk", _build(_pytables_extras), expect="accept")
    add("catalogue-1x", "quirk", _build(factor=1.0), expect="accept")
    add(
        "sentinel-continuum",
        "quirk",
        _build(_set(1, "Detections", "ml4", continuum=-999.0)),
        expect="accept",
    )
    # ids that disagree across tables and files
    add(
        "ml-id-not-in-catalogue",
        "join",
        _build(
            lambda p: (
                _set(0, "FiberImages", 3, detectid=7)(p),
                _set(0, "Spec1D", 3, detectid=7)(p),
            )
        ),  # fmt: skip
        r"FiberImages row 3 \(detectid 7\): detectid has no row in detect_hdr\.h5:/Detections",
    )
    add(
        "spec1d-id-mismatch",
        "join",
        _build(_set(0, "Spec1D", 2, detectid=5)),
        r"Spec1D row 2 \(detectid 5\): detectid has no row",
    )
    add(
        "ml-duplicate-id",
        "join",
        _build(_set(0, "FiberImages", 6, detectid=2_000_001)),
        r"FiberImages column 'detectid' rows .* appear more than once",
    )
    add(
        "catalogue-duplicate-id",
        "join",
        _build(_set(1, "Detections", 1, detectid=2_000_000), factor=1.0),
        r"Detections row.* more than once",
    )
    add(
        "shot-not-in-survey",
        "join",
        _build(_set(1, "Detections", "ml4", shotid=1)),
        r"shotid 1 is not in survey_hdr\.h5:/Survey",
    )
    add("survey-shot-two-fields", "join", _build(_survey_clash), r"has two different fields")
    # values
    for col, value, words in (
        ("sn", -5.0, "sn cannot be"),
        ("flux_err", -0.1, "flux_err cannot be"),
        ("linewidth", -2.0, "linewidth cannot be"),
        ("chi2", -1.0, "chi2 cannot be"),
        ("flux", 3e38, "not a plausible measurement"),
        ("sn", -999.0, "NaN or infinite"),
        ("wave", -99999.0, "NaN or infinite"),
        ("ra", -999.999, "NaN or infinite"),
        ("dec", np.inf, "NaN or infinite"),
    ):
        add(
            f"{col}-{value:g}",
            "value",
            _build(_set(1, "Detections", "ml4", **{col: value})),
            rf"Detections column '{col}' row \d+ \(detectid 2000006\).*{words}",
        )
    add(
        "field-too-long",
        "value",
        _build(_survey_field(b"cosmos-extended", 16)),
        r"/Survey column 'field' \(by shotid\).* longer than 12",
    )
    add("field-n/a", "value", _build(_survey_field(b"n/a")), r"column 'field'.*missing")
    add(
        "ml-negative-id",
        "value",
        _build(_retype(0, ("FiberImages", "Spec1D"), "detectid", "<i8", 3, -4)),
        r"detectid -4\): detectid is negative",
    )
    add(
        "ml-id-2**63",
        "value",
        _build(_retype(0, ("FiberImages", "Spec1D"), "detectid", "<u8", 3, 2**63)),
        r"detectid 9223372036854775808\): detectid is 2\*\*63 or more",
    )
    add(
        "catalogue-id-2**64-1",
        "value",
        _build(_retype(1, ("Detections",), "detectid", "<u8", 0, 2**64 - 1)),
        r"detectid is 2\*\*63 or more",
    )
    add("ml-inf-pixel", "value", _build(_pixel("im_sum", 5, np.inf)), r"im_sum row 5.*infinite")
    add(
        "im-wave-hole",
        "value",
        _build(_pixel("im_wave", 6, 0.0)),
        r"im_wave row 6 .*does not increase column by column",
    )
    add(
        "im-wave-negative",
        "value",
        _build(_pixel("im_wave", 1, -5.0)),
        r"im_wave row 1 .*outside 3300-5700 A",
    )
    add("ml-nan-pixel", "value", _build(_pixel("im_array", 2, np.nan)), r"im_array row 2.*NaN")
    # structure
    add("ml-no-spec1d", "missing", _build(_delete(0, "Spec1D")), r"detect_ml\.h5:/Spec1D: missing")
    add(
        "ml-fiberimages-a-group",
        "missing",
        _build(_delete(0, "FiberImages", replace_with_group=True)),
        r"FiberImages: is not a table",
    )
    add(
        "catalogue-no-detections",
        "missing",
        _build(_delete(1, "Detections")),
        r"Detections: missing",
    )
    add(
        "survey-no-survey",
        "missing",
        _build(_delete(2, "Survey")),
        r"survey_hdr\.h5:/Survey: missing",
    )
    for role, name in ((0, "ml"), (1, "catalogue"), (2, "survey")):
        add(f"{name}-truncated", "truncated", _build(_truncate(role)), r"cannot be opened as HDF5")
    add("catalogue-fifo", "not-a-file", _swap(1, _fifo), r"is a FIFO")
    add("survey-dev-zero", "not-a-file", _swap(2, lambda d: Path("/dev/zero")), r"character device")
    add("ml-empty", "not-a-file", _swap(0, lambda d: (d / "e.h5").write_bytes(b"") or d / "e.h5"),
        r"is empty")  # fmt: skip
    return cases
