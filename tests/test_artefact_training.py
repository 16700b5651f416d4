"""Level-3 artefact-type answers become a training target: the training service joins them
to its rows by detectid and adds the CNN's artefact-type head above a minimum number of
answers; the console's model page shows what the card says about it."""

import logging

import numpy as np
import pytest
from django.urls import reverse

from labelapp.models import ArtefactAnswer, Candidate, Volunteer, Vote
from labelapp.services.learning import training as training_service
from labelapp.services.learning.training import (
    artefact_kind_targets,
    train_model_version,
    training_set,
)
from labelapp.services.survey.ingest import ingest_survey
from mlcore.cnn.artefacts import NO_KIND
from mlcore.simulator import simulate_survey
from mlcore.survey_io import write_survey
from tests.factories_console import make_scientist

pytestmark = pytest.mark.django_db

KINDS = tuple(ArtefactAnswer.Kind.values)


@pytest.fixture
def simulated(tmp_path, settings):
    settings.MODELS_DIR = tmp_path / "models"
    ingest_survey(path=write_survey(tmp_path / "s.fits", simulate_survey(900, seed=13)))


def _answer(candidates, kinds, volunteer=None):
    """One level-3 answer per candidate (a 'no' vote and its artefact answer)."""
    volunteer = volunteer or Volunteer.objects.create(level=3)
    for c, kind in zip(candidates, kinds, strict=True):
        vote = Vote.objects.create(volunteer=volunteer, candidate=c, answer=Vote.Answer.NO)
        ArtefactAnswer.objects.create(
            vote=vote, candidate=c, volunteer=volunteer, kind=kind, level=3
        )


def _fakes(n):
    """``n`` contaminants with their simulated type mapped to the task's kinds."""
    rows = list(
        Candidate.objects.filter(truth__is_real=False)
        .order_by("-detectid")  # not the training rows' order
        .values_list("pk", "truth__kind")[:n]
    )
    kinds = [k if k in KINDS else "other" for _, k in rows]
    return list(Candidate.objects.in_bulk([pk for pk, _ in rows]).values()), kinds


def test_targets_are_joined_by_detectid_and_need_the_minimum(simulated):
    cands, kinds = _fakes(60)
    _answer(cands, kinds)
    ts = training_set(label_source="truth")
    rows = np.arange(len(ts.candidate_id))
    kt, info = artefact_kind_targets(detectid=ts.cols["detectid"], fit_rows=rows, min_answers=60)
    assert info["head"] and info["n_on_training_rows"] == 60 and kt.n_matched == 60
    want = {c.detectid: KINDS.index(k) for c, k in zip(cands, kinds, strict=True)}
    got = {
        int(d): int(i) for d, i in zip(ts.cols["detectid"], kt.index, strict=True) if i != NO_KIND
    }
    assert got == want  # by detectid, whatever order the answers and rows came in
    assert set(kt.weight[kt.index != NO_KIND]) == {1.0}
    # below the minimum: no targets, and the card is told why
    kt, info = artefact_kind_targets(detectid=ts.cols["detectid"], fit_rows=rows, min_answers=61)
    assert kt is None and info == {
        "n_candidates_answered": 60, "min_answers": 61, "head": False,
        "n_on_training_rows": 60, "n_not_in_training_set": 0,
    }  # fmt: skip
    # only answers on the training + validation rows count towards the minimum
    kt, info = artefact_kind_targets(detectid=ts.cols["detectid"], fit_rows=rows[:0], min_answers=1)
    assert kt is None and info["n_on_training_rows"] == 0


