"""The science API (/api/science/v1/): who may call it (anonymous, volunteer, scientist's
token, revoked token, missing scope), what it answers (catalogue with scores, labels,
consensus and rounds; filters; pseudonymised votes; models; arrays and PNG), keyset pages
that stay exact while rows are written, rate limits, the audit log, and every answer
checked against the OpenAPI schema the framework serves."""

from __future__ import annotations

import io

import jsonschema
import numpy as np
import pytest
from django.utils import timezone

from labelapp.errors import Forbidden, InvalidInput
from labelapp.models import (
    AuditEvent,
    Candidate,
    CandidateScore,
    ConsensusState,
    ScienceToken,
    Vote,
)
from labelapp.selectors.volunteers import pseudonym
from labelapp.services.science import tokens
from labelapp.services.survey.rendering import candidate_pixels
from mlcore.survey import SPEC_WAVE
from tests.factories_console import make_account, make_scientist
from tests.factories_science import ALL_SCOPES, make_science_catalogue, make_token
from tests.factories_volunteers import make_volunteer

pytestmark = pytest.mark.django_db

BASE = "/api/science/v1"


@pytest.fixture
def cat(tmp_path, own_cache):
    return make_science_catalogue(tmp_path)


def _auth(secret: str) -> dict:
    return {"HTTP_AUTHORIZATION": f"Bearer {secret}"}


def _get(client, path, secret=None, **params):
    extra = _auth(secret) if secret else {}
    return client.get(BASE + path, params, **extra)


def _pages(client, secret, path="/catalogue", **params) -> list[list[dict]]:
    pages, after = [], None
    while True:
        q = dict(params)
        if after is not None:
            q["after"] = after
        body = _get(client, path, secret, **q).json()
        pages.append(body["rows"])
        after = body["next_after"]
        if after is None:
            return pages


# --- tokens ----------------------------------------------------------------------------


def test_a_token_is_stored_hashed_and_its_secret_is_shown_once(cat):
    new = make_token(["catalogue:read"])
    row = ScienceToken.objects.get(pk=new.token.pk)
    assert new.secret.startswith("sci_") and len(new.secret) > 40
    assert row.key_hash == tokens.hash_secret(new.secret) and new.secret not in row.key_hash
    assert row.prefix == new.secret[:12] and row.scopes == ["catalogue:read"]
    assert not ScienceToken.objects.filter(key_hash=new.secret).exists()
    event = AuditEvent.objects.get(action="token.create")
    assert event.target == f"token:{row.pk}" and new.secret not in str(event.detail)


def test_only_scientists_create_tokens_and_scopes_are_checked(cat):
    with pytest.raises(Forbidden):
        tokens.create_token(user=make_account("vol"), name="x", scopes=["catalogue:read"])
    sci = make_scientist()
    with pytest.raises(InvalidInput, match="Unknown scope"):
        tokens.create_token(user=sci, name="x", scopes=["catalogue:write"])
    with pytest.raises(InvalidInput, match="at least one scope"):
        tokens.create_token(user=sci, name="x", scopes=[])
    with pytest.raises(InvalidInput, match="name"):
        tokens.create_token(user=sci, name="  ", scopes=["catalogue:read"])
    assert ScienceToken.objects.count() == 0


# --- who may call it ---------------------------------------------------------------------

ENDPOINTS = [
    ("/catalogue", "catalogue:read"),
    ("/votes", "votes:read"),
    ("/models", "models:read"),
    ("/models/{model}", "models:read"),
    ("/encoders", "models:read"),
    ("/encoders/{encoder}", "models:read"),
    ("/candidates/{detectid}/cutout.npy", "cutouts:read"),
    ("/candidates/{detectid}/spectrum.npy", "cutouts:read"),
    ("/candidates/{detectid}/cutout.png", "cutouts:read"),
]


