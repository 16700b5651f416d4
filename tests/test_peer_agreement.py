"""Issue #24, colluders who pass gold: a proven volunteer who agrees with other proven
volunteers far less often than chance loses proven status, and what they settled is
re-checked; the comparisons are exact under undo (mlcore.aggregation.evidence)."""

from __future__ import annotations

import numpy as np
import pytest

from labelapp.models import AuditEvent, Candidate, RetirementEvent, Volunteer, Vote
from labelapp.selectors.suspicious import flag_reasons
from labelapp.services.crowd.votes import submit_vote, undo_last_vote
from mlcore.aggregation.evidence import (
    is_proven,
    passes_probation,
    peer_disagrees,
    probation_llr,
    retirement_log_odds,
    trusted_calls,
)
from tests.factories_volunteers import make_candidates, make_proven_volunteer, make_volunteer

# --- the rule itself ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("n", "agree", "disagrees"),
    [
        (9, 0, False),  # under the minimum number of comparisons: no verdict
        (10, 1, True),  # 1 of 10: 5 - 2.33 x 0.5 x sqrt(10) = 1.32
        (10, 2, False),
        (100, 38, True),  # 50 - 11.65 = 38.35
        (100, 39, False),
        (1000, 520, False),  # an honest volunteer near chance at low S/N
        (1000, 300, True),
    ],
)
def test_peer_disagreement_is_significantly_below_chance(n, agree, disagrees):
    assert peer_disagrees(n, agree, min_peer=10, z=2.33) is disagrees


def test_peer_rule_vectorises_and_feeds_is_proven():
    got = peer_disagrees(np.array([0, 10, 10]), np.array([0, 0, 9]), min_peer=10, z=2.33)
    assert got.tolist() == [False, True, False]
    proven = is_proven(
        np.array([10, 10, 10]),
        np.array([10, 10, 10]),
        min_gold=4,
        min_accuracy=0.7,
        n_peer=np.array([0, 10, 10]),
        n_peer_agree=np.array([0, 0, 9]),
    )
    assert proven.tolist() == [True, False, True]
    # without peer counts, gold alone decides (as before)
    assert is_proven(4, 3, min_gold=4, min_accuracy=0.7) is True


def test_one_voter_and_arrays_get_the_same_verdict_everywhere():
    """The plain-Python path for one voter (what the live consensus asks per vote) and the
    array path (the batch run) agree on every combination: counts around each threshold,
    probation on and off, kept passes, Python and numpy scalars."""
    rng = np.random.default_rng(7)
    n = 20_000
    cols = {
        "n_gold": rng.integers(0, 12, n),
        "n_peer": rng.integers(0, 30, n),
        "n_model": rng.integers(0, 14, n),
        "probation_passed": rng.random(n) < 0.3,
    }
    cols["n_gold_correct"] = rng.integers(0, cols["n_gold"] + 1)
    cols["n_peer_agree"] = rng.integers(0, cols["n_peer"] + 1)
    cols["n_model_agree"] = rng.integers(0, cols["n_model"] + 1)
    for rule in (
        {"min_gold": 4, "min_accuracy": 0.7, "min_checks": 3, "min_probation_llr": 2.94},
        {"min_gold": 4, "min_accuracy": 0.7, "min_checks": 3},
        {"min_gold": 3, "min_accuracy": 0.75, "min_checks": 0, "min_peer": 8, "min_model": 4},
    ):
        rule = {**rule, "peer_z": 2.33}
        arrays = is_proven(
            cols["n_gold"], cols["n_gold_correct"],
            **{k: v for k, v in cols.items() if k not in ("n_gold", "n_gold_correct")}, **rule,
        )  # fmt: skip
        for i in range(n):
            one = {k: v[i] for k, v in cols.items()}  # numpy scalars
            if i % 2:
                one = {k: v.item() for k, v in one.items()}  # Python ints and bools
            got = is_proven(
                one.pop("n_gold"), one.pop("n_gold_correct"), **one, **rule
            )  # fmt: skip
            assert got is bool(arrays[i]), (i, {k: v[i] for k, v in cols.items()}, rule)
    k = {"min_checks": 3, "min_llr": 2.94}
    args = [cols[c] for c in ("n_peer", "n_peer_agree", "n_model", "n_model_agree")]
    together = passes_probation(*args, **k)
    for i in range(0, n, 7):
        assert passes_probation(*(int(a[i]) for a in args), **k) is bool(together[i])