def test_shares_come_from_the_answers_and_strangers_are_reported(simulated, caplog):
    cands, kinds = _fakes(4)
    _answer(cands, ["sky", "sky", "cosmic", "hotcol"])
    _answer(cands[:1], ["cosmic"])  # a second volunteer disagrees on the first
    ts = training_set(label_source="truth")
    keep = ts.cols["detectid"] != cands[3].detectid  # as if that one were not labelled
    with caplog.at_level(logging.INFO, logger="mlcore.cnn.artefacts"):
        kt, info = artefact_kind_targets(
            detectid=ts.cols["detectid"][keep], fit_rows=np.arange(keep.sum()), min_answers=1
        )
    assert info["n_not_in_training_set"] == 1 and kt.unmatched == [cands[3].detectid]
    assert "not in the training rows" in caplog.text
    pos = {int(d): i for i, d in enumerate(ts.cols["detectid"][keep])}
    first = pos[cands[0].detectid]  # a tie: the first kind in the task's order, share 0.5
    assert (KINDS[kt.index[first]], kt.weight[first]) == ("cosmic", 0.5)
    assert (KINDS[kt.index[pos[cands[2].detectid]]], kt.weight[pos[cands[2].detectid]]) == (
        "cosmic", 1.0,
    )  # fmt: skip


def test_retrain_adds_the_head_only_above_the_minimum(simulated, settings, monkeypatch):
    seen = []
    real_fit = training_service.fit_evaluate_write

    def spy(data, plan, out, **kw):
        seen.append(data.kinds)
        return real_fit(data, plan, out, **kw)

    monkeypatch.setattr(training_service, "fit_evaluate_write", spy)
    cands, kinds = _fakes(150)
    _answer(cands, kinds)
    settings.ARTEFACT_MIN_ANSWERS = 1000
    plain = train_model_version(label_source="truth", epochs=1, max_time_s=20)
    assert seen[-1] is None
    assert plain.card["model_config"]["artefact_kinds"] == []
    assert "artefact_type" not in plain.card["metrics"]
    assert plain.card["artefact_answers"]["head"] is False

    settings.ARTEFACT_MIN_ANSWERS = 50
    headed = train_model_version(label_source="truth", epochs=1, max_time_s=20)
    kt = seen[-1]
    assert kt is not None and kt.kinds == KINDS
    n_fit = headed.card["artefact_answers"]["n_on_training_rows"]
    assert 50 <= n_fit < 150  # the test split's answers train nothing
    assert headed.card["model_config"]["artefact_kinds"] == list(KINDS)
    m = headed.card["metrics"]["artefact_type"]
    assert m["n_train_answers"] + m["n_eval"] == n_fit
    assert m["kinds"] == list(KINDS) and m["evaluated_on"].startswith("validation")
    assert m["measured"] is (m["n_eval"] >= 20)


def test_console_model_page_shows_the_artefact_figures(client, simulated):
    from labelapp.models import ModelVersion

    client.force_login(make_scientist())
    base = {"model": "LineCNN", "metrics": {"regimes": {}}, "n_train": 10, "n_val": 2}
    measured = ModelVersion.objects.create(
        label_source="consensus", directory="", n_train=10, data_hash="x",
        card={**base, "artefact_answers": {"n_candidates_answered": 80, "min_answers": 50,
              "head": True, "n_on_training_rows": 70, "n_not_in_training_set": 10},
              "metrics": {"regimes": {}, "artefact_type": {
                  "kinds": ["cosmic", "sky"], "n_eval": 25, "min_eval": 20, "measured": True,
                  "accuracy": 0.84, "majority_baseline": 0.6, "confusion": [[14, 1], [3, 7]],
                  "n_train_answers": 45, "loss_weight": 0.3}}},
    )  # fmt: skip
    page = client.get(reverse("console-model", args=[measured.pk])).content.decode()
    assert 'id="artefact-head"' in page and "0.840" in page and "0.600" in page
    assert "<td>14</td><td>1</td><td>15</td>" in page  # cosmic row: cells, then its n
    assert "10 answered candidates" in page
    few = ModelVersion.objects.create(
        label_source="consensus", directory="", n_train=10, data_hash="y",
        card={**base, "artefact_answers": {"n_candidates_answered": 30, "min_answers": 50,
              "head": False, "n_on_training_rows": 30, "n_not_in_training_set": 0}},
    )  # fmt: skip
    page = client.get(reverse("console-model", args=[few.pk])).content.decode()
    assert "No artefact-type head: 30 training candidates" in page
    none = ModelVersion.objects.create(
        label_source="consensus", directory="", n_train=10, data_hash="z", card=base
    )
    page = client.get(reverse("console-model", args=[none.pk])).content.decode()
    assert 'id="artefact-head"' not in page
