"""After a Zooniverse import: skill-weighted labels against DEE's fixed 10-vote rule."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from django.core.management import call_command

from labelapp.services.crowd.aggregation import aggregate_votes
from labelapp.services.crowd.zooniverse import compare_with_fixed_rule, import_zooniverse
from mlcore.zooniverse import CLASSIFICATION_COLUMNS, SUBJECT_COLUMNS
from tests.factories_volunteers import make_candidates

pytestmark = pytest.mark.django_db

FIX = Path(__file__).parent / "fixtures" / "zooniverse"
# subject -> answers of volunteers 1..12 in time order
ANSWERS = {
    1: ["Yes"] * 12,  # plain yes
    2: ["No"] * 12,  # plain no
    3: ["Yes", "No"] * 6,  # a 5-5 tie after ten votes: DEE's rule cannot settle it
}


@pytest.fixture
def imported(tmp_path):
    import_three_subjects(tmp_path)


def import_three_subjects(tmp_path: Path) -> None:
    """Three candidates with twelve Zooniverse votes each (ANSWERS), imported."""
    make_candidates(3, first_id=6_000_000)
    subjects, classifications = tmp_path / "s.csv", tmp_path / "c.csv"
    with open(subjects, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(SUBJECT_COLUMNS)
        for s in ANSWERS:
            meta = json.dumps({"#detectid": 6_000_000 + s - 1})
            w.writerow([s, 7332, 10880, 1, meta, "{}", 0, "", "", "x", "x"])
    with open(classifications, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(CLASSIFICATION_COLUMNS)
        for s, answers in ANSWERS.items():
            for k, a in enumerate(answers):
                ann = json.dumps([{"task": "T0", "task_label": "Line?", "value": a}])
                w.writerow([
                    s * 100 + k, f"v{k}", 1 + k, "ip", 10880, "DEE", "13.4",
                    f"2024-01-0{s} 10:{k:02d}:00 UTC", "", "", "{}", ann, "{}", s,
                ])  # fmt: skip
    import_zooniverse(
        classifications=classifications, subjects=subjects, workflows=FIX / "workflows.csv",
        workflow_id=10880, refresh_consensus=False,
    )  # fmt: skip


def test_the_report_compares_settled_labels_and_votes_needed(imported):
    run = aggregate_votes(retire=False)
    report = compare_with_fixed_rule(run=run, fixed_votes=10)
    assert report.n_candidates == 3
    assert report.settled_fixed == 2  # the tie is not settled by the fixed rule
    assert report.settled_both == 2 and report.agree == 2
    assert report.votes_needed_platform and max(report.votes_needed_platform) < 10
    lines = "\n".join(report.lines())
    assert "agreement where both settled: 100.0% (2 of 2)" in lines


def test_the_command_aggregates_then_reports(imported, capsys):
    call_command("zooniverse_report", "--no-retire")
    out = capsys.readouterr().out
    assert "Aggregation run" in out and "36 votes" in out
    assert "settled by the fixed 10-vote majority: 2" in out
