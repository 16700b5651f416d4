"""The live path from a vote to a label: recompute, decide retirement, learn from gold.

After every new vote (``labelapp.services.crowd.votes.after_vote``, in the vote's transaction) the
candidate's posterior is recomputed from *all* its votes with the current skills, under the
row lock of its ConsensusState row:

    log-odds = logit(class prior of its regime) + sum over yes/no votes of the vote's LLR

So the live posterior never drifts from its votes, a batch run's new skills take effect
at the next vote, an undone vote simply disappears from the sum, and two concurrent votes
on one candidate are serialised by the lock (the second sees the first). A candidate has
at most RETIRE_MAX_VOTES votes, so this is a handful of rows per vote.

Sybil resistance (mlcore.aggregation.evidence, docs/security.md): votes of *unproven*
volunteers (fewer than PROVEN_MIN_GOLD *exam* gold answers at PROVEN_MIN_ACCURACY: gold
whose answer is never told, so a script cannot learn it; experts are always proven) add at
most UNPROVEN_MAX_LLR of log-odds per candidate together in each direction (for / against
"real"); a confident posterior retires a candidate only when the
proven votes alone lean the same way by more than PROVEN_SUPPORT_LLR, and only on the
evidence without the unproven votes that agree with it (they can hold a retirement back,
never hasten one). Each new yes/no vote is compared with the proven votes already on its
candidate (the volunteer's n_peer / n_peer_agree, and the vote's peer_n / peer_agree): a
volunteer who agrees with proven peers significantly less often than chance stops being
proven, and the candidates they helped settle are re-checked (services.crowd.votes).

Gold candidates are never retired by votes (they keep teaching); a vote on one updates the
volunteer's skill in that regime instead (Beta counts with the known truth). An expert's
answer (staff or the EXPERT_GROUP) settles the label at once.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from functools import lru_cache
from typing import NamedTuple

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from labelapp.models import (
    AggregationRun,
    Candidate,
    CandidateScore,
    ConsensusState,
    GoldStandard,
    ModelVersion,
    RetirementEvent,
    Volunteer,
    VolunteerSkill,
    Vote,
    ZooniverseClassification,
)
from labelapp.selectors.volunteers import expert_user_ids
from mlcore.aggregation import RetirementRule, log_odds_of, posterior_of, skill_update, vote_llr
from mlcore.aggregation import regime_index as _regime_index
from mlcore.aggregation.evidence import (
    capped_log_odds,
    is_proven,
    passes_probation,
    proven_support,
    retirement_log_odds,
)
from mlcore.cutout_quality import servable

# Pseudo-counts of the prior a volunteer's skill starts from (the default skill times this).
PRIOR_PSEUDO_VOTES = 4.0


def retirement_rule() -> RetirementRule:
    return RetirementRule(
        p_real_hi=settings.RETIRE_P_HI,
        p_real_lo=settings.RETIRE_P_LO,
        min_votes=settings.RETIRE_MIN_VOTES,
        max_votes=settings.RETIRE_MAX_VOTES,
    )


def regime_of(sn: float) -> int:
    return int(_regime_index([sn])[0])


@dataclass(frozen=True)
class Population:
    """What we assume of a volunteer we have not measured, and P(real) per regime."""

    sensitivity: tuple[float, float]
    specificity: tuple[float, float]
    class_prior: tuple[float, float]


def population() -> Population:
    """From the latest finished batch run, else the configured defaults."""
    with connection.cursor() as cur:
        cur.execute(_POPULATION_SQL(), [AggregationRun.Status.DONE])
        row = cur.fetchone()
    return _population_from(*(row or (None, None)))


def _population_from(typical_skill, class_prior) -> Population:
    """A Population from a run's two JSON columns (text or decoded), None for no run."""
    typical = json.loads(typical_skill) if isinstance(typical_skill, str) else typical_skill
    prior = json.loads(class_prior) if isinstance(class_prior, str) else class_prior
    if typical and prior:
        return Population(
            sensitivity=tuple(typical["sensitivity"]),
            specificity=tuple(typical["specificity"]),
            class_prior=tuple(prior),
        )
    s, c = settings.DEFAULT_SENSITIVITY, settings.DEFAULT_SPECIFICITY
    return Population(sensitivity=(s, s), specificity=(c, c), class_prior=(0.5, 0.5))