def _path(template: str, cat) -> str:
    return template.format(
        model=cat["live"].pk, encoder=cat["encoder"].pk, detectid=cat["cands"][0].detectid
    )


@pytest.mark.parametrize(("template", "scope"), ENDPOINTS)
def test_every_endpoint_by_role(client, cat, template, scope):
    path = _path(template, cat)
    anon = _get(client, path)
    assert anon.status_code == 401 and anon.json()["error"]["code"] == "unauthenticated"
    assert anon["WWW-Authenticate"].startswith("Bearer")
    assert _get(client, path, "sci_not-a-token").status_code == 401

    client.force_login(make_account("vol"))  # a volunteer's session is no token
    assert _get(client, path).status_code == 401
    client.force_login(make_scientist("sci2"))  # nor is a scientist's console session
    assert _get(client, path).status_code == 401
    client.logout()

    full = make_token(username="sci")
    assert _get(client, path, full.secret).status_code == 200

    others = [s for s in ALL_SCOPES if s != scope]
    lacking = make_token(others, user=full.token.user)
    refused = _get(client, path, lacking.secret)
    assert refused.status_code == 403 and scope in refused.json()["error"]["message"]

    tokens.revoke_token(user=full.token.user, token_id=full.token.pk)
    revoked = _get(client, path, full.secret)
    assert revoked.status_code == 401 and "revoked" in revoked.json()["error"]["message"]


def test_a_token_stops_working_when_its_owner_stops_being_a_scientist(client, cat):
    new = make_token()
    assert _get(client, "/models", new.secret).status_code == 200
    new.token.user.groups.clear()
    resp = _get(client, "/models", new.secret)
    assert resp.status_code == 401 and "no longer a scientist" in resp.json()["error"]["message"]


def test_only_the_owner_or_staff_revokes_a_token(cat):
    new = make_token()
    other = make_scientist("other")
    with pytest.raises(tokens.NotFound):
        tokens.revoke_token(user=other, token_id=new.token.pk)
    assert tokens.revoke_token(user=new.token.user, token_id=new.token.pk) is True
    assert tokens.revoke_token(user=new.token.user, token_id=new.token.pk) is False
    assert AuditEvent.objects.filter(action="token.revoke").count() == 1


def test_every_use_is_audited_and_last_used_is_set(client, cat):
    new = make_token()
    assert new.token.last_used_at is None
    _get(client, "/catalogue", new.secret, sn_min=5)
    _get(client, "/models", new.secret)
    events = list(AuditEvent.objects.filter(action="api.read").order_by("pk"))
    assert [e.detail["path"] for e in events] == [f"{BASE}/catalogue", f"{BASE}/models"]
    assert events[0].detail["query"] == "sn_min=5"
    assert {e.target for e in events} == {f"token:{new.token.pk}"}
    assert {e.username for e in events} == {"sci"}
    new.token.refresh_from_db()
    assert new.token.last_used_at is not None
    lacking = make_token(["models:read"], user=new.token.user)
    _get(client, "/votes", lacking.secret)
    denied = AuditEvent.objects.get(action="api.denied")
    assert denied.detail["missing_scope"] == "votes:read"


def test_the_rate_limit_answers_429_with_retry_after(client, cat, settings, monkeypatch):
    from labelapp.services.operations import ratelimit

    # The limit counts fixed windows: pin the clock 30 s into one, so the four requests
    # cannot straddle a window edge on a slow machine (they did once in a full run).
    monkeypatch.setattr(ratelimit.time, "time", lambda: 60 * 20_000_000 + 30.0)
    settings.SCIENCE_API_RATE = (3, 60)
    new = make_token()
    other = make_token(user=new.token.user)
    codes = [_get(client, "/models", new.secret).status_code for _ in range(4)]
    assert codes == [200, 200, 200, 429]
    resp = _get(client, "/models", new.secret)
    assert resp.status_code == 429 and resp.json()["error"]["code"] == "rate_limited"
    retry = int(resp["Retry-After"])
    assert retry == 31 and resp.json()["error"]["retry_after_s"] == retry
    assert _get(client, "/models", other.secret).status_code == 200  # per token


