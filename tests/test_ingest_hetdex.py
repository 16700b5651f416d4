"""HETDEX's three real files (ML file + catalogue + survey table) ingested, joined by id.

Fixtures are simulated surveys written in the real layouts by ``mlcore.hetdex_io``
(``write_hetdex``): the ML file in shot order with no /Detections, a catalogue five times
larger in detectid order with Float32 ra/dec, the survey table giving ``field`` by shotid,
spectra per 2 A bin, and the real quirks (failed cutouts, zero-padded CCD edges, missing
fibres, sentinels). Every candidate is checked against the ML file's row *with its
detectid*, read independently with h5py.
"""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from labelapp.models import Candidate, CandidateTruth
from labelapp.services.crowd.queue import queue_queryset
from labelapp.services.survey.ingest import IngestError, ingest_survey
from mlcore.cutout_quality import MISSING_FIBERS, NO_CUTOUT, PADDED
from mlcore.hetdex_io import SPEC_PER_BIN, write_hetdex
from mlcore.render import line_column
from mlcore.store import CutoutStore
from tests.factories import make_survey
from tests.ingest_checks import assert_nothing_written, assert_refused

pytestmark = pytest.mark.django_db

RATES = {"failed_cutout": 0.05, "missing_fibers": 0.08, "sentinel_apcor": 0.05}


def _files(tmp_path, n=60, seed=1, factor=5.0, rates=RATES, edit=None):
    s = make_survey(n, seed=seed)
    # lines near both CCD edges, so their cutouts are zero-padded as in the real file
    s.catalog["wave"][:4] = [3512.0, 3530.0, 5480.0, 5494.0]
    if edit is not None:
        edit(s)
    out = write_hetdex(
        s,
        tmp_path / "detect_ml_4.0.0.h5",
        tmp_path / "detect_hdr4.h5",
        tmp_path / "survey_hdr4.h5",
        seed=seed,
        catalogue_factor=factor,
        rates=rates,
    )
    return s, out


def _ingest(out, **kw):
    return ingest_survey(path=out["ml"], catalogue=out["catalogue"], survey=out["survey"], **kw)


def _ml_rows(path):
    with h5py.File(path, "r") as h5:
        return h5["FiberImages"][()], h5["Spec1D"][()]


def _nothing_written(settings):
    assert_nothing_written(settings)


def _refused(out, settings, *fragments):
    return assert_refused(lambda: _ingest(out), settings, *fragments)


# --- the good path ------------------------------------------------------------------------


def test_three_files_ingest_only_the_ml_candidates_joined_by_detectid(tmp_path):
    s, out = _files(tmp_path)
    with h5py.File(out["catalogue"], "r") as h5:
        assert h5["Detections"].shape[0] == 5 * len(s)  # the catalogue is 5x the ML file
        assert h5["Detections"].dtype["ra"] == np.float32
    with h5py.File(out["ml"], "r") as h5:
        assert "Detections" not in h5
    result = _ingest(out, chunk=7)
    batch = result.batch
    assert batch.file_format == "hetdex" and batch.n_candidates == len(s)
    assert Candidate.objects.count() == len(s)
    fib, spec = _ml_rows(out["ml"])
    ml_row = {int(d): i for i, d in enumerate(fib["detectid"])}
    sv_row = {int(d): i for i, d in enumerate(s.catalog["detectid"])}
    store = CutoutStore.open(batch.store_path)
    for c in Candidate.objects.filter(batch=batch):
        i, j = ml_row[c.detectid], sv_row[c.detectid]
        cut = np.asarray(store.cutouts[c.row], np.float32)
        # masked pixels (NaN in the store) are exactly zeros in the file
        assert not np.concatenate([fib["im_sum"][i][None], fib["im_array"][i]])[np.isnan(cut)].any()
        np.testing.assert_allclose(np.nan_to_num(cut[0]), fib["im_sum"][i], atol=2e-3, rtol=2e-3)
        np.testing.assert_allclose(np.nan_to_num(cut[1:]), fib["im_array"][i], atol=2e-3, rtol=2e-3)
        if c.cutout_flags == 0:
            assert not np.isnan(cut).any()
        np.testing.assert_array_equal(store.im_wave[c.row], fib["im_wave"][i])
        # per 2 A bin in the file, per A in the store
        np.testing.assert_allclose(
            store.spec[c.row, 0], spec["spec1D"][i] / SPEC_PER_BIN, atol=2e-3, rtol=2e-3
        )
        np.testing.assert_allclose(store.spec[c.row, 0], s.spec1d[j], atol=2e-3, rtol=2e-3)
        assert c.wave == pytest.approx(float(s.catalog["wave"][j]), rel=1e-6)
        assert c.sn == pytest.approx(float(s.catalog["sn"][j]), rel=1e-6)
        assert c.ra == pytest.approx(float(np.float32(s.catalog["ra"][j])), rel=1e-7)
        assert c.field == "cosmos" and c.shotid == int(s.catalog["shotid"][j])
    assert CandidateTruth.objects.count() == len(s)
    assert "spec1D, spec1D_err: per 2 A bin -> per A" in " ".join(batch.header_meta["conversions"])


