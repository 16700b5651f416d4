"""Ingest against a corpus of broken survey files (tests/corpus.py), one test per case.

Every case runs next to a good batch ingested before it. A broken file must be refused with
an IngestError naming the file and the problem; afterwards there must be no rows, no batch
and no store directory from the attempt, and the good batch must be exactly as it was (rows,
truth, store bytes). Valid-but-odd files (huge headers) must be ingested completely.
`python bench/bench_bad_input.py` runs a bigger corpus and prints the counts.
"""

from __future__ import annotations

import pytest

from tests.corpus import corpus, ingest_good_batch, run_case

pytestmark = pytest.mark.django_db

CASES = corpus(random_per_format=4)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_broken_file_is_refused_cleanly(case, tmp_path):
    good = ingest_good_batch(tmp_path / "good")
    outcome = run_case(case, tmp_path / "case", good)
    assert outcome.status != "crash", outcome.message
    assert outcome.expected, (
        f"expected {case.expect} matching {case.match!r}, got {outcome.status}: {outcome.message}"
    )
    assert not outcome.partial, outcome.partial
    assert not outcome.lost, outcome.lost


def test_corpus_covers_every_category_in_both_formats():
    seen = {(c.id.split("-")[0], c.category) for c in CASES}
    for category in ("truncated", "shape", "nan-inf", "duplicate", "dtype", "header", "empty",
                     "missing", "garbage"):  # fmt: skip
        assert ("fits", category) in seen and ("hdf5", category) in seen, category
    assert sum(c.category == "not-survey" for c in CASES) >= 10