def _prior_skill(pop: Population, regime: int) -> dict[str, float]:
    s, c, m = pop.sensitivity[regime], pop.specificity[regime], PRIOR_PSEUDO_VOTES
    return {
        "sens_alpha": s * m,
        "sens_beta": (1 - s) * m,
        "spec_alpha": c * m,
        "spec_beta": (1 - c) * m,
    }


@dataclass(frozen=True)
class ConsensusUpdate:
    posterior: float
    n_votes: int
    status: str
    changed_status: bool
    # The triggering vote's comparison with the proven votes before it made its volunteer
    # lose proven status (votes.after_vote then re-checks what they settled).
    voter_demoted: bool = False
    # ... or passed probation and with it became proven (votes.after_vote then re-counts
    # what they voted on while unproven, as after a proving exam answer)
    voter_promoted: bool = False
    # [[volunteer_id, agreed], ...]: earlier voters compared with the (proven) new voter,
    # to apply after commit (votes.credit_peers)
    peer_credits: list = field(default_factory=list)


def _gold_of(candidate: Candidate) -> GoldStandard | None:
    """The candidate's active gold standard; no query when it came with the candidate
    (``services.votes`` hands over the one it read with the candidate)."""
    try:
        gold = candidate.gold
    except GoldStandard.DoesNotExist:
        return None
    return gold if gold.active else None


def record_vote(*, vote: Vote) -> ConsensusUpdate | None:
    """Fold one new vote in: skill learning for gold, else recompute + retirement.

    ``vote.was_gold`` (set from the candidate's active gold standard when the vote was taken)
    picks the path, so a regular vote asks nothing about gold.
    """
    candidate = vote.candidate
    if vote.was_gold:
        gold = _gold_of(candidate)
        if gold is None:  # deactivated since: nothing to learn from, and it is still gold
            return None
        if vote.answer != Vote.Answer.UNSURE:
            _learn_from_gold(vote=vote, regime=regime_of(candidate.sn), truth=gold.is_real, sign=+1)
        return None
    return update_consensus(candidate_id=candidate.pk, trigger=vote)


def forget_vote(*, vote: Vote) -> ConsensusUpdate | None:
    """Undo of a vote (already deleted): reverse its gold learning or recompute."""
    gold = GoldStandard.objects.filter(candidate_id=vote.candidate_id, active=True).first()
    if gold is not None:
        if vote.answer != Vote.Answer.UNSURE:
            _learn_from_gold(
                vote=vote, regime=regime_of(vote.candidate.sn), truth=gold.is_real, sign=-1
            )
        return None
    return update_consensus(candidate_id=vote.candidate_id, trigger=None)


def _learn_from_gold(*, vote: Vote, regime: int, truth: bool, sign: int) -> None:
    """Add (sign=+1) or take back (-1) one gold answer in the volunteer's Beta counts.

    One UPDATE (atomic increments, so concurrent gold answers of one volunteer add up); only
    the volunteer's first gold answer in a regime reads the population prior and inserts
    the row (an upsert, in case another request inserts it at the same moment).
    """
    label = 1 if vote.answer == Vote.Answer.YES else 0
    (sa, sb), (ca, cb) = skill_update((0.0, 0.0), (0.0, 0.0), 1.0 if truth else 0.0, label)
    d = [sign * sa, sign * sb, sign * ca, sign * cb]
    now = connection.ops.adapt_datetimefield_value(timezone.now())
    t = _tables()
    with transaction.atomic(savepoint=False), connection.cursor() as cur:
        cur.execute(
            f"UPDATE {t.skill} SET sens_alpha = sens_alpha + %s, sens_beta = sens_beta + %s, "  # noqa: S608
            "spec_alpha = spec_alpha + %s, spec_beta = spec_beta + %s, "
            "n_votes = CASE WHEN n_votes + %s < 0 THEN 0 ELSE n_votes + %s END, "
            "updated_at = %s WHERE volunteer_id = %s AND regime = %s",
            [*d, sign, sign, now, vote.volunteer_id, regime],
        )
        if cur.rowcount:
            return
        prior = _prior_skill(population(), regime)
        first = [
            prior["sens_alpha"] + d[0],
            prior["sens_beta"] + d[1],
            prior["spec_alpha"] + d[2],
            prior["spec_beta"] + d[3],
        ]
        cur.execute(
            f"INSERT INTO {t.skill} (volunteer_id, regime, sens_alpha, sens_beta, spec_alpha, "  # noqa: S608
            "spec_beta, n_votes, run_id, updated_at) VALUES (%s, %s, %s, %s, %s, %s, %s, NULL, %s) "
            "ON CONFLICT (volunteer_id, regime) DO UPDATE SET "
            f"sens_alpha = {t.skill}.sens_alpha + %s, sens_beta = {t.skill}.sens_beta + %s, "
            f"spec_alpha = {t.skill}.spec_alpha + %s, spec_beta = {t.skill}.spec_beta + %s, "
            f"n_votes = CASE WHEN {t.skill}.n_votes + %s < 0 THEN 0 "
            f"ELSE {t.skill}.n_votes + %s END, updated_at = EXCLUDED.updated_at",
            [vote.volunteer_id, regime, *first, max(0, sign), now, *d, sign, sign],
        )


