"""The console compares kept external scores (HETDEX PDR1's p_cnn) with the platform's labels
and live model (issue #22, item 3)."""

from __future__ import annotations

import numpy as np
import pytest
from django.urls import reverse

from labelapp.models import (
    AggregationRun,
    Candidate,
    CandidateScore,
    ExternalScore,
    Label,
    ModelVersion,
)
from labelapp.selectors.external_scores import compare_external_score
from labelapp.services.survey.ingest import ingest_survey
from mlcore.cnn.evaluation import roc_auc
from mlcore.pdr1_io import PDR1_SOURCE, write_pdr1
from tests.factories import make_survey
from tests.factories_console import make_scientist

pytestmark = pytest.mark.django_db


def _pdr1(tmp_path, n=60):
    s = make_survey(n, seed=4)
    out = write_pdr1(s, tmp_path / "hpsc2.fits", tmp_path / "spec.fits", seed=4,
                     rates={"p_cnn": 0.05})  # fmt: skip
    ingest_survey(path=out["catalogue"], spectra=out["spectra"])
    return s


def _label_all(is_real_of):
    run = AggregationRun.objects.create(method="dawid_skene", status="done")
    Label.objects.bulk_create(
        Label(run=run, candidate=c, posterior=0.5, is_real=is_real_of(c), confidence=0.9,
              n_votes=3, info_gain=0.1)
        for c in Candidate.objects.all()
    )  # fmt: skip
    return run


def test_p_cnn_against_labels_is_the_auc_of_the_stored_values_joined_by_candidate(tmp_path):
    _pdr1(tmp_path)
    # label = "real" when the candidate's S/N is high: unrelated to row order
    _label_all(lambda c: c.sn > 6.0)
    got = compare_external_score(source=PDR1_SOURCE, name="p_cnn")
    pairs = [
        (c.sn > 6.0, v)
        for c, v in (
            (e.candidate, e.value)
            for e in ExternalScore.objects.filter(name="p_cnn").select_related("candidate")
        )
        if v is not None
    ]
    y = np.array([p[0] for p in pairs])
    s = np.array([p[1] for p in pairs])
    assert got["labels"]["measured"] and got["labels"]["n"] == len(pairs)
    assert got["n_missing"] == ExternalScore.objects.filter(name="p_cnn", value=None).count() > 0
    assert got["labels"]["auc"] == pytest.approx(roc_auc(y, s))
    lo, hi = got["labels"]["auc_ci"]
    assert lo <= got["labels"]["auc"] <= hi
    assert got["labels"]["agreement"] == pytest.approx(((s >= 0.5) == y).mean())
    assert not got["model"]["measured"]  # no live model: "not measured", no number


def test_p_cnn_against_the_live_model_and_the_page(tmp_path, client):
    _pdr1(tmp_path)
    model = ModelVersion.objects.create(
        status=ModelVersion.Status.PROMOTED, label_source="truth", directory="/nonexistent"
    )
    cands = list(Candidate.objects.all())
    ext = dict(ExternalScore.objects.filter(name="p_cnn").values_list("candidate_id", "value"))
    # our model agrees with p_cnn exactly on the candidates with an even detectid
    CandidateScore.objects.bulk_create(
        CandidateScore(model_version=model, candidate=c, entropy=0.1, bald=0.01,
                       prob=(ext[c.pk] if c.detectid % 2 == 0 else 1 - ext[c.pk]))
        for c in cands if ext[c.pk] is not None
    )  # fmt: skip
    got = compare_external_score(source=PDR1_SOURCE, name="p_cnn")
    n = sum(v is not None for v in ext.values())
    even = sum(1 for c in cands if ext[c.pk] is not None and c.detectid % 2 == 0)
    flips_agree = sum(
        1 for c in cands if ext[c.pk] is not None and c.detectid % 2 and ext[c.pk] == 0.5
    )
    assert got["model"]["measured"] and got["model"]["n"] == n
    assert got["model"]["agreement"] == pytest.approx((even + flips_agree) / n)
    assert len(got["model"]["figure"]["data"][0]["x"]) == n
    client.force_login(make_scientist())
    resp = client.get(reverse("console-external"))
    assert resp.status_code == 200
    html = resp.content.decode()
    assert "p_cnn from hetdex-pdr1 against ours" in html
    assert 'data-plot="fig-ext-p_cnn"' in html and 'id="fig-ext-p_cnn"' in html
    assert "not measured: no labelled candidate carries this score yet" in html