def test_refused_requests_count_against_the_limit_too(client, cat, settings):
    settings.SCIENCE_API_RATE = (2, 60)
    narrow = make_token(["models:read"])
    codes = [_get(client, "/votes", narrow.secret).status_code for _ in range(3)]
    assert codes == [403, 403, 429]
    assert _get(client, "/models", narrow.secret).status_code == 429
    assert AuditEvent.objects.filter(action="api.denied").count() == 2


# --- what it answers ---------------------------------------------------------------------


def test_catalogue_rows_carry_scores_labels_consensus_and_rounds(client, cat):
    secret = make_token().secret
    body = _get(client, "/catalogue", secret).json()
    assert body["model_version"] == cat["live"].pk and body["aggregation_run"] == cat["run"].pk
    rows = {r["detectid"]: r for r in body["rows"]}
    assert body["count"] == 12 and body["next_after"] is None
    for i, c in enumerate(cat["cands"]):
        row = rows[c.detectid]
        assert row["sn"] == pytest.approx(c.sn) and row["wave"] == pytest.approx(c.wave)
        assert row["z_lya"] == pytest.approx(c.z_lya)
        assert row["field"] == c.field and row["status"] == c.status
        if i < 8:
            assert row["cnn_prob"] == pytest.approx(0.1 * i + 0.05)
            assert row["cnn_bald"] == pytest.approx(i / 10)
        else:
            assert row["cnn_prob"] is None and row["cnn_entropy"] is None
        if i < 4:
            assert row["label"] is (i >= 2)
            assert row["label_posterior"] == pytest.approx(0.2 + 0.2 * i)
            assert row["label_n_votes"] == 3 + i
        else:
            assert row["label"] is None and row["label_n_votes"] is None
    first, second, third = (rows[c.detectid] for c in cat["cands"][:3])
    assert first["consensus_posterior"] == 0.9 and first["expert_label"] is True
    assert second["consensus_posterior"] is None
    assert [first["rounds"], second["rounds"], third["rounds"]] == [[], [1], [1, 2]]
    # another model's scores on request
    older = _get(client, "/catalogue", secret, model_version=cat["old"].pk).json()
    assert older["model_version"] == cat["old"].pk
    assert {r["cnn_prob"] for r in older["rows"]} == {0.5}


def _ids(client, secret, **filters) -> list[int]:
    return [r["detectid"] for r in _get(client, "/catalogue", secret, **filters).json()["rows"]]


def test_catalogue_filters(client, cat):
    secret = make_token().secret
    cands = cat["cands"]
    by_sn = sorted(cands, key=lambda c: c.sn)
    lo, hi = by_sn[3].sn, by_sn[8].sn
    expect = sorted(c.detectid for c in cands if lo <= c.sn <= hi)
    assert _ids(client, secret, sn_min=lo, sn_max=hi) == expect and len(expect) >= 6
    w_lo, w_hi = 4000, 5000
    expect = sorted(c.detectid for c in cands if w_lo <= c.wave <= w_hi)
    assert _ids(client, secret, wave_min=w_lo, wave_max=w_hi) == expect
    # score: live-model probabilities 0.05, 0.15, ... for the first 8
    assert _ids(client, secret, score_min=0.3, score_max=0.6) == [c.detectid for c in cands[3:6]]
    assert _ids(client, secret, label="real") == [c.detectid for c in cands[2:4]]
    assert _ids(client, secret, label="not_real") == [c.detectid for c in cands[:2]]
    assert _ids(client, secret, label="none") == [c.detectid for c in cands[4:]]
    Candidate.objects.filter(pk=cands[5].pk).update(field="goods-n", status="retired")
    assert _ids(client, secret, field="goods-n") == [cands[5].detectid]
    assert _ids(client, secret, status="retired") == [cands[5].detectid]
    assert _ids(client, secret, field="goods-n", label="real") == []


