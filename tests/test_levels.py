"""Levels by shown skill: the maths (mlcore.aggregation.levels), the level stored from gold
answers (services.crowd.levels), the queue serving by level, the level-3 artefact-type task
stored and exported, promotion said in the vote's answer, and the rules on /me/."""

import csv
import io
import json

import numpy as np
import pytest
from django.core.management import call_command
from django.test import Client

from labelapp.models import ArtefactAnswer, Candidate, Volunteer, Vote
from labelapp.services.crowd import levels
from labelapp.services.crowd.queue import next_candidates
from labelapp.services.crowd.volunteers import SESSION_KEY
from mlcore.aggregation.levels import (
    HIGH,
    LOW,
    LevelRule,
    beta_quantile,
    level_for,
    regime_skills,
)
from mlcore.survey import SN_LOW_MAX
from tests.factories_volunteers import (
    assert_matches_vote_schema,
    make_candidates,
    make_gold,
    with_token,
)

RULE = LevelRule()  # the defaults: 0.7 at 90 %, 10 gold answers


# --- the maths ------------------------------------------------------------------------


def test_beta_quantile_matches_the_closed_form():
    # Beta(k + 1, 1) has CDF x^(k+1): its q quantile is q^(1/(k+1))
    k = np.array([0, 2, 5, 6, 20])
    got = beta_quantile(k + 1, np.ones_like(k), 0.1)
    np.testing.assert_allclose(got, 0.1 ** (1 / (k + 1)), atol=5e-4)
    # symmetric Beta: median 0.5
    assert beta_quantile([4.0], [4.0], 0.5)[0] == pytest.approx(0.5, abs=5e-4)


def _answers(regime: int, real_right: int, real_wrong: int, fake_right: int, fake_wrong: int):
    said = [True] * real_right + [False] * real_wrong + [False] * fake_right + [True] * fake_wrong
    real = [True] * (real_right + real_wrong) + [False] * (fake_right + fake_wrong)
    return np.array(said), np.array(real), np.full(len(said), regime)


def _skills(*parts):
    arrays = [_answers(*p) for p in parts] or [_answers(HIGH, 0, 0, 0, 0)]
    return regime_skills(*(np.concatenate(a) for a in zip(*arrays, strict=True)), RULE)


def test_skill_is_measured_not_counted():
    # 60 gold answers, 60 % right in each class: many answers, no skill shown
    many_wrong = _skills((HIGH, 18, 12, 18, 12))
    assert many_wrong[HIGH].n_gold == 60 and level_for(many_wrong, 1, RULE) == 1
    # 6 of 6 real and 6 of 6 fake: promoted (Beta(7, 1)'s 10th percentile is 0.72)
    assert level_for(_skills((HIGH, 6, 0, 6, 0)), 1, RULE) == 2
    # 5 of 5 each: the lower bound (0.68) is not there yet, nor the minimum of 10
    assert level_for(_skills((HIGH, 5, 0, 5, 0)), 1, RULE) == 1
    # 10 of 11 each pass; 9 of 10 each do not (the module's stated figures)
    assert level_for(_skills((HIGH, 10, 1, 10, 1)), 1, RULE) == 2
    assert level_for(_skills((HIGH, 9, 1, 9, 1)), 1, RULE) == 1


def test_a_yes_sayer_is_never_promoted_however_many_answers():
    # says yes to everything: sensitivity 1, specificity 0
    skills = _skills((HIGH, 50, 0, 0, 50))
    assert skills[HIGH].sens_lower > 0.9 and skills[HIGH].spec_lower < 0.1
    assert level_for(skills, 1, RULE) == 1


def test_random_clickers_are_rarely_promoted():
    rng = np.random.default_rng(0)
    promoted = 0
    for _ in range(300):
        is_real = rng.random(30) < 0.5
        said = rng.random(30) < 0.5  # answers unrelated to the truth
        s = regime_skills(said, is_real, np.full(30, HIGH), RULE)
        promoted += level_for(s, 1, RULE) > 1
    assert promoted / 300 < 0.02


