"""The shift page and the held-out headline in headless Chromium (screenshots in
test-artifacts/browser/)."""

import pytest

from labelapp.models import IngestBatch, ModelVersion
from labelapp.services.learning.holdout import hold_out_from_truth
from labelapp.services.learning.promotion import gate_model
from labelapp.services.learning.shift import build_batch_reports
from labelapp.services.survey.ingest import ingest_survey
from mlcore.simulator import simulate_survey
from mlcore.survey_io import write_survey
from tests.browser.accounts import scientist_page

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def page(chromium, live_server, console_campaign, tmp_path):
    # a held-out expert sample, and a model judged on it: a measured headline
    hold_out_from_truth(n=150, low_share=0.5, seed=1)
    old = console_campaign["live"]
    mv = ModelVersion.objects.create(
        label_source="truth", directory=old.directory, card=old.card, n_train=old.n_train
    )
    assert gate_model(model_version=mv).promoted
    ingest_survey(
        path=write_survey(
            tmp_path / "corrnoise.fits", simulate_survey(300, seed=78, scenario="correlated_noise")
        )
    )
    for b in IngestBatch.objects.order_by("pk"):
        build_batch_reports(batch=b)
    ctx, pg = scientist_page(chromium, live_server.url)
    yield pg
    ctx.close()


def test_shift_page_shows_each_batch_verdict(page, live_server, shot):
    page.goto(live_server.url + "/console/models/shift/")
    assert page.locator("h1", has_text="out of its depth").count() == 1
    verdicts = page.locator("[data-verdict]").evaluate_all("els => els.map(e => e.dataset.verdict)")
    assert verdicts[0] == "in distribution" and verdicts[1] in ("shifted", "far")
    shot(page, "console-shift")
    page.goto(live_server.url + "/console/")
    assert page.locator('[data-headline="measured"]').count() == 1
    shot(page, "console-campaign-headline")
    assert page.errors == []