@pytest.mark.parametrize(
    ("params", "says"),
    [
        ({"sn_min": 6, "sn_max": 5}, "sn_min=6.0 is above sn_max=5.0"),
        ({"limit": 0}, "limit=0"),
        ({"limit": 5000}, "1 to 1000"),
        ({"label": "maybe"}, "label='maybe'"),
        ({"status": "gone"}, "status='gone'"),
        ({"sn_min": "abc"}, "sn_min"),
        ({"score_min": "nan"}, "score_min=nan is not a finite number"),
    ],
)
def test_bad_parameters_say_what_is_wrong(client, cat, params, says):
    resp = _get(client, "/catalogue", make_token().secret, **params)
    assert resp.status_code == 400 and says in resp.json()["error"]["message"]


def test_unknown_model_and_candidate_are_404(client, cat):
    secret = make_token().secret
    assert _get(client, "/catalogue", secret, model_version=999).status_code == 404
    assert _get(client, "/models/999", secret).status_code == 404
    resp = _get(client, "/candidates/42/cutout.npy", secret)
    assert resp.status_code == 404 and "42" in resp.json()["error"]["message"]
    for path in ("/nowhere", "/"):
        resp = _get(client, path, secret)
        assert resp.status_code == 404
        assert resp.json()["error"]["message"].endswith("see /api/science/v1/openapi.json")


def test_keyset_pages_cover_the_catalogue_once(client, cat):
    secret = make_token().secret
    pages = _pages(client, secret, limit=5)
    assert [len(p) for p in pages] == [5, 5, 2]
    seen = [r["detectid"] for p in pages for r in p]
    assert seen == sorted(c.detectid for c in cat["cands"])


def test_pages_stay_exact_while_votes_scores_and_rows_are_written(client, cat):
    """Between pages: new votes and consensus, rescored rows, a new model's scores, new
    candidates before and after the cursor. Every row that existed at the start is seen
    exactly once; rows inserted ahead of the cursor show up once, behind it never."""
    secret = make_token().secret
    cands = cat["cands"]
    original = {c.detectid for c in cands}
    batch = cands[0].batch
    seen, after, step = [], None, 0
    volunteer = make_volunteer()
    while True:
        q = {"limit": 3} | ({"after": after} if after is not None else {})
        body = _get(client, "/catalogue", secret, **q).json()
        seen += [r["detectid"] for r in body["rows"]]
        after = body["next_after"]
        if after is None:
            break
        # writes between pages, on rows already seen and rows still to come
        target = cands[(step * 5) % len(cands)]
        Vote.objects.create(volunteer=volunteer, candidate=target, answer="yes")
        ConsensusState.objects.update_or_create(
            candidate=target, defaults={"posterior": 0.5, "n_votes": step + 1}
        )
        CandidateScore.objects.filter(model_version=cat["live"]).update(prob=0.01 * step)
        Candidate.objects.create(
            detectid=cands[0].detectid - 100 - step, batch=batch, row=1000 + 2 * step,
            shotid=1, field="cosmos", ra=150, dec=2, wave=4100, flux=1, flux_err=1,
            linewidth=3, sn=5, chi2=1,
        )  # fmt: skip
        Candidate.objects.create(
            detectid=cands[-1].detectid + 100 + step, batch=batch, row=1001 + 2 * step,
            shotid=1, field="cosmos", ra=150, dec=2, wave=4100, flux=1, flux_err=1,
            linewidth=3, sn=5, chi2=1,
        )  # fmt: skip
        step += 1
    assert step >= 3
    assert len(seen) == len(set(seen)), "a row was served twice"
    assert original <= set(seen), "a row was skipped"
    behind = {cands[0].detectid - 100 - s for s in range(step)}
    ahead = {cands[-1].detectid + 100 + s for s in range(step)}
    assert not behind & set(seen)
    assert set(seen) - original == ahead
    assert seen == sorted(seen)