def update_consensus(
    *, candidate_id: int, trigger: Vote | None = None, settle_expert: bool = False
) -> ConsensusUpdate:
    """Recompute one candidate's live posterior from its votes and apply the retirement rule.

    ``settle_expert``: a candidate waiting for an expert (sent there uncertain at the vote
    cap, no expert answer yet) may be retired too, when its votes are now confident with
    proven support (a voter proved their skill since: :func:`peers.recheck_on_promotion`).

    Three statements, in its own transaction or in the caller's (``services.votes`` runs it
    in the vote's transaction):

    1. lock: an upsert of the candidate's ConsensusState row (``ON CONFLICT DO UPDATE``
       creates it or takes its row lock, waiting for a concurrent recompute to commit); it
       returns the latest batch run's population prior on the way;
    2. evidence: one SELECT of the candidate, all its votes and each voter's skill. It runs
       *after* the lock is held, so under READ COMMITTED it sees every vote committed by
       whoever held the lock before (folding 1 and 2 into one statement would not: its
       snapshot predates the wait);
    3. the new state (UPDATE).

    Plus one query for expert status when some voter has an account (anonymous volunteers
    are never experts), and the conditional status change + RetirementEvent on retirement.
    """
    rule = retirement_rule()
    t = _tables()
    now = connection.ops.adapt_datetimefield_value(timezone.now())
    with transaction.atomic(savepoint=False), connection.cursor() as cur:
        # Serialise on the candidate's ConsensusState row, not the Candidate row: a FOR UPDATE
        # on a candidate would block (and can deadlock with) every FK check against it --
        # vote inserts, label inserts -- while this row is touched by nothing else but the
        # batch run, which updates such rows in id order in one statement series.
        # Lock order of a vote's transaction: its Vote row, its Volunteer row (counters),
        # this ConsensusState row, then the Candidate row (FOR NO KEY UPDATE by the status
        # UPDATE, which does not conflict with the FOR KEY SHARE of others' vote inserts)
        # and the RetirementEvent insert. Nothing takes them in another order, so no cycle.
        done = AggregationRun.Status.DONE
        cur.execute(_LOCK_SQL(), [candidate_id, now, done, done])
        typical, prior = cur.fetchone()
        cur.execute(_EVIDENCE_SQL(), [candidate_id])
        rows = cur.fetchall()
        if not rows:
            raise Candidate.DoesNotExist(f"no candidate with id {candidate_id}")
        sn, old = rows[0][:2]
        pop = _population_from(typical, prior)
        regime = regime_of(sn)
        log_odds = log_odds_of(pop.class_prior[regime])
        # one row per (vote, skill row of its volunteer); skills of the other regime ignored
        per_vote: dict[int, _VoteEvidence] = {}
        for row in rows:
            _, _, vote_id, answer, user_id, s_regime, sa, sb, ca, cb, *counts, _ = row
            if vote_id is None:
                continue  # no votes (all taken back)
            if vote_id not in per_vote or s_regime == regime:
                skill = (sa, sb, ca, cb) if s_regime == regime else None
                per_vote[vote_id] = _VoteEvidence(answer, user_id, skill, *counts)
        # Only volunteers with an account can be experts: anonymous voters cost no query.
        users = {v.user_id for v in per_vote.values() if v.user_id is not None}
        experts = expert_user_ids(users) if users else set()
        rule_of_proof = proof_rule()  # (settings read once, not per vote)
        proven = {
            vote_id: _is_proven(v, experts, rule_of_proof) for vote_id, v in per_vote.items()
        }  # vote -> its volunteer counts as proven
        demoted, promoted, credits = False, False, []
        if trigger is not None and trigger.pk in per_vote:
            live_prob = rows[0][-1]  # the live model's score of this candidate, or None
            demoted, promoted, credits = _compare_with_peers(
                cur, t, trigger.pk, per_vote, proven, experts, live_prob
            )
        n_unsure, n_binary, expert_label = 0, 0, None
        proven_llr = unproven_for = unproven_against = 0.0
        for vote_id in sorted(per_vote):
            v = per_vote[vote_id]
            answer, skill = v.answer, v.skill
            expert = v.user_id in experts or v.z_expert
            if answer == Vote.Answer.UNSURE:
                n_unsure += 1
                continue
            n_binary += 1
            label = 1 if answer == Vote.Answer.YES else 0
            if expert:
                expert_label = bool(label)
            if skill is not None:
                sa, sb, ca, cb = skill
                sens, spec = sa / (sa + sb), ca / (ca + cb)
            else:
                sens, spec = pop.sensitivity[regime], pop.specificity[regime]
            llr = vote_llr(sens, spec, label)
            if proven[vote_id]:
                proven_llr += llr
            elif llr > 0:
                unproven_for += llr
            else:
                unproven_against += llr
        evidence = (log_odds, proven_llr, unproven_for, unproven_against, settings.UNPROVEN_MAX_LLR)
        log_odds = capped_log_odds(*evidence)
        posterior = posterior_of(log_odds)
        if expert_label is not None:
            posterior = 1.0 if expert_label else 0.0
        cur.execute(
            f"UPDATE {t.state} SET posterior = %s, n_votes = %s, n_unsure = %s, "  # noqa: S608
            "expert_label = %s, updated_at = %s WHERE candidate_id = %s",
            [posterior, n_binary, n_unsure, expert_label, now, candidate_id],
        )
        if expert_label is not None:
            new, reason = Candidate.Status.RETIRED, RetirementEvent.Reason.EXPERT
        else:
            # decided without the unproven votes that agree with the lean (or with at most
            # RETIRE_UNPROVEN_LEAN_LLR of them): they can hold a retirement back, never hasten
            # one (sybils tipping a slight wrong lean)
            lean_cap = settings.RETIRE_UNPROVEN_LEAN_LLR
            new = rule.decide_one(
                posterior_of(retirement_log_odds(*evidence, lean_cap=lean_cap)), n_binary
            )
            supported = proven_support(posterior, proven_llr, settings.PROVEN_SUPPORT_LLR)
            if new == Candidate.Status.RETIRED and not supported:
                # confident, but not on evidence sybils cannot supply: keep asking
                new = rule.decide_one(0.5, n_binary)  # 'active', or 'expert' at the cap
            reason = (
                RetirementEvent.Reason.MAX_VOTES
                if new == Candidate.Status.EXPERT
                else RetirementEvent.Reason.CONFIDENT
            )
        changed = False
        pending = old == Candidate.Status.EXPERT and expert_label is None
        if new == Candidate.Status.RETIRED and settle_expert and pending:
            changed = _set_status(cur, t, candidate_id, old, new)
        elif new != old and old == Candidate.Status.ACTIVE:
            # conditional: only the transaction that moves it out of the queue records it
            changed = _set_status(cur, t, candidate_id, old, new)
        if changed:
            cur.execute(
                f"INSERT INTO {t.event} (candidate_id, from_status, to_status, reason, "  # noqa: S608
                "posterior, n_votes, vote_id, run_id, user_id, created_at) "
                "VALUES (%s, %s, %s, %s, %s, %s, %s, NULL, NULL, %s)",
                [candidate_id, old, new, reason, posterior, n_binary,
                 trigger.pk if trigger else None, now],
            )  # fmt: skip
    return ConsensusUpdate(
        posterior=posterior,
        n_votes=n_binary,
        status=new if changed else old,
        changed_status=changed,
        voter_demoted=demoted,
        voter_promoted=promoted,
        peer_credits=credits,
    )


