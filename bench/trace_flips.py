"""bench_attacks.py --trace: who retired each flipped label, and why they counted as proven.

Wraps the live consensus's update_consensus (both the name in services.crowd.consensus and
the one services.crowd.peers imported) to snapshot every retirement as it happens: each vote
on the candidate, its volunteer's counters at that moment, proven or not, and the vote's
log-likelihood ratio. Logs each attacker's votes with its state after each. Prints per flip.
Bench-only instrumentation (nothing in the services changes).
"""

from __future__ import annotations

import sys
from collections import defaultdict


class FlipTrace:
    def __init__(self):
        self.enabled = False
        self.retirements: dict[int, list] = defaultdict(list)
        self.attacker_ids: set[int] = set()
        self._patched = False

    # -- hooks -----------------------------------------------------------------------------
    def start(self, attackers, *, enabled: bool) -> None:
        self.enabled = enabled
        self.retirements = defaultdict(list)
        self.attacker_ids = {a.volunteer.pk for a in attackers}
        if self._patched:
            return
        from labelapp.services.crowd import consensus, peers

        orig = consensus.update_consensus

        def wrapped(*, candidate_id, trigger=None, settle_expert=False):
            r = orig(candidate_id=candidate_id, trigger=trigger, settle_expert=settle_expert)
            if self.enabled and r.changed_status and r.status == "retired":
                caller = sys._getframe(1).f_code.co_name
                if caller == "record_vote":
                    caller = "vote"
                self.retirements[candidate_id].append(
                    self.snapshot(candidate_id, r, trigger, caller)
                )
            return r

        consensus.update_consensus = wrapped
        peers.update_consensus = wrapped
        self._patched = True

    def snapshot(self, candidate_id, r, trigger, caller) -> dict:
        from labelapp.models import Candidate, Volunteer, VolunteerSkill, Vote
        from labelapp.services.crowd.consensus import population, regime_of
        from labelapp.services.crowd.peers import is_proven_volunteer
        from mlcore.aggregation import vote_llr

        sn = Candidate.objects.values_list("sn", flat=True).get(pk=candidate_id)
        regime = regime_of(sn)
        pop = population()
        rows = []
        for v in Vote.objects.filter(candidate_id=candidate_id).order_by("pk"):
            vol = Volunteer.objects.get(pk=v.volunteer_id)
            sk = VolunteerSkill.objects.filter(volunteer_id=vol.pk, regime=regime).first()
            if sk:
                sens = sk.sens_alpha / (sk.sens_alpha + sk.sens_beta)
                spec = sk.spec_alpha / (sk.spec_alpha + sk.spec_beta)
            else:
                sens, spec = pop.sensitivity[regime], pop.specificity[regime]
            llr = 0.0 if v.answer == "unsure" else vote_llr(sens, spec, int(v.answer == "yes"))
            rows.append(
                {
                    "vote": v.pk,
                    "vol": vol.pk,
                    "att": vol.pk in self.attacker_ids,
                    "answer": v.answer,
                    "llr": llr,
                    "proven": is_proven_volunteer(vol),
                    "prob": vol.probation_passed,
                    "exam": (vol.n_exam, vol.n_exam_correct),
                    "peer": (vol.n_peer, vol.n_peer_agree),
                    "model": (vol.n_model, vol.n_model_agree),
                }
            )
        return {
            "caller": caller,
            "trigger": getattr(trigger, "pk", None),
            "trigger_vol": getattr(trigger, "volunteer_id", None),
            "posterior": r.posterior,
            "votes": rows,
        }

    def after_attacker_vote(self, a, row, gold) -> None:
        if not self.enabled:
            return
        from labelapp.models import Vote
        from labelapp.services.crowd.peers import is_proven_volunteer

        vol = a.volunteer
        vol.refresh_from_db()
        v = Vote.objects.filter(volunteer_id=vol.pk).order_by("-pk").first()
        a.log.append(
            {
                "cast": a.cast,
                "cand": v.candidate_id,
                "gold": gold,
                "answer": v.answer,
                "peer_n": v.peer_n,
                "peer_agree": v.peer_agree,
                "model_agree": v.model_agree,
                "proven": is_proven_volunteer(vol),
                "prob": vol.probation_passed,
                "exam": (vol.n_exam, vol.n_exam_correct),
                "peer": (vol.n_peer, vol.n_peer_agree),
                "model": (vol.n_model, vol.n_model_agree),
            }
        )

    def dump_votes(self, spec) -> None:
        """Every vote in order, with its comparisons, to $TRACE_DIR/votes_<spec>.csv."""
        import csv
        import os

        from labelapp.models import Vote

        out = os.environ.get("TRACE_DIR")
        if not out:
            return
        rows = Vote.objects.order_by("pk").values_list(
            "pk", "volunteer_id", "candidate_id", "was_gold", "answer", "peer_n", "peer_agree",
            "peer_credits", "model_agree", "candidate__truth__is_real", "candidate__sn",
            "candidate__gold__exam",
        )  # fmt: skip
        with open(os.path.join(out, f"votes_{spec}.csv"), "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["vote", "vol", "cand", "gold", "answer", "peer_n", "peer_agree",
                        "credits", "model_agree", "real", "sn", "exam", "attacker"])  # fmt: skip
            for r in rows:
                w.writerow([*r, int(r[1] in self.attacker_ids)])

    # -- report ----------------------------------------------------------------------------
    def report(self, spec, flips, other_wrong, attackers) -> None:
        from labelapp.models import AuditEvent, Candidate, CandidateScore, RetirementEvent
        from labelapp.services.crowd.peers import is_proven_volunteer

        demoted = {
            int(t.split(":")[1]): d
            for t, d in AuditEvent.objects.filter(action="peer_demotion").values_list(
                "target", "detail"
            )
        }
        by_id = {a.volunteer.pk: a for a in attackers}
        self.dump_votes(spec)
        print(f"--- trace {spec}: {len(flips)} flips, {len(other_wrong)} other wrong attacked")
        # population summary
        ever_proven = [a for a in attackers if any(e["proven"] for e in a.log)]
        passed = [a for a in attackers if any(e["prob"] for e in a.log)]
        exam_ok = [a for a in attackers if a.log and a.log[-1]["exam"][0] >= 4
                   and a.log[-1]["exam"][1] >= 0.7 * a.log[-1]["exam"][0]]  # fmt: skip
        print(
            f"attackers: {len(attackers)}; exam-gold bar met at end {len(exam_ok)}; "
            f"probation passed {len(passed)}; ever proven {len(ever_proven)}; "
            f"demoted (audit) {len(set(demoted) & set(by_id))}"
        )
        # how probation was passed: the counters at the first log entry with prob True
        for a in passed:
            first = next(e for e in a.log if e["prob"])
            print(
                f"  att {a.volunteer.pk}: probation seen passed at vote {first['cast']} "
                f"peer {first['peer']} model {first['model']} exam {first['exam']}; "
                f"proven then {first['proven']}; end: peer {a.log[-1]['peer']} model "
                f"{a.log[-1]['model']} proven {a.log[-1]['proven']} "
                f"demoted {a.volunteer.pk in demoted}"
            )
        for label, pks in (("FLIP", flips), ("wrong-attacked", other_wrong)):
            for pk in pks:
                c = Candidate.objects.select_related("truth", "consensus").get(pk=pk)
                score = (
                    CandidateScore.objects.filter(candidate_id=pk)
                    .values_list("prob", flat=True)
                    .first()
                )
                print(
                    f"{label} cand {pk} detectid {c.detectid} S/N {c.sn:.2f} truth "
                    f"{'real' if c.truth.is_real else 'false'} posterior "
                    f"{c.consensus.posterior:.3f} model P {score:.2f}"
                )
                for ev in RetirementEvent.objects.filter(candidate_id=pk).order_by("pk"):
                    print(
                        f"    event {ev.from_status}->{ev.to_status} {ev.reason} "
                        f"post {ev.posterior} n {ev.n_votes} vote {ev.vote_id}"
                    )
                for snap in self.retirements.get(pk, []):
                    print(
                        f"    retired by {snap['caller']} trigger vote {snap['trigger']} "
                        f"(vol {snap['trigger_vol']}) posterior {snap['posterior']:.3f}"
                    )
                    for v in snap["votes"]:
                        print(
                            f"      vote {v['vote']} vol {v['vol']}{'*ATT' if v['att'] else ''} "
                            f"{v['answer']:>6} llr {v['llr']:+.2f} proven {v['proven']} "
                            f"prob {v['prob']} exam {v['exam']} peer {v['peer']} "
                            f"model {v['model']}"
                        )
                for vid in sorted({v["vol"] for s in self.retirements.get(pk, [])
                                   for v in s["votes"] if v["att"]}):  # fmt: skip
                    a = by_id[vid]
                    a.volunteer.refresh_from_db()
                    print(
                        f"    att {vid} now proven {is_proven_volunteer(a.volunteer)} "
                        f"demoted {vid in demoted} {demoted.get(vid, '')}; its votes:"
                    )
                    for e in a.log:
                        print(
                            f"      #{e['cast']} cand {e['cand']} gold {e['gold']} "
                            f"{e['answer']} peer_n {e['peer_n']} agree {e['peer_agree']} "
                            f"model_agree {e['model_agree']} -> proven {e['proven']} "
                            f"prob {e['prob']} exam {e['exam']} peer {e['peer']} "
                            f"model {e['model']}"
                        )
        sys.stdout.flush()
