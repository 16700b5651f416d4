"""The console's headline accuracy is a held-out figure with its interval, per S/N regime
and field, or "not measured" -- never a number from labels the model trained on."""

import re

import numpy as np
import pytest
from django.urls import reverse

from labelapp.models import ModelVersion
from labelapp.selectors.models import headline
from labelapp.services.learning.holdout import hold_out_from_truth
from labelapp.services.learning.promotion import gate_model
from mlcore.cnn.evaluation import balanced_accuracy_interval, heldout_report
from tests.factories_console import make_scientist
from tests.test_promotion import _register, good_dir, site, survey_file  # noqa: F401

pytestmark = pytest.mark.django_db


# --- the interval ----------------------------------------------------------------------------


def test_interval_brackets_the_estimate_and_narrows_with_more_candidates():
    y = np.r_[np.ones(40, bool), np.zeros(40, bool)]
    pred = np.r_[np.ones(32, bool), np.zeros(8, bool), np.zeros(30, bool), np.ones(10, bool)]
    b, lo, hi = balanced_accuracy_interval(y, pred)
    assert b == pytest.approx(0.5 * (32 / 40 + 30 / 40))
    assert lo < b < hi and 0.08 < hi - lo < 0.25
    b4, lo4, hi4 = balanced_accuracy_interval(np.tile(y, 4), np.tile(pred, 4))
    assert b4 == pytest.approx(b) and (hi4 - lo4) < 0.6 * (hi - lo)


def test_interval_with_no_errors_is_not_a_point_and_one_class_is_not_measured():
    y = np.r_[np.ones(20, bool), np.zeros(20, bool)]
    b, lo, hi = balanced_accuracy_interval(y, y)
    assert b == 1.0 and hi == pytest.approx(1.0, abs=1e-3) and lo < 0.99
    assert balanced_accuracy_interval(np.ones(5, bool), np.ones(5, bool)) == (None, None, None)


def test_interval_covers_the_truth_about_95_percent_of_the_time():
    rng = np.random.default_rng(0)
    tpr, tnr, n = 0.8, 0.7, 60
    covered = 0
    for _ in range(300):
        y = np.r_[np.ones(n, bool), np.zeros(n, bool)]
        pred = np.r_[rng.random(n) < tpr, rng.random(n) >= tnr]
        _, lo, hi = balanced_accuracy_interval(y, pred, draws=1000)
        covered += lo <= 0.75 <= hi
    assert 0.9 <= covered / 300 <= 0.99


def test_heldout_report_per_regime_and_field():
    y = np.array([1, 0, 1, 0, 1, 0, 1, 1], bool)
    pred = np.array([1, 0, 0, 0, 1, 1, 1, 1], bool)
    sn = np.array([5.0, 5.2, 5.1, 5.3, 7.0, 8.0, 9.0, 6.0])
    field = np.array(["cosmos"] * 4 + ["goods-n"] * 4)
    r = heldout_report(y, pred, sn, field)
    assert r["regimes"]["low"]["n"] == 4 and r["regimes"]["low"]["balanced_accuracy"] == 0.75
    assert r["regimes"]["high"]["balanced_accuracy"] == pytest.approx(0.5)
    assert r["fields"]["cosmos"]["high"]["balanced_accuracy"] is None  # no candidates
    assert r["fields"]["cosmos"]["high"]["n"] == 0
    assert r["fields"]["goods-n"]["low"]["n"] == 0


# --- the gate and the console --------------------------------------------------------------


def _page(client, name, **kw):
    from django.contrib.auth.models import User

    user = User.objects.filter(username="sci").first() or make_scientist()
    client.force_login(user)
    resp = client.get(reverse(name, kwargs=kw or None))
    assert resp.status_code == 200
    return resp.content.decode()


def test_on_gold_only_the_headline_is_not_measured(site, good_dir, tmp_path, client):  # noqa: F811
    v1 = _register(good_dir, tmp_path, "v1")
    decision = gate_model(model_version=v1)
    assert decision.promoted
    v1.refresh_from_db()
    assert v1.card["gate"]["set"] == "gold/expert" and v1.card["heldout"] is None
    # the reason quotes no accuracy measured on labels the model trained on
    assert not re.search(r"0\.\d{3}", v1.status_reason), v1.status_reason
    h = headline(v1.card)
    assert h["measured"] is False and "no held-out expert sample" in h["why"]
    html = _page(client, "console-campaign")
    assert 'data-headline="not-measured"' in html and "Accuracy: not measured" in html
    detail = _page(client, "console-model", pk=v1.pk)
    gate_low = v1.card["gate"]["regimes"]["low"]["balanced_accuracy"]
    assert f"{gate_low:.3f}" not in detail.split("Confusion matrices")[0]
    assert "not shown as accuracy" in detail


def test_with_a_heldout_sample_the_headline_is_the_heldout_figure(
    site,  # noqa: F811
    good_dir,  # noqa: F811
    tmp_path,
    client,
):
    hold_out_from_truth(n=300, low_share=0.5, seed=3)
    v1 = _register(good_dir, tmp_path, "v1")
    assert gate_model(model_version=v1).promoted
    v1 = ModelVersion.objects.get(pk=v1.pk)
    held = v1.card["heldout"]
    assert held["n_labels"] == 300
    for reg in ("low", "high"):
        c = held["regimes"][reg]
        assert c["n"] > 50 and c["ci_low"] < c["balanced_accuracy"] < c["ci_high"]
        # the same numbers the gate measured on the held-out set
        assert c["balanced_accuracy"] == pytest.approx(
            v1.card["gate"]["regimes"][reg]["balanced_accuracy"]
        )
    assert set(held["fields"]) == {"cosmos"}
    assert "held-out balanced accuracy" in v1.status_reason
    h = headline(v1.card)
    assert h["measured"] and h["regimes"]["low"]["measured"]
    html = _page(client, "console-campaign")
    low = held["regimes"]["low"]
    assert 'data-headline="measured"' in html
    assert f"{low['balanced_accuracy']:.3f}" in html and f"{low['ci_low']:.3f}" in html
    models = _page(client, "console-models")
    assert f"{low['ci_high']:.3f}" in models


def test_heldout_sample_can_be_stratified_by_field(tmp_path):
    from labelapp.services.learning.holdout import draw_sample, holdout_summary
    from labelapp.services.survey.ingest import ingest_survey
    from mlcore.simulator import simulate_survey
    from mlcore.survey_io import write_survey

    ingest_survey(path=write_survey(tmp_path / "c.fits", simulate_survey(200, seed=3)))
    ingest_survey(
        path=write_survey(tmp_path / "g.fits", simulate_survey(40, seed=3, field="goods-n"))
    )
    plain = draw_sample(n=60, seed=0)
    assert len(plain) == 60
    assert hold_out_from_truth(n=50, low_share=0.5, seed=0, per_field=True) == 90
    h = holdout_summary()
    assert h["fields"]["cosmos"]["n"] == 50 and h["fields"]["goods-n"]["n"] == 40  # all it has
    assert h["fields"]["cosmos"]["low"] == 25
    with pytest.raises(Exception, match="at least 1"):
        draw_sample(n=0, per_field=True)