def _set_status(cur, t, candidate_id: int, old: str, new: str) -> bool:
    """Move the candidate from ``old`` to ``new``; False when someone moved it first."""
    cur.execute(
        f"UPDATE {t.candidate} SET status = %s WHERE id = %s AND status = %s",  # noqa: S608
        [new, candidate_id, old],
    )
    return cur.rowcount == 1


class _VoteEvidence(NamedTuple):
    """One vote on the candidate with what its volunteer's proof rests on (the columns of
    :func:`_EVIDENCE_SQL` after the skill row, in that order)."""

    answer: str
    user_id: int | None
    skill: tuple | None  # (sens_alpha, sens_beta, spec_alpha, spec_beta) in this regime
    n_exam: int  # exam gold answers (what proves: GoldStandard.exam), and how many right
    n_exam_correct: int
    z_expert: bool | None  # an imported Zooniverse classification made in expert mode
    volunteer_id: int
    n_peer: int
    n_peer_agree: int
    n_model: int
    n_model_agree: int
    probation_passed: bool


_CHECKS: dict[str, tuple[float, int]] = {}  # alias -> (monotonic time, min checks)


def proof_min_checks() -> int:
    """PROOF_MIN_CHECKS while the live model has a trusted direction of confident calls (the
    checks a newcomer can get without proven peers), else 0: before the first trusted model,
    exam gold alone proves. Kept per process for 30 s."""
    if not settings.PROOF_MIN_CHECKS:
        return 0
    hit = _CHECKS.get(connection.alias)
    now = time.monotonic()
    if hit is not None and now - hit[0] < 30:
        return hit[1]
    live = (
        ModelVersion.objects.filter(status=ModelVersion.Status.PROMOTED)
        .order_by("-pk")
        .values_list("trust_real_calls", "trust_false_calls")
        .first()
    )
    value = settings.PROOF_MIN_CHECKS if live is not None and any(live) else 0
    _CHECKS[connection.alias] = (now, value)
    return value


