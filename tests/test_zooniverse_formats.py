"""mlcore.zooniverse: the export and manifest formats, without a database."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from mlcore.zooniverse import (
    AnswerMap,
    Classification,
    LineProblem,
    Skipped,
    VersionRange,
    ZooniverseFormatError,
    metadata_value,
    parse_answer_map,
    parse_created_at,
    read_classifications,
    read_subjects,
    read_workflow,
    retired_payloads,
)

FIX = Path(__file__).parent / "fixtures" / "zooniverse"


def test_workflow_versions_resolve_task_strings_and_the_shortcut():
    wf = read_workflow(FIX / "workflows.csv", workflow_id=10880)
    assert sorted(wf.versions) == [(12, 8), (13, 4)]
    v13 = wf.versions[(13, 4)]
    assert (v13.question, v13.labels, v13.shortcut) == ("T0", ["Yes", "No"], "T1")
    assert v13.shortcut_labels == ["I'm not sure"] and wf.versions[(12, 8)].shortcut is None
    answers = AnswerMap.build(wf)
    assert answers.of_label("**Yes**") == "yes" and answers.of_label("I'm not sure") == "unsure"
    assert answers.of_index((12, 8), 1, shortcut=False) == "no"


def test_version_ranges_follow_panoptes_aggregation():
    assert (13, 4) in VersionRange.parse("13") and (12, 8) not in VersionRange.parse("13")
    assert (18, 40) in VersionRange.parse("16.55-18") and (16, 54) not in VersionRange.parse(
        "16.55-18"
    )
    assert (99, 1) in VersionRange.parse("13-") and (1, 1) in VersionRange.parse(None)
    with pytest.raises(ZooniverseFormatError, match="versions must look like"):
        VersionRange.parse("thirteen")


def test_answer_maps_and_hidden_metadata_keys():
    assert parse_answer_map("Real line=yes, Nothing=no") == {"real line": "yes", "nothing": "no"}
    with pytest.raises(ZooniverseFormatError, match="Label=yes"):
        parse_answer_map("Yes=maybe")
    assert metadata_value({"#detectid": 5}, "detectid") == 5
    assert metadata_value({"!detectid": 6}, "detectid") == 6
    assert metadata_value({"other": 1}, "detectid") is None


def test_timestamps_in_the_export_format_and_iso():
    want = dt.datetime(2024, 2, 23, 16, 17, 42, tzinfo=dt.UTC)
    assert parse_created_at("2024-02-23 16:17:42 UTC") == want
    assert parse_created_at("2024-02-23T10:17:42-06:00") == want
    with pytest.raises(ValueError):
        parse_created_at("2024-02-23 16:17:42")  # no zone: refused, not guessed


def test_the_reader_yields_classifications_skips_and_problems_in_file_order():
    wf = read_workflow(FIX / "workflows.csv", workflow_id=10880)
    items = list(
        read_classifications(
            FIX / "classifications-bad.csv", workflow_id=10880, answers=AnswerMap.build(wf)
        )
    )
    kinds = [type(i).__name__ for i in items]
    assert kinds.count("Classification") == 11 and kinds.count("Skipped") == 1
    assert [p.line for p in items if isinstance(p, LineProblem)] == [14, 15, 16, 17]
    anon = next(i for i in items if isinstance(i, Classification) and i.user_id is None)
    assert anon.user_key == "anon:aa11bb22cc33dd44ee55"
    assert next(i for i in items if isinstance(i, Skipped)).reason == "other_workflow"


def test_subject_rows_and_retirement_bodies():
    rows = list(read_subjects(FIX / "subjects.csv"))
    assert {r.subject_id: r.key_value for r in rows}[80000005] == 5000004  # "!detectid"
    assert [r.retired_at for r in rows if r.subject_id == 80000006] == ["2021-03-04 08:00:00 UTC"]
    bodies = list(retired_payloads([(1, "consensus"), (2, "other"), (3, "consensus")], batch=1))
    assert bodies[0] == {"subject_ids": [1], "retirement_reason": "consensus"}
    assert len(bodies) == 3
    with pytest.raises(ZooniverseFormatError, match="retirement reason"):
        list(retired_payloads([(1, "settled")]))