def test_model_comparisons_decide_after_six():
    def proven(n, k):
        return is_proven(10, 10, min_gold=4, min_accuracy=0.7, n_model=n, n_model_agree=k)

    # 6 of 6 against the model's confident calls: the first verdict (3 - 2.33 x 0.5 x 2.45)
    assert proven(5, 0) and not proven(6, 0) and proven(6, 1) and not proven(20, 4)


def test_retirement_log_odds_drops_only_the_unproven_evidence_on_the_lean():
    # leaning real: the unproven 'for' evidence (capped at 2) is dropped, 'against' kept
    assert retirement_log_odds(0.0, 2.2, 3.0, -0.5, 2.0) == pytest.approx(2.2 - 0.5)
    # leaning not real: the unproven 'against' evidence is dropped
    assert retirement_log_odds(0.0, -2.2, 0.4, -5.0, 2.0) == pytest.approx(-2.2 + 0.4)
    # no unproven votes: unchanged
    assert retirement_log_odds(0.3, 3.0, 0.0, 0.0, 2.0) == pytest.approx(3.3)


def test_a_campaign_can_let_part_of_the_unproven_lean_count():
    # lean_cap: that much of the unproven evidence on the lean counts (never over the cap)
    assert retirement_log_odds(0.0, 2.2, 3.0, -0.5, 2.0, lean_cap=0.7) == pytest.approx(2.4)
    assert retirement_log_odds(0.0, 2.2, 3.0, -0.5, 2.0, lean_cap=5.0) == pytest.approx(3.7)
    assert retirement_log_odds(0.0, -2.2, 0.4, -5.0, 2.0, lean_cap=0.7) == pytest.approx(-2.5)
    # less unproven evidence than the allowance: all of it
    assert retirement_log_odds(0.0, 2.2, 0.3, 0.0, 2.0, lean_cap=0.7) == pytest.approx(2.5)
    assert retirement_log_odds(0.0, 2.2, 3.0, 0.0, 2.0, lean_cap=-1) == pytest.approx(2.2)


# --- in the live consensus ----------------------------------------------------------------


@pytest.fixture
def rules(settings, default_retirement_rules):
    settings.PROVEN_MIN_GOLD, settings.PROVEN_MIN_ACCURACY = 4, 0.7
    settings.UNPROVEN_MAX_LLR = 2.0
    settings.PEER_MIN_COMPARISONS, settings.PEER_Z = 10, 2.33


@pytest.mark.django_db
@pytest.mark.usefixtures("rules", "own_cache")
def test_a_colluder_who_passes_gold_is_demoted_and_what_they_settled_reopens():
    (settled,) = make_candidates(1, first_id=7_000_000)
    others = make_candidates(5, first_id=7_100_000)
    a, b, c = (make_proven_volunteer() for _ in range(3))  # three colluders, gold right
    for v in (a, b, c):
        submit_vote(volunteer=v, detectid=settled.detectid, answer="no")
    settled.refresh_from_db()
    assert settled.status == Candidate.Status.RETIRED  # three proven 'no': settled

    # ... and colluder a lies where two honest proven volunteers already said 'yes'
    honest = [make_proven_volunteer() for _ in range(2)]
    for k, cand in enumerate(others):
        for h in honest:
            submit_vote(volunteer=h, detectid=cand.detectid, answer="yes")
        submit_vote(volunteer=a, detectid=cand.detectid, answer="no")
        a.refresh_from_db()
        assert (a.n_peer, a.n_peer_agree) == (2 * (k + 1), 0)
    # 10 comparisons, none agreeing: not proven any more, and flagged on the console
    assert not is_proven(
        a.n_gold, a.n_gold_correct, min_gold=4, min_accuracy=0.7,
        n_peer=a.n_peer, n_peer_agree=a.n_peer_agree,
    )  # fmt: skip
    assert any("agrees with proven volunteers 0 of 10 times" in r for r in flag_reasons(a))
    # the candidate the three settled: without a's proof, b and c alone (2.2) do not retire it
    settled.refresh_from_db()
    assert settled.status == Candidate.Status.ACTIVE
    event = RetirementEvent.objects.filter(candidate=settled).latest("pk")
    assert (event.from_status, event.to_status, event.reason) == ("retired", "active", "recheck")
    audit = AuditEvent.objects.get(action="peer_demotion")
    assert audit.target == f"volunteer:{a.pk}"
    assert audit.detail["reopened"] == [settled.detectid]
    # the honest volunteers compared themselves only with proven votes before theirs
    for h in honest:
        h.refresh_from_db()
        assert h.n_peer_agree == h.n_peer