def test_the_real_quirks_are_masked_and_recorded_per_candidate(tmp_path):
    s, out = _files(tmp_path)
    q = out["quirks"]
    assert q["failed_cutout"] and q["missing_fibers"] and q["padded"] and q["sentinel_apcor"]
    result = _ingest(out)
    cands = Candidate.objects.filter(batch=result.batch)
    no_cut = [c for c in cands if c.cutout_flags & NO_CUTOUT]
    assert len(no_cut) == q["failed_cutout"]
    # no picture: never in the volunteers' queue, waiting for a scientist instead
    assert all(c.status == Candidate.Status.EXPERT for c in no_cut)
    queued = set(queue_queryset(volunteer=None).values_list("detectid", flat=True))
    assert not queued & {c.detectid for c in no_cut}
    assert "no cutout" in no_cut[0].cutout_problems[0]
    store = CutoutStore.open(result.batch.store_path)
    assert all(np.isnan(store.cutouts[c.row]).all() for c in no_cut)
    for c in cands:
        if c.cutout_flags & MISSING_FIBERS:
            dead = np.isnan(store.cutouts[c.row, 1:]).reshape(4, -1).all(axis=1)
            assert 1 <= dead.sum() <= 3 and dead[-1]  # the weakest fibres are the missing ones
    assert sum(bool(c.cutout_flags & MISSING_FIBERS) for c in cands) == q["missing_fibers"]
    padded = [c for c in cands if c.cutout_flags & PADDED]
    assert {c.detectid for c in padded} >= {int(d) for d in s.catalog["detectid"][:2]}
    for c in padded:
        w = store.im_wave[c.row]
        assert c.padded_cols == int((w == 0).sum()) > 0
        # padded pixels are masked (NaN), the real columns are not
        assert np.isnan(store.cutouts[c.row][..., w == 0]).all()
        assert not np.isnan(store.cutouts[c.row, 0][:, w > 0]).any()
        # the line's tick sits on the real column holding its wavelength, not on the grid
        col = line_column(w, c.wave)
        real = np.flatnonzero(w > 0)
        assert col is not None and real[0] <= col <= real[-1]
        k = int(np.floor(col))
        assert w[k] <= c.wave <= w[k + 1]
    # sentinels are missing values, never numbers
    assert cands.filter(apcor__isnull=True).count() == q["sentinel_apcor"]
    assert not cands.filter(apcor__lt=-1).exists() and not cands.filter(continuum__lt=-900).exists()
    assert "kept out of the volunteers' queue" in result.message


def test_command_takes_the_three_files(tmp_path, capsys):
    s, out = _files(tmp_path, n=20, rates={"failed_cutout": 0.0})
    call_command(
        "ingest",
        str(out["ml"]),
        "--catalogue",
        str(out["catalogue"]),
        "--survey",
        str(out["survey"]),
        "--no-progress",
    )
    assert "Ingested 20 candidates" in capsys.readouterr().out
    # the same three files again: a no-op that says so
    call_command(
        "ingest", str(out["ml"]), "--catalogue", str(out["catalogue"]), "--survey",
        str(out["survey"]), "--no-progress",
    )  # fmt: skip
    assert "already ingested" in capsys.readouterr().out
    with pytest.raises(CommandError, match="give both"):
        call_command("ingest", str(out["ml"]), "--catalogue", str(out["catalogue"]))


