"""The scientist console's own pages: campaign, volunteers, models, gallery, candidate,
actions (audited), acquisition settings, progress, and the audit log."""

import pytest
from django.urls import reverse

from labelapp.celery import app as celery_app
from labelapp.models import (
    AuditEvent,
    CampaignSettings,
    Candidate,
    Round,
    TaskProgress,
    Vote,
)
from labelapp.selectors.models import RELIABILITY_MIN_BIN
from labelapp.services.crowd.aggregation import aggregate_votes
from labelapp.services.crowd.votes import submit_vote
from tests.factories_console import make_account
from tests.factories_volunteers import make_volunteer

pytestmark = pytest.mark.django_db


def test_campaign_page_counts_per_regime_and_shows_the_live_model(sci, console_campaign):
    resp = sci.get(reverse("console-campaign"))
    html = resp.content.decode()
    assert resp.status_code == 200
    assert f"v{console_campaign['live'].pk}" in html
    counts = resp.context["counts"]
    assert counts["all"]["total"] == 400
    assert counts["low"]["total"] == Candidate.objects.filter(sn__lte=5.5).count()
    assert (
        counts["all"]["seen"]
        == 40 + Candidate.objects.filter(gold__isnull=False, consensus__isnull=False).count()
    )
    act = resp.context["activity"]
    assert act["votes_total"] == 160 and sum(act["votes"]) == 160
    assert act["volunteers"] == [4]
    assert 'data-plot="fig-activity"' in html and "vendor/plotly.min.js" in html


def test_campaign_counts_are_one_query(sci, console_campaign, django_assert_max_num_queries):
    from django.core.cache import cache

    from labelapp.selectors.campaign import candidate_counts

    cache.clear()
    with django_assert_max_num_queries(1):
        candidate_counts()


def test_volunteers_page_shows_skills_and_flags_a_one_answer_spammer(
    sci, console_campaign, settings
):
    from django.core.cache import cache

    settings.VOTE_RATE_LIMIT = 1000
    spammer = make_volunteer()
    for c in Candidate.objects.filter(gold__isnull=True).order_by("-sn")[:25]:
        submit_vote(volunteer=spammer, detectid=c.detectid, answer="yes")
    cache.clear()
    resp = sci.get(reverse("console-volunteers"))
    assert resp.status_code == 200
    flagged = {s["volunteer"]: s["why"] for s in resp.context["spammers"]}
    assert spammer.pk in flagged and "'yes' 100%" in flagged[spammer.pk]
    fig = resp.context["skill_fig"]
    assert {t["name"] for t in fig["data"]} >= {"low S/N", "high S/N"}


def test_volunteers_page_never_shows_email(sci, console_campaign):
    account = make_account(username="alice", email="alice@example.org")
    vol = make_volunteer(user=account)
    for c in console_campaign["voted"][:3]:
        submit_vote(volunteer=vol, detectid=c.detectid, answer="yes")
    aggregate_votes()
    html = sci.get(reverse("console-volunteers")).content.decode()
    assert "alice" in html and "alice@example.org" not in html