def test_level_three_needs_low_sn_skill_too_and_demotion_has_hysteresis():
    both = _skills((HIGH, 8, 0, 8, 0), (LOW, 8, 0, 8, 0))
    assert level_for(both, 1, RULE) == 3
    high_only = _skills((HIGH, 8, 0, 8, 0), (LOW, 4, 4, 4, 4))
    assert level_for(high_only, 1, RULE) == 2
    # at level 3, one slip at low S/N (7 of 8 real): the mean stays above 0.7, level kept
    slip = _skills((HIGH, 8, 0, 8, 0), (LOW, 7, 1, 8, 0))
    assert level_for(slip, 1, RULE) == 2  # not enough to be promoted to 3 from below...
    assert level_for(slip, 3, RULE) == 3  # ...but enough to keep it
    # low-S/N skill gone (half wrong): back to 2; high-S/N gone as well: back to 1
    assert level_for(_skills((HIGH, 8, 0, 8, 0), (LOW, 5, 5, 5, 5)), 3, RULE) == 2
    assert level_for(_skills((HIGH, 5, 5, 5, 5), (LOW, 5, 5, 5, 5)), 3, RULE) == 1


def test_bad_rules_and_arrays_are_refused():
    with pytest.raises(ValueError, match="skill"):
        LevelRule(skill=0.3)
    with pytest.raises(ValueError, match="same length"):
        regime_skills(np.ones(3, bool), np.ones(2, bool), np.ones(3, int))
    with pytest.raises(ValueError, match="regime"):
        regime_skills(np.ones(2, bool), np.ones(2, bool), np.array([0, 2]))


# --- the site ---------------------------------------------------------------------------


@pytest.fixture
def site(db):
    """40 low-S/N and 40 high-S/N candidates; 6 gold of each class in each regime (levels in
    force with the default LEVELS_SITE_MIN_GOLD of 5)."""
    low = make_candidates(40, first_id=1_000, sn0=4.8)  # 4.80 .. 5.19
    high = make_candidates(40, first_id=2_000, sn0=6.0)  # 6.00 .. 6.39
    gold = {}
    for name, cands in (("low", low), ("high", high)):
        gold[name] = [make_gold(c, is_real=k < 6) for k, c in enumerate(cands[-12:])]
    return {"low": low[:-12], "high": high[:-12], "gold": gold}


def _gold_votes(volunteer, gold, right: int, wrong: int, *, real: bool):
    picks = [g for g in gold if g.is_real == real]
    assert right + wrong <= len(picks)
    for k, g in enumerate(picks[: right + wrong]):
        ok = k < right
        answer = ("yes" if ok else "no") if real else ("no" if ok else "yes")
        Vote.objects.create(
            volunteer=volunteer, candidate=g.candidate, answer=answer, was_gold=True
        )


def test_levels_need_enough_gold_on_the_site(site):
    assert levels.levels_in_force()
    site["gold"]["low"][0].delete()  # 5 real at low S/N left: still in force
    assert levels.levels_in_force()
    site["gold"]["low"][1].delete()  # 4: no longer
    assert not levels.levels_in_force()
    assert levels.serving_level(volunteer=None) is None  # every regime served


def test_refresh_level_from_gold_answers_in_the_database(site):
    v = Volunteer.objects.create()
    _gold_votes(v, site["gold"]["high"], 6, 0, real=True)
    _gold_votes(v, site["gold"]["high"], 5, 1, real=False)  # 5 of 6 fakes: 0.62 lower bound
    assert levels.refresh_level(volunteer=v) is None and v.level == 1
    Vote.objects.filter(volunteer=v, answer="yes", candidate__gold__is_real=False).update(
        answer="no"
    )
    change = levels.refresh_level(volunteer=v)
    assert change is not None and change.promoted and (change.old, change.new) == (1, 2)
    v.refresh_from_db()
    assert v.level == 2 and v.level_changed_at is not None
    assert "Promoted to level 2" in change.message()
    # 'not sure' on gold says nothing: 12 of them at low S/N change no level
    for g in site["gold"]["low"]:
        Vote.objects.create(volunteer=v, candidate=g.candidate, answer="unsure", was_gold=True)
    assert levels.refresh_level(volunteer=v) is None and v.level == 2


def test_many_wrong_gold_answers_do_not_promote(site):
    v = Volunteer.objects.create()
    _gold_votes(v, site["gold"]["high"], 4, 2, real=True)
    _gold_votes(v, site["gold"]["high"], 4, 2, real=False)
    _gold_votes(v, site["gold"]["low"], 3, 3, real=True)
    _gold_votes(v, site["gold"]["low"], 3, 3, real=False)
    assert Vote.objects.filter(volunteer=v).count() == 24
    assert levels.refresh_level(volunteer=v) is None and v.level == 1


