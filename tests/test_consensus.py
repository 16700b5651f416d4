"""Live consensus after every vote: posterior from the votes, retirement at the thresholds,
gold answers teach skills, experts settle labels, undo takes a vote back out."""

import math

import pytest
from django.contrib.auth.models import Group, User

from labelapp.models import Candidate, ConsensusState, RetirementEvent, VolunteerSkill, Vote
from labelapp.services.crowd.consensus import forget_vote, set_candidate_status, update_consensus
from labelapp.services.crowd.votes import NothingToUndo, submit_vote, undo_last_vote
from tests.factories_volunteers import (
    make_candidates,
    make_gold,
    make_proven_volunteer,
    make_volunteer,
)

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _rule(settings):
    # With the default skill 0.75/0.75 and prior 0.5, each agreeing vote adds log(3) to the
    # log-odds: 2 votes -> 0.9, 3 votes -> 0.964 (> 0.95), so retirement comes at vote 3.
    settings.RETIRE_P_HI, settings.RETIRE_P_LO = 0.95, 0.05
    settings.RETIRE_MIN_VOTES, settings.RETIRE_MAX_VOTES = 2, 6
    settings.DEFAULT_SENSITIVITY = settings.DEFAULT_SPECIFICITY = 0.75
    settings.VOTE_RATE_LIMIT = 10_000


def _vote(candidate, answer, volunteer=None):
    """A vote by ``volunteer``, by default a new *proven* one (the Bayes maths below is about
    measured voters; the unproven cap has its own tests in test_crowd_integrity.py)."""
    return submit_vote(
        volunteer=volunteer or make_proven_volunteer(), detectid=candidate.detectid, answer=answer
    )


def test_posterior_is_bayes_over_the_votes():
    (c,) = make_candidates(1, sn0=6.0)
    _vote(c, "yes")
    assert ConsensusState.objects.get(candidate=c).posterior == pytest.approx(0.75)
    _vote(c, "no")
    assert ConsensusState.objects.get(candidate=c).posterior == pytest.approx(0.5)
    _vote(c, "unsure")
    state = ConsensusState.objects.get(candidate=c)
    assert (state.n_votes, state.n_unsure, state.posterior) == (2, 1, pytest.approx(0.5))


def test_retires_exactly_when_the_posterior_crosses_the_threshold():
    (c,) = make_candidates(1)
    _vote(c, "yes")
    _vote(c, "yes")
    c.refresh_from_db()
    assert c.status == Candidate.Status.ACTIVE  # 0.9 < 0.95
    _vote(c, "yes")
    c.refresh_from_db()
    assert c.status == Candidate.Status.RETIRED
    event = RetirementEvent.objects.get(candidate=c)
    assert event.reason == "confident" and event.n_votes == 3
    assert event.posterior == pytest.approx(27 / 28)  # odds 3^3


def test_retires_as_not_real_at_the_low_threshold():
    (c,) = make_candidates(1)
    for _ in range(3):
        _vote(c, "no")
    c.refresh_from_db()
    assert c.status == Candidate.Status.RETIRED
    assert ConsensusState.objects.get(candidate=c).posterior == pytest.approx(1 / 28)


def test_uncertain_after_max_votes_goes_to_the_expert_queue():
    (c,) = make_candidates(1)
    for answer in ["yes", "no"] * 3:  # 6 votes, posterior stays 0.5
        _vote(c, answer)
    c.refresh_from_db()
    assert c.status == Candidate.Status.EXPERT
    assert RetirementEvent.objects.get(candidate=c).reason == "max_votes"


def test_min_votes_holds_back_a_single_decisive_vote(settings):
    settings.DEFAULT_SENSITIVITY = settings.DEFAULT_SPECIFICITY = 0.99
    (c,) = make_candidates(1)
    _vote(c, "yes")
    c.refresh_from_db()
    assert ConsensusState.objects.get(candidate=c).posterior > 0.95
    assert c.status == Candidate.Status.ACTIVE  # min_votes = 2


def test_measured_skill_changes_a_votes_weight():
    (c,) = make_candidates(1, sn0=6.0)  # high regime
    expert_ish = make_proven_volunteer()
    VolunteerSkill.objects.create(
        volunteer=expert_ish, regime=1, sens_alpha=95, sens_beta=5, spec_alpha=95, spec_beta=5
    )
    _vote(c, "yes", expert_ish)
    assert ConsensusState.objects.get(candidate=c).posterior == pytest.approx(0.95 / 1.0, rel=1e-6)


def test_gold_votes_teach_skill_and_gold_is_never_retired():
    (c,) = make_candidates(1, sn0=5.0)  # low regime
    make_gold(c, is_real=True)
    v = make_volunteer()
    _vote(c, "yes", v)
    skill = VolunteerSkill.objects.get(volunteer=v, regime=0)
    assert skill.sens_alpha == pytest.approx(0.75 * 4 + 1) and skill.n_votes == 1
    for _ in range(5):
        _vote(c, "yes")
    c.refresh_from_db()
    assert c.status == Candidate.Status.ACTIVE
    assert not ConsensusState.objects.filter(candidate=c).exists()