def passes_site_probation(n_peer, n_peer_agree, n_model, n_model_agree) -> bool:
    """:func:`mlcore.aggregation.evidence.passes_probation` with the site's PROOF_MIN_CHECKS
    and PROOF_MIN_LLR; False when probation is off. Every place that sets or clears
    ``Volunteer.probation_passed`` asks this one, so none can leave a condition out."""
    k = settings.PROOF_MIN_CHECKS
    return bool(
        k
        and passes_probation(
            n_peer, n_peer_agree, n_model, n_model_agree, min_checks=k,
            min_llr=settings.PROOF_MIN_LLR,
        )
    )  # fmt: skip


def proof_rule() -> dict:
    """The site's proof thresholds, as :func:`mlcore.aggregation.evidence.is_proven` takes
    them (every caller passes these, so none can leave one out)."""
    return {
        "min_gold": settings.PROVEN_MIN_GOLD,
        "min_accuracy": settings.PROVEN_MIN_ACCURACY,
        "min_peer": settings.PEER_MIN_COMPARISONS,
        "min_model": settings.MODEL_MIN_COMPARISONS,
        "peer_z": settings.PEER_Z,
        "min_checks": proof_min_checks(),
        "min_probation_llr": settings.PROOF_MIN_LLR,
    }


def _is_proven(vote: _VoteEvidence, experts: set, rule: dict | None = None) -> bool:
    """Does the volunteer of one vote count as proven? (``rule``: :func:`proof_rule`, when
    the caller read it already.)"""
    return bool(vote.user_id in experts or vote.z_expert) or is_proven(
        vote.n_exam,
        vote.n_exam_correct,
        n_peer=vote.n_peer,
        n_peer_agree=vote.n_peer_agree,
        n_model=vote.n_model,
        n_model_agree=vote.n_model_agree,
        probation_passed=vote.probation_passed,
        **(rule or proof_rule()),
    )