@pytest.mark.django_db
@pytest.mark.usefixtures("rules", "own_cache")
def test_only_proven_peers_count_and_undo_takes_back_exactly_the_comparisons(
    django_capture_on_commit_callbacks,
):
    (cand,) = make_candidates(1, first_id=7_200_000)
    earlier = [make_volunteer(), make_proven_volunteer(), make_proven_volunteer()]
    with django_capture_on_commit_callbacks(execute=True):
        for v, answer in zip(earlier, ["no", "yes", "no"], strict=True):
            submit_vote(volunteer=v, detectid=cand.detectid, answer=answer)  # 1st: unproven
    me = make_proven_volunteer()
    with django_capture_on_commit_callbacks(execute=True):
        submit_vote(volunteer=me, detectid=cand.detectid, answer="yes")
    me.refresh_from_db()
    vote = Vote.objects.get(volunteer=me)
    # me against the two proven earlier votes; each earlier voter against me (proven)
    assert (me.n_peer, me.n_peer_agree) == (2, 1) == (vote.peer_n, vote.peer_agree)
    assert vote.peer_credits == [[earlier[0].pk, 0], [earlier[1].pk, 1], [earlier[2].pk, 0]]

    def counts():
        return [
            (v.n_peer, v.n_peer_agree) for v in (Volunteer.objects.get(pk=e.pk) for e in earlier)
        ]

    # every voter is compared with the proven votes after it, and (its own) before it; the
    # unproven first voter is measured too, it just is not anyone's peer
    assert counts() == [(3, 1), (2, 1), (2, 0)]
    # undo (and vote the other way) cannot farm agreement: the counters go back exactly
    with django_capture_on_commit_callbacks(execute=True):
        undo_last_vote(volunteer=me)
    me.refresh_from_db()
    assert (me.n_peer, me.n_peer_agree) == (0, 0)
    assert counts() == [(2, 1), (1, 0), (1, 0)]
    with django_capture_on_commit_callbacks(execute=True):
        submit_vote(volunteer=me, detectid=cand.detectid, answer="no")
    me.refresh_from_db()
    assert (me.n_peer, me.n_peer_agree) == (2, 1)
    assert counts() == [(3, 2), (2, 0), (2, 1)]


@pytest.mark.django_db
@pytest.mark.usefixtures("rules", "own_cache")
def test_a_colluder_who_votes_first_is_caught_by_the_honest_votes_after_it(
    django_capture_on_commit_callbacks,
):
    """Voting first on a candidate gives a colluder no comparison of its own; the proven
    votes after it compare it (after commit) all the same."""
    cands = make_candidates(5, first_id=7_300_000)
    colluder = make_proven_volunteer()
    honest = [make_proven_volunteer() for _ in range(2)]
    with django_capture_on_commit_callbacks(execute=True):
        for cand in cands:
            submit_vote(volunteer=colluder, detectid=cand.detectid, answer="no")
            for h in honest:
                submit_vote(volunteer=h, detectid=cand.detectid, answer="yes")
    colluder.refresh_from_db()
    assert (colluder.n_peer, colluder.n_peer_agree) == (10, 0)
    assert any("0 of 10 times" in r for r in flag_reasons(colluder))
    assert AuditEvent.objects.filter(
        action="peer_demotion", target=f"volunteer:{colluder.pk}"
    ).exists()


# --- against the live model's confident calls ---------------------------------------------


