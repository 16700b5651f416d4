"""The cutout store's writer: chunks in any order, through O_DIRECT or the page cache, give
the same bytes; float16 overflow is clipped and counted."""

import os

import numpy as np
import pytest

import mlcore.store as store_mod
from mlcore.store import CutoutStore, StoreWriter
from tests.factories import make_survey

SURVEY = make_survey(97, seed=11)


def _write(path, spans, dtype="float16"):
    w = StoreWriter(path, len(SURVEY), dtype=dtype)
    for a, b in spans:
        w.write(
            a,
            im_sum=SURVEY.im_sum[a:b],
            im_array=SURVEY.im_array[a:b],
            im_wave=SURVEY.im_wave[a:b],
            spec1d=SURVEY.spec1d[a:b],
            spec1d_err=SURVEY.spec1d_err[a:b],
        )
    return CutoutStore.open(w.commit())


SPANS = {
    "one chunk": [(0, 97)],
    "in order, odd sizes": [(0, 7), (7, 8), (8, 50), (50, 97)],
    "out of order": [(50, 97), (0, 7), (8, 50), (7, 8)],
    "in order, then a rewrite": [(0, 40), (40, 97), (10, 20)],
}


@pytest.mark.parametrize("direct", [True, False], ids=["o_direct", "page_cache"])
@pytest.mark.parametrize("spans", SPANS.values(), ids=SPANS.keys())
@pytest.mark.parametrize("dtype", ["float16", "float32"])
def test_rows_land_where_they_belong(tmp_path, monkeypatch, direct, spans, dtype):
    if not direct:
        monkeypatch.delattr(os, "O_DIRECT", raising=False)
    elif not hasattr(os, "O_DIRECT"):
        pytest.skip("no O_DIRECT on this system")
    st = _write(tmp_path / "b", spans, dtype)
    dt = np.dtype(dtype)
    np.testing.assert_array_equal(st.cutouts[:, 0], SURVEY.im_sum.astype(dt))
    np.testing.assert_array_equal(st.cutouts[:, 1:], SURVEY.im_array.astype(dt))
    np.testing.assert_array_equal(st.spec[:, 0], SURVEY.spec1d.astype(dt))
    np.testing.assert_array_equal(st.spec[:, 1], SURVEY.spec1d_err.astype(dt))
    np.testing.assert_array_equal(st.im_wave, SURVEY.im_wave.astype(np.float32))
    # exactly the .npy size: nothing written past the end by the block-sized writes
    assert (tmp_path / "b" / "cutouts.npy").stat().st_size == st.cutouts.offset + st.cutouts.nbytes


def test_direct_writes_go_around_the_page_cache(tmp_path, monkeypatch):
    if not hasattr(os, "O_DIRECT"):
        pytest.skip("no O_DIRECT on this system")
    direct_writes = []
    real = os.pwrite

    def pwrite(fd, data, off):
        direct_writes.append(off)
        return real(fd, data, off)

    monkeypatch.setattr(store_mod.os, "pwrite", pwrite)
    _write(tmp_path / "b", [(0, 40), (40, 97)])
    assert direct_writes, "no O_DIRECT write made"
    assert all(off % store_mod.DIRECT_ALIGN == 0 for off in direct_writes)


def test_direct_false_writes_through_the_page_cache(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(store_mod.os, "pwrite", lambda *a: calls.append(a))
    w = StoreWriter(tmp_path / "b", len(SURVEY), direct=False)
    w.write(0, im_sum=SURVEY.im_sum, im_array=SURVEY.im_array, im_wave=SURVEY.im_wave,
            spec1d=SURVEY.spec1d, spec1d_err=SURVEY.spec1d_err)  # fmt: skip
    st = CutoutStore.open(w.commit())
    assert calls == []
    np.testing.assert_array_equal(st.cutouts[:, 1:], SURVEY.im_array.astype(np.float16))


def test_a_file_system_that_refuses_o_direct_gets_the_page_cache(tmp_path, monkeypatch):
    def refuse(fd, data, off):
        raise OSError(22, "Invalid argument")

    monkeypatch.setattr(store_mod.os, "pwrite", refuse)
    st = _write(tmp_path / "b", [(0, 40), (40, 97)])
    np.testing.assert_array_equal(st.cutouts[:, 1:], SURVEY.im_array.astype(np.float16))


def test_float16_overflow_is_clipped_and_counted(tmp_path):
    s = make_survey(5, seed=2)
    s.im_array[1, 0, 0, :3] = [1e6, -1e6, 7e4]
    s.im_sum[2, 4, 4] = np.nan  # a masked pixel does not hide the overflow elsewhere
    w = StoreWriter(tmp_path / "b", 5)
    w.write(0, im_sum=s.im_sum, im_array=s.im_array, im_wave=s.im_wave,
            spec1d=s.spec1d, spec1d_err=s.spec1d_err)  # fmt: skip
    st = CutoutStore.open(w.commit())
    assert w.clipped == 3
    assert list(st.cutouts[1, 1, 0, :3]) == [65504.0, -65504.0, 65504.0]
    assert np.isnan(st.cutouts[2, 0, 4, 4])