def test_demotion_when_gold_answers_go_wrong(site):
    v = Volunteer.objects.create(level=2)
    _gold_votes(v, site["gold"]["high"], 3, 3, real=True)
    _gold_votes(v, site["gold"]["high"], 3, 3, real=False)
    change = levels.refresh_level(volunteer=v)
    assert change is not None and not change.promoted and v.level == 1
    assert "Back to level 1" in change.message()


def _served_sn(volunteer, n=20, **kw) -> list[float]:
    sn = dict(Candidate.objects.values_list("detectid", "sn"))
    level = levels.serving_level(volunteer=volunteer)
    return [sn[r["detectid"]] for _ in range(n) for r in next_candidates(
        volunteer=volunteer, count=3, level=level, **kw)]  # fmt: skip


def test_queue_serves_level_one_high_sn_only_gold_included(site, monkeypatch):
    from labelapp.services.crowd import queue

    newbie = Volunteer.objects.create()
    assert levels.serving_level(volunteer=newbie) == 1
    assert levels.serving_level(volunteer=None) == 1  # someone with no vote yet
    served = _served_sn(newbie)
    assert served and min(served) > SN_LOW_MAX
    monkeypatch.setattr(queue, "gold_rate", lambda n: 1.0)  # gold only: high-S/N gold only
    gold = _served_sn(newbie, n=10)
    gold_ids = {g.candidate.sn for g in site["gold"]["high"]}
    assert gold and set(gold) <= gold_ids
    monkeypatch.setattr(queue, "gold_rate", lambda n: 0.0)
    # level 2: the low-S/N candidates (first in queue order, priority -sn) are served
    promoted = Volunteer.objects.create(level=2)
    assert levels.serving_level(volunteer=promoted) == 2
    assert min(_served_sn(promoted)) <= SN_LOW_MAX
    # the same when levels are not in force (a new site): a newcomer gets every regime
    for g in site["gold"]["low"]:
        g.delete()
    assert levels.serving_level(volunteer=newbie) is None
    assert min(_served_sn(newbie)) <= SN_LOW_MAX


def test_seeded_queue_respects_the_level_too(site):
    import random

    v = Volunteer.objects.create()
    sn = dict(Candidate.objects.values_list("detectid", "sn"))
    rng = random.Random(3)
    rows = [r for _ in range(40) for r in next_candidates(volunteer=v, rng=rng, level=1)]
    assert rows and min(sn[r["detectid"]] for r in rows) > SN_LOW_MAX


# --- over HTTP ------------------------------------------------------------------------


@pytest.fixture
def browser(site):
    c = Client(enforce_csrf_checks=True)
    c.get("/api/next/")
    return c


def _post(client, url, body):
    headers = {"X-CSRFToken": client.cookies["csrftoken"].value}
    if url == "/api/votes/":
        body = with_token(client, body)
    return client.post(url, json.dumps(body), content_type="application/json", headers=headers)


def _as(client, volunteer):
    session = client.session
    session[SESSION_KEY] = volunteer.pk
    session.save()


@pytest.mark.usefixtures("own_cache")
def test_api_next_serves_by_level_and_the_served_check_still_holds(browser, site):
    sn = dict(Candidate.objects.values_list("detectid", "sn"))
    for _ in range(5):
        got = browser.get("/api/next/?count=3").json()["candidates"]
        assert got and all(sn[c["detectid"]] > SN_LOW_MAX for c in got)
    # a vote on a low-S/N candidate this session was never served: refused, as before
    low = site["low"][0].detectid
    r = _post(browser, "/api/votes/", {"detectid": low, "answer": "yes", "token": "x"})
    assert r.status_code == 403 and r.json()["error"]["code"] == "not_served"


