"""Every URL pattern of the site, with every role: the expected status of a GET is written
down here, so a new URL without a rule fails this test (add its row on purpose).

Roles: anonymous visitor (an anonymous volunteer), registered volunteer, scientist (in the
experts group, not staff), admin (staff + superuser). Statuses: 200 page, 302 redirect (to
log in, or after an action), 403 refused, 405 wrong method (POST-only actions; the console
guard answers before the method check, so outsiders never learn what a URL accepts)."""

import pytest
from django.urls import URLPattern, URLResolver, get_resolver, reverse

from labelapp.models import Candidate, ModelVersion
from labelapp.services.community.talk import create_thread
from labelapp.services.survey.ingest import ingest_survey
from mlcore.survey_io import write_survey
from tests.factories import make_survey
from tests.factories_console import make_account, make_scientist

pytestmark = pytest.mark.django_db

ROLES = ("anonymous", "volunteer", "scientist", "admin")
OPEN = (200, 200, 200, 200)
CONSOLE = (302, 403, 200, 200)
CONSOLE_POST = (302, 403, 405, 405)
ACCOUNT_ONLY = (302, 200, 200, 200)
NO_TOKEN = (401, 401, 401, 401)

EXPECTED = {
    # public pages and the volunteer site
    "home": OPEN,
    "candidate-detail": OPEN,
    "candidate-cutout": OPEN,
    "healthz": OPEN,
    "classify": (302, 302, 302, 302),  # a first visit goes to the tutorial
    "tutorial": OPEN,
    "tutorial-done": (405, 405, 405, 405),
    "field-guide": OPEN,
    "field-guide-png": OPEN,
    "field-guide-drawer": OPEN,
    "me": OPEN,
    "results": OPEN,
    "privacy": OPEN,
    # languages: the switcher POSTs (a GET changes nothing and goes back); the scripts' strings
    "set_language": (302, 302, 302, 302),
    "javascript-catalog": OPEN,
    # favourites and collections: saving needs an account; writes are POST only
    "collections": ACCOUNT_ONLY,
    "collection": (404, 404, 404, 404),  # no collection has this token
    "collection-create": (405, 405, 405, 405),
    "collection-add": (405, 405, 405, 405),
    "collection-edit": (405, 405, 405, 405),
    "collection-delete": (405, 405, 405, 405),
    "collection-items": (405, 405, 405, 405),
    "favourite-set": (405, 405, 405, 405),
    # Talk: reading is open (a candidate's thread says "classify it first" until one has);
    # writes are POST only; moderation is for moderators and the science team
    "talk": OPEN,
    "talk-board": OPEN,
    "talk-thread-new": (405, 405, 405, 405),
    "talk-thread": OPEN,
    "talk-comment": (405, 405, 405, 405),
    "talk-candidate": OPEN,
    "talk-candidate-comment": (405, 405, 405, 405),
    "talk-flag": (405, 405, 405, 405),
    "talk-tag": OPEN,
    "talk-report": (405, 405, 405, 405),
    "talk-hide": (405, 405, 405, 405),
    "talk-suspend": (405, 405, 405, 405),
    "talk-moderation": CONSOLE,
    "talk-report-dismiss": (405, 405, 405, 405),
    "talk-lift": (405, 405, 405, 405),
    "talk-notifications": ACCOUNT_ONLY,
    # accounts
    "signup": OPEN,
    "login": OPEN,
    "logout": (405, 405, 405, 405),
    "password_change": ACCOUNT_ONLY,
    "password_change_done": ACCOUNT_ONLY,
    "password_reset": OPEN,
    "password_reset_done": OPEN,
    "password_reset_confirm": OPEN,  # an invalid link says so
    "password_reset_complete": OPEN,
    # JSON API used by the classify page (django-ninja); its root is the api-docs page
    "api-docs": OPEN,
    "volunteer-api:api-root": OPEN,
    "volunteer-api:openapi-json": OPEN,
    "volunteer-api:next": OPEN,
    "volunteer-api:vote": (405, 405, 405, 405),
    "volunteer-api:undo": (405, 405, 405, 405),
    "volunteer-api:reason": (405, 405, 405, 405),
    "volunteer-api:spectrum": OPEN,
    # the scientist console
    "console-campaign": CONSOLE,
    "console-progress": CONSOLE,
    "console-audit": CONSOLE,
    "console-volunteers": CONSOLE,
    "console-suspicious": CONSOLE,
    "console-void-votes": CONSOLE_POST,
    "console-block-range": CONSOLE_POST,
    "console-models": CONSOLE,
    "console-shift": CONSOLE,
    "console-model": CONSOLE,
    "console-model-promote": CONSOLE_POST,
    "console-model-card": (302, 403, 404, 404),  # this model version has no card yet
    "console-model-weights": (302, 403, 404, 404),  # this model version has no weights file
    "console-encoder": (302, 403, 404, 404),  # no pretrained encoder with this pk
    "console-encoder-retire": CONSOLE_POST,
    "console-redshift": CONSOLE,
    "console-zooniverse": CONSOLE,
    "console-external": CONSOLE,
    "console-gallery": CONSOLE,
    "console-candidate": CONSOLE,
    "console-attribution": (302, 403, 404, 404),  # no weights to draw the map with
    "console-candidate-flag": CONSOLE_POST,
    "console-expert": CONSOLE,
    "console-expert-answer": CONSOLE_POST,
    "console-gold": CONSOLE,
    "console-gold-edit": (302, 403, 404, 404),  # the candidate is not a gold standard
    "console-talk": CONSOLE,
    "console-talk-action": CONSOLE_POST,
    "console-start-round": CONSOLE_POST,
    "console-retrain": CONSOLE_POST,
    "console-pretrain": CONSOLE_POST,
    "console-score": CONSOLE_POST,
    "console-acquisition": CONSOLE,
    "console-retrain-settings": CONSOLE_POST,
    "console-scoring-settings": CONSOLE_POST,
    "console-shift-settings": CONSOLE_POST,
    "console-self-training-settings": CONSOLE_POST,
    "console-exports": CONSOLE,
    "console-export-catalogue": CONSOLE,
    "console-export-votes": CONSOLE,
    "console-tokens": CONSOLE,
    "console-token-revoke": CONSOLE_POST,
    "console-news": CONSOLE,
    "console-news-edit": (302, 403, 404, 404),  # no post has this number
    "console-news-delete": CONSOLE_POST,
    # the science API: a bearer token or nothing (a session is no token); its schema is open
    "science-api:openapi-json": OPEN,
    "science-api:api-root": (404, 404, 404, 404),
    "science-api:catalogue": NO_TOKEN,
    "science-api:votes": NO_TOKEN,
    "science-api:models": NO_TOKEN,
    "science-api:model": NO_TOKEN,
    "science-api:encoders": NO_TOKEN,
    "science-api:encoder": NO_TOKEN,
    "science-api:cutout_npy": NO_TOKEN,
    "science-api:spectrum_npy": NO_TOKEN,
    "science-api:cutout_png": NO_TOKEN,
}
ADMIN = (302, 302, 302, 200)  # Django admin: staff only; others go to its log-in page