def test_votes_are_pseudonymised_and_paged(client, cat):
    secret = make_token().secret
    registered, anonymous = cat["volunteers"]
    pages = _pages(client, secret, "/votes", limit=2)
    rows = [r for p in pages for r in p]
    assert [r["vote_id"] for r in rows] == [v.pk for v in cat["votes"]]
    assert [r["volunteer"] for r in rows] == [
        pseudonym(registered.pk),
        pseudonym(registered.pk),
        pseudonym(anonymous.pk),
    ]
    assert [r["registered"] for r in rows] == [True, True, False]
    assert rows[1]["answer"] == "no" and rows[1]["reason"] == "sky"
    raw = _get(client, "/votes", secret).content.decode()
    assert "alice" not in raw and "example.org" not in raw and "127.0.0.1" not in raw
    for v in (registered, anonymous):
        assert f'"volunteer": {v.pk}' not in raw and '"volunteer_id"' not in raw
    one = _get(client, "/votes", secret, detectid=cat["cands"][1].detectid).json()
    assert [r["answer"] for r in one["rows"]] == ["no", "unsure"]


def test_models_and_their_cards(client, cat):
    secret = make_token().secret
    listed = _get(client, "/models", secret).json()
    assert [m["id"] for m in listed] == [cat["live"].pk, cat["old"].pk]
    assert listed[0]["status"] == "promoted" and listed[0]["n_train"] == 321
    detail = _get(client, f"/models/{cat['live'].pk}", secret).json()
    assert detail["card"]["metrics"]["low"]["auc"] == 0.9
    assert detail["card"]["metrics"]["low"]["n"] == 40 and detail["data_hash"] == "ab" * 32


def test_encoders_with_their_cards_and_the_models_started_from_them(client, cat, tmp_path):
    from tests.factories_science import make_encoder

    enc, retired = cat["encoder"], cat["retired_encoder"]
    narrow = make_encoder(tmp_path / "enc3", width=6)
    secret = make_token(["models:read"]).secret
    listed = _get(client, "/encoders", secret).json()
    assert [e["id"] for e in listed] == [narrow.pk, retired.pk, enc.pk]  # newest first
    by_id = {e["id"]: e for e in listed}
    first = by_id[enc.pk]
    assert first["approach"] == "masked" and first["n_candidates"] == 12
    assert first["epochs"] == 2 and first["final_loss"] == 0.25
    assert first["models"] == [cat["old"].pk] and first["offered"] is True
    assert first["problem"] is None and first["retired_at"] is None
    assert first["data_hash"] == "cd" * 32 and first["fields"] == {"cosmos": 12}
    gone = by_id[retired.pk]
    assert gone["offered"] is False and gone["retired_at"] is not None
    assert gone["retired_reason"] == "superseded by v1" and gone["models"] == []
    assert by_id[narrow.pk]["offered"] is False and "width 6" in by_id[narrow.pk]["problem"]
    detail = _get(client, f"/encoders/{enc.pk}", secret).json()
    assert detail["loss_curve"] == [0.5, 0.25] and detail["card"]["kind"] == "pretrained-encoder"
    assert {k: detail[k] for k in first} == first
    missing = _get(client, "/encoders/999999", secret)
    assert missing.status_code == 404 and "/encoders" in missing.json()["error"]["message"]