@pytest.mark.usefixtures("own_cache")
def test_a_gold_answer_that_promotes_says_so_in_the_vote_answer(browser, site):
    v = Volunteer.objects.create(n_votes=30)
    _as(browser, v)
    high = site["gold"]["high"]
    _gold_votes(v, high, 6, 0, real=True)
    _gold_votes(v, high, 5, 0, real=False)
    last_fake = [g for g in high if not g.is_real][5]
    r = _post(browser, "/api/votes/", {"detectid": last_fake.candidate.detectid, "answer": "no"})
    assert r.status_code == 201, r.content
    body = r.json()
    assert body["feedback"]["correct"] is True
    assert body["level_change"] == {
        "from": 1, "to": 2, "promoted": True, "message": body["level_change"]["message"]
    }  # fmt: skip
    assert "faint candidates" in body["level_change"]["message"]
    assert body["volunteer"]["level"] == 2
    assert_matches_vote_schema(body)  # level_change dumped by its alias "from"
    # the candidates handed out with that answer already follow the new level
    v.refresh_from_db()
    assert v.level == 2
    # a repeat of the same answer changes nothing and says nothing
    again = _post(
        browser, "/api/votes/", {"detectid": last_fake.candidate.detectid, "answer": "no"}
    )
    assert again.status_code == 200 and "level_change" not in again.json()


@pytest.mark.usefixtures("own_cache")
def test_level_three_artefact_answers_are_stored_and_exported(browser, site, tmp_path):
    v = Volunteer.objects.create(level=3)
    _as(browser, v)
    cands = site["high"][:3]
    for c, kind in zip(cands, ("cosmic", "sky", "cosmic"), strict=True):
        assert (
            _post(browser, "/api/votes/", {"detectid": c.detectid, "answer": "no"}).status_code
            == 201
        )
        r = _post(browser, "/api/votes/reason/", {"detectid": c.detectid, "reason": kind})
        assert r.status_code == 200 and r.json()["artefact_recorded"] is True
    # changing the answer replaces it; a second volunteer's answer adds to the candidate
    _post(browser, "/api/votes/reason/", {"detectid": cands[2].detectid, "reason": "hotcol"})
    other = Volunteer.objects.create(level=3)
    vote = Vote.objects.create(volunteer=other, candidate=cands[0], answer="no")
    levels.record_artefact_answer(volunteer=other, vote=vote, kind="sky")
    stored = {
        (a.candidate.detectid, a.volunteer_id): (a.kind, a.level)
        for a in ArtefactAnswer.objects.select_related("candidate")
    }
    assert stored == {
        (cands[0].detectid, v.pk): ("cosmic", 3),
        (cands[1].detectid, v.pk): ("sky", 3),
        (cands[2].detectid, v.pk): ("hotcol", 3),
        (cands[0].detectid, other.pk): ("sky", 3),
    }
    targets = {t.detectid: t for t in levels.artefact_targets()}
    assert targets[cands[0].detectid].n_answers == 2 and targets[cands[0].detectid].share == 0.5
    assert targets[cands[0].detectid].kind == "cosmic"  # a tie goes to the first kind listed
    assert (targets[cands[2].detectid].kind, targets[cands[2].detectid].share) == ("hotcol", 1.0)
    out = tmp_path / "artefacts.csv"
    call_command("export_artefact_types", "--out", str(out), stdout=io.StringIO())
    rows = list(csv.DictReader(out.open()))
    assert [int(r["detectid"]) for r in rows] == sorted(c.detectid for c in cands)
    first = rows[0]
    assert (first["kind"], first["n_answers"], first["n_cosmic"], first["n_sky"]) == (
        "cosmic", "2", "1", "1"
    )  # fmt: skip


@pytest.mark.usefixtures("own_cache")
def test_below_level_three_the_reason_stays_optional_and_is_not_a_target(browser, site):
    v = Volunteer.objects.create(level=2)
    _as(browser, v)
    c = site["high"][0]
    assert (
        _post(browser, "/api/votes/", {"detectid": c.detectid, "answer": "no"}).status_code == 201
    )
    r = _post(browser, "/api/votes/reason/", {"detectid": c.detectid, "reason": "cosmic"})
    assert r.status_code == 200 and r.json()["artefact_recorded"] is False
    assert Vote.objects.get(volunteer=v, candidate=c).reason == "cosmic"
    assert not ArtefactAnswer.objects.exists()
    with pytest.raises(levels.NotLevelThree):
        levels.record_artefact_answer(
            volunteer=v, vote=Vote.objects.get(volunteer=v, candidate=c), kind="cosmic"
        )


def test_undoing_the_vote_removes_its_artefact_answer(site):
    v = Volunteer.objects.create(level=3)
    vote = Vote.objects.create(volunteer=v, candidate=site["high"][0], answer="no")
    levels.record_artefact_answer(volunteer=v, vote=vote, kind="meteor")
    with pytest.raises(Exception, match="kind must be one of"):
        levels.record_artefact_answer(volunteer=v, vote=vote, kind="<b>")
    vote.delete()
    assert not ArtefactAnswer.objects.exists()


