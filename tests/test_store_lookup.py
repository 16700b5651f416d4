"""Cutout stores carry their detectids and are joinable without the database (issue #27)."""

import json

import numpy as np
import pytest

from mlcore.store import CutoutStore, StoreLookupError, StoreWriter, lookup
from tests.factories import make_survey


def _write(path, survey, ids=True):
    w = StoreWriter(
        path,
        len(survey),
        dtype="float32",
        meta={"batch": path.name},
        detectid=survey.catalog["detectid"] if ids else None,
    )
    w.write(0, **{k: getattr(survey, k) for k in ("im_sum", "im_array", "im_wave")},
            spec1d=survey.spec1d, spec1d_err=survey.spec1d_err)  # fmt: skip
    return w.commit()


def test_manifest_and_store_carry_the_detectids(tmp_path):
    s = make_survey(12, seed=1, first_id=7_000)
    d = _write(tmp_path / "b1", s)
    man = json.loads((d / "manifest.json").read_text())
    assert man["detectid"] == {"file": "detectid.npy", "n": 12, "min": 7_000, "max": 7_011}
    st = CutoutStore.open(d)
    np.testing.assert_array_equal(st.detectid, s.catalog["detectid"])
    np.testing.assert_array_equal(st.rows_of([7_005, 7_000]), [5, 0])


def test_lookup_across_batches_returns_cutouts_batch_and_row(tmp_path):
    a = make_survey(10, seed=1, first_id=100)
    b = make_survey(10, seed=2, first_id=200)
    _write(tmp_path / "b-one", a)
    _write(tmp_path / "b-two", b)
    got = lookup(tmp_path, [203, 100, 209])
    assert list(got["batch"]) == ["b-two", "b-one", "b-two"]
    np.testing.assert_array_equal(got["row"], [3, 0, 9])
    np.testing.assert_array_equal(got["cutouts"][0, 0], b.im_sum[3])
    np.testing.assert_array_equal(got["cutouts"][1, 1:], a.im_array[0])
    np.testing.assert_array_equal(got["spec"][2, 0], b.spec1d[9])
    np.testing.assert_array_equal(got["im_wave"][0], b.im_wave[3])


def test_unknown_detectids_are_named(tmp_path):
    _write(tmp_path / "b1", make_survey(5, seed=1, first_id=10))
    with pytest.raises(StoreLookupError, match=r"7 detectid\(s\) not found: 1, 2, 3, 4, 5 and 2"):
        lookup(tmp_path / "b1", [10, 1, 2, 3, 4, 5, 6, 7])


def test_a_store_without_ids_says_so(tmp_path):
    _write(tmp_path / "old", make_survey(5, seed=1), ids=False)
    assert CutoutStore.open(tmp_path / "old").detectid is None
    with pytest.raises(StoreLookupError, match="carries no detectids"):
        lookup(tmp_path / "old", [1_000_000])


def test_writer_refuses_ids_of_the_wrong_length(tmp_path):
    with pytest.raises(ValueError, match="detectid must be"):
        StoreWriter(tmp_path / "x", 3, detectid=np.arange(4))
