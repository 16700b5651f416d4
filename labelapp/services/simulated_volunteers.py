"""Simulated volunteers classifying through the real services (queue -> vote -> consensus).

The population (skills falling towards low S/N, heavy-tailed activity, random clickers, a
rare always-yes, fatigue) is :class:`mlcore.volunteers.VolunteerPopulation`; its answers
depend on each candidate's ground truth, so this needs a simulated survey. Used by the
demo (to make the site look alive), by benchmarks and by the in-silico campaigns.
"""

from __future__ import annotations

import http.cookiejar
import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urljoin, urlparse

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
    rate_limited: int = 0  # volunteers stopped by the per-volunteer vote rate limit

    @property
    def message(self) -> str:
        rate = self.votes / self.seconds if self.seconds else 0.0
        return (
            f"{self.votes} votes from {self.volunteers} simulated volunteers in "
            f"{self.seconds:.1f} s ({rate:,.0f} votes/s); {self.exhausted} ran out of "
            f"candidates, {self.rate_limited} stopped at the vote rate limit"
        )


def _require_truth() -> None:
    if not CandidateTruth.objects.exists():
        raise SimulationError(
            "simulated volunteers answer from ground truth: ingest a "
            "simulated survey first (manage.py simulate_survey, then ingest)"
        )


class SimulatedCrowd:
    """A population of simulated volunteers with their own Volunteer rows, kept across calls
    (so skills, fatigue and "never the same candidate twice" carry over between rounds)."""

    def __init__(self, *, n_volunteers: int, seed: int = 0):
        if n_volunteers <= 0:
            raise SimulationError("--volunteers must be positive")
        _require_truth()
        self.pop = VolunteerPopulation.sample(n_volunteers, seed)
        self.rng = np.random.default_rng(seed)
        self.volunteers = Volunteer.objects.bulk_create([Volunteer() for _ in range(n_volunteers)])
        self.done = np.zeros(n_volunteers, np.int64)

    def vote(
        self, *, n_votes: int, progress: Callable[[str, int, int], None] | None = None
    ) -> SimulationReport:
        """Cast up to ``n_votes`` votes through the services."""
        if n_votes <= 0:
            raise SimulationError("--votes must be positive")
        t0 = time.perf_counter()
        pop, rng, n = self.pop, self.rng, len(self.volunteers)
        exhausted = np.zeros(n, bool)
        limited = np.zeros(n, bool)
        cast = 0
        while cast < n_votes and not (exhausted | limited).all():
            j = int(pop.draw_volunteers(1, rng)[0])
            if exhausted[j] or limited[j]:
                continue
            row = next_candidate(volunteer=self.volunteers[j])
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
                session_position=pop.session_position(np.array([j]), self.done[[j]]),
            )
            try:
                submit_vote(
                    volunteer=self.volunteers[j],
                    detectid=row["detectid"],
                    answer=Vote.Answer.YES if said[0] else Vote.Answer.NO,
                )
            except RateLimited:
                limited[j] = True  # a simulated volunteer who hit the limit stops for now
                continue
            self.done[j] += 1
            cast += 1
            if progress:
                progress("votes", cast, n_votes)
        return SimulationReport(
            votes=cast,
            volunteers=n,
            exhausted=int(exhausted.sum()),
            seconds=time.perf_counter() - t0,
            rate_limited=int(limited.sum()),
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
    crowd = SimulatedCrowd(n_volunteers=n_volunteers, seed=seed)
    return crowd.vote(n_votes=n_votes, progress=progress)


class _Browser:
    """One simulated volunteer's browser: its own cookies (session, csrftoken)."""

    def __init__(self, base_url: str):
        self.base = base_url.rstrip("/") + "/"
        self.jar = http.cookiejar.CookieJar()
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(self.jar))

    def _csrf(self) -> str:
        return next((c.value for c in self.jar if c.name == "csrftoken"), "")

    def call(self, method: str, path: str, body: dict | None = None) -> tuple[int, dict]:
        headers = {"Accept": "application/json"}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers.update(
                {
                    "Content-Type": "application/json",
                    "X-CSRFToken": self._csrf(),
                    "Referer": urljoin(self.base, "classify/"),
                }
            )
        # the scheme was checked to be http(s) in run_simulated_volunteers_http
        url = urljoin(self.base, path)
        req = urllib.request.Request(url, data=data, headers=headers, method=method)  # noqa: S310
        try:
            with self.opener.open(req, timeout=30) as resp:  # noqa: S310 - URL given by the operator
                raw = resp.read()
                status = resp.status
        except urllib.error.HTTPError as exc:
            raw, status = exc.read(), exc.code
        try:
            return status, json.loads(raw) if raw else {}
        except json.JSONDecodeError:
            return status, {"error": {"message": f"non-JSON answer: {raw[:200]!r}"}}