def test_classify_page_asks_the_artefact_task_at_level_three_only(client, site):
    v = Volunteer.objects.create(level=3, tutorial_done=True)
    _as(client, v)
    assert "Level 3 task: which artefact is it?" in client.get("/classify/").content.decode()
    Volunteer.objects.filter(pk=v.pk).update(level=2)
    html = client.get("/classify/").content.decode()
    assert "Level 3 task" not in html and "Why not?" in html


def test_me_shows_the_level_the_rules_and_the_measured_progress(client, site):
    v = Volunteer.objects.create(n_votes=9, n_gold=9, n_gold_correct=7)
    _gold_votes(v, site["gold"]["high"], 5, 0, real=True)
    _gold_votes(v, site["gold"]["high"], 2, 2, real=False)
    _as(client, v)
    html = client.get("/me/").content.decode()
    assert 'id="level"' in html and "Level 1: clear candidates" in html
    assert "What level 2: faint candidates unlocked needs" in html
    assert "at least\n    10 yes/no answers" in html or "at least 10 yes/no answers" in " ".join(
        html.split()
    )
    text = " ".join(html.split())
    assert "90% sure" in text and "70% of the real lines" in text
    # measured: 9 answered, 7 right, 1 more needed; real lines 6/7 = 86 %, fakes 3/6 = 50 %
    assert '9 (7) <span class="muted">· 1 more needed</span>' in text
    assert ">86%<" in text and ">50%<" in text
    assert "levels-off" not in html
    # promoted: the page says level 2 and what level 3 needs (the faint teaching examples)
    Volunteer.objects.filter(pk=v.pk).update(level=2)
    text = " ".join(client.get("/me/").content.decode().split())
    assert "Level 2: faint candidates unlocked" in text and "What level 3" in text
    assert "faint candidates (S/N 4.8-5.5)" in text


def test_me_says_when_levels_are_not_in_force(client, db):
    low = make_candidates(3, first_id=9_000)
    make_gold(low[0], is_real=True)
    v = Volunteer.objects.create(n_votes=1)
    _as(client, v)
    html = client.get("/me/").content.decode()
    assert 'id="levels-off"' in html and "Your level" in html


def test_merging_an_anonymous_volunteer_recomputes_the_level(site):
    from labelapp.services.crowd.volunteers import merge_volunteers

    anonymous, account = Volunteer.objects.create(), Volunteer.objects.create()
    _gold_votes(anonymous, site["gold"]["high"], 6, 0, real=True)
    _gold_votes(anonymous, site["gold"]["high"], 6, 0, real=False)
    merge_volunteers(source=anonymous, target=account)
    account.refresh_from_db()
    assert account.level == 2


def test_classify_page_tells_a_level_one_volunteer_where_the_faint_ones_are(client, site):
    v = Volunteer.objects.create(tutorial_done=True)
    _as(client, v)
    assert 'id="empty-level"' in client.get("/classify/").content.decode()
    Volunteer.objects.filter(pk=v.pk).update(level=2)
    assert 'id="empty-level"' not in client.get("/classify/").content.decode()


def test_levels_in_force_is_remembered_for_its_ttl_and_forgotten_on_gold_changes(
    site, settings, monkeypatch
):
    from labelapp.models import GoldStandard

    settings.LEVELS_IN_FORCE_TTL_S = 5.0
    clock = [1000.0]
    monkeypatch.setattr(levels.time, "monotonic", lambda: clock[0])
    assert levels.levels_in_force()
    # another process's change (no signal here): not seen within the TTL ...
    low_real = [g for g in site["gold"]["low"] if g.is_real]
    GoldStandard.objects.filter(pk__in=[g.pk for g in low_real[:2]]).update(active=False)
    clock[0] += 4.9
    assert levels.levels_in_force()
    # ... and seen once it has passed
    clock[0] += 0.2
    assert not levels.levels_in_force()
    # a change saved in this process is seen at once
    for g in low_real[:2]:
        g.active = True
        g.save()
    assert levels.levels_in_force()
    low_real[0].delete()
    low_real[1].delete()
    assert not levels.levels_in_force()