@pytest.mark.parametrize(
    "reorder",
    [
        lambda n: np.random.default_rng(2).permutation(n),  # scattered: one point selection
        lambda n: np.roll(np.arange(n), 11),  # a chunk is one or two runs of rows
        lambda n: np.arange(n)[::-1],  # runs of one row, backwards
    ],
    ids=["shuffled", "rolled", "reversed"],
)
def test_spec1d_in_another_order_than_fiberimages_is_joined_by_id(tmp_path, reorder):
    s, out = _files(tmp_path, n=30, rates={"failed_cutout": 0.0, "missing_fibers": 0.0})
    with h5py.File(out["ml"], "r+") as h5:
        data = h5["Spec1D"][()]
        h5["Spec1D"][...] = data[reorder(len(data))]
    batch = _ingest(out, chunk=16).batch
    store = CutoutStore.open(batch.store_path)
    sv_row = {int(d): i for i, d in enumerate(s.catalog["detectid"])}
    for c in Candidate.objects.filter(batch=batch):
        j = sv_row[c.detectid]
        np.testing.assert_allclose(store.spec[c.row, 0], s.spec1d[j], atol=2e-3, rtol=2e-3)
        np.testing.assert_allclose(store.spec[c.row, 1], s.spec1d_err[j], atol=2e-3, rtol=2e-3)


# --- ids that disagree -------------------------------------------------------------------


def _edit_table(path, node, row, **values):
    with h5py.File(path, "r+") as h5:
        rec = h5[node][row]
        for k, v in values.items():
            rec[k] = v
        h5[node][row] = rec


def test_ml_candidate_missing_from_the_catalogue_is_refused_naming_it(tmp_path, settings):
    s, out = _files(tmp_path, n=20)
    _edit_table(out["ml"], "FiberImages", 3, detectid=999)
    _edit_table(out["ml"], "Spec1D", 3, detectid=999)
    _refused(
        out,
        settings,
        "detect_ml_4.0.0.h5:/FiberImages row 3 (detectid 999): detectid has no row in "
        "detect_hdr4.h5:/Detections",
    )


def test_fiberimages_and_spec1d_with_different_ids_are_refused(tmp_path, settings):
    s, out = _files(tmp_path, n=20)
    _edit_table(out["ml"], "Spec1D", 6, detectid=123)
    _refused(out, settings, "detect_ml_4.0.0.h5:/Spec1D row 6 (detectid 123): detectid has no row")


def test_catalogue_repeating_a_candidate_is_refused(tmp_path, settings):
    s, out = _files(tmp_path, n=20, factor=1.0)
    with h5py.File(out["catalogue"], "r") as h5:
        ids = h5["Detections"].fields("detectid")[()]
    _edit_table(out["catalogue"], "Detections", 5, detectid=int(ids[4]))
    _refused(out, settings, "detect_hdr4.h5:/Detections row 5", "more than once")


def test_shot_missing_from_the_survey_table_is_refused(tmp_path, settings):
    s, out = _files(tmp_path, n=20, factor=1.0)
    _edit_table(out["catalogue"], "Detections", 2, shotid=20990909099)
    _refused(out, settings, "shotid 20990909099 is not in survey_hdr4.h5:/Survey")


def test_field_longer_than_the_column_is_refused_not_truncated(tmp_path, settings):
    s, out = _files(tmp_path, n=20)
    with h5py.File(out["survey"], "r+") as h5:
        rows = h5["Survey"][()]
        dt = [(n, "S24" if n == "field" else rows.dtype[n]) for n in rows.dtype.names]
        wide = rows.astype(dt)
        wide["field"] = b"cosmos-and-beyond-north"
        del h5["Survey"]
        h5.create_dataset("Survey", data=wide)
    _refused(out, settings, "'cosmos-and-beyond-north' is longer than 12 characters")