def test_an_experts_answer_settles_the_label():
    (c,) = make_candidates(1)
    user = User.objects.create_user("sci", password="x-very-long-pass")
    user.groups.add(Group.objects.create(name="scientists"))
    _vote(c, "yes")
    _vote(c, "no", make_volunteer(user=user))
    c.refresh_from_db()
    state = ConsensusState.objects.get(candidate=c)
    assert (state.posterior, state.expert_label, c.status) == (0.0, False, "retired")
    assert RetirementEvent.objects.get(candidate=c).reason == "expert"


def test_undo_takes_the_vote_out_of_the_posterior():
    (c,) = make_candidates(1)
    v = make_volunteer()
    _vote(c, "yes")
    _vote(c, "yes", v)
    assert ConsensusState.objects.get(candidate=c).posterior == pytest.approx(0.9)
    undo_last_vote(volunteer=v)
    state = ConsensusState.objects.get(candidate=c)
    assert state.n_votes == 1 and state.posterior == pytest.approx(0.75)


def test_recompute_is_idempotent():
    (c,) = make_candidates(1)
    _vote(c, "yes")
    first = update_consensus(candidate_id=c.pk)
    again = update_consensus(candidate_id=c.pk)
    assert first == again and math.isclose(first.posterior, 0.75)


def test_a_scientist_can_unretire_and_it_is_recorded():
    (c,) = make_candidates(1)
    for _ in range(3):
        _vote(c, "yes")
    user = User.objects.create_user("boss", password="x-very-long-pass")
    event = set_candidate_status(candidate_id=c.pk, status="active", user=user)
    c.refresh_from_db()
    assert c.status == "active"
    assert (event.from_status, event.to_status, event.reason, event.user) == (
        "retired",
        "active",
        "manual",
        user,
    )


def test_a_staff_answer_settles_the_label_too():
    (c,) = make_candidates(1)
    staff = User.objects.create_user("boss2", password="x-very-long-pass", is_staff=True)
    plain = User.objects.create_user("someone", password="x-very-long-pass")
    _vote(c, "no", make_volunteer(user=plain))  # an account, but no expert
    state = ConsensusState.objects.get(candidate=c)
    assert state.expert_label is None and state.posterior == pytest.approx(0.25)
    _vote(c, "yes", make_volunteer(user=staff))
    state = ConsensusState.objects.get(candidate=c)
    assert (state.posterior, state.expert_label) == (1.0, True)


def test_a_batch_runs_population_is_the_prior_of_unmeasured_volunteers():
    from labelapp.models import AggregationRun

    (c,) = make_candidates(1, sn0=6.0)  # high regime
    AggregationRun.objects.create(
        method="dawid_skene", status="done", class_prior=[0.5, 0.2],
        typical_skill={"sensitivity": [0.6, 0.9], "specificity": [0.6, 0.9]},
    )  # fmt: skip
    AggregationRun.objects.create(method="dawid_skene", status="running")  # not finished
    _vote(c, "yes")
    # prior odds 0.2/0.8 = 1/4, one yes with s = c = 0.9: odds x 9 -> 9/4
    assert ConsensusState.objects.get(candidate=c).posterior == pytest.approx(9 / 13)


def test_skills_of_the_other_regime_do_not_count():
    (c,) = make_candidates(1, sn0=6.0)  # high regime (1)
    v = make_volunteer()
    VolunteerSkill.objects.create(
        volunteer=v, regime=0, sens_alpha=99, sens_beta=1, spec_alpha=99, spec_beta=1
    )
    _vote(c, "yes", v)
    assert ConsensusState.objects.get(candidate=c).posterior == pytest.approx(0.75)


def test_first_gold_answer_starts_from_the_population_prior_and_undo_reverses_it():
    (c,) = make_candidates(1, sn0=6.0)
    make_gold(c, is_real=False)
    v = make_volunteer()
    _vote(c, "yes", v)  # wrong on a fake: a failure for specificity
    skill = VolunteerSkill.objects.get(volunteer=v, regime=1)
    prior = 0.75 * 4
    assert (skill.spec_alpha, skill.spec_beta, skill.n_votes) == (prior, 1 + 1.0, 1)
    with pytest.raises(NothingToUndo):  # a gold yes/no is final (issue #24: gold peeking)
        undo_last_vote(volunteer=v)
    skill.refresh_from_db()
    assert (skill.spec_alpha, skill.spec_beta, skill.n_votes) == (prior, 1 + 1.0, 1)
    vote = Vote.objects.select_related("candidate").get(volunteer=v)  # voided by a scientist:
    vote.delete()
    forget_vote(vote=vote)  # its learning is reversed
    skill.refresh_from_db()
    assert (skill.spec_alpha, skill.spec_beta, skill.n_votes) == (prior, 1.0, 0)


def test_a_deactivated_scientists_answer_counts_as_an_ordinary_vote():
    """One definition of 'expert' (labelapp.selectors.volunteers.expert_q): an account that
    can no longer open the console no longer settles labels either."""
    from labelapp.views.console.access import is_scientist

    (c,) = make_candidates(1)
    user = User.objects.create_user("gone", password="x-very-long-pass", is_staff=True)
    user.groups.add(Group.objects.get_or_create(name="scientists")[0])
    user.is_active = False
    user.save()
    _vote(c, "no", make_volunteer(user=user))
    state = ConsensusState.objects.get(candidate=c)
    assert not is_scientist(user)
    assert state.expert_label is None and state.posterior == pytest.approx(0.25)