def run_simulated_volunteers_http(
    *,
    base_url: str,
    n_volunteers: int,
    n_votes: int,
    seed: int = 0,
    progress: Callable[[str, int, int], None] | None = None,
) -> SimulationReport:
    """Like :func:`run_simulated_volunteers`, but each volunteer is a browser session talking
    to the real site over HTTP (``GET /api/next/``, ``POST /api/votes/`` with its CSRF
    token). Ground truth (to decide each simulated answer) is read from the database, so
    run it against a site that shares this process's database."""
    if n_volunteers <= 0 or n_votes <= 0:
        raise SimulationError("--volunteers and --votes must be positive")
    if urlparse(base_url).scheme not in ("http", "https"):
        raise SimulationError(f"--via-http needs an http(s) URL, not {base_url!r}")
    _require_truth()
    t0 = time.perf_counter()
    pop = VolunteerPopulation.sample(n_volunteers, seed)
    rng = np.random.default_rng(seed)
    browsers: list[_Browser | None] = [None] * n_volunteers
    done = np.zeros(n_volunteers, np.int64)
    exhausted = np.zeros(n_volunteers, bool)
    limited = np.zeros(n_volunteers, bool)
    cast = 0
    while cast < n_votes and not (exhausted | limited).all():
        j = int(pop.draw_volunteers(1, rng)[0])
        if exhausted[j] or limited[j]:
            continue
        if browsers[j] is None:
            browsers[j] = _Browser(base_url)
            # the classify page sets the CSRF cookie, as for a person arriving on the site
            page = urljoin(browsers[j].base, "classify/")
            browsers[j].opener.open(page, timeout=30).read()  # noqa: S310
        browser = browsers[j]
        status, data = browser.call("GET", "api/next/")
        if status != 200:
            raise SimulationError(f"GET /api/next/ answered {status}: {data}")
        if not data.get("candidates"):
            exhausted[j] = True
            continue
        detectid = data["candidates"][0]["detectid"]
        truth = (
            CandidateTruth.objects.filter(candidate__detectid=detectid)
            .values_list("is_real", "candidate__sn")
            .first()
        )
        if truth is None:
            exhausted[j] = True
            continue
        said = pop.respond(
            np.array([j]),
            np.array([truth[0]]),
            np.array([truth[1]]),
            rng,
            session_position=pop.session_position(np.array([j]), done[[j]]),
        )
        status, data = browser.call(
            "POST",
            "api/votes/",
            {
                "detectid": detectid,
                "answer": "yes" if said[0] else "no",
                "client": "api",
                "next": 0,
            },
        )
        if status == 429:
            limited[j] = True
            continue
        if status not in (200, 201):
            raise SimulationError(f"POST /api/votes/ answered {status}: {data}")
        done[j] += 1
        cast += 1
        if progress:
            progress("votes (http)", cast, n_votes)
    return SimulationReport(
        votes=cast,
        volunteers=n_volunteers,
        exhausted=int(exhausted.sum()),
        seconds=time.perf_counter() - t0,
        rate_limited=int(limited.sum()),
    )