@pytest.mark.parametrize(
    "column, value, words",
    [
        ("sn", -5.2, "-5.2 is negative; sn cannot be"),
        ("flux_err", -1.0, "flux_err cannot be"),
        ("linewidth", -3.0, "linewidth cannot be"),
        ("chi2", -0.5, "chi2 cannot be"),
        ("flux", 3e38, "is not a plausible measurement"),
        ("sn", -999.0, "value is NaN or infinite (a missing value"),
        ("wave", -99999.0, "value is NaN or infinite (a missing value"),
    ],
)
def test_impossible_catalogue_values_are_refused_with_the_row(
    tmp_path, settings, column, value, words
):
    s, out = _files(tmp_path, n=20, factor=2.0)
    with h5py.File(out["ml"], "r") as h5:
        target = int(h5["FiberImages"][7]["detectid"])
    with h5py.File(out["catalogue"], "r") as h5:
        row = int(np.flatnonzero(h5["Detections"].fields("detectid")[()] == target)[0])
    _edit_table(out["catalogue"], "Detections", row, **{column: value})
    # the row named is the catalogue's own row, where the value is
    _refused(out, settings, f"Detections column '{column}' row {row} (detectid {target})", words)


def test_detectid_of_2_to_the_63_is_a_listed_refusal(tmp_path, settings):
    s, out = _files(tmp_path, n=10)
    with h5py.File(out["ml"], "r+") as h5:
        for node in ("FiberImages", "Spec1D"):
            rows = h5[node][()]
            dt = [(n, "<u8" if n == "detectid" else rows.dtype[n]) for n in rows.dtype.names]
            big = rows.astype(dt)
            big["detectid"][2] = 2**63 + 5
            del h5[node]
            h5.create_dataset(node, data=big)
    _refused(out, settings, f"row 2 (detectid {2**63 + 5}): detectid is 2**63 or more")


def test_own_layout_detectid_of_2_to_the_63_is_a_listed_refusal(tmp_path, settings):
    from mlcore.survey_io import write_survey

    path = write_survey(tmp_path / "big.h5", make_survey(8))
    with h5py.File(path, "r+") as h5:
        rows = h5["Detections"][()]
        dt = [(n, "<u8" if n == "detectid" else rows.dtype[n]) for n in rows.dtype.names]
        big = rows.astype(dt)
        big["detectid"][4] = 2**64 - 1
        del h5["Detections"]
        h5.create_dataset("Detections", data=big)
    with pytest.raises(IngestError, match=r"row 4 \(detectid 18446744073709551615\).*2\*\*63"):
        ingest_survey(path=path)
    _nothing_written(settings)


# --- files that are not files --------------------------------------------------------------


@pytest.mark.parametrize("role", ["ml", "catalogue", "survey"])
def test_fifo_and_dev_zero_are_refused_without_reading(tmp_path, settings, role):
    s, out = _files(tmp_path, n=5)
    fifo = tmp_path / "pipe.h5"
    os.mkfifo(fifo)
    for bad, word in ((fifo, r"a FIFO \(named pipe\)"), (Path("/dev/zero"), "a character device")):
        paths = {**{k: out[k] for k in ("ml", "catalogue", "survey")}, role: bad}
        t0 = time.monotonic()
        with pytest.raises(IngestError, match=f"is {word}, not a regular file"):
            ingest_survey(path=paths["ml"], catalogue=paths["catalogue"], survey=paths["survey"])
        assert time.monotonic() - t0 < 5
    _nothing_written(settings)


# --- a killed ingest ----------------------------------------------------------------------

_KILLED_WRITER = """
import os, signal, sys
import numpy as np
from mlcore.store import StoreWriter
w = StoreWriter(sys.argv[1], 200, dtype="float32")
z = np.zeros((200, 9, 100), np.float32)
w.write(0, im_sum=z, im_array=np.zeros((200, 4, 9, 100), np.float32),
        im_wave=np.zeros((200, 100), np.float32), spec1d=np.zeros((200, 1036), np.float32),
        spec1d_err=np.zeros((200, 1036), np.float32))
os.kill(os.getpid(), signal.SIGKILL)
"""


