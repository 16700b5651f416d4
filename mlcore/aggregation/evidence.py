"""Evidence that a cheap crowd of unproven voters cannot supply (sybil resistance).

A voter is *proven* once gold answers measured their skill (:func:`is_proven`; experts
always are). Two rules keep unproven voters -- new or anonymous, so free to create in bulk --
from settling a label on their own:

1. **Cap.** The log-odds the unproven votes on one candidate add *together* in each
   direction is capped at ``cap`` (:func:`capped_log_odds`). A thousand sybils move a
   posterior no further than a couple of honest newcomers, and cannot cancel the honest
   newcomers voting the other way.
2. **Support.** A confident posterior retires a candidate only when the proven evidence
   alone points the same way by more than a margin (:func:`proven_support`): proven
   log-odds above +min_llr for "real", below -min_llr for "not real". Otherwise the
   candidate stays in the queue (or goes to the experts at the vote cap).
3. **Delay, never cause.** The retirement decision itself is taken on
   :func:`retirement_log_odds`: the unproven evidence on the side the posterior leans is
   left out, the unproven evidence against it kept. Unproven votes move the posterior (and
   the queue's order), and can hold a retirement back, but can never hasten one: sybils
   agreeing with a slight wrong lean of the honest votes cannot tip it into a label.
   (A campaign may let some of that evidence count, ``lean_cap``: faster retirement with a
   crowd of many light volunteers, at a measured cost in labels sybils can tip;
   docs/security.md.)

And one rule that gold alone cannot enforce: a *proven* voter who agrees with other proven
voters on the same candidates significantly less often than chance (:func:`peer_disagrees`)
is not proven any more; nor one who agrees that rarely with the live model's confident calls
(a group of accounts voting together agrees with itself, never with an independent model).
Honest volunteers agree with each other more often than not, even at low S/N; accounts that
pass gold and then vote against the truth (colluders, or gold leaked to them) agree with the
honest proven crowd, and with the model, far less often.

Pure numpy / floats: used by the live consensus after each vote and by the batch run.
"""

from __future__ import annotations

import math

import numpy as np

# Python and numpy scalars: these take the pure-Python path below (the live consensus asks
# is_proven for every vote on a candidate at every vote: numpy's per-call overhead on one
# value cost ~35 us a call, a few per cent of a vote's CPU).
_SCALAR = (int, float, np.integer, np.floating, np.bool_)


def is_proven(
    n_gold,
    n_gold_correct,
    *,
    min_gold: int,
    min_accuracy: float,
    n_peer=0,
    n_peer_agree=0,
    n_model=0,
    n_model_agree=0,
    min_peer: int = 10,
    peer_z: float = 2.33,
    min_model: int = 6,
    min_checks: int = 0,
    min_probation_llr: float = 0.0,
    probation_passed=False,
):
    """True where at least ``min_gold`` gold answers were given, ``min_accuracy`` of them
    right ('not sure' counts as an answer that is not right), and the voter's agreement with
    other proven voters, and with the live model's confident calls, is not significantly
    below chance (:func:`peer_disagrees`; with no comparisons yet it is not). With
    ``min_checks`` (probation), also at least that many such comparisons on non-gold
    candidates, at least half of them agreeing and with ``min_probation_llr`` of evidence
    for honesty (:func:`passes_probation`), now or at some earlier point
    (``probation_passed``, kept by the caller: :func:`passes_probation`): gold a skilled
    attacker can pass, while lying on the rest shows at once. Scalars or arrays."""
    args = (n_gold, n_gold_correct, n_peer, n_peer_agree, n_model, n_model_agree)
    if isinstance(probation_passed, _SCALAR) and all(isinstance(a, _SCALAR) for a in args):
        return _is_proven_one(
            n_gold, n_gold_correct, n_peer, n_peer_agree, n_model, n_model_agree,
            min_gold=min_gold, min_accuracy=min_accuracy, min_peer=min_peer, peer_z=peer_z,
            min_model=min_model, min_checks=min_checks, min_probation_llr=min_probation_llr,
            probation_passed=bool(probation_passed),
        )  # fmt: skip
    n_gold = np.asarray(n_gold)
    ok = (n_gold >= min_gold) & (np.asarray(n_gold_correct) >= min_accuracy * n_gold)
    ok = ok & ~peer_disagrees(n_peer, n_peer_agree, min_peer=min_peer, z=peer_z)
    ok = ok & ~peer_disagrees(n_model, n_model_agree, min_peer=min_model, z=peer_z)
    if min_checks:  # probation: independent checks on non-gold, at least half agreeing
        now = passes_probation(
            n_peer, n_peer_agree, n_model, n_model_agree, min_checks=min_checks,
            min_llr=min_probation_llr,
        )  # fmt: skip
        ok = ok & (np.asarray(probation_passed, dtype=bool) | now)
    return bool(ok) if ok.ndim == 0 else ok


