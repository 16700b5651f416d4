"""Attack campaigns (issue #24): attacker populations next to the honest simulated crowd,
through the real services (queue -> submit_vote -> live consensus and retirement), each run
with today's defences and with them switched off (every volunteer counted as proven and no
cap on unproven evidence: the rule before #24), from the same starting database.

Populations (each votes only on what the queue serves it: served-only voting is what the
API enforces; a script can no longer aim at chosen detectids):
  * sybils: N fresh anonymous volunteers, each voting against the truth (an oracle attacker:
    the worst case) on the candidates it is served; "sybils-goldperfect" the same, but right
    on every teaching gold (its answer is told after each vote, so a script learns it once
    and replays it in every new session) and, on exam gold (never told), guessing -- as if it
    could tell exam gold from the rest (by how often it recurs across sessions), the worst
    case; "sybils-examskilled" right on exam gold too with probability --exam-skill (0.9: an
    attacker who classifies the clear gold examples as well as a good volunteer);
  * colluders: 10 accounts, up to 50 votes each, against the truth -- "naive" ones lie on
    gold too, "gold-perfect" ones answer teaching gold right, guess exam gold and lie
    elsewhere;
  * always-yes and random clickers: 10 accounts x 50 votes.
The honest crowd is mlcore.volunteers.VolunteerPopulation (skills falling towards low S/N,
its own random clickers and always-yes), voting in chunks with the attackers in between.

Reported per run: retired candidates, wrong retired labels (all; those an attacker voted
on; and the flips: those whose honest votes alone lean to the truth, computed by running
the same consensus code without the attackers' votes), yes/no votes per retired candidate,
attacker votes recorded, and how many attackers the console's suspicious-volunteer rule flags
(labelapp.selectors.suspicious) with the votes they had cast when first flagged. Then the
sybils over HTTP (in-process Django test client, one client address): sessions that got a
volunteer, votes recorded, votes refused.

    .venv/bin/python bench/bench_attacks.py [--candidates 3000] [--honest-votes 6000]
        [--volunteers 60] [--sybils 100] [--seed 1] [--attacks none sybils-examskilled ...]
        [--arms both|on|off] [--trace]

``--arms on`` runs only the defended arm (the "off" arm does not depend on the defences'
settings, so its figures from an earlier run of the same seed stand). ``--trace``
(bench/trace_flips.py) prints, for the defended arm, each flipped label's retirements with
every vote and its volunteer's state at that moment, and each attacker's votes; with
``TRACE_DIR`` set it also writes every vote with its comparisons to votes_<attack>.csv.

Figures only. Runs on SQLite in a temporary directory (nothing shared is touched).
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

TMP = Path(tempfile.mkdtemp(prefix="bench-attacks-"))
(TMP / "data").mkdir()
os.environ.update(
    {
        "LABELAPP_DATA_DIR": str(TMP / "data"),
        "DJANGO_SETTINGS_MODULE": "labelapp.settings",
        "DJANGO_DEBUG": "0",
        "DJANGO_SECRET_KEY": "bench-only-secret-key-0123456789abcdefghijklmnopqrstuvwxyz",
        "DJANGO_ALLOWED_HOSTS": "testserver,localhost",
        "LABELAPP_VOTE_RATE_LIMIT": "1000000",
        "LABELAPP_LOG_LEVEL": "ERROR",
        "DJANGO_LOG_LEVEL": "ERROR",
        "DATABASE_URL": "",
        "REDIS_URL": "",
    }
)
os.environ.pop("DATABASE_URL")
os.environ.pop("REDIS_URL")


def setup_db(n: int, seed: int) -> Path:
    import django

    django.setup()
    from django.core.management import call_command

    from labelapp.services.crowd.gold import seed_gold_from_truth
    from labelapp.services.survey.ingest import ingest_survey
    from mlcore.simulator import simulate_survey
    from mlcore.survey_io import write_survey

    call_command("migrate", verbosity=0)
    global GOLD_PREFERENCE
    from labelapp.services.crowd import queue

    GOLD_PREFERENCE = queue.gold_preference
    ingest_survey(path=write_survey(TMP / "s.fits", simulate_survey(n, seed=seed)))
    from labelapp.models import GoldStandard

    n_gold = seed_gold_from_truth(per_kind=20)
    n_exam = GoldStandard.objects.filter(active=True, exam=True).count()
    print(f"survey: {n:,} candidates, {n_gold} gold ({n_exam} exam); data in {TMP}")
    simulated_live_model(seed)
    from django.db import connections

    connections.close_all()
    db = TMP / "data" / "db.sqlite3"
    template = TMP / "template.sqlite3"
    shutil.copy(db, template)
    return template


def simulated_live_model(seed: int) -> None:
    """A live model's scores, simulated like the volunteers are: P(real) = sigmoid(+-s + noise)
    around the truth, s = 1.25 at S/N <= 5.5 and 1.9 above, noise sd 1.5: ROC AUC near 0.88 and
    0.96 (printed per regime), about the CNN's own in its domain and no better. The crowd
    defences compare votes with its confident calls."""
    import numpy as np

    from labelapp.models import Candidate, CandidateScore, ModelVersion

    rng = np.random.default_rng(seed)
    rows = list(Candidate.objects.values_list("pk", "sn", "truth__is_real"))
    real = np.array([bool(r) for _, _, r in rows])
    sn = np.array([x for _, x, _ in rows])
    logit = np.where(sn > 5.5, 1.9, 1.25) * np.where(real, 1, -1) + rng.normal(0, 1.5, len(rows))
    prob = 1 / (1 + np.exp(-logit))
    mv = ModelVersion.objects.create(
        label_source="truth", directory="/simulated", status=ModelVersion.Status.PROMOTED
    )
    CandidateScore.objects.bulk_create(
        CandidateScore(model_version=mv, candidate_id=pk, prob=float(p), entropy=0.0, bald=0.0)
        for (pk, _, _), p in zip(rows, prob, strict=True)
    )
    from django.conf import settings

    c = settings.MODEL_CONFIDENT
    conf = (prob >= c) | (prob <= 1 - c)
    right = (prob >= 0.5) == real
    from mlcore.cnn.evaluation import roc_auc

    low = sn <= 5.5
    print(
        f"simulated live model: ROC AUC {roc_auc(real[low], prob[low]):.3f} at S/N <= 5.5, "
        f"{roc_auc(real[~low], prob[~low]):.3f} above; {conf.mean():.0%} of candidates called "
        f"confidently (P >= {c} or <= {1 - c:.1f}), {right[conf].mean():.1%} of those right"
    )


TRACE = None  # --trace: a bench.trace_flips.FlipTrace
GOLD_PREFERENCE = None  # the queue's own rule, kept for the "on" arm (set in setup_db)


def restore(template: Path) -> None:
    from django.core.cache import cache
    from django.db import connections

    connections.close_all()
    shutil.copy(template, TMP / "data" / "db.sqlite3")
    cache.clear()


class Attacker:
    """One attacking volunteer: ``kind`` sybil | naive | goldperfect | alwaysyes | random."""

    def __init__(self, kind: str, budget: int, rng: random.Random, exam_skill: float = 0.5):
        from labelapp.models import Volunteer

        self.kind, self.budget, self.rng = kind, budget, rng
        self.exam_skill = exam_skill  # goldperfect: P(right) on exam gold (0.5: a guess)
        self.volunteer = Volunteer.objects.create()
        self.cast = 0
        self.flagged_at: int | None = None
        self.log: list = []  # --trace: (cast, detectid, gold, answer, proven, probation, counters)

    def answer(self, is_real: bool, gold: str | None) -> str:
        """``gold``: None, "teach" or "exam"."""
        truth, lie = ("yes", "no") if is_real else ("no", "yes")
        if self.kind == "alwaysyes":
            return "yes"
        if self.kind == "random":
            return self.rng.choice(["yes", "no"])
        if self.kind == "goldperfect" and gold == "teach":
            return truth  # learned from the feedback an earlier session was told
        if self.kind == "goldperfect" and gold == "exam":
            return truth if self.rng.random() < self.exam_skill else lie
        return lie

    def act(self, n: int) -> None:
        from labelapp.models import CandidateTruth, GoldStandard
        from labelapp.services.crowd.queue import next_candidates
        from labelapp.services.crowd.votes import VoteError, submit_vote

        for _ in range(min(n, self.budget - self.cast)):
            rows = next_candidates(volunteer=self.volunteer, count=1, rng=self.rng)
            if not rows:
                return
            row = rows[0]
            truth = CandidateTruth.objects.filter(candidate_id=row["id"]).first()
            if truth is None:
                return
            exam = (
                GoldStandard.objects.filter(candidate_id=row["id"], active=True)
                .values_list("exam", flat=True)
                .first()
            )
            gold = None if exam is None else ("exam" if exam else "teach")
            try:
                submit_vote(
                    volunteer=self.volunteer,
                    detectid=row["detectid"],
                    answer=self.answer(truth.is_real, gold),
                )
            except VoteError:
                return
            self.cast += 1
            if TRACE is not None:
                TRACE.after_attacker_vote(self, row, gold)


def populations(
    spec: str, n_sybils: int, rng: random.Random, exam_skill: float = 0.9
) -> list[Attacker]:
    if spec == "none":
        return []
    if spec == "sybils":
        return [Attacker("sybil", 10, rng) for _ in range(n_sybils)]
    if spec == "sybils-goldperfect":  # teaching gold learned, exam gold guessed
        return [Attacker("goldperfect", 10, rng) for _ in range(n_sybils)]
    if spec == "sybils-examskilled":  # ... and exam gold classified, right with exam_skill
        return [Attacker("goldperfect", 10, rng, exam_skill) for _ in range(n_sybils)]
    kind = {"colluders": "naive", "colluders-goldperfect": "goldperfect"}.get(spec, spec)
    return [Attacker(kind, 50, rng) for _ in range(10)]


def run(template: Path, *, spec: str, defended: bool, args) -> dict:
    from django.conf import settings

    from labelapp.models import Candidate, ConsensusState, GoldStandard, Vote
    from labelapp.research.simulated_volunteers import SimulatedCrowd
    from labelapp.selectors.suspicious import flag_reasons

    restore(template)
    # "on" is the deployed rule (with LABELAPP_RETIRE_UNPROVEN_LEAN_LLR from the environment,
    # the trade-off docs/security.md measures); "off" has no rule 3 either
    lean = float(os.environ.get("LABELAPP_RETIRE_UNPROVEN_LEAN_LLR", "0"))
    settings.RETIRE_UNPROVEN_LEAN_LLR = lean if defended else 1e9
    min_exam = int(os.environ.get("LABELAPP_PROVEN_MIN_GOLD", "4"))  # the deployed default: 4
    settings.PROVEN_MIN_GOLD = min_exam if defended else 0
    checks = int(os.environ.get("LABELAPP_PROOF_MIN_CHECKS", "3"))  # the deployed default
    settings.PROOF_MIN_CHECKS = checks if defended else 0
    settings.PROOF_MIN_LLR = float(os.environ.get("LABELAPP_PROOF_MIN_LLR", "2.94"))
    from labelapp.services.crowd import consensus as _consensus

    _consensus._CHECKS.clear()
    # off: every volunteer proven, whatever their gold answers (before 2026-12-07 the off arm
    # kept the 70 % bar, so volunteers under it were capped there too)
    settings.PROVEN_MIN_ACCURACY = 0.7 if defended else 0.0
    # off: any gold, as before gold had roles (exam gold is 2026-12-07: docs/security.md)
    from labelapp.services.crowd import queue

    queue.gold_preference = GOLD_PREFERENCE if defended else (lambda volunteer: (None,))
    settings.UNPROVEN_MAX_LLR = 2.0 if defended else 1e9
    settings.PROVEN_SUPPORT_LLR = 1.5 if defended else -1e9  # off: any evidence supports
    settings.PEER_MIN_COMPARISONS = 10 if defended else 10**9  # off: no peer/model rule
    settings.MODEL_MIN_COMPARISONS = 6 if defended else 10**9
    rng = random.Random(args.seed)
    crowd = SimulatedCrowd(n_volunteers=args.volunteers, seed=args.seed)
    attackers = populations(spec, args.sybils, rng, args.exam_skill)
    if TRACE is not None:
        TRACE.start(attackers, enabled=defended)
    chunks = 20
    t0 = time.perf_counter()
    for k in range(chunks):
        crowd.vote(n_votes=args.honest_votes // chunks)
        for a in attackers:
            a.act(max(1, a.budget // chunks) if k < chunks - 1 else a.budget)
            if a.flagged_at is None and a.cast:
                a.volunteer.refresh_from_db()
                if flag_reasons(a.volunteer):
                    a.flagged_at = a.cast
    seconds = time.perf_counter() - t0
    gold_ids = set(GoldStandard.objects.values_list("candidate_id", flat=True))
    attacker_ids = [a.volunteer.pk for a in attackers]
    attacked = set(
        Vote.objects.filter(volunteer_id__in=attacker_ids).values_list("candidate_id", flat=True)
    )
    retired = Candidate.objects.filter(status="retired").exclude(pk__in=gold_ids)
    rows = list(retired.values_list("pk", "truth__is_real", "consensus__posterior"))
    wrong = [pk for pk, real, post in rows if post is not None and (post >= 0.5) != real]
    truth = {pk: real for pk, real, _ in rows}
    honest_side = honest_only_sides([pk for pk in wrong if pk in attacked], attacker_ids)
    states = ConsensusState.objects.filter(candidate__in=retired)
    honest_votes = Vote.objects.exclude(volunteer_id__in=attacker_ids)
    n_retired = retired.count()
    if TRACE is not None and defended:
        flips = [pk for pk, side in honest_side.items() if side == truth[pk]]
        TRACE.report(spec, flips, [pk for pk in honest_side if pk not in flips], attackers)
    flagged = [a.flagged_at for a in attackers if a.flagged_at is not None]
    return {
        "retired": n_retired,
        "wrong": len(wrong),
        # wrong, attacked, and the honest votes alone would have it on the true side
        "flipped": sum(1 for pk, side in honest_side.items() if side == truth[pk]),
        "wrong_attacked": len(honest_side),
        "attacked_retired": len([pk for pk, *_ in rows if pk in attacked]),
        "votes_per_retired": (
            sum(s.n_votes for s in states) / n_retired if n_retired else float("nan")
        ),
        "honest_votes": honest_votes.count(),
        # the cost: every honest yes/no vote cast (gold included, retired or not) per retired
        # candidate; votes_per_retired above counts only the votes on retired candidates
        "honest_cost": (
            honest_votes.exclude(answer="unsure").count() / n_retired if n_retired else float("nan")
        ),
        "attacker_votes": sum(a.cast for a in attackers),
        "attackers": len(attackers),
        "flagged": len(flagged),
        "flag_votes": (sum(flagged) / len(flagged)) if flagged else float("nan"),
        "expert_queue": Candidate.objects.filter(status="expert").count(),
        # volunteers who lost proven status by disagreeing with proven peers (the audit record)
        "peer_demoted": _peer_demoted(attacker_ids),
        "newcomers": newcomer_cost(attacker_ids) if spec == "none" else None,
        "seconds": seconds,
    }


def _peer_demoted(attacker_ids: list[int]) -> tuple[int, int]:
    """(honest, attacker) volunteers the peer-agreement rule took proven status from."""
    from labelapp.models import AuditEvent

    targets = AuditEvent.objects.filter(action="peer_demotion").values_list("target", flat=True)
    ids = {int(t.split(":")[1]) for t in targets}
    return len(ids - set(attacker_ids)), len(ids & set(attacker_ids))


def newcomer_cost(attacker_ids: list[int]) -> dict:
    """The honest crowd's votes replayed in order: how many votes each volunteer had cast
    when its exam gold answers made it proven (PROVEN_MIN_GOLD at PROVEN_MIN_ACCURACY), and
    the share of honest yes/no votes cast while unproven."""
    from django.conf import settings

    from labelapp.models import Vote
    from mlcore.aggregation.evidence import is_proven

    rows = (
        Vote.objects.exclude(volunteer_id__in=attacker_ids)
        .order_by("pk")
        .values_list(
            "volunteer_id",
            "answer",
            "was_gold",
            "candidate__gold__is_real",
            "candidate__gold__exam",
        )
    )
    state: dict[int, list[int]] = {}  # volunteer -> [votes, exam gold, right, proven at]
    unproven_binary = binary = 0
    for vid, answer, was_gold, real, exam in rows.iterator(chunk_size=5000):
        st = state.setdefault(vid, [0, 0, 0, 0])
        proven = is_proven(
            st[1],
            st[2],
            min_gold=settings.PROVEN_MIN_GOLD,
            min_accuracy=settings.PROVEN_MIN_ACCURACY,
        )
        if answer != "unsure" and not was_gold:
            binary += 1
            unproven_binary += not proven
        st[0] += 1
        if was_gold and exam:
            st[1] += 1
            st[2] += answer != "unsure" and (answer == "yes") == bool(real)
        if not proven and not st[3] and is_proven(
            st[1], st[2], min_gold=settings.PROVEN_MIN_GOLD,
            min_accuracy=settings.PROVEN_MIN_ACCURACY,
        ):  # fmt: skip
            st[3] = st[0]
    at = sorted(v[3] for v in state.values() if v[3])
    return {
        "volunteers": len(state),
        "proven": len(at),
        "median_votes_to_proven": at[len(at) // 2] if at else float("nan"),
        "unproven_share": unproven_binary / binary if binary else float("nan"),
    }


def honest_only_sides(candidate_ids: list[int], attacker_ids: list[int]) -> dict[int, bool]:
    """candidate -> P(real) >= 0.5 from its honest votes alone (the attackers' votes taken
    out, the same consensus code run, everything rolled back)."""
    from django.db import transaction

    from labelapp.models import Vote
    from labelapp.services.crowd.consensus import update_consensus

    out = {}
    for pk in candidate_ids:
        with transaction.atomic():
            Vote.objects.filter(candidate_id=pk, volunteer_id__in=attacker_ids).delete()
            out[pk] = update_consensus(candidate_id=pk).posterior >= 0.5
            transaction.set_rollback(True)
    return out


def http_sybils(template: Path, n: int) -> dict:
    """N sybil sessions through the HTTP API from one client address (served tokens and
    the per-address limits as deployed)."""
    import json

    from django.test import Client

    from labelapp.models import Volunteer, Vote

    restore(template)
    accepted = refused = sessions_with_volunteer = 0
    codes: dict[int, int] = {}
    for _ in range(n):
        c = Client(enforce_csrf_checks=True)
        got = c.get("/api/next/?count=3").json()["candidates"]
        for cand in got:
            body = {"detectid": cand["detectid"], "token": cand["token"], "answer": "no"}
            r = c.post(
                "/api/votes/",
                json.dumps(body),
                content_type="application/json",
                headers={"X-CSRFToken": c.cookies["csrftoken"].value},
            )
            codes[r.status_code] = codes.get(r.status_code, 0) + 1
            accepted += r.status_code in (200, 201)
            refused += r.status_code == 429
        # a vote aimed at a detectid of the attacker's choosing, without a token
        r = c.post(
            "/api/votes/",
            json.dumps({"detectid": 1_000_000, "answer": "no"}),
            content_type="application/json",
            headers={"X-CSRFToken": c.cookies["csrftoken"].value},
        )
        codes[r.status_code] = codes.get(r.status_code, 0) + 1
    sessions_with_volunteer = Volunteer.objects.count()
    return {
        "sessions": n,
        "volunteers_created": sessions_with_volunteer,
        "votes_recorded": Vote.objects.count(),
        "accepted": accepted,
        "refused_429": refused,
        "codes": dict(sorted(codes.items())),
    }


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--candidates", type=int, default=3000)
    p.add_argument("--honest-votes", type=int, default=6000)
    p.add_argument("--volunteers", type=int, default=60)
    p.add_argument("--sybils", type=int, default=100)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--exam-skill", type=float, default=0.9, help="sybils-examskilled's P(right)")
    p.add_argument(
        "--arms", choices=["both", "on", "off"], default="both",
        help="run only the defended (on) or undefended (off) arm of each population",
    )  # fmt: skip
    p.add_argument(
        "--trace", action="store_true",
        help="on the defended arm, dump per-flip detail (who retired it, who was proven and why)",
    )  # fmt: skip
    p.add_argument(
        "--attacks",
        nargs="*",
        default=[
            "none",
            "sybils",
            "sybils-goldperfect",
            "sybils-examskilled",
            "colluders",
            "colluders-goldperfect",
            "alwaysyes",
            "random",
        ],  # fmt: skip
    )
    args = p.parse_args()
    global TRACE
    if args.trace:
        from bench.trace_flips import FlipTrace

        TRACE = FlipTrace()
    template = setup_db(args.candidates, args.seed)
    head = (
        f"{'attack':>22} {'defence':>7} {'retired':>7} {'wrong':>5} {'w.att':>5} {'flipped':>7} "
        f"{'att.ret':>7} {'v/ret':>5} {'cost':>5} {'expert':>6} {'att.votes':>9} {'flagged':>9} "
        f"{'@votes':>6} {'demoted h/a':>11} {'s':>5}"
    )
    print(head)
    for spec in args.attacks:
        arms = {"both": (False, True), "on": (True,), "off": (False,)}[args.arms]
        for defended in arms:
            r = run(template, spec=spec, defended=defended, args=args)
            print(
                f"{spec:>22} {'on' if defended else 'off':>7} {r['retired']:>7} "
                f"{r['wrong']:>5} {r['wrong_attacked']:>5} {r['flipped']:>7} "
                f"{r['attacked_retired']:>7} "
                f"{r['votes_per_retired']:>5.2f} {r['honest_cost']:>5.1f} {r['expert_queue']:>6} "
                f"{r['attacker_votes']:>9} {r['flagged']:>4}/{r['attackers']:<4} "
                f"{r['flag_votes']:>6.1f} {'/'.join(map(str, r['peer_demoted'])):>11} "
                f"{r['seconds']:>5.0f}",
                flush=True,
            )
            if r["newcomers"] and defended:
                n = r["newcomers"]
                print(
                    f"{'':>22} honest crowd: {n['proven']} of {n['volunteers']} volunteers "
                    f"became proven, after {n['median_votes_to_proven']} votes (median); "
                    f"{n['unproven_share']:.1%} of honest non-gold yes/no votes were cast "
                    "while unproven",
                    flush=True,
                )
    h = http_sybils(template, args.sybils)
    print(
        f"HTTP: {h['sessions']} sybil sessions from one address -> {h['volunteers_created']} "
        f"volunteers, {h['votes_recorded']} votes recorded, {h['refused_429']} refused (429); "
        f"status counts {h['codes']} (403 = a chosen detectid without a served token)"
    )
    print(
        "retired/wrong: non-gold candidates retired and those whose label is not the truth; "
        "w.att: wrong ones an attacker voted on; flipped: of those, the ones whose honest "
        "votes alone lean to the truth (the attackers made them wrong); att.ret: retired "
        "candidates an attacker voted on; v/ret: yes/no votes on retired candidates per "
        "retired candidate; cost: every honest yes/no vote cast (gold and candidates never "
        "retired included) per retired candidate; expert: candidates "
        "sent to the expert queue; flagged: attackers the suspicious-volunteer rule flags, "
        "@votes: their mean votes cast when first flagged; demoted h/a: honest volunteers and "
        "attackers who lost proven status by disagreeing with proven peers. defence off = "
        "every volunteer proven, no cap, no rule 3 (the rule before #24)."
    )
    shutil.rmtree(TMP, ignore_errors=True)


if __name__ == "__main__":
    main()
