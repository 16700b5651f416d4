"""The Python client (client/, package hetdex_label_client) against a live server: Tables
and arrays equal to the database and the stores, transparent paging, polite retries on 429
(the server's real rate limit) and 503, and clear exceptions otherwise."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import requests
from astropy import units as u
from astropy.table import Table

from labelapp.models import Candidate
from labelapp.selectors.volunteers import pseudonym
from labelapp.services.survey.rendering import candidate_pixels
from tests.factories_science import make_science_catalogue, make_token

# CI installs requirements.txt only: the client is imported from the checkout.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "client"))
import hetdex_label_client as hlc

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def site(live_server, tmp_path, own_cache):
    cat = make_science_catalogue(tmp_path)
    return {"url": live_server.url, "cat": cat, "token": make_token()}


@pytest.fixture
def api(site):
    return hlc.Client(site["url"], site["token"].secret)


def test_catalogue_as_a_table_over_pages(site, api):
    cands = site["cat"]["cands"]
    table = api.catalogue(page_size=5)
    assert len(table) == 12 and list(table["detectid"]) == [c.detectid for c in cands]
    assert table.meta == {
        "model_version": site["cat"]["live"].pk,
        "aggregation_run": site["cat"]["run"].pk,
    }
    assert table["ra"].unit == u.deg and table["wave"].unit == u.AA
    np.testing.assert_allclose(table["sn"], [c.sn for c in cands])
    np.testing.assert_allclose(table["cnn_prob"][:8], [0.1 * i + 0.05 for i in range(8)])
    assert list(table["cnn_prob"].mask) == [False] * 8 + [True] * 4
    assert list(table["label"][:4]) == [0, 0, 1, 1] and table["label"].mask[4:].all()
    assert list(table["rounds"][:3]) == ["", "1", "1,2"]
    assert table["expert_label"][0] == 1 and table["expert_label"].mask[1:].all()
    # filters pass through; pages of one row give the same answer
    real = api.catalogue(label="real", page_size=1)
    assert list(real["detectid"]) == [c.detectid for c in cands[2:4]]
    assert len(api.catalogue(max_rows=3, page_size=2)) == 3
    empty = api.catalogue(sn_min=100)
    assert len(empty) == 0 and "cnn_prob" in empty.colnames
    # the Table writes to the formats astronomers read
    out = Path(site["cat"]["live"].directory).parent / "cat.ecsv"
    table.write(out)
    back = Table.read(out)
    assert back["wave"].unit == u.AA and list(back["cnn_prob"].mask) == [False] * 8 + [True] * 4
    assert back.meta["model_version"] == site["cat"]["live"].pk


def test_votes_models_and_arrays(site, api):
    registered, anonymous = site["cat"]["volunteers"]
    votes = api.votes()
    assert list(votes["vote_id"]) == [v.pk for v in site["cat"]["votes"]]
    assert list(votes["volunteer"]) == [pseudonym(registered.pk)] * 2 + [pseudonym(anonymous.pk)]
    assert len(api.votes(detectid=site["cat"]["cands"][1].detectid)) == 2
    models = api.models()
    assert [m["id"] for m in models] == [site["cat"]["live"].pk, site["cat"]["old"].pk]
    assert api.model(site["cat"]["live"].pk)["card"]["metrics"]["low"]["auc"] == 0.9
    enc = site["cat"]["encoder"]
    assert [e["id"] for e in api.encoders()] == [site["cat"]["retired_encoder"].pk, enc.pk]
    assert api.encoder(enc.pk)["models"] == [site["cat"]["old"].pk]
    cand = Candidate.objects.select_related("batch").get(pk=site["cat"]["cands"][2].pk)
    pixels = candidate_pixels(cand)
    np.testing.assert_array_equal(api.cutout(cand.detectid), pixels["cutouts"])
    spectrum = api.spectrum(cand.detectid)
    assert spectrum.shape[0] == 3
    np.testing.assert_array_equal(spectrum[1:], pixels["spec"])
    assert api.cutout_png(cand.detectid).startswith(b"\x89PNG")


def test_clear_exceptions(site, api):
    with pytest.raises(hlc.AuthenticationFailed, match="Unknown token"):
        hlc.Client(site["url"], "sci_wrong").models()
    narrow = make_token(["models:read"], user=site["token"].token.user)
    with pytest.raises(hlc.PermissionDenied, match="catalogue:read") as exc:
        hlc.Client(site["url"], narrow.secret).catalogue()
    assert exc.value.status == 403 and exc.value.code == "forbidden"
    with pytest.raises(hlc.BadRequest, match="sn_min=6.0 is above sn_max=5.0"):
        api.catalogue(sn_min=6, sn_max=5)
    with pytest.raises(hlc.NotFound, match="detectid 42"):
        api.cutout(42)
    with pytest.raises(ValueError, match="token is empty"):
        hlc.Client(site["url"], "")


def test_it_waits_out_the_real_rate_limit(site, api, settings):
    settings.SCIENCE_API_RATE = (2, 2)  # 2 requests per 2-second window per token
    # 6 pages in well under 2 s span at most two windows, so one of them sees a 429
    table = api.catalogue(page_size=2)
    assert list(table["detectid"]) == [c.detectid for c in site["cat"]["cands"]]
    assert api.waits and all(0 < w <= 3 for w in api.waits)


def test_it_gives_up_after_its_retries_with_the_servers_advice(site, settings):
    settings.SCIENCE_API_RATE = (1, 3600)
    slept: list[float] = []
    api = hlc.Client(
        site["url"], site["token"].secret, max_retries=2, max_wait_s=5, sleep=slept.append
    )
    api.models()
    with pytest.raises(hlc.RateLimited) as exc:
        api.models()
    assert exc.value.retry_after_s > 5 and slept == [5, 5]  # capped waits, then the error


class _Stub:
    """A session answering from a script (for 503, which a healthy live server never sends)."""

    def __init__(self, answers):
        self.answers = list(answers)
        self.headers = {}
        self.calls = 0

    def get(self, url, params=None, timeout=None):
        self.calls += 1
        status, headers, body = self.answers.pop(0)
        if status is None:
            raise requests.ConnectionError("connection refused")
        resp = requests.Response()
        resp.status_code, resp._content = status, body
        resp.headers.update(headers)
        return resp


def test_503_and_dropped_connections_are_retried_then_reported():
    ok = (200, {"Content-Type": "application/json"}, b"[]")
    down = (503, {"Retry-After": "7"}, b'{"error": {"code": "unavailable", "message": "db"}}')
    slept: list[float] = []
    stub = _Stub([down, (None, {}, b""), ok])
    api = hlc.Client("http://x", "sci_t", session=stub, sleep=slept.append, max_wait_s=30)
    assert api.models() == [] and stub.calls == 3 and slept == [7.0, 2.0]
    stub = _Stub([down, down])
    api = hlc.Client("http://x", "sci_t", session=stub, sleep=slept.append, max_retries=1)
    with pytest.raises(hlc.ServiceUnavailable, match="503 unavailable: db"):
        api.models()
    assert stub.headers["Authorization"] == "Bearer sci_t"