def _live_model_scoring(cands, probs, **trust):
    from labelapp.models import CandidateScore, ModelVersion

    mv = ModelVersion.objects.create(
        label_source="truth", directory="/m", status="promoted", **trust
    )
    for c, p in zip(cands, probs, strict=True):
        CandidateScore.objects.create(model_version=mv, candidate=c, prob=p, entropy=0, bald=0)
    return mv


@pytest.mark.django_db
@pytest.mark.usefixtures("rules", "own_cache")
def test_a_clique_that_agrees_with_itself_still_disagrees_with_the_model():
    """Colluders who pass gold and pile onto the same candidates agree with each other, so
    peer agreement cannot see them; the model's confident calls are an independent voter."""
    cands = make_candidates(12, first_id=7_400_000)
    _live_model_scoring(cands, [0.97] * 10 + [0.5, 0.02])
    ring = [make_proven_volunteer() for _ in range(3)]
    for c in cands[:10]:  # confident 'real' calls: the ring says 'no' together
        for v in ring:
            submit_vote(volunteer=v, detectid=c.detectid, answer="no")
    for v in ring:
        v.refresh_from_db()
    first, last = ring[0], ring[2]
    # each agreed with the others every time (peer agreement high; from the sixth candidate,
    # six model comparisons in, the first two were no longer proven, nor anyone's peers) ...
    assert first.n_peer == 0 and last.n_peer_agree == last.n_peer == 10
    # ... and with the model never: not proven, flagged, and the ring's labels re-opened
    assert (first.n_model, first.n_model_agree) == (10, 0)
    assert not is_proven(
        first.n_gold, first.n_gold_correct, min_gold=4, min_accuracy=0.7,
        n_model=first.n_model, n_model_agree=first.n_model_agree,
    )  # fmt: skip
    assert any("model's confident calls 0 of 10" in r for r in flag_reasons(first))
    assert not Candidate.objects.filter(pk__in=[c.pk for c in cands], status="retired").exists()
    # an unconfident call is no comparison; a confident one agreed with is
    me = make_proven_volunteer()
    submit_vote(volunteer=me, detectid=cands[10].detectid, answer="yes")
    submit_vote(volunteer=me, detectid=cands[11].detectid, answer="no")
    me.refresh_from_db()
    assert (me.n_model, me.n_model_agree) == (1, 1)
    assert Vote.objects.get(volunteer=me, candidate=cands[10]).model_agree is None
    undo_last_vote(volunteer=me)
    me.refresh_from_db()
    assert (me.n_model, me.n_model_agree) == (0, 0)


@pytest.mark.django_db
@pytest.mark.usefixtures("rules", "own_cache")
def test_a_failing_credit_after_commit_does_not_fail_the_vote(
    django_capture_on_commit_callbacks, monkeypatch, caplog
):
    """The vote is committed before the earlier voters are credited: a failure there is
    logged, and the volunteer still gets their answer recorded (no 500 for a stored vote)."""
    from labelapp.services.crowd import peers

    def broken(credits, *, sign):
        raise RuntimeError("database went away")

    monkeypatch.setattr(peers, "credit_peers", broken)
    (cand,) = make_candidates(1, first_id=7_500_000)
    submit_vote(volunteer=make_proven_volunteer(), detectid=cand.detectid, answer="yes")
    me = make_proven_volunteer()
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        result = submit_vote(volunteer=me, detectid=cand.detectid, answer="yes")
    assert result.created and len(callbacks) == 1
    assert Vote.objects.filter(volunteer=me, candidate=cand).exists()
    assert "database went away" in caplog.text


