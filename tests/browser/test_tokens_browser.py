"""Console > API tokens in headless Chromium: create a token, copy its secret (shown once),
use it against the science API, revoke it. Screenshots go to test-artifacts/browser/."""

import pytest
import requests

from labelapp.models import ScienceToken
from tests.browser.accounts import scientist_page

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_create_use_and_revoke_a_token(chromium, live_server, shot, own_cache):
    ctx, page = scientist_page(chromium, live_server.url)

    page.goto(live_server.url + "/console/tokens/")
    assert page.locator("text=No tokens yet").count() == 1
    shot(page, "console-tokens-empty")
    page.fill("#token-name", "laptop notebook")
    page.uncheck("input[value='votes:read']")
    page.click("text=Create token")
    secret = page.locator("#new-token-secret").inner_text()
    assert secret.startswith("sci_")
    shot(page, "console-tokens-created")
    token = ScienceToken.objects.get()
    assert token.scopes == ["catalogue:read", "cutouts:read", "models:read"]

    api = live_server.url + "/api/science/v1/models"
    auth = {"Authorization": f"Bearer {secret}"}
    assert requests.get(api, headers=auth, timeout=10).status_code == 200
    page.reload()
    assert page.locator("#new-token-secret").count() == 0  # shown once

    page.click("button[aria-label^='revoke token']")
    page.wait_for_selector("text=revoked")
    shot(page, "console-tokens-revoked")
    assert requests.get(api, headers=auth, timeout=10).status_code == 401
    assert page.errors == []
    ctx.close()
