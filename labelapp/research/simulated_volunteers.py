"""Simulated volunteers classifying through the real services (queue -> vote -> consensus).

The population (skills falling towards low S/N, heavy-tailed activity, random clickers, a
rare always-yes, fatigue) is :class:`mlcore.volunteers.VolunteerPopulation`; its answers
depend on each candidate's ground truth, so this needs a simulated survey. Used by the
demo (to make the site look alive), by benchmarks and by the in-silico campaigns.
"""

from __future__ import annotations

import http.cookiejar
import json
import random
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urljoin, urlparse

import numpy as np

from labelapp.errors import InvalidInput
from labelapp.models import CandidateTruth, Volunteer, Vote
from labelapp.services.crowd.queue import next_candidates
from labelapp.services.crowd.votes import RateLimited, submit_vote
from mlcore.volunteers import VolunteerPopulation


class SimulationError(InvalidInput):
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


def _truth(**lookup) -> tuple[bool, float] | None:
    """(is real, S/N) of one candidate: what a simulated volunteer's answer depends on."""
    return CandidateTruth.objects.filter(**lookup).values_list("is_real", "candidate__sn").first()


class ServiceChannel:
    """Simulated volunteers that call the services in this process (fast)."""

    label = "votes"

    def __init__(self, n_volunteers: int, seed: int = 0):
        self.volunteers = Volunteer.objects.bulk_create([Volunteer() for _ in range(n_volunteers)])
        # seeded queue choices: the same seed shows the same candidates (fair comparisons)
        self.rng = random.Random(seed)

    def next(self, j: int) -> tuple[int, tuple[bool, float] | None] | None:
        rows = next_candidates(volunteer=self.volunteers[j], count=1, rng=self.rng)
        row = rows[0] if rows else None
        return None if row is None else (row["detectid"], _truth(candidate_id=row["id"]))

    def vote(self, j: int, detectid: int, answer: str) -> bool:
        try:
            submit_vote(volunteer=self.volunteers[j], detectid=detectid, answer=answer)
        except RateLimited:
            return False
        return True


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
        # the scheme was checked to be http(s) by HttpChannel
        url = urljoin(self.base, path)
        req = urllib.request.Request(url, data=data, headers=headers, method=method)  # noqa: S310
        try:
            with self.opener.open(req, timeout=30) as resp:
                raw = resp.read()
                status = resp.status
        except urllib.error.HTTPError as exc:
            raw, status = exc.read(), exc.code
        try:
            return status, json.loads(raw) if raw else {}
        except json.JSONDecodeError:
            return status, {"error": {"message": f"non-JSON answer: {raw[:200]!r}"}}


class HttpChannel:
    """Simulated volunteers as browser sessions on the real site: ``GET /api/next/`` and
    ``POST /api/votes/`` with each session's CSRF token (realistic). Ground truth is read
    from the database, so the site must share this process's database."""

    label = "votes (http)"

    def __init__(self, base_url: str, n_volunteers: int):
        if urlparse(base_url).scheme not in ("http", "https"):
            raise SimulationError(f"--via-http needs an http(s) URL, not {base_url!r}")
        self.base_url = base_url
        self.browsers: list[_Browser | None] = [None] * n_volunteers
        self.tokens: dict[tuple[int, int], str] = {}  # (volunteer, detectid) -> served token

    def _browser(self, j: int) -> _Browser:
        if self.browsers[j] is None:
            browser = _Browser(self.base_url)
            # the classify page sets the CSRF cookie, as for a person arriving on the site
            browser.opener.open(urljoin(browser.base, "classify/"), timeout=30).read()
            self.browsers[j] = browser
        return self.browsers[j]

    def next(self, j: int) -> tuple[int, tuple[bool, float] | None] | None:
        status, data = self._browser(j).call("GET", "api/next/")
        if status != 200:
            raise SimulationError(f"GET /api/next/ answered {status}: {data}")
        if not data.get("candidates"):
            return None
        detectid = data["candidates"][0]["detectid"]
        self.tokens[j, detectid] = data["candidates"][0]["token"]
        return detectid, _truth(candidate__detectid=detectid)

    def vote(self, j: int, detectid: int, answer: str) -> bool:
        token = self.tokens.pop((j, detectid), "")
        body = {"detectid": detectid, "token": token, "answer": answer, "client": "api", "next": 0}
        status, data = self._browser(j).call("POST", "api/votes/", body)
        if status == 429:
            return False
        if status not in (200, 201):
            raise SimulationError(f"POST /api/votes/ answered {status}: {data}")
        return True


class SimulatedCrowd:
    """A population of simulated volunteers kept across calls (so skills, fatigue and
    "never the same candidate twice" carry over between rounds), voting through a channel:
    the services (default) or the site's HTTP API."""

    def __init__(self, *, n_volunteers: int, seed: int = 0, channel=None):
        if n_volunteers <= 0:
            raise SimulationError("--volunteers must be positive")
        _require_truth()
        self.pop = VolunteerPopulation.sample(n_volunteers, seed)
        self.rng = np.random.default_rng(seed)
        self.channel = channel or ServiceChannel(n_volunteers, seed)
        self.done = np.zeros(n_volunteers, np.int64)

    def vote(
        self, *, n_votes: int, progress: Callable[[str, int, int], None] | None = None
    ) -> SimulationReport:
        """Cast up to ``n_votes`` votes; stops early when every volunteer is out of
        candidates or at the rate limit."""
        if n_votes <= 0:
            raise SimulationError("--votes must be positive")
        t0 = time.perf_counter()
        pop, rng, n = self.pop, self.rng, len(self.done)
        exhausted = np.zeros(n, bool)
        limited = np.zeros(n, bool)
        cast = 0
        while cast < n_votes and not (exhausted | limited).all():
            j = int(pop.draw_volunteers(1, rng)[0])
            if exhausted[j] or limited[j]:
                continue
            shown = self.channel.next(j)
            if shown is None or shown[1] is None:  # nothing left, or a truth-less candidate
                exhausted[j] = True
                continue
            detectid, (is_real, sn) = shown
            said = pop.respond(
                np.array([j]), np.array([is_real]), np.array([sn]), rng,
                session_position=pop.session_position(np.array([j]), self.done[[j]]),
            )  # fmt: skip
            answer = Vote.Answer.YES if said[0] else Vote.Answer.NO
            if not self.channel.vote(j, detectid, answer):
                limited[j] = True  # a volunteer who hit the rate limit stops for now
                continue
            self.done[j] += 1
            cast += 1
            if progress:
                progress(self.channel.label, cast, n_votes)
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
    base_url: str | None = None,
    progress: Callable[[str, int, int], None] | None = None,
) -> SimulationReport:
    """Cast ``n_votes`` votes from a fresh population of ``n_volunteers``: through the
    services, or through the site's JSON API at ``base_url``."""
    if n_volunteers <= 0 or n_votes <= 0:
        raise SimulationError("--volunteers and --votes must be positive")
    channel = HttpChannel(base_url, n_volunteers) if base_url else None
    crowd = SimulatedCrowd(n_volunteers=n_volunteers, seed=seed, channel=channel)
    return crowd.vote(n_votes=n_votes, progress=progress)