def test_cutouts_and_spectra_as_arrays_and_png(client, cat):
    secret = make_token(["cutouts:read"]).secret
    cand = Candidate.objects.select_related("batch").get(pk=cat["cands"][3].pk)
    pixels = candidate_pixels(cand)
    resp = _get(client, f"/candidates/{cand.detectid}/cutout.npy", secret)
    assert resp["Content-Type"] == "application/x-npy"
    cutout = np.load(io.BytesIO(resp.content), allow_pickle=False)
    assert cutout.shape == (5, 9, 100) and cutout.dtype == np.float32
    np.testing.assert_array_equal(cutout, pixels["cutouts"])
    resp = _get(client, f"/candidates/{cand.detectid}/spectrum.npy", secret)
    spec = np.load(io.BytesIO(resp.content), allow_pickle=False)
    assert spec.shape == (3, len(SPEC_WAVE))
    np.testing.assert_array_equal(spec[0], SPEC_WAVE)
    np.testing.assert_array_equal(spec[1:], pixels["spec"])
    png = _get(client, f"/candidates/{cand.detectid}/cutout.png", secret)
    assert png["Content-Type"] == "image/png"
    assert b"".join(png.streaming_content).startswith(b"\x89PNG\r\n\x1a\n")


# --- the served schema matches the real answers ------------------------------------------


def _validator(schema: dict, ref: dict) -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator(
        {**ref, "components": schema["components"]},
        format_checker=jsonschema.FormatChecker(),
    )


def _response_schema(schema: dict, path_template: str, status: int) -> dict:
    op = schema["paths"][BASE + path_template]["get"]
    return op["responses"][str(status)]["content"]


def test_every_answer_matches_the_served_openapi_schema(client, cat, settings):
    schema = client.get(f"{BASE}/openapi.json").json()
    assert schema["openapi"].startswith("3.")
    served = {p.removeprefix(BASE) for p in schema["paths"]}
    templates = {t.replace("{model}", "{pk}").replace("{encoder}", "{pk}") for t, _ in ENDPOINTS}
    assert served == templates, "a route without a test (or a test of no route)"
    secret = make_token().secret
    lacking = make_token(["models:read"], user=ScienceToken.objects.get().user).secret
    checked = 0
    for template, scope in ENDPOINTS:
        path = _path(template, cat)
        key = template.replace("{model}", "{pk}").replace("{encoder}", "{pk}")
        for status, resp in (
            (200, _get(client, path, secret)),
            (401, _get(client, path)),
            (403, _get(client, path, lacking)) if scope != "models:read" else (None, None),
            (404, _get(client, "/encoders/999999", secret))
            if key == "/encoders/{pk}"
            else (None, None),
        ):
            if status is None:
                continue
            assert resp.status_code == status, (path, resp.status_code)
            content = _response_schema(schema, key, status)
            ctype = resp["Content-Type"].split(";")[0]
            assert ctype in content, f"{path} {status}: {ctype} not in the schema"
            if ctype == "application/json":
                _validator(schema, content[ctype]["schema"]).validate(resp.json())
                checked += 1
    bad = _get(client, "/catalogue", secret, limit=0)
    _validator(schema, _response_schema(schema, "/catalogue", 400)["application/json"]["schema"]
               ).validate(bad.json())  # fmt: skip
    settings.SCIENCE_API_RATE = (1, 60)
    limited = make_token(user=ScienceToken.objects.first().user).secret
    _get(client, "/models", limited)
    over = _get(client, "/models", limited)
    assert over.status_code == 429
    _validator(schema, _response_schema(schema, "/models", 429)["application/json"]["schema"]
               ).validate(over.json())  # fmt: skip
    assert checked >= 15
    # an answer that breaks the schema would be caught
    with pytest.raises(jsonschema.ValidationError):
        _validator(schema, _response_schema(schema, "/catalogue", 200)["application/json"][
            "schema"]).validate({"rows": [{"detectid": "x"}], "count": 1})  # fmt: skip


def test_revoked_token_revocation_time_is_kept(cat):
    new = make_token()
    before = timezone.now()
    tokens.revoke_token(user=new.token.user, token_id=new.token.pk)
    new.token.refresh_from_db()
    assert new.token.revoked_at >= before