def test_models_page_table_and_detail_with_confusion_and_reliability(sci, console_campaign):
    live = console_campaign["live"]
    resp = sci.get(reverse("console-models"))
    assert resp.status_code == 200
    row = next(r for r in resp.context["rows"] if r["mv"].pk == live.pk)
    want = live.card["metrics"]["regimes"]["low"]["balanced_accuracy"]
    assert row["test"]["low"]["balanced_accuracy"] == want
    detail = sci.get(reverse("console-model", args=[live.pk]))
    html = detail.content.decode()
    m = live.card["metrics"]["regimes"]["overall"]
    c = detail.context["confusion"]["overall"]
    assert (c["tp"], c["fp"], c["fn"], c["tn"]) == (m["tp"], m["fp"], m["fn"], m["tn"])
    fig = detail.context["reliability_fig"]
    assert fig["data"][1]["x"]  # a reliability curve
    # ... and, as trained today, the one with the card's per-regime prior shift
    cal = live.card["metrics"]["calibration"]
    assert fig["data"][3]["name"].startswith("+ prior shift (low ")
    counts = cal["reliability_prior_corrected"]["count"]
    assert len(fig["data"][3]["x"]) == sum(1 for c in counts if c and c >= RELIABILITY_MIN_BIN)
    assert f"→ {cal['ece_prior_corrected']:.3f}" in fig["layout"]["title"]["text"]
    assert "Per type" in html and "Per field" in html
    assert "ensemble-members" not in html  # a single CNN
    runs = [{"seed": 0, "val_bacc": 0.8412, "kept": True},
            {"seed": 1, "val_bacc": 0.61, "kept": False},
            {"seed": 2, "val_bacc": 0.83, "kept": True}]  # fmt: skip
    live.card = {**live.card, "member_runs": runs, "model": "EnsembleCNN of 2"}
    live.save(update_fields=["card"])
    html = sci.get(reverse("console-model", args=[live.pk])).content.decode()
    assert "seed 0 validation balanced accuracy 0.841" in html
    assert "seed 1 <strong>dropped</strong> (0.610)" in html and "EnsembleCNN of 2" in html


def test_roll_back_from_the_console_is_audited(sci, console_campaign):
    old = console_campaign["old"]
    resp = sci.post(reverse("console-model-promote", args=[old.pk]))
    assert resp.status_code == 302
    old.refresh_from_db()
    console_campaign["live"].refresh_from_db()
    assert old.status == "promoted" and console_campaign["live"].status == "retired"
    event = AuditEvent.objects.get(action="promote")
    assert event.target == f"model:{old.pk}" and event.username == "sci"
    assert event.detail["previous_live"] == console_campaign["live"].pk
    # promoting the live one again is refused with a message, and nothing is audited
    sci.post(reverse("console-model-promote", args=[old.pk]))
    assert AuditEvent.objects.filter(action="promote").count() == 1


def test_gallery_sections_are_ordered_by_the_model(sci, console_campaign):
    resp = sci.get(reverse("console-gallery"))
    assert resp.status_code == 200
    lists = {key: rows for key, _, rows in resp.context["sections"]}
    probs = [r["prob"] for r in lists["real"]]
    assert probs == sorted(probs, reverse=True) and len(probs) == 8
    assert [r["prob"] for r in lists["artefact"]] == sorted(r["prob"] for r in lists["artefact"])
    gaps = [abs(r["prob"] - r["candidate__consensus__posterior"]) for r in lists["disagree"]]
    assert gaps == sorted(gaps, reverse=True) and gaps
    low = sci.get(reverse("console-gallery") + "?regime=low").context["sections"]
    assert all(r["candidate__sn"] <= 5.5 for _, _, rows in low for r in rows)


def test_attribution_png_is_drawn_and_cached(sci, console_campaign, settings):
    cand = Candidate.objects.first()
    url = reverse("console-attribution", args=[cand.detectid, console_campaign["live"].pk])
    resp = sci.get(url)
    assert resp.status_code == 200 and resp["Content-Type"] == "image/png"
    assert b"".join(resp.streaming_content).startswith(b"\x89PNG")
    cached = list((settings.RENDER_CACHE_DIR / "attribution").rglob("*.png"))
    assert len(cached) == 1


def test_candidate_dossier_has_pseudonymous_votes_and_every_score(sci, console_campaign):
    cand = console_campaign["voted"][0]
    resp = sci.get(reverse("console-candidate", args=[cand.detectid]))
    html = resp.content.decode()
    assert resp.status_code == 200
    assert len(resp.context["votes"]) == 4
    assert all(v["who"].startswith("v") for v in resp.context["votes"])
    assert [s.model_version_id for s in resp.context["scores"]] == [console_campaign["live"].pk]
    assert resp.context["posterior_fig"] is not None
    assert "Simulation truth" in html and 'name="action" value="gold"' in html


def test_unknown_candidate_and_model_are_404(sci, console_campaign):
    assert sci.get(reverse("console-candidate", args=[1])).status_code == 404
    assert sci.get(reverse("console-model", args=[999])).status_code == 404
    assert sci.get(reverse("console-gallery") + "?model=abc").status_code == 404