def _compare_with_peers(
    cur, t, vote_id: int, per_vote: dict, proven: dict, experts, live_prob: float | None
) -> tuple[bool, bool, list]:
    """Compare the new yes/no vote ``vote_id`` with the yes/no votes already on its candidate
    and with the live model's call on it.

    Both sides of each pair learn something: the new voter is compared with every *proven*
    earlier voter (added to its Volunteer counters now, and recorded on the vote as
    peer_n / peer_agree); if the new voter is proven, every earlier voter is compared with it
    -- those credits ``[[volunteer_id, agreed], ...]`` are returned, recorded on the vote
    (peer_credits, so an undo or a void takes back exactly them) and applied by the caller
    after commit, one row at a time (services.crowd.peers.credit_peers): locking another
    volunteer's row here, under this candidate's lock, could deadlock with that volunteer's
    own vote. Where the live model's probability ``live_prob`` is confident (MODEL_CONFIDENT
    either way), the vote is compared with that call too (n_model / n_model_agree, and the
    vote's model_agree). A comparison that passes probation sets the volunteer's kept
    ``probation_passed``. Returns (the new voter was proven and is not any more, the new
    voter passed probation with this comparison and is proven now, credits)."""
    mine = per_vote[vote_id]
    answer, volunteer_id = mine.answer, mine.volunteer_id
    if answer == Vote.Answer.UNSURE:
        return False, False, []
    earlier = [
        (other, v) for other, v in sorted(per_vote.items())
        if other != vote_id and v.volunteer_id != volunteer_id and v.answer != Vote.Answer.UNSURE
    ]  # fmt: skip
    peers = [v.answer for other, v in earlier if proven[other]]
    was = proven[vote_id]
    credits = [[v.volunteer_id, int(v.answer == answer)] for _, v in earlier] if was else []
    n, k = len(peers), sum(a == answer for a in peers)
    conf = settings.MODEL_CONFIDENT
    model_agree = None
    if live_prob is not None and (live_prob >= conf or live_prob <= 1 - conf):
        model_agree = (answer == Vote.Answer.YES) == (live_prob >= 0.5)
    if not n and not credits and model_agree is None:
        return False, False, []
    m, mk = (0, 0) if model_agree is None else (1, int(model_agree))
    passed = mine.probation_passed or passes_site_probation(
        mine.n_peer + n, mine.n_peer_agree + k, mine.n_model + m, mine.n_model_agree + mk
    )
    if n or m:
        cur.execute(
            f"UPDATE {t.volunteer} SET n_peer = n_peer + %s, "  # noqa: S608
            "n_peer_agree = n_peer_agree + %s, n_model = n_model + %s, "
            "n_model_agree = n_model_agree + %s, probation_passed = probation_passed OR %s "
            "WHERE id = %s",
            [n, k, m, mk, passed, volunteer_id],
        )
    cur.execute(
        f"UPDATE {t.vote} SET peer_n = %s, peer_agree = %s, peer_credits = %s, "  # noqa: S608
        "model_agree = %s WHERE id = %s",
        [n, k, json.dumps(credits) if credits else None, model_agree, vote_id],
    )
    per_vote[vote_id] = mine._replace(
        n_peer=mine.n_peer + n,
        n_peer_agree=mine.n_peer_agree + k,
        n_model=mine.n_model + m,
        n_model_agree=mine.n_model_agree + mk,
        probation_passed=passed,
    )
    proven[vote_id] = _is_proven(per_vote[vote_id], experts)
    # this comparison passed probation and with it proved them
    promoted = passed and not mine.probation_passed and proven[vote_id] and not was
    return was and not proven[vote_id], promoted, credits


@dataclass(frozen=True)
class _Tables:
    state: str
    candidate: str
    event: str
    skill: str
    vote: str
    volunteer: str
    run: str
    zooniverse: str
    score: str
    model: str


@lru_cache(maxsize=1)
def _tables() -> _Tables:
    """Quoted table names (the hot statements are written in SQL: the ORM's query building
    cost more CPU than the database spent running them)."""
    q = connection.ops.quote_name
    return _Tables(
        state=q(ConsensusState._meta.db_table),
        candidate=q(Candidate._meta.db_table),
        event=q(RetirementEvent._meta.db_table),
        skill=q(VolunteerSkill._meta.db_table),
        vote=q(Vote._meta.db_table),
        volunteer=q(Volunteer._meta.db_table),
        run=q(AggregationRun._meta.db_table),
        zooniverse=q(ZooniverseClassification._meta.db_table),
        score=q(CandidateScore._meta.db_table),
        model=q(ModelVersion._meta.db_table),
    )


