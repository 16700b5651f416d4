"""The suspicious-volunteer page in Chromium (issue #24): a liar flagged by gold, voided
with a confirmation; a range blocked. Screenshots in test-artifacts/browser/."""

from __future__ import annotations

import pytest

from labelapp.models import AuditEvent, Vote
from labelapp.services.crowd.votes import submit_vote
from tests.browser.accounts import scientist_page
from tests.factories_volunteers import make_candidates, make_gold, make_volunteer

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_scientist_voids_a_flagged_liar_and_blocks_a_range(chromium, live_server, shot):
    gold = make_candidates(5, first_id=8_000_000, sn0=6.0)
    liar = make_volunteer()
    for g in gold:
        make_gold(g, is_real=True)
        submit_vote(volunteer=liar, detectid=g.detectid, answer="no")
    ctx, page = scientist_page(chromium, live_server.url)
    page.goto(live_server.url + "/console/volunteers/suspicious/")
    row = page.locator("#suspects tbody tr").first
    assert "0 of 5 gold answers right" in row.inner_text()
    shot(page, "console-suspicious")
    page.once("dialog", lambda d: d.accept())  # data-confirm
    row.get_by_role("button", name="Void votes").click()
    page.wait_for_selector("text=Voided 5 votes")
    assert not Vote.objects.filter(volunteer=liar).exists()
    page.fill("input[name=cidr]", "203.0.113.0/24")
    page.get_by_role("button", name="Block").click()
    page.wait_for_selector("#blocked code")
    assert page.locator("#blocked code").inner_text() == "203.0.113.0/24"
    shot(page, "console-suspicious-after")
    ctx.close()
    assert not page.errors, page.errors
    assert AuditEvent.objects.filter(action__in=["void_votes", "block_address"]).count() == 2
