"""The admin shows models, rounds, aggregation runs and labels, read-only: their state changes
only through the services that record what they did (promotion gate, rounds, runs)."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model

from labelapp.models import ModelVersion, Round

pytestmark = pytest.mark.django_db

PAGES = [
    "modelversion",
    "pretrainedencoder",
    "round",
    "roundcandidate",
    "aggregationrun",
    "label",
    "consensusstate",
]


@pytest.fixture
def admin_client(client):
    user = get_user_model().objects.create_superuser("root", "root@example.org", "pw-x-123456")
    client.force_login(user)
    return client


@pytest.mark.parametrize("name", PAGES)
def test_each_page_lists_and_cannot_add(admin_client, name):
    resp = admin_client.get(f"/admin/labelapp/{name}/")
    assert resp.status_code == 200
    assert f"/admin/labelapp/{name}/add/" not in resp.content.decode()
    assert admin_client.get(f"/admin/labelapp/{name}/add/").status_code == 403


def test_a_model_and_a_round_are_shown_not_editable(admin_client):
    mv = ModelVersion.objects.create(label_source="truth", directory="/m", status="promoted")
    rnd = Round.objects.create(number=1, scored_by=mv, n_queued=7)
    page = admin_client.get(f"/admin/labelapp/modelversion/{mv.pk}/change/")
    assert page.status_code == 200 and b'name="status"' not in page.content  # read-only
    listing = admin_client.get("/admin/labelapp/round/").content.decode()
    assert f"/admin/labelapp/round/{rnd.pk}/change/" in listing
    resp = admin_client.post(
        f"/admin/labelapp/modelversion/{mv.pk}/change/",
        {"status": "retired", "label_source": "truth", "directory": "/m"},
    )
    assert resp.status_code == 403
    mv.refresh_from_db()
    assert mv.status == "promoted"
