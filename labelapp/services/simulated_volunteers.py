"""Simulated volunteers classifying through the real services (queue -> vote -> consensus).

The population (skills falling towards low S/N, heavy-tailed activity, random clickers, a
rare always-yes, fatigue) is :class:`mlcore.volunteers.VolunteerPopulation`; its answers
depend on each candidate's ground truth, so this needs a simulated survey. Used by the
demo (to make the site look alive), by benchmarks and by the in-silico campaigns.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from labelapp.models import CandidateTruth, Volunteer, Vote
from labelapp.services.queue import next_candidate
from labelapp.services.votes import RateLimited, submit_vote
from mlcore.volunteers import VolunteerPopulation


class SimulationError(Exception):
    pass


@dataclass
class SimulationReport:
    votes: int
    volunteers: int
    exhausted: int  # volunteers who found nothing left to classify
    seconds: float

    @property
    def message(self) -> str:
        rate = self.votes / self.seconds if self.seconds else 0.0
        return (
            f"{self.votes} votes from {self.volunteers} simulated volunteers in "
            f"{self.seconds:.1f} s ({rate:,.0f} votes/s); {self.exhausted} ran out of "
            "candidates"
        )


def run_simulated_volunteers(
    *,
    n_volunteers: int,
    n_votes: int,
    seed: int = 0,
    progress: Callable[[str, int, int], None] | None = None,
) -> SimulationReport:
    """Cast ``n_votes`` votes from a fresh population of ``n_volunteers`` via the services."""
    if n_volunteers <= 0 or n_votes <= 0:
        raise SimulationError("--volunteers and --votes must be positive")
    if not CandidateTruth.objects.exists():
        raise SimulationError(
            "simulated volunteers answer from ground truth: ingest a "
            "simulated survey first (manage.py simulate_survey, then ingest)"
        )
    t0 = time.perf_counter()
    pop = VolunteerPopulation.sample(n_volunteers, seed)
    rng = np.random.default_rng(seed)
    volunteers = Volunteer.objects.bulk_create([Volunteer() for _ in range(n_volunteers)])
    done = np.zeros(n_volunteers, np.int64)
    exhausted = np.zeros(n_volunteers, bool)
    cast = 0
    while cast < n_votes and not exhausted.all():
        j = int(pop.draw_volunteers(1, rng)[0])
        if exhausted[j]:
            continue
        row = next_candidate(volunteer=volunteers[j])
        if row is None:
            exhausted[j] = True
            continue
        truth = (
            CandidateTruth.objects.filter(candidate_id=row["id"])
            .values_list("is_real", "candidate__sn")
            .first()
        )
        if truth is None:  # a real (truth-less) candidate in the queue: skip it
            exhausted[j] = True
            continue
        said = pop.respond(
            np.array([j]),
            np.array([truth[0]]),
            np.array([truth[1]]),
            rng,
            session_position=pop.session_position(np.array([j]), done[[j]]),
        )
        try:
            submit_vote(
                volunteer=volunteers[j],
                detectid=row["detectid"],
                answer=Vote.Answer.YES if said[0] else Vote.Answer.NO,
            )
        except RateLimited:
            exhausted[j] = True  # a simulated volunteer who hit the limit stops for today
            continue
        done[j] += 1
        cast += 1
        if progress:
            progress("votes", cast, n_votes)
    return SimulationReport(
        votes=cast,
        volunteers=n_volunteers,
        exhausted=int(exhausted.sum()),
        seconds=time.perf_counter() - t0,
    )