def test_killed_ingest_leaves_an_orphan_that_the_next_ingest_removes(tmp_path, settings):
    root = Path(settings.STORE_ROOT)
    root.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run(
        [sys.executable, "-c", _KILLED_WRITER, str(root / "doomed-batch")],
        cwd=Path(__file__).resolve().parents[1],
        capture_output=True,
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    left = [p for p in root.iterdir() if p.name.startswith(".doomed-batch.tmp-")]
    assert len(left) == 1  # what a killed ingest leaves behind
    s, out = _files(tmp_path, n=10)
    result = _ingest(out)
    assert not any(p.name.startswith(".") for p in root.iterdir())
    assert "removed an orphaned temporary store: .doomed-batch.tmp-" in result.message
    assert [p.name for p in root.iterdir()] == [Path(result.batch.store_path).name]


def test_store_orphans_command_lists_then_removes(tmp_path, settings, capsys):
    root = Path(settings.STORE_ROOT)
    s, out = _files(tmp_path, n=10)
    batch = _ingest(out).batch
    proc = subprocess.run(
        [sys.executable, "-c", _KILLED_WRITER, str(root / "another")],
        cwd=Path(__file__).resolve().parents[1],
        capture_output=True,
    )
    assert proc.returncode == -signal.SIGKILL
    (root / "stray").mkdir()
    (root / "stray" / "manifest.json").write_text("{}")
    call_command("store_orphans", "--min-age", "0")
    listed = capsys.readouterr().out
    assert ".another.tmp-" in listed and "temporary" in listed
    assert "stray (unreferenced" in listed and "2 orphan(s)" in listed
    assert Path(batch.store_path).name not in listed
    call_command("store_orphans", "--min-age", "0", "--remove")
    assert "2 orphan(s) removed" in capsys.readouterr().out
    assert [p.name for p in root.iterdir()] == [Path(batch.store_path).name]
    CutoutStore.open(batch.store_path)  # the live batch is untouched


def test_console_candidate_page_shows_what_the_cutout_lacks(tmp_path, client):
    from django.urls import reverse

    from tests.factories_console import make_scientist

    s, out = _files(tmp_path, n=30)
    batch = _ingest(out).batch
    client.force_login(make_scientist())
    padded = next(c for c in Candidate.objects.filter(batch=batch) if c.cutout_flags & PADDED)
    html = client.get(reverse("console-candidate", args=[padded.detectid])).content.decode()
    assert "columns beyond the CCD edge (zero-padded)" in html
    assert f"({padded.padded_cols} columns)" in html
    clean = Candidate.objects.filter(batch=batch, cutout_flags=0).first()
    html = client.get(reverse("console-candidate", args=[clean.detectid])).content.decode()
    assert 'id="cutout-problems"' not in html


def test_a_truncated_catalogue_is_named_as_the_file_at_fault(tmp_path, settings):
    s, out = _files(tmp_path, n=10)
    cat = out["catalogue"]
    cat.write_bytes(cat.read_bytes()[: cat.stat().st_size // 2])
    msg = _refused(out, settings, f"  - {cat}: cannot be opened as HDF5")
    assert f"{out['ml']}: {cat}" not in msg


def test_a_candidate_without_a_cutout_cannot_be_put_back_in_the_volunteers_queue(tmp_path):
    from labelapp.services.crowd.consensus import set_candidate_status

    s, out = _files(tmp_path, n=40, rates={"failed_cutout": 0.2})
    batch = _ingest(out).batch
    blank = next(c for c in Candidate.objects.filter(batch=batch) if c.cutout_flags & NO_CUTOUT)
    with pytest.raises(ValueError, match="has no cutout"):
        set_candidate_status(candidate_id=blank.pk, status=Candidate.Status.ACTIVE)
    blank.refresh_from_db()
    assert blank.status == Candidate.Status.EXPERT
    clean = Candidate.objects.filter(batch=batch, cutout_flags=0).first()
    set_candidate_status(candidate_id=clean.pk, status=Candidate.Status.RETIRED)
    set_candidate_status(candidate_id=clean.pk, status=Candidate.Status.ACTIVE)  # allowed


def test_training_set_leaves_out_candidates_without_a_cutout(tmp_path):
    from labelapp.services.learning import training

    s, out = _files(tmp_path, n=120, rates={"failed_cutout": 0.1})
    batch = _ingest(out).batch
    blank = {c.pk for c in Candidate.objects.filter(batch=batch) if c.cutout_flags & NO_CUTOUT}
    assert blank
    ts = training.training_set(label_source="truth")
    assert not blank & set(ts.candidate_id.tolist())
    assert len(ts.candidate_id) == len(s) - len(blank)
    assert not np.isnan(ts.cutouts).all(axis=(1, 2, 3)).any()


def test_the_cnn_sees_padded_columns_as_masked_not_as_sky(tmp_path):
    import torch

    from mlcore.cnn.data import normalise

    s, out = _files(tmp_path, n=20, rates={"failed_cutout": 0.0, "missing_fibers": 0.0})
    batch = _ingest(out).batch
    c = next(c for c in Candidate.objects.filter(batch=batch) if c.cutout_flags & PADDED)
    cut = np.asarray(CutoutStore.open(batch.store_path).cutouts[c.row : c.row + 1], np.float32)
    z, masked = normalise(torch.from_numpy(cut))
    assert float(masked[0]) == pytest.approx(c.padded_cols / 100)
    pad = np.isnan(cut[0, 0]).all(axis=0)
    assert (z[0, :, :, pad] == 0).all()  # the background level, carrying no signal
    # the real columns are normalised exactly as if the padding were not there at all
    alone, _ = normalise(torch.from_numpy(np.ascontiguousarray(cut[..., ~pad])))
    torch.testing.assert_close(z[0][..., torch.from_numpy(~pad)], alone[0])


# --- flat memory: the catalogue is streamed ------------------------------------------------


def test_streaming_reader_holds_only_ids_and_joins_across_chunks(tmp_path, monkeypatch):
    """Ingest reads catalogue values chunk by chunk (issue #22, item 7): the reader keeps
    only the ML ids, and candidates whose catalogue rows fall in different chunks, and
    database batches smaller than a chunk, still get their own values (joined by id)."""
    import labelapp.services.survey.ingest as ingest_mod
    import mlcore.hetdex_io as hio

    s, out = _files(tmp_path, n=60, factor=5.0)
    monkeypatch.setattr(hio, "CATALOG_CHUNK", 11)  # 300 catalogue rows -> 28 chunks
    monkeypatch.setattr(ingest_mod, "DB_BATCH", 4)
    with hio.open_hetdex(out["ml"], out["catalogue"], out["survey"], stream=True) as r:
        assert set(r.columns) == {"detectid"}  # nothing per candidate but its id
        seen = np.concatenate([rows for rows, _, _ in r.iter_catalogue()])
        assert sorted(seen.tolist()) == list(range(len(s)))  # each candidate exactly once
    _ingest(out)
    sv_row = {int(d): i for i, d in enumerate(s.catalog["detectid"])}
    got = Candidate.objects.values_list("detectid", "sn", "wave", "field", "shotid")
    assert len(got) == len(s)
    for did, sn, wave, fld, shot in got:
        j = sv_row[did]
        assert sn == pytest.approx(float(s.catalog["sn"][j]), rel=1e-6)
        assert wave == pytest.approx(float(s.catalog["wave"][j]), rel=1e-6)
        assert (fld, shot) == (str(s.catalog["field"][j]), int(s.catalog["shotid"][j]))
    if s.truth is not None:
        truth = dict(CandidateTruth.objects.values_list("candidate__detectid", "kind"))
        assert truth == {
            int(d): str(k)
            for d, k in zip(s.catalog["detectid"], s.truth["truth_type"], strict=True)
        }


def test_streamed_value_problem_names_the_catalogue_row(tmp_path, settings, monkeypatch):
    import mlcore.hetdex_io as hio

    monkeypatch.setattr(hio, "CATALOG_CHUNK", 13)
    s, out = _files(tmp_path, n=40)
    with h5py.File(out["catalogue"], "r") as h5:
        ids = h5["Detections"].fields("detectid")[()]
    target = int(s.catalog["detectid"][5])
    row = int(np.flatnonzero(ids == target)[0])
    _edit_table(out["catalogue"], "Detections", row, sn=-3.0)
    _refused(out, settings, f"row {row} (detectid {target})", "negative")