def test_a_direction_of_confident_calls_is_trusted_only_where_it_was_right():
    """The in-silico loop's seed-2 model: 'real' calls right 99 %, 'not real' calls 67 %.
    Only the first may judge volunteers."""
    rng = np.random.default_rng(0)
    y_real = np.ones(100, bool)
    y_false = np.zeros(141, bool)
    y_false[:47] = True  # a third of its confident 'not real' calls are real lines
    prob = np.r_[rng.uniform(0.8, 1.0, 100), rng.uniform(0.0, 0.2, 141), [0.5, 0.6]]
    y = np.r_[y_real, y_false, [True, False]]
    out = trusted_calls(prob, y, confident=0.8, min_precision=0.85, min_calls=20)
    assert out["real"] == {"n": 100, "right": 100, "precision": 1.0, "trusted": True}
    assert out["false"]["n"] == 141 and out["false"]["right"] == 94
    assert not out["false"]["trusted"]  # 0.667 < 0.85
    few = trusted_calls(prob[:10], y[:10], confident=0.8, min_precision=0.85, min_calls=20)
    assert not few["real"]["trusted"]  # 10 calls, all right: too few to vouch for
    none = trusted_calls([0.5], [True], confident=0.8, min_precision=0.85, min_calls=0)
    assert none["real"] == {"n": 0, "right": 0, "precision": None, "trusted": False}


@pytest.mark.django_db
@pytest.mark.usefixtures("rules", "own_cache")
def test_an_untrusted_direction_of_the_models_calls_judges_nobody():
    """A live model whose 'not real' calls the gate did not trust: an honest volunteer who
    says 'yes' where it confidently (and wrongly) says 'not real' is never compared with it,
    so a one-sided model cannot demote them; its trusted 'real' calls still count."""
    cands = make_candidates(8, first_id=7_600_000)
    _live_model_scoring(cands, [0.03] * 7 + [0.97], trust_false_calls=False)
    honest = make_proven_volunteer()
    for c in cands[:7]:
        submit_vote(volunteer=honest, detectid=c.detectid, answer="yes")
    honest.refresh_from_db()
    assert (honest.n_model, honest.n_model_agree) == (0, 0)
    assert is_proven(honest.n_gold, honest.n_gold_correct, min_gold=4, min_accuracy=0.7)
    assert Vote.objects.get(volunteer=honest, candidate=cands[0]).model_agree is None
    submit_vote(volunteer=honest, detectid=cands[7].detectid, answer="yes")
    honest.refresh_from_db()
    assert (honest.n_model, honest.n_model_agree) == (1, 1)


@pytest.mark.django_db
@pytest.mark.usefixtures("rules", "own_cache")
def test_with_every_call_trusted_the_same_votes_demote():
    """The control for the test above: the same seven votes against trusted confident calls
    take proven status away (0 of 6 is the first verdict)."""
    cands = make_candidates(7, first_id=7_700_000)
    _live_model_scoring(cands, [0.03] * 7)
    v = make_proven_volunteer()
    for c in cands:
        submit_vote(volunteer=v, detectid=c.detectid, answer="yes")
    v.refresh_from_db()
    assert (v.n_model, v.n_model_agree) == (7, 0)
    assert not is_proven(
        v.n_gold, v.n_gold_correct, min_gold=4, min_accuracy=0.7,
        n_model=v.n_model, n_model_agree=v.n_model_agree,
    )  # fmt: skip


def test_probation_needs_checks_on_non_gold_with_half_agreeing():
    def proven(n_peer, k_peer, n_model, k_model, checks=3):
        return is_proven(
            4, 4, min_gold=4, min_accuracy=0.7, n_peer=n_peer, n_peer_agree=k_peer,
            n_model=n_model, n_model_agree=k_model, min_checks=checks,
        )  # fmt: skip

    assert proven(0, 0, 0, 0, checks=0)  # off: exam gold alone, as before
    assert not proven(0, 0, 2, 2)  # too few checks yet
    assert not proven(1, 0, 2, 0)  # 3 checks, none agreeing: a liar's record
    assert not proven(1, 1, 2, 0)  # 1 of 3
    assert proven(1, 1, 2, 1) and proven(0, 0, 4, 2)  # half agreeing is enough
    assert not proven(3, 1, 6, 3)  # 4 of 9
    # passed once, kept: a later dip under half does not demote (the significance test does)
    assert is_proven(
        4, 4, min_gold=4, min_accuracy=0.7, n_peer=3, n_peer_agree=1, n_model=6,
        n_model_agree=3, min_checks=3, probation_passed=True,
    )  # fmt: skip
    assert not is_proven(
        4, 4, min_gold=4, min_accuracy=0.7, n_model=10, n_model_agree=0, min_checks=3,
        probation_passed=True, min_model=6,
    )  # fmt: skip
    assert not is_proven(3, 3, min_gold=4, min_accuracy=0.7, min_checks=3, probation_passed=True)
    assert list(
        is_proven(
            np.array([4, 4]), np.array([4, 4]), min_gold=4, min_accuracy=0.7,
            n_model=np.array([4, 4]), n_model_agree=np.array([1, 1]), min_checks=3,
            probation_passed=np.array([True, False]),
        )
    ) == [True, False]  # fmt: skip


