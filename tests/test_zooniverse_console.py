"""The console's Zooniverse page: the kept comparison of the skill-weighted labels with DEE's
fixed 10-vote rule, the imports with what each counted, and empty states that say what to
run next."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from django.core.management import call_command
from django.urls import reverse

from labelapp.models import ZooniverseComparison
from labelapp.services.crowd.aggregation import aggregate_votes
from labelapp.services.crowd.zooniverse import import_zooniverse, record_comparison
from tests.factories_console import PASSWORD, make_scientist
from tests.factories_volunteers import make_candidates
from tests.test_zooniverse_report import imported  # noqa: F401 - the report's fixture

pytestmark = pytest.mark.django_db

FIX = Path(__file__).parent / "fixtures" / "zooniverse"


@pytest.fixture
def sci(client):
    make_scientist(username="astro")
    client.login(username="astro", password=PASSWORD)
    return client


def _page(client) -> str:
    response = client.get(reverse("console-zooniverse"))
    assert response.status_code == 200
    return response.content.decode()


def _cell(html: str, key: str) -> str:
    return re.search(rf'data-key="{key}">([^<]*)<', html).group(1).strip()


def test_with_nothing_imported_the_page_says_to_import(sci):
    html = _page(sci)
    assert 'id="zooniverse-empty"' in html and "manage.py import_zooniverse" in html
    assert 'id="imports-empty"' in html and 'id="comparison-table"' not in html


def test_after_an_import_without_a_report_it_says_to_run_the_report(sci):
    make_candidates(6, first_id=5_000_000)
    import_zooniverse(
        classifications=FIX / "classifications.csv", subjects=FIX / "subjects.csv",
        workflows=FIX / "workflows.csv", workflow_id=10880,
    )  # fmt: skip
    html = _page(sci)
    empty = html.split('id="zooniverse-empty">')[1].split("</p>")[0]
    assert "1 import so far" in empty and "manage.py zooniverse_report" in empty
    assert "import_zooniverse CLASSIFICATIONS" not in empty


def test_the_imports_table_shows_what_each_import_counted(sci):
    make_candidates(5, first_id=5_000_000)  # 5000005 missing: its subject is unknown
    result = import_zooniverse(
        classifications=FIX / "classifications.csv", subjects=FIX / "subjects.csv",
        workflows=FIX / "workflows.csv", workflow_id=10880,
    )  # fmt: skip
    c = result.counts
    assert c["unknown_subjects"] >= 1 and c["duplicates"] == 1
    html = _page(sci)
    row = html.split(f'data-import="{result.run.pk}">')[1].split("</tr>")[0]
    cells = [
        re.sub(r"<[^>]+>", "", td).strip() for td in re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)
    ]
    assert cells[4] == str(c["rows"]) and cells[5].startswith(str(c["votes_new"]))
    assert cells[7] == "1"  # duplicates
    assert cells[8] == f"{c['unknown_subjects']} ({c['unknown_subject_rows']})"
    assert cells[9] == f"{c['skipped_other_workflow']} / 0 / 0"


def test_the_kept_comparison_is_shown_with_its_figures(sci, imported):  # noqa: F811
    run = aggregate_votes(retire=False)
    report, saved = record_comparison(run=run, fixed_votes=10)
    assert saved.settled_both == report.settled_both == 2
    assert sum(saved.votes_needed.values()) == len(report.votes_needed_platform)
    html = _page(sci)
    assert 'id="comparison-table"' in html and 'id="zooniverse-empty"' not in html
    assert _cell(html, "settled_fixed") == "2"
    assert _cell(html, "settled_both") == "2"
    assert _cell(html, "agreement") == "1.000 (2 of 2)"
    needed = sorted(report.votes_needed_platform)
    assert f"median {needed[(len(needed) - 1) // 2]}" in _cell(html, "needed")
    assert "since this comparison" not in html


def test_an_import_after_the_comparison_asks_for_a_new_report(sci, imported, tmp_path):  # noqa: F811
    call_command("zooniverse_report", "--no-retire")
    assert ZooniverseComparison.objects.count() == 1
    make_candidates(6, first_id=5_000_000)
    import_zooniverse(
        classifications=FIX / "classifications.csv", subjects=FIX / "subjects.csv",
        workflows=FIX / "workflows.csv", workflow_id=10880,
    )  # fmt: skip
    html = _page(sci)
    assert "1 import since this comparison" in html


def test_the_console_nav_links_the_page(sci):
    assert f'href="{reverse("console-zooniverse")}"' in _page(sci)