def test_acquisition_settings_validate_save_and_audit(sci, console_campaign):
    url = reverse("console-acquisition")
    good = {
        "strategy": "entropy",
        "batch_size": 300,
        "random_fraction": 0.2,
        "low_sn_weight": 3,
        "diversity": "wavelength",
        "wave_bin_A": 20,
        "max_bin_fraction": 0.05,
        "carry_fraction": 0.25,
        "shift_fraction": 0.2,
        "seed": 1,
    }
    bad = sci.post(url, good | {"random_fraction": 1.5, "strategy": "oracle"})
    assert bad.status_code == 400
    assert "oracle" in bad.content.decode() and not CampaignSettings.objects.exists()
    assert sci.post(url, good).status_code == 302
    saved = CampaignSettings.objects.get(pk=1).acquisition
    assert saved["strategy"] == "entropy" and saved["batch_size"] == 300
    assert saved["shift_fraction"] == 0.2
    event = AuditEvent.objects.get(action="acquisition_settings")
    assert event.detail["strategy"] == ["bald", "entropy"]
    # the next round uses them
    from labelapp.services.learning.rounds import acquisition_config

    assert acquisition_config().strategy == "entropy"
    assert acquisition_config().shift_fraction == 0.2
    assert acquisition_config(strategy="random").strategy == "random"
    # sampling power: blank (no "power" in the form) is the strict top-k, a value is kept
    assert acquisition_config().power is None
    assert sci.post(url, good | {"power": "2"}).status_code == 302
    assert acquisition_config().power == 2.0
    assert sci.post(url, good | {"power": "-1"}).status_code == 400
    assert acquisition_config().power == 2.0
    page = sci.get(reverse("console-campaign")).content.decode()
    assert "drawn with P ~ score^2.0" in page
    # the carry-over share: kept, shown, and bounded to [0, 1]
    assert acquisition_config().carry_fraction == 0.25
    assert "carry-over share 0.25" in page
    bad = sci.post(url, good | {"carry_fraction": "1.5"})
    assert bad.status_code == 400 and "carry_fraction" in bad.context["form"].errors
    assert acquisition_config().carry_fraction == 0.25


@pytest.fixture
def eager_celery():
    celery_app.conf.task_always_eager = True
    yield
    celery_app.conf.task_always_eager = False


