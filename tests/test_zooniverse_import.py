"""Zooniverse in: classification + subject + workflow exports -> votes with provenance.

The fixtures in tests/fixtures/zooniverse/ are written in Panoptes' export formats (columns,
JSON cells, timestamps and the not-logged-in-<hash> user names as in the exports of
zooniverse/aggregation-for-caesar's test data). What they hold, line by line, is in the
expectations below.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from labelapp.models import (
    Candidate,
    ConsensusState,
    GoldStandard,
    RetirementEvent,
    Volunteer,
    Vote,
    ZooniverseClassification,
    ZooniverseImport,
    ZooniverseSubject,
    ZooniverseVolunteer,
)
from labelapp.services.crowd.zooniverse import ZooniverseImportError, import_zooniverse
from tests.factories_volunteers import make_candidates

pytestmark = pytest.mark.django_db

FIX = Path(__file__).parent / "fixtures" / "zooniverse"


def _import(name: str = "classifications.csv", **kw):
    kw.setdefault("subjects", FIX / "subjects.csv")
    kw.setdefault("workflows", FIX / "workflows.csv")
    kw.setdefault("workflow_id", 10880)
    return import_zooniverse(classifications=FIX / name, **kw)


@pytest.fixture
def candidates():
    # detectids 5000000..5000005: the subjects' #detectid / !detectid / detectid values
    return {c.detectid: c for c in make_candidates(6, first_id=5_000_000)}


def _vote(detectid: int, key: str) -> Vote:
    return Vote.objects.get(candidate__detectid=detectid, volunteer__zooniverse__key=key)


def test_an_export_becomes_one_vote_per_volunteer_and_candidate(candidates):
    result = _import()
    c = result.counts
    assert c["rows"] == 12 and c["classifications"] == 11
    assert c["skipped_other_workflow"] == 1 and c["skipped_version"] == 0
    assert c["votes_new"] == 8 and c["duplicates"] == 1 and c["already_imported"] == 0
    assert Vote.objects.count() == 8 == ZooniverseClassification.objects.count()
    # alice classified subject 80000001 twice: her first answer (yes, 2021-02-10) is kept
    assert _vote(5000000, "user:1001").answer == "yes"
    assert not ZooniverseClassification.objects.filter(classification_id=410000003).exists()
    # the hidden (#, !) and the plain metadata key all reach their candidates
    assert _vote(5000004, "user:1002").answer == "yes"  # raw answer index 0 of v12 = Yes
    assert _vote(5000005, "user:1001").answer == "no"  # plain "detectid" key
    # the shortcut answer of version 13 ("I'm not sure") is a 'not sure' vote
    assert _vote(5000001, "anon:ff66ee77dd88cc99bb00").answer == "unsure"


def test_provenance_is_kept_per_vote(candidates):
    run = _import().run
    z = ZooniverseClassification.objects.get(classification_id=410000001)
    assert (z.source, z.subject_id, z.workflow_id, z.workflow_version) == (
        "zooniverse", 80000001, 10880, "12.8",
    )  # fmt: skip
    assert z.created_at.isoformat() == "2021-02-10T18:01:02+00:00"
    assert z.vote.created_at == z.created_at and z.import_run == run
    assert z.vote.candidate.detectid == 5000000


def test_logged_in_by_user_id_and_each_anonymous_hash_its_own_volunteer(candidates):
    c = _import().counts
    assert c["volunteers_new"] == 5 and c["anonymous_volunteers_new"] == 2
    anon = ZooniverseVolunteer.objects.filter(anonymous=True).order_by("key")
    assert [z.key for z in anon] == ["anon:aa11bb22cc33dd44ee55", "anon:ff66ee77dd88cc99bb00"]
    assert all(z.zooniverse_user_id is None and z.volunteer.user is None for z in anon)
    alice = ZooniverseVolunteer.objects.get(key="user:1001")
    assert (alice.zooniverse_user_id, alice.user_name, alice.anonymous) == (1001, "alice", False)
    # counters recomputed from the imported votes (alice: 5000000 yes, 5000005 no)
    vol = Volunteer.objects.get(pk=alice.pk)
    assert vol.n_votes == 2 and vol.last_vote_at.isoformat() == "2021-03-04T07:45:10+00:00"


def test_unknown_subjects_are_counted_and_listed_not_guessed(candidates):
    result = _import()
    assert result.unknown_subject_ids == [80000099]
    assert result.counts["unknown_subject_rows"] == 1
    assert not Vote.objects.filter(candidate__detectid=9999999).exists()
    assert set(ZooniverseSubject.objects.values_list("subject_id", flat=True)) == {
        80000001, 80000002, 80000003, 80000004, 80000005, 80000006,
    }  # fmt: skip


def test_a_version_range_skips_the_other_versions_with_a_count(candidates):
    c = _import(versions="13").counts
    assert c["skipped_version"] == 2 and c["votes_new"] == 7 and c["duplicates"] == 0
    # without version 12, alice's first classification of 80000001 is her version-13 'no'
    assert _vote(5000000, "user:1001").answer == "no"
    assert not Vote.objects.filter(candidate__detectid=5000004).exists()


def test_gold_standard_rows_make_gold_and_expert_rows_settle_the_label(candidates):
    c = _import().counts
    assert c["gold_rows"] == 1 and c["gold_created"] == 1
    gold = GoldStandard.objects.get(candidate__detectid=5000002)
    assert gold.is_real and gold.kind == "lae" and gold.feedback
    assert not Vote.objects.filter(candidate__detectid=5000002).exists()  # not a vote
    # the expert's 'no' on 80000004 is a vote marked expert, and settles the candidate
    assert c["expert_votes_new"] == 1
    assert ZooniverseClassification.objects.get(classification_id=410000008).expert
    expert_cand = candidates[5000003]
    state = ConsensusState.objects.get(candidate=expert_cand)
    assert state.expert_label is False and state.posterior == 0.0
    assert Candidate.objects.get(pk=expert_cand.pk).status == Candidate.Status.RETIRED
    assert RetirementEvent.objects.get(candidate=expert_cand).reason == "expert"


def test_the_live_consensus_counts_the_imported_votes(candidates):
    _import()
    state = ConsensusState.objects.get(candidate=candidates[5000000])
    assert state.n_votes == 3  # alice yes, anonymous no, bob no
    state = ConsensusState.objects.get(candidate=candidates[5000001])
    assert (state.n_votes, state.n_unsure) == (1, 1)


def test_importing_the_same_export_twice_changes_nothing(candidates):
    _import()
    before = sorted(Vote.objects.values_list("pk", "volunteer_id", "candidate_id", "answer"))
    c = _import().counts
    assert c["votes_new"] == 0 and c["volunteers_new"] == 0 and c["gold_created"] == 0
    assert c["already_imported"] == 8 and c["duplicates"] == 1
    assert sorted(Vote.objects.values_list("pk", "volunteer_id", "candidate_id", "answer")) == (
        before
    )
    assert Volunteer.objects.count() == 5 and GoldStandard.objects.count() == 1
    assert ZooniverseImport.objects.count() == 2


def test_a_newer_export_adds_only_the_new_classifications(candidates):
    _import()
    c = _import("classifications-newer.csv").counts
    assert c["rows"] == 14 and c["already_imported"] == 8 and c["votes_new"] == 2
    assert c["volunteers_new"] == 1  # carol
    assert Vote.objects.count() == 10
    # the anonymous volunteer's answer on the gold candidate counts as a gold answer
    v = _vote(5000002, "anon:aa11bb22cc33dd44ee55")
    assert v.was_gold and Volunteer.objects.get(pk=v.volunteer_id).n_gold_correct == 1


def test_a_file_with_bad_rows_is_refused_whole_naming_every_bad_line(candidates):
    with pytest.raises(ZooniverseImportError) as err:
        _import("classifications-bad.csv")
    problems = {p.line: p.message for p in err.value.problems}
    assert sorted(problems) == [14, 15, 16, 17]
    assert "annotations is not valid JSON" in problems[14]
    assert "created_at 'yesterday at noon'" in problems[15]
    assert "'Maybe a star'" in problems[16] and "not in the answer map" in problems[16]
    assert "user_id 'x17'" in problems[17]
    assert "classifications-bad.csv, line 14" in err.value.message
    # nothing written: not the good rows before them, not a run, not a volunteer
    assert Vote.objects.count() == 0 and Volunteer.objects.count() == 0
    assert ZooniverseImport.objects.count() == 0 and ZooniverseSubject.objects.count() == 0


def test_a_missing_column_is_named(candidates):
    with pytest.raises(ZooniverseImportError, match="missing column.*annotations"):
        _import("classifications-no-annotations.csv")


def test_answers_outside_the_workflow_need_a_map(candidates, tmp_path):
    # the other workflow's answers ("Fibre 3") mean nothing to us: refused up front
    with pytest.raises(ZooniverseImportError, match="'Fibre 3'.*--answer-map"):
        _import(workflow_id=10881)
    # an explicit map decides, and a label it maps differently wins over the automatic one
    c = _import(answer_map="Yes=no,No=yes,I'm not sure=unsure").counts
    assert c["votes_new"] == 8
    assert _vote(5000000, "user:1001").answer == "no"


def test_two_workflows_in_the_export_need_a_workflow_id(candidates):
    with pytest.raises(ZooniverseImportError, match="choose one with --workflow-id"):
        _import(workflow_id=None)


def test_a_subject_export_row_with_broken_metadata_is_named(candidates, tmp_path):
    bad = tmp_path / "subjects.csv"
    shutil.copy(FIX / "subjects.csv", bad)
    with open(bad, "a") as fh:
        fh.write('80000050,7332,10880,91001,"{""#detectid"": 5000001",{},0,,,x,x\n')
    with pytest.raises(ZooniverseImportError, match=r"subjects.csv, line 11: metadata"):
        _import(subjects=bad)
    assert Vote.objects.count() == 0


def test_the_command_reports_what_it_did(candidates, capsys):
    call_command(
        "import_zooniverse", str(FIX / "classifications.csv"), "--subjects",
        str(FIX / "subjects.csv"), "--workflow", str(FIX / "workflows.csv"),
        "--workflow-id", "10880", "--no-progress",
    )  # fmt: skip
    out = capsys.readouterr().out
    assert "votes added: 8 (1 expert)" in out
    assert "later duplicates of a volunteer's first classification: 1" in out
    assert "new volunteers: 5 (2 not logged in)" in out
    assert "unknown subjects (no candidate with that detectid): 1 subjects, 1 rows: 80000099" in (
        out
    )
    with pytest.raises(CommandError, match="line 14"):
        call_command(
            "import_zooniverse", str(FIX / "classifications-bad.csv"), "--subjects",
            str(FIX / "subjects.csv"), "--workflow", str(FIX / "workflows.csv"),
            "--workflow-id", "10880", "--no-progress",
        )  # fmt: skip


def test_volunteer_counters_match_their_votes_after_an_import_and_a_reimport(candidates):
    from django.db.models import Count, Max, Q

    _import()
    _import()  # adds nothing: counters unchanged
    expected = {
        v["volunteer_id"]: (v["n"], v["unsure"], v["gold"], v["last"])
        for v in Vote.objects.values("volunteer_id").annotate(
            n=Count("id"),
            unsure=Count("id", filter=Q(answer="unsure")),
            gold=Count("id", filter=Q(was_gold=True)),
            last=Max("created_at"),
        )
    }
    got = {
        v.pk: (v.n_votes, v.n_unsure, v.n_gold, v.last_vote_at)
        for v in Volunteer.objects.filter(zooniverse__isnull=False)
    }
    assert got == expected and len(got) == ZooniverseVolunteer.objects.count()
    assert any(unsure == 1 for _, unsure, _, _ in got.values())  # the anonymous 'not sure'