@lru_cache(maxsize=1)
def _POPULATION_SQL() -> str:
    t = _tables()
    return (
        f"SELECT CAST(typical_skill AS TEXT), CAST(class_prior AS TEXT) FROM {t.run} "  # noqa: S608
        "WHERE status = %s ORDER BY id DESC LIMIT 1"
    )


@lru_cache(maxsize=1)
def _LOCK_SQL() -> str:
    """Upsert-and-lock of the ConsensusState row, returning the latest done batch run's
    population prior (its two JSON columns as text; NULL without one) on the way.

    Params: candidate id, now, run status 'done' (twice).
    """
    t = _tables()
    latest = f"FROM {t.run} WHERE status = %s ORDER BY id DESC LIMIT 1"
    return (
        f"INSERT INTO {t.state} (candidate_id, posterior, n_votes, n_unsure, expert_label, "  # noqa: S608
        "updated_at) VALUES (%s, 0.5, 0, 0, NULL, %s) ON CONFLICT (candidate_id) "
        "DO UPDATE SET updated_at = EXCLUDED.updated_at RETURNING "
        f"(SELECT CAST(typical_skill AS TEXT) {latest}), "
        f"(SELECT CAST(class_prior AS TEXT) {latest})"
    )


@lru_cache(maxsize=1)
def _EVIDENCE_SQL() -> str:
    """Candidate (sn, status) + one row per (vote, skill row of its volunteer), with the
    volunteer's account (for the expert check) and whether the vote is an imported
    Zooniverse classification made in expert mode. Param: candidate id. At most
    RETIRE_MAX_VOTES votes x 2 regimes rows, all through indexes."""
    t = _tables()
    live = ModelVersion.Status.PROMOTED.value  # a constant of ours, not input
    return (
        "SELECT c.sn, c.status, v.id, v.answer, vol.user_id, s.regime, s.sens_alpha, "  # noqa: S608
        "s.sens_beta, s.spec_alpha, s.spec_beta, vol.n_exam, vol.n_exam_correct, z.expert, "
        "v.volunteer_id, vol.n_peer, vol.n_peer_agree, vol.n_model, vol.n_model_agree, "
        "vol.probation_passed, "
        # the live model's score of the candidate (the promoted version; None without one),
        # and None too where the gate found that direction of its calls not trustworthy
        f"(SELECT CASE WHEN (cs.prob >= 0.5 AND mv.trust_real_calls) OR "
        "(cs.prob < 0.5 AND mv.trust_false_calls) THEN cs.prob END "
        f"FROM {t.score} cs JOIN {t.model} mv ON mv.id = cs.model_version_id "
        "WHERE cs.candidate_id = c.id AND "
        f"cs.model_version_id = (SELECT mv2.id FROM {t.model} mv2 WHERE mv2.status = '{live}' "
        "ORDER BY mv2.id DESC LIMIT 1)) "
        f"FROM {t.candidate} c "
        f"LEFT JOIN {t.vote} v ON v.candidate_id = c.id "
        f"LEFT JOIN {t.volunteer} vol ON vol.id = v.volunteer_id "
        f"LEFT JOIN {t.skill} s ON s.volunteer_id = v.volunteer_id "
        f"LEFT JOIN {t.zooniverse} z ON z.vote_id = v.id "
        "WHERE c.id = %s ORDER BY v.id"
    )


def set_candidate_status(*, candidate_id: int, status: str, user=None) -> RetirementEvent:
    """A scientist retires, un-retires or sends a candidate to the experts (recorded)."""
    if status not in Candidate.Status.values:
        raise ValueError(f"status must be one of {Candidate.Status.values}, not {status!r}")
    with transaction.atomic():
        candidate = Candidate.objects.select_for_update().get(pk=candidate_id)
        if status == Candidate.Status.ACTIVE and not servable(candidate.cutout_flags):
            raise ValueError(
                f"detectid {candidate.detectid} has no cutout (the extraction failed): "
                "volunteers would have nothing to judge, so it cannot go back to their queue"
            )
        state = ConsensusState.objects.filter(candidate_id=candidate_id).first()
        event = RetirementEvent.objects.create(
            candidate_id=candidate_id,
            from_status=candidate.status,
            to_status=status,
            reason=RetirementEvent.Reason.MANUAL,
            user=user,
            posterior=state.posterior if state else None,
            n_votes=state.n_votes if state else 0,
        )
        Candidate.objects.filter(pk=candidate_id).update(status=status)
    return event