def test_probation_weighs_the_models_calls_and_discounts_split_peers():
    """Probation's likelihood ratio, honest vs answering against the truth. In
    bench_attacks (seed 3) 44 of 100 gold-skilled liars passed "half of 3+ checks": their
    first vote was on a contested candidate whose proven voters split (1 of 2 agreeing,
    whatever they answered) and two credits from later proven voters made it 2 of 4. With
    PROOF_MIN_LLR = log 19 the peers' half carries no evidence; the model's calls decide."""
    llr = 2.94

    def passes(n_peer, k_peer, n_model, k_model):
        return passes_probation(
            n_peer, k_peer, n_model, k_model, min_checks=3, min_llr=llr
        )  # fmt: skip

    assert passes_probation(4, 2, 0, 0, min_checks=3)  # the old rule: a liar's luck
    assert not passes(4, 2, 0, 0)  # ... is no evidence now (+0.06)
    assert not passes(8, 5, 1, 0)  # a liar's record: the model's call contradicts them
    assert not passes(0, 0, 3, 2)  # 2 of 3 with the model: +2.79, a liar with a wrong call
    assert passes(0, 0, 3, 3) and passes(1, 1, 2, 2) and passes(1, 0, 2, 2)  # +3.6 or more
    assert passes(0, 0, 7, 4)  # 4 of 7 with the model: +4.5
    assert not passes(20, 12, 0, 0) and passes(30, 20, 0, 0)  # peers alone: a long run
    assert probation_llr(0, 0, 1, 1) == pytest.approx(np.log(7))
    assert probation_llr(1, 0, 0, 0) == pytest.approx(np.log(0.45 / 0.6))
    # is_proven passes it through; 0 (the rule before) leaves it out
    kw = {"min_gold": 4, "min_accuracy": 0.7, "min_checks": 3}
    assert not is_proven(4, 4, n_peer=4, n_peer_agree=2, min_probation_llr=llr, **kw)
    assert is_proven(4, 4, n_peer=4, n_peer_agree=2, **kw)
    assert list(
        passes_probation(
            np.array([4, 1]), np.array([2, 1]), np.array([0, 2]), np.array([0, 2]),
            min_checks=3, min_llr=llr,
        )
    ) == [False, True]  # fmt: skip


@pytest.mark.django_db
@pytest.mark.usefixtures("rules", "own_cache")
def test_probation_once_passed_is_kept_through_a_dip_under_half(settings):
    """An honest volunteer agrees ~65 % of the time at low S/N; a running "half" dips under now
    and then, and each dip demoted them and re-opened what they settled. Passing is kept."""
    from labelapp.services.crowd import consensus
    from labelapp.services.crowd.peers import is_proven_volunteer

    settings.PROOF_MIN_CHECKS = 3
    consensus._CHECKS.clear()
    vol = make_volunteer(n_exam=4, n_exam_correct=4, n_gold=4, n_gold_correct=4)
    cands = make_candidates(7, first_id=7_900_000)
    _live_model_scoring(cands, [0.97] * 7)  # trusted confident 'real' calls
    for c in cands[:3]:  # 3 of 3 agree
        submit_vote(volunteer=vol, detectid=c.detectid, answer="yes")
    vol.refresh_from_db()
    assert (vol.n_model, vol.n_model_agree, vol.probation_passed) == (3, 3, True)
    assert is_proven_volunteer(vol)
    for c in cands[3:7]:  # 3 of 7: under half, yet still proven
        submit_vote(volunteer=vol, detectid=c.detectid, answer="no")
    vol.refresh_from_db()
    assert (vol.n_model, vol.n_model_agree) == (7, 3) and vol.probation_passed
    assert is_proven_volunteer(vol)
    assert not AuditEvent.objects.filter(action="peer_demotion").exists()
    # the same counts without the kept pass are not proven (what the flag changes)
    vol.probation_passed = False
    assert not is_proven_volunteer(vol)
    settings.PROOF_MIN_CHECKS = 0
    consensus._CHECKS.clear()