# P(a comparison agrees) for an honest voter and for one answering against the truth, per
# kind of check (probation's likelihood ratio, :func:`probation_llr`). The live model's
# trusted confident calls are right 85-97 % of the time (the gate's bar; 96 % in the attack
# campaign), so a liar agrees with them 3-15 % of the time and an honest volunteer as often
# as they are right (0.56-0.79 measured in the campaign). Proven peers are a weak check: the
# queue serves contested candidates, where the proven votes split, so anyone agrees with
# about half of them (campaign: honest volunteers 47-60 %, gold-skilled liars 33-59 %).
PROBATION_AGREE = {"model": (0.7, 0.1), "peer": (0.55, 0.4)}
# per kind: log-likelihood ratio of one agreement, of one disagreement (computed once, and
# the same numbers for arrays and scalars, so both paths agree to the last bit)
_PROBATION_LLR = {
    kind: (math.log(honest / liar), math.log((1 - honest) / (1 - liar)))
    for kind, (honest, liar) in PROBATION_AGREE.items()
}


def _is_proven_one(
    n_gold, n_gold_correct, n_peer, n_peer_agree, n_model, n_model_agree, *, min_gold,
    min_accuracy, min_peer, peer_z, min_model, min_checks, min_probation_llr, probation_passed,
) -> bool:  # fmt: skip
    """:func:`is_proven` for one voter, in plain Python (tests check it against the arrays)."""
    if not (n_gold >= min_gold and n_gold_correct >= min_accuracy * n_gold):
        return False
    if _disagrees_one(n_peer, n_peer_agree, min_peer, peer_z):
        return False
    if _disagrees_one(n_model, n_model_agree, min_model, peer_z):
        return False
    if min_checks and not probation_passed:
        return _passes_one(n_peer, n_peer_agree, n_model, n_model_agree, min_checks,
                           min_probation_llr)  # fmt: skip
    return True


def _disagrees_one(n, k, min_peer, z) -> bool:
    n, k = float(n), float(k)
    return n >= min_peer and k < 0.5 * n - z * 0.5 * math.sqrt(n)


def _llr_one(n_peer, n_peer_agree, n_model, n_model_agree) -> float:
    out = 0.0
    for kind, n, k in (("model", n_model, n_model_agree), ("peer", n_peer, n_peer_agree)):
        agree, disagree = _PROBATION_LLR[kind]
        n, k = float(n), float(k)
        out = out + (k * agree + (n - k) * disagree)
    return out


def _passes_one(n_peer, n_peer_agree, n_model, n_model_agree, min_checks, min_llr) -> bool:
    checks = n_peer + n_model
    agreed = n_peer_agree + n_model_agree
    if not (checks >= max(1, min_checks) and 2 * agreed >= checks):
        return False
    return not min_llr or _llr_one(n_peer, n_peer_agree, n_model, n_model_agree) >= min_llr


def probation_llr(n_peer, n_peer_agree, n_model, n_model_agree):
    """log P(checks | honest) - log P(checks | answering against the truth), each comparison
    counted as independent with the rates of :data:`PROBATION_AGREE`: about +1.95 per
    agreement with the model's call and -1.10 per disagreement, +0.32 / -0.29 per peer."""
    out = 0.0
    for kind, n, k in (("model", n_model, n_model_agree), ("peer", n_peer, n_peer_agree)):
        agree, disagree = _PROBATION_LLR[kind]
        n, k = np.asarray(n, np.float64), np.asarray(k, np.float64)
        out = out + (k * agree + (n - k) * disagree)
    return out


def passes_probation(
    n_peer, n_peer_agree, n_model, n_model_agree, *, min_checks: int, min_llr: float = 0.0
):
    """At least ``min_checks`` comparisons on non-gold candidates (with proven peers and the
    live model's trusted calls), at least half of them agreeing, and (``min_llr``) evidence
    that the voter is honest rather than answering against the truth: :func:`probation_llr`
    at least ``min_llr`` (the site's PROOF_MIN_LLR, log 19). Without that, "half of 3+
    checks" was passed by 44 of 100 gold-skilled liars in one seed of bench_attacks: the
    first checks are mostly peers split on a contested candidate (1 of 2 agreeing, whatever
    one answers), later other liars once proven agree with them, and the test is re-run at
    every new check, so some running count reaches half. Peer agreement carries little
    evidence; the model's calls carry most: two agreements with them and no disagreement
    pass (3.9), 2 of 3 do not (2.8), peers alone need a run of agreement.
    Once passed it stays passed (the caller keeps ``Volunteer.probation_passed``): an honest
    volunteer agrees about 65 % of the time at low S/N, so a running test dips under now and
    then, and each dip would demote them and re-open what they settled (3.40x the honest
    votes per retired candidate in one seed of bench_attacks, with exam-first). Who lies
    later is left to :func:`peer_disagrees`."""
    if all(isinstance(a, _SCALAR) for a in (n_peer, n_peer_agree, n_model, n_model_agree)):
        return _passes_one(n_peer, n_peer_agree, n_model, n_model_agree, min_checks, min_llr)
    checks = np.asarray(n_peer) + np.asarray(n_model)
    agreed = np.asarray(n_peer_agree) + np.asarray(n_model_agree)
    out = (checks >= max(1, min_checks)) & (2 * agreed >= checks)
    if min_llr:
        out = out & (probation_llr(n_peer, n_peer_agree, n_model, n_model_agree) >= min_llr)
    return bool(out) if out.ndim == 0 else out


