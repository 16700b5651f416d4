"""Both JSON APIs against the OpenAPI schemas they serve, with schemathesis, over HTTP.

django-ninja generates /api/openapi.json (the volunteer API) and /api/science/v1/openapi.json
(the science API) from the code; here schemathesis reads each schema from a live server
(pytest-django's ``live_server``: a real HTTP server in a thread), generates requests from
it (valid ones, and in negative mode ones that break it), sends them with real credentials
(the volunteer's session cookie and CSRF header; a scientist's bearer token) and checks
every answer: no 5xx, a status the schema documents, the documented content type, a body
that validates against the documented schema, schema-breaking requests refused with a 4xx.
Valid votes are sent with the served token of a candidate (as the page does), so the
201/200 answers and their next candidates are checked too, not only the refusals.
"""

from __future__ import annotations

from collections import Counter

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
from requests.adapters import HTTPAdapter
from schemathesis.generation import GenerationMode
from urllib3.util.retry import Retry

from labelapp.models import Vote
from tests.factories_science import make_science_catalogue, make_token
from tests.test_fuzz_api import make_fuzz_candidates

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("own_cache")]

HYPOTHESIS = settings(
    max_examples=40,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=list(HealthCheck),
)


@pytest.fixture
def volunteer_schema(live_server, settings, tmp_path):
    settings.VOTE_RATE_LIMIT = 100_000  # the limits are tested in test_volunteer_api
    settings.VOTE_RATE_IP = (100_000, 60)
    settings.ANON_VOLUNTEER_RATE_IP = (100_000, 60)
    make_fuzz_candidates(tmp_path, n=40)
    return schemathesis.openapi.from_url(f"{live_server.url}/api/openapi.json")


@pytest.fixture
def science_schema(live_server, settings, tmp_path):
    settings.SCIENCE_API_RATE = (100_000, 60)
    make_science_catalogue(tmp_path)
    return schemathesis.openapi.from_url(f"{live_server.url}/api/science/v1/openapi.json")


class Volunteer:
    """A browser session: the csrftoken and session cookies, the X-CSRFToken header."""

    def __init__(self, base: str):
        self.base = base
        self.http = requests.Session()
        # no keep-alive: a connection the live server closed after the test (its database
        # gone) raised in the server's thread
        self.http.headers["Connection"] = "close"
        # Django's threaded test server now and then drops a connection unanswered (a CI run
        # saw it on GET /api/next/): GETs are tried again, never the writes under test
        retry = Retry(total=3, connect=3, read=3, backoff_factor=0.1, allowed_methods={"GET"})
        self.http.mount("http://", HTTPAdapter(max_retries=retry))
        self.http.get(f"{base}/api/next/", timeout=30).raise_for_status()
        self.headers = {"X-CSRFToken": self.http.cookies["csrftoken"]}

    def serve(self, body: dict) -> None:
        """Aim a valid vote at a candidate this session was served (detectid + token)."""
        served = self.http.get(f"{self.base}/api/next/", timeout=30).json()["candidates"]
        if served:
            body.update(detectid=served[0]["detectid"], token=served[0]["token"])


@pytest.fixture
def volunteer(live_server):
    volunteer = Volunteer(live_server.url)
    yield volunteer
    volunteer.http.close()


def check_every_operation(schema, send, *, examples: int) -> Counter:
    """Draw ``examples`` cases per operation and generation mode (schemathesis' strategies
    through hypothesis: its pytest loader, ``from_fixture``, does not run on pytest 9) and
    ``send`` each; returns the (path, status) counts."""
    seen: Counter = Counter()
    for result in schema.get_all_operations():
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            _check_operation(result.ok(), mode, send, seen, examples)
    return seen


def _check_operation(op, mode, send, seen: Counter, examples: int) -> None:
    @settings(HYPOTHESIS, max_examples=examples)
    @given(case=op.as_strategy(generation_mode=mode))
    def run(case):
        resp = send(case, mode)
        seen[(case.method, case.path, resp.status_code)] += 1

    run()


def _as_integers(body: dict) -> None:
    """JSON Schema counts 294.0 as an integer; this API does not (json_body.strict_int:
    a float is refused even when it is whole), so a valid request writes it 294."""
    for key, value in body.items():
        if isinstance(value, float) and value.is_integer():
            body[key] = int(value)
        elif isinstance(value, list):
            body[key] = [int(v) if isinstance(v, float) and v.is_integer() else v for v in value]


def test_volunteer_api_answers_match_its_schema(volunteer_schema, volunteer):
    def send(case, mode):
        if mode.is_positive and isinstance(case.body, dict):
            _as_integers(case.body)
            if case.path == "/api/votes/":
                volunteer.serve(case.body)
        return case.call_and_validate(
            base_url=volunteer.base, session=volunteer.http, headers=volunteer.headers
        )

    seen = check_every_operation(volunteer_schema, send, examples=25)
    statuses = {(path, status) for _, path, status in seen}
    # the answers checked include the successes, not only the refusals
    for reached in [
        ("/api/next/", 200),
        ("/api/votes/", 201),
        ("/api/votes/", 400),
        ("/api/candidates/{detectid}/spectrum/", 404),
    ]:
        assert reached in statuses, (reached, sorted(seen.items()))


def test_science_api_answers_match_its_schema(science_schema, live_server):
    bearer = {"Authorization": f"Bearer {make_token().secret}"}

    def send(case, mode):
        # positive_data_acceptance is left out here: the catalogue's filters have rules the
        # schema cannot state (sn_min <= sn_max; `label` and `status` vocabularies checked
        # by the service) and answer a documented 400 when broken
        return case.call_and_validate(
            base_url=live_server.url,
            headers=bearer,
            excluded_checks=[schemathesis.checks.positive_data_acceptance],
        )

    seen = check_every_operation(science_schema, send, examples=15)
    assert any(status == 200 for *_, status in seen) and len(seen) >= 8, seen


def test_valid_votes_reach_the_vote_answers(volunteer_schema, volunteer):
    """The generated votes are not all refusals: with served tokens they are recorded, and
    the 201 answer validates against the schema (schemathesis' own check of one case)."""
    op = volunteer_schema["/api/votes/"]["POST"]
    case = op.Case(body={"detectid": 0, "answer": "no", "next": 2})
    volunteer.serve(case.body)
    resp = case.call_and_validate(
        base_url=volunteer.base, session=volunteer.http, headers=volunteer.headers
    )
    assert resp.status_code == 201 and len(resp.json()["next"]) == 2
    assert Vote.objects.count() == 1