@pytest.mark.django_db
@pytest.mark.usefixtures("rules", "own_cache")
def test_probation_is_in_force_only_with_a_trusted_live_model(settings):
    """Without a live model whose calls the gate trusted, a newcomer could get no checks
    before a proven peer exists: then exam gold alone proves."""
    from labelapp.services.crowd import consensus
    from labelapp.services.crowd.peers import is_proven_volunteer

    settings.PROOF_MIN_CHECKS = 3
    consensus._CHECKS.clear()
    passed = make_volunteer(n_exam=4, n_exam_correct=4, n_gold=4, n_gold_correct=4)
    assert consensus.proof_min_checks() == 0 and is_proven_volunteer(passed)
    cands = make_candidates(7, first_id=7_800_000)
    _live_model_scoring(cands, [0.97] * 7, trust_real_calls=False, trust_false_calls=False)
    consensus._CHECKS.clear()
    assert consensus.proof_min_checks() == 0
    _live_model_scoring(cands, [0.97] * 7)  # a newer promoted model, trusted
    consensus._CHECKS.clear()
    assert consensus.proof_min_checks() == 3 and not is_proven_volunteer(passed)
    # three votes against the model's confident 'real' calls: still not proven
    for c in cands[:3]:
        submit_vote(volunteer=passed, detectid=c.detectid, answer="no")
    passed.refresh_from_db()
    assert (passed.n_model, passed.n_model_agree) == (3, 0) and not is_proven_volunteer(passed)
    for c in cands[3:5]:  # 1 of 4, 2 of 5 agreeing: under half
        submit_vote(volunteer=passed, detectid=c.detectid, answer="yes")
        passed.refresh_from_db()
        assert not is_proven_volunteer(passed)
    submit_vote(volunteer=passed, detectid=cands[5].detectid, answer="yes")  # 3 of 6
    passed.refresh_from_db()
    # half, but 3 agreements and 3 disagreements with the model are +2.5 of evidence for
    # honesty, under PROOF_MIN_LLR (log 19): a liar gets as far with a few wrong calls
    assert not is_proven_volunteer(passed)
    submit_vote(volunteer=passed, detectid=cands[6].detectid, answer="yes")  # 4 of 7: +4.5
    passed.refresh_from_db()
    assert is_proven_volunteer(passed)
    settings.PROOF_MIN_CHECKS = 0
    consensus._CHECKS.clear()
    assert consensus.proof_min_checks() == 0


@pytest.mark.django_db
@pytest.mark.parametrize(("agreed", "passes"), [(1, True), (0, False)])
def test_a_peer_credit_that_completes_probation_is_kept(settings, agreed, passes):
    """The credits a later proven vote gives (services.crowd.peers.credit_peers, one UPDATE):
    after 2 of 3 agreeing with the model's calls (+2.79), an agreeing peer credit (+0.32)
    passes probation (log 19 = 2.94), a disagreeing one (-0.29) does not; a credit taken
    back never sets it."""
    from labelapp.services.crowd.peers import credit_peers

    settings.PROOF_MIN_CHECKS = 3
    vol = make_volunteer(n_exam=4, n_exam_correct=4, n_model=3, n_model_agree=2)
    credit_peers([[vol.pk, agreed]], sign=1)
    vol.refresh_from_db()
    assert (vol.n_peer, vol.n_peer_agree, vol.probation_passed) == (1, agreed, passes)
    other = make_volunteer(
        n_exam=4, n_exam_correct=4, n_peer=2, n_peer_agree=2, n_model=2, n_model_agree=2
    )
    credit_peers([[other.pk, 1]], sign=-1)  # 3 of 3 after it (+4.2), but a take-back
    other.refresh_from_db()
    assert (other.n_peer, other.n_peer_agree, other.probation_passed) == (1, 1, False)