def _patterns(resolver=None, namespace=""):
    for p in (resolver or get_resolver()).url_patterns:
        if isinstance(p, URLResolver):
            yield from _patterns(p, p.namespace or namespace)
        elif isinstance(p, URLPattern) and p.name:
            yield (f"{namespace}:{p.name}" if namespace else p.name), p


@pytest.fixture
def kwargs(tmp_path):
    ingest_survey(path=write_survey(tmp_path / "s.fits", make_survey(4)))
    cand = Candidate.objects.first()
    mv = ModelVersion.objects.create(label_source="truth", directory=str(tmp_path / "none"))
    thread = create_thread(
        user=make_account(username="poster"), board_slug="general", title="Hi", body="#sky"
    )
    return {
        "board": "general",
        "thread_id": thread.pk,
        "comment_id": thread.comments.get().pk,
        "tag": "sky",
        "detectid": cand.detectid,
        "pk": mv.pk,
        "fmt": "csv",
        "kind": "cosmic",
        "uidb64": "MQ",
        "token": "set-password",
    }


def _users():
    admin = make_account(username="root", is_staff=True, is_superuser=True)
    return {
        "anonymous": None,
        "volunteer": make_account(username="vol"),
        "scientist": make_scientist(username="sci"),
        "admin": admin,
    }


def test_every_url_has_a_rule():
    names = {name for name, _ in _patterns() if not name.startswith("admin:")}
    assert names - set(EXPECTED) == set(), "new URL(s) without a role rule: add them above"
    assert set(EXPECTED) - names == set(), "rules for URLs that no longer exist"


def test_every_url_answers_each_role_as_expected(client, kwargs, own_cache):
    users = _users()
    wrong = []
    seen = set()
    for name, pattern in _patterns():
        if name in seen or name.startswith("admin:"):
            continue
        seen.add(name)
        url = reverse(name, kwargs={k: kwargs[k] for k in pattern.pattern.converters})
        for role, want in zip(ROLES, EXPECTED[name], strict=True):
            client.logout()
            if users[role] is not None:
                client.force_login(users[role])
            got = client.get(url).status_code
            if got != want:
                wrong.append(f"{name} ({url}) as {role}: {got}, expected {want}")
    assert wrong == [], "\n".join(wrong)


def test_admin_is_for_staff_only(client, own_cache):
    users = _users()
    for role, want in zip(ROLES, ADMIN, strict=True):
        client.logout()
        if users[role] is not None:
            client.force_login(users[role])
        assert client.get("/admin/").status_code == want, role