def test_start_round_from_the_console_runs_the_task_with_its_progress_row(
    sci, console_campaign, eager_celery, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        resp = sci.post(reverse("console-start-round"))
    assert resp.status_code == 302
    rnd = Round.objects.get()
    assert rnd.scored_by_id == console_campaign["live"].pk and rnd.n_queued > 0
    row = TaskProgress.objects.get(name="start_round")
    assert row.state == "done" and f"round {rnd.number}" in row.message
    assert AuditEvent.objects.filter(action="start_round").count() == 1


def test_retrain_request_is_queued_with_progress_and_audit(
    sci, console_campaign, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        resp = sci.post(reverse("console-retrain"), {"label_source": "consensus", "epochs": 3})
    assert resp.status_code == 302 and len(callbacks) == 1  # the .delay, after commit
    row = TaskProgress.objects.get(name="retrain_model")
    assert row.state == "queued" and row.key.startswith("console-")
    assert AuditEvent.objects.get(action="retrain").detail == {
        "label_source": "consensus",
        "epochs": 3,
        "fine_tune": False,
        "start_chosen_by": "campaign setting",  # the form's default; no encoder set: scratch
    }
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        sci.post(reverse("console-retrain"), {"label_source": "oracle", "epochs": 3})
        sci.post(reverse("console-retrain"), {"label_source": "consensus", "epochs": "x"})
    assert not callbacks and AuditEvent.objects.filter(action="retrain").count() == 1
    page = sci.post(reverse("console-retrain"), {"epochs": "999"}, follow=True).content.decode()
    assert page.count("got 999") == 1  # the message once, below the console's nav
    # the fine-tune box: from the live model, said in the queued row and the audit record
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        sci.post(
            reverse("console-retrain"), {"label_source": "truth", "epochs": 2, "fine_tune": "1"}
        )
    assert len(callbacks) == 1
    tuned = AuditEvent.objects.filter(action="retrain").order_by("pk").last()
    assert tuned.detail["fine_tune"] is True
    assert "fine-tuned from the live model" in TaskProgress.objects.latest("pk").message


def test_scoring_without_a_live_model_says_what_to_do(sci, db):
    resp = sci.post(reverse("console-score"), follow=True)
    assert "no live model" in resp.content.decode()
    assert not AuditEvent.objects.exists()


def test_progress_json_lists_running_tasks(sci, db):
    TaskProgress.objects.create(name="score_catalogue", key="model-3", state="running", total=10)
    TaskProgress.objects.create(name="score_catalogue", key="model-2", state="done", total=10)
    tasks = sci.get(reverse("console-progress")).json()["tasks"]
    assert [t["key"] for t in tasks] == ["model-3"]


def test_audit_log_lists_and_filters(sci, console_campaign):
    from labelapp.services.operations.audit import record_audit

    user = sci.get(reverse("console-campaign")).wsgi_request.user
    record_audit(user=user, action="export", target="catalogue.csv")
    record_audit(user=user, action="promote", target="model:1", detail={"x": "<b>"})
    html = sci.get(reverse("console-audit")).content.decode()
    assert "catalogue.csv" in html and "model:1" in html and "<b>" not in html
    filtered = sci.get(reverse("console-audit") + "?action=export")
    assert [e.action for e in filtered.context["page"]] == ["export"]


def test_votes_are_untouched_by_page_views(sci, console_campaign):
    n = Vote.objects.count()
    for name in ("console-campaign", "console-volunteers", "console-models", "console-gallery"):
        assert sci.get(reverse(name)).status_code == 200
    assert Vote.objects.count() == n


def test_training_history_figure_draws_one_pair_of_curves_per_ensemble_member():
    from labelapp.selectors.models import history_figure

    one = [{"epoch": e, "train_loss": 1.0 - e / 10, "val_loss": 1.1} for e in range(3)]
    fig = history_figure({"history": one, "best_epoch": 2})
    assert [t["name"] for t in fig["data"]] == ["train loss", "val loss"]
    ens = [{**h, "member": k} for k in range(2) for h in one]
    fig = history_figure({"history": ens})
    names = [t["name"] for t in fig["data"]]
    assert names == ["train loss (member 1)", "val loss (member 1)",
                     "train loss (member 2)", "val loss (member 2)"]  # fmt: skip
    assert fig["data"][2]["x"] == [0, 1, 2]  # each member's epochs from 0
    assert fig["layout"]["title"]["text"] == "Training of 2 members"  # not member 0's epoch
    assert history_figure({}) is None


def test_a_round_before_any_model_or_scores_is_refused_and_says_what_to_do(
    sci, own_cache, django_capture_on_commit_callbacks
):
    """No model: a round would only rebuild the low-S/N order the queue already has (it used
    to report success with 'round 1: 0 queued'). The button is disabled, with why; a live
    model that has not scored yet is refused too."""
    from labelapp.models import ModelVersion

    page = sci.get(reverse("console-campaign")).content.decode()
    assert 'aria-describedby="round-needs-model"' in page and "No model yet" in page
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        resp = sci.post(reverse("console-start-round"), follow=True)
    assert "No round started: there is no live model yet" in resp.content.decode()
    assert not callbacks and not Round.objects.exists()
    assert not TaskProgress.objects.filter(name="start_round").exists()
    assert not AuditEvent.objects.filter(action="start_round").exists()
    mv = ModelVersion.objects.create(
        label_source="truth", directory="/nonexistent", card={}, status="promoted"
    )
    resp = sci.post(reverse("console-start-round"), follow=True)
    assert f"the live model v{mv.pk} has not scored the catalogue yet" in resp.content.decode()
    assert not Round.objects.exists()