def peer_disagrees(n_peer, n_peer_agree, *, min_peer: int = 10, z: float = 2.33):
    """Does a voter agree with other proven voters significantly less often than chance?

    ``n_peer``: yes/no answers of the voter compared with a proven voter's yes/no answer on
    the same (non-gold) candidate; ``n_peer_agree``: how many of them agreed. True where at
    least ``min_peer`` comparisons were made and the agreement is below one half by more
    than ``z`` standard errors of a fair coin (z = 2.33: one-sided 1 %). Honest voters, even
    near chance at low S/N, agree at least half the time; a voter who answers against the
    truth agrees with an honest voter of accuracy a only 1 - a of the time."""
    n = np.asarray(n_peer, dtype=np.float64)
    k = np.asarray(n_peer_agree, dtype=np.float64)
    out = (n >= min_peer) & (k < 0.5 * n - z * 0.5 * np.sqrt(n))
    return bool(out) if out.ndim == 0 else out


def capped_log_odds(
    prior_log_odds: float,
    proven_llr: float,
    unproven_for: float,
    unproven_against: float,
    cap: float,
) -> float:
    """Posterior log-odds: prior + proven LLRs + the unproven evidence *for* "real" (the sum
    of their positive LLRs) capped at +cap + the unproven evidence *against* (the sum of
    their negative LLRs) capped at -cap.

    Capping each direction on its own (not the net sum) is what stops a flood of sybils from
    cancelling honest newcomers: sybils add at most ``cap`` their way, and the newcomers'
    votes the other way still count. With ``cap`` below the retirement threshold's log-odds
    (logit 0.95 = 2.94), sybils can then never move a candidate whose honest votes lean to
    one side into being retired on the other."""  # fmt: skip
    return prior_log_odds + proven_llr + min(cap, unproven_for) + max(-cap, unproven_against)


def retirement_log_odds(
    prior_log_odds: float,
    proven_llr: float,
    unproven_for: float,
    unproven_against: float,
    cap: float,
    lean_cap: float = 0.0,
) -> float:
    """The log-odds a retirement is decided on: as :func:`capped_log_odds`, with the
    unproven evidence on the side the posterior leans cut to ``lean_cap`` (rule 3; the
    default 0 leaves it out, ``cap`` or more keeps all of it). Unproven votes against the
    lean always count, so they can hold a retirement back."""
    full = capped_log_odds(prior_log_odds, proven_llr, unproven_for, unproven_against, cap)
    keep = min(max(lean_cap, 0.0), cap)
    if full >= 0:
        return full - min(cap, unproven_for) + min(keep, unproven_for)
    return full - max(-cap, unproven_against) + max(-keep, unproven_against)


def proven_support(posterior: float, proven_llr: float, min_llr: float = 0.0) -> bool:
    """Does the proven evidence alone point the way ``posterior`` leans, by more than
    ``min_llr`` of log-odds? (Retirement needs it.) With ``min_llr`` above one default vote's
    log(3) = 1.1, a single proven vote of typical skill is not enough: sybils pushing the
    posterior cannot turn one honest mistake into a retired label."""
    if posterior >= 0.5:
        return proven_llr > min_llr
    return proven_llr < -min_llr


def proven_net_votes(
    candidate: np.ndarray, label: np.ndarray, proven: np.ndarray, n_candidates: int
) -> np.ndarray:
    """Per candidate: proven yes votes minus proven no votes (the batch run's support)."""
    sign = np.where(np.asarray(label) == 1, 1, -1) * np.asarray(proven, bool)
    return np.bincount(candidate, weights=sign, minlength=n_candidates)


def trusted_calls(prob, is_real, *, confident: float, min_precision: float, min_calls: int) -> dict:
    """Which of a model's confident calls may stand as an independent voter, measured on
    labelled candidates it is scored on (``prob``: P(real); ``is_real``: the labels).

    The model check (:func:`peer_disagrees` against the model's calls) assumes a confident
    call is right far more often than not. An early model can be confident and one-sidedly
    wrong (seen in the in-silico loop: the round-1 model's 'not real' calls at P <= 0.2
    right 37-90 % of the time on its held-out sample, its 'real' calls 98-100 %), and then
    an honest volunteer who sees the real lines it misses agrees with it less than half the
    time and loses proven status. So each direction is
    trusted only where its calls were right at least ``min_precision`` of the time over at
    least ``min_calls`` calls. -> {"real": {...}, "false": {...}} with n, right, precision
    and trusted per direction."""
    p = np.asarray(prob, np.float64)
    y = np.asarray(is_real, bool)
    out = {}
    for name, calls, right in (
        ("real", p >= confident, y),
        ("false", p <= 1 - confident, ~y),
    ):
        n = int(calls.sum())
        k = int(right[calls].sum())
        precision = k / n if n else None
        out[name] = {
            "n": n,
            "right": k,
            "precision": None if precision is None else round(precision, 4),
            "trusted": bool(n >= max(min_calls, 1) and precision >= min_precision),
        }
    return out
