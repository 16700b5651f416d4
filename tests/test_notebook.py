"""The example notebook (notebooks/science_api_tour.ipynb) runs, every cell, against a live
server with a real (briefly trained) model: catalogue through the client, N(z) before and
after the cut, cutouts, and scoring with mlcore that agrees with the platform's scores."""

from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from labelapp.models import Candidate, CandidateScore, ModelVersion
from tests.factories_science import make_token

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOK = ROOT / "notebooks" / "science_api_tour.ipynb"

pytestmark = pytest.mark.django_db(transaction=True)


def test_the_notebook_runs_against_a_live_server(
    live_server, console_survey_file, console_model_dir, own_cache, monkeypatch
):
    import json

    from labelapp.services.learning.scoring import score_all
    from labelapp.services.survey.ingest import ingest_survey
    from mlcore.cnn.card import CARD_NAME

    ingest_survey(path=console_survey_file)
    card = json.loads((console_model_dir / CARD_NAME).read_text())
    mv = ModelVersion.objects.create(
        label_source="truth",
        directory=str(console_model_dir),
        card=card,
        n_train=card["n_train"],
        status=ModelVersion.Status.PROMOTED,
    )
    score_all(model_version=mv, n_samples=10)
    token = make_token()
    monkeypatch.setenv("HETDEX_LABEL_URL", live_server.url)
    monkeypatch.setenv("HETDEX_LABEL_TOKEN", token.secret)
    monkeypatch.setenv("HETDEX_LABEL_MODEL_DIR", str(console_model_dir))
    nb = nbformat.read(NOTEBOOK, as_version=4)
    assert not any(c.get("outputs") for c in nb.cells if c.cell_type == "code")  # kept clean
    NotebookClient(
        nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(ROOT)}}
    ).execute()  # raises CellExecutionError, with the cell and its traceback, on any failure
    text = "\n".join(
        o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs
    )
    n = Candidate.objects.filter(sn__gte=4.8).count()
    n_scored = CandidateScore.objects.filter(model_version=mv, candidate__sn__gte=4.8).count()
    assert f"{n} candidates at S/N >= 4.8, {n_scored} scored by model v{mv.pk}" in text
    diff = re.search(r"20 candidates: mean \|mlcore - platform\| = ([0-9.]+)", text)
    assert diff and float(diff[1]) < 0.1
    # the figures were produced (plotly's JSON in the cell outputs)
    figures = [
        o for c in nb.cells if c.cell_type == "code" for o in c.outputs
        if "application/vnd.plotly.v1+json" in o.get("data", {})
    ]  # fmt: skip
    assert len(figures) == 3
