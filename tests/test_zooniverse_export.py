"""Zooniverse out: a round's batch as a subject manifest (and back), the retired list."""

from __future__ import annotations

import csv
import json
import sys
import types
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from labelapp.models import Candidate, Round, RoundCandidate, Vote, ZooniverseSubject
from labelapp.services.crowd.consensus import set_candidate_status
from labelapp.services.crowd.zooniverse import (
    ZooniverseExportError,
    export_manifest,
    import_zooniverse,
    retired_subjects,
    write_retired,
)
from labelapp.services.survey.ingest import ingest_survey
from mlcore.survey_io import write_survey
from mlcore.zooniverse import CLASSIFICATION_COLUMNS, SUBJECT_COLUMNS, manifest_metadata
from tests.factories import make_survey

pytestmark = pytest.mark.django_db

FIX = Path(__file__).parent / "fixtures" / "zooniverse"


@pytest.fixture
def round_of_four(tmp_path):
    ingest_survey(path=write_survey(tmp_path / "s.fits", make_survey(8, seed=4)))
    cands = list(Candidate.objects.order_by("detectid"))
    rnd = Round.objects.create(number=3)
    order = [cands[5], cands[1], cands[7], cands[2]]  # rank order, not detectid order
    RoundCandidate.objects.bulk_create(
        RoundCandidate(round=rnd, candidate=c, rank=k, reason="exploit", score=1.0 - k / 10)
        for k, c in enumerate(order)
    )
    return order


def _read(path: Path) -> tuple[list[str], list[list[str]]]:
    with open(path, newline="") as fh:
        rows = list(csv.reader(fh))
    return rows[0], rows[1:]


def test_manifest_rows_in_priority_order_with_hidden_metadata_and_pngs(round_of_four, tmp_path):
    result = export_manifest(round_number=3, out_dir=tmp_path / "batch")
    header, rows = _read(result.path)
    assert header == ["image", "#detectid", "#priority", "#sn", "#wave", "#round"]
    # nothing but the image is visible: S/N and wavelength are hidden columns
    assert [h for h in header if not h.startswith("#")] == ["image"]
    assert [int(r[1]) for r in rows] == [c.detectid for c in round_of_four]
    assert [int(r[2]) for r in rows] == [1, 2, 3, 4]
    for row, cand in zip(rows, round_of_four, strict=True):
        png = result.path.parent / row[0]
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"  # the file panoptes-cli uploads
        assert float(row[3]) == pytest.approx(cand.sn, abs=1e-3)
        assert float(row[4]) == pytest.approx(cand.wave, abs=1e-2)


def test_candidates_that_left_the_queue_are_not_exported(round_of_four, tmp_path):
    set_candidate_status(candidate_id=round_of_four[1].pk, status="retired")
    result = export_manifest(round_number=3, out_dir=tmp_path / "batch")
    _, rows = _read(result.path)
    assert int(rows[1][1]) == round_of_four[2].detectid and len(rows) == 3
    with pytest.raises(ZooniverseExportError, match="no round 9"):
        export_manifest(round_number=9, out_dir=tmp_path / "x")


def test_manifest_round_trip_its_subjects_import_back_to_the_same_candidates(
    round_of_four, tmp_path
):
    """Upload emulated as Panoptes does it (every manifest column becomes subject metadata),
    then a subject export and classifications of those subjects are imported."""
    manifest = export_manifest(round_number=3, out_dir=tmp_path / "batch").path
    header, rows = _read(manifest)
    subjects, classifications = tmp_path / "subjects.csv", tmp_path / "classifications.csv"
    with open(subjects, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(SUBJECT_COLUMNS)
        for k, row in enumerate(rows):
            meta = json.dumps(manifest_metadata(header, row))
            w.writerow([90000000 + k, 7332, 10880, 95000, meta, "{}", 0, "", "", "x", "x"])
    with open(classifications, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(CLASSIFICATION_COLUMNS)
        for k in range(len(rows)):
            ann = json.dumps([{"task": "T0", "task_label": "Line?", "value": "Yes"}])
            w.writerow([
                500 + k, "alice", 1001, "ip", 10880, "DEE", "13.4", "2024-01-02 03:04:05 UTC",
                "", "", "{}", ann, "{}", 90000000 + k,
            ])  # fmt: skip
    result = import_zooniverse(
        classifications=classifications, subjects=subjects, workflows=FIX / "workflows.csv",
        workflow_id=10880,
    )  # fmt: skip
    assert result.unknown_subject_ids == [] and result.counts["votes_new"] == 4
    mapped = dict(ZooniverseSubject.objects.values_list("subject_id", "candidate_id"))
    assert mapped == {90000000 + k: c.pk for k, c in enumerate(round_of_four)}
    voted = Vote.objects.order_by("zooniverse__subject_id").values_list("candidate_id", flat=True)
    assert list(voted) == [c.pk for c in round_of_four]


def test_retired_list_names_settled_subjects_with_panoptes_reasons(tmp_path):
    from tests.factories_volunteers import make_candidates

    cands = {c.detectid: c for c in make_candidates(6, first_id=5_000_000)}
    import_zooniverse(
        classifications=FIX / "classifications.csv", subjects=FIX / "subjects.csv",
        workflows=FIX / "workflows.csv", workflow_id=10880,
    )  # fmt: skip
    set_candidate_status(candidate_id=cands[5000001].pk, status="expert")
    set_candidate_status(candidate_id=cands[5000005].pk, status="retired")  # retired there too
    listed = dict(retired_subjects())
    settled = dict(
        ZooniverseSubject.objects.exclude(candidate__status="active").values_list(
            "subject_id", "candidate__status"
        )
    )
    # the expert's answer retired 80000004 (consensus); the scientist's 'expert' -> other
    assert listed[80000004] == "consensus" and listed[80000002] == "other"
    assert 80000006 not in listed  # already retired on Zooniverse (subject export)
    assert set(listed) == set(settled) - {80000006}
    out = tmp_path / "retired.csv"
    counts = write_retired(out=out, workflow_id=10880)
    assert sum(counts.values()) == len(listed)
    bodies = json.loads(out.with_suffix(".json").read_text())
    assert {b["path"] for b in bodies} == {"/workflows/10880/retired_subjects"}
    ids = sorted(i for b in bodies for i in b["body"]["subject_ids"])
    assert ids == sorted(listed)
    assert all(b["body"]["retirement_reason"] in ("consensus", "other") for b in bodies)


def test_the_commands_write_both_files(round_of_four, tmp_path, capsys):
    call_command("export_zooniverse", "manifest", "--round", "3", "--out", str(tmp_path / "b"))
    assert "4 subjects" in capsys.readouterr().out
    call_command(
        "export_zooniverse", "retired", "--workflow-id", "10880", "--out", str(tmp_path / "r.csv")
    )
    assert "0 subjects to retire" in capsys.readouterr().out


def test_direct_upload_without_panoptes_client_says_what_to_do(tmp_path, monkeypatch):
    import builtins

    from labelapp.services.crowd.zooniverse import (
        ZooniverseUnavailable,
        retire_on_zooniverse,
        upload_manifest,
    )

    real_import = builtins.__import__

    def no_client(name, *args, **kw):
        if name.startswith("panoptes_client"):
            raise ImportError(name)
        return real_import(name, *args, **kw)

    monkeypatch.setattr(builtins, "__import__", no_client)
    with pytest.raises(ZooniverseUnavailable, match="upload-subjects 42"):
        upload_manifest(manifest=tmp_path / "manifest.csv", project_id=7332, subject_set_id=42)
    with pytest.raises(ZooniverseUnavailable, match="retire-subjects"):
        retire_on_zooniverse(workflow_id=10880)


# -- direct upload and retirement against a recording stand-in for panoptes_client --------


class _Links:
    project = None


class _Recorder:
    """A stand-in for the ``panoptes_client`` module: the classes the platform uses, each
    call appended to ``calls`` (no network)."""

    def __init__(self):
        self.calls: list[tuple] = []
        rec = self
        self.next_id = 500

        class Panoptes:
            @staticmethod
            def connect(**kw):
                rec.calls.append(("Panoptes.connect", kw))

        class Project:
            def __init__(self, id):
                self.id = id

            @classmethod
            def find(cls, id):
                rec.calls.append(("Project.find", id))
                return cls(id)

        class SubjectSet:
            def __init__(self, id=None):
                self.id, self.links, self.display_name = id, _Links(), None

            @classmethod
            def find(cls, id):
                rec.calls.append(("SubjectSet.find", id))
                return cls(id)

            def save(self):
                rec.next_id += 1
                self.id = rec.next_id
                rec.calls.append(("SubjectSet.save", self.display_name, self.links.project.id))

            def add(self, subjects):
                rec.calls.append(("SubjectSet.add", self.id, [s.id for s in subjects]))

        class Subject:
            def __init__(self):
                self.id, self.links, self.locations, self.metadata = None, _Links(), [], {}

            def add_location(self, location):
                self.locations.append(location)

            def save(self):
                rec.next_id += 1
                self.id = rec.next_id
                rec.calls.append(
                    (
                        "Subject.save",
                        self.links.project.id,
                        list(self.locations),
                        dict(self.metadata),
                    )
                )

        class Workflow:
            def __init__(self, id):
                self.id = id

            @classmethod
            def find(cls, id):
                rec.calls.append(("Workflow.find", id))
                return cls(id)

            def retire_subjects(self, subjects, reason="other"):
                rec.calls.append(("Workflow.retire_subjects", self.id, list(subjects), reason))

        self.module = types.SimpleNamespace(
            Panoptes=Panoptes, Project=Project, SubjectSet=SubjectSet, Subject=Subject,
            Workflow=Workflow,
        )  # fmt: skip


@pytest.fixture
def panoptes(monkeypatch):
    rec = _Recorder()
    module = types.ModuleType("panoptes_client")
    module.__dict__.update(vars(rec.module))
    monkeypatch.setitem(sys.modules, "panoptes_client", module)
    return rec


def test_direct_upload_into_a_new_subject_set(round_of_four, tmp_path, panoptes):
    from labelapp.services.crowd.zooniverse import upload_manifest

    manifest = export_manifest(round_number=3, out_dir=tmp_path / "batch").path
    result = upload_manifest(manifest=manifest, project_id=7332, subject_set_name="round 3")
    names = [c[0] for c in panoptes.calls]
    assert names == ["Panoptes.connect", "Project.find", "SubjectSet.save"] + [
        "Subject.save"
    ] * 4 + ["SubjectSet.add"]
    assert panoptes.calls[1] == ("Project.find", 7332)
    assert panoptes.calls[2] == ("SubjectSet.save", "round 3", 7332)
    saved = [c for c in panoptes.calls if c[0] == "Subject.save"]
    header, rows = _read(manifest)
    for call, row, cand in zip(saved, rows, round_of_four, strict=True):
        _, project, locations, metadata = call
        assert project == 7332
        assert locations == [str(manifest.parent / f"{cand.detectid}.png")]
        assert metadata == manifest_metadata(header, row)  # hidden # columns kept as such
        assert metadata["#detectid"] == str(cand.detectid)
    set_id = panoptes.calls[2 + 5][1]
    assert panoptes.calls[-1] == (
        "SubjectSet.add",
        set_id,
        [s for s in range(set_id + 1, set_id + 5)],
    )
    assert (result.subject_set_id, result.n_subjects) == (set_id, 4)


def test_direct_upload_into_an_existing_set_through_the_command(
    round_of_four, tmp_path, panoptes, capsys
):
    call_command(
        "export_zooniverse", "manifest", "--round", "3", "--out", str(tmp_path / "b"),
        "--upload-to", "91001", "--project-id", "7332",
    )  # fmt: skip
    assert "Uploaded 4 subjects to subject set 91001" in capsys.readouterr().out
    assert ("SubjectSet.find", 91001) in panoptes.calls
    assert not any(c[0] == "SubjectSet.save" for c in panoptes.calls)
    assert panoptes.calls[-1][:2] == ("SubjectSet.add", 91001)


def test_direct_upload_refuses_a_manifest_with_missing_images_before_connecting(
    round_of_four, tmp_path, panoptes
):
    from labelapp.services.crowd.zooniverse import upload_manifest

    manifest = export_manifest(round_number=3, out_dir=tmp_path / "batch").path
    (manifest.parent / f"{round_of_four[1].detectid}.png").unlink()
    with pytest.raises(ZooniverseExportError, match="1 image"):
        upload_manifest(manifest=manifest, project_id=7332, subject_set_id=1)
    with pytest.raises(ZooniverseExportError, match="either a subject set id or a name"):
        upload_manifest(manifest=manifest, project_id=7332)
    assert panoptes.calls == []
    with pytest.raises(CommandError, match="--project-id is required"):
        call_command(
            "export_zooniverse", "manifest", "--round", "3", "--out", str(tmp_path / "c"),
            "--upload-to", "1",
        )  # fmt: skip


def test_retire_now_posts_the_retired_list_per_reason(tmp_path, panoptes, capsys):
    from tests.factories_volunteers import make_candidates

    cands = {c.detectid: c for c in make_candidates(6, first_id=5_000_000)}
    import_zooniverse(
        classifications=FIX / "classifications.csv", subjects=FIX / "subjects.csv",
        workflows=FIX / "workflows.csv", workflow_id=10880,
    )  # fmt: skip
    set_candidate_status(candidate_id=cands[5000001].pk, status="expert")
    listed = dict(retired_subjects())
    assert len(listed) >= 2  # an expert's consensus and a scientist's decision
    call_command(
        "export_zooniverse", "retired", "--workflow-id", "10880", "--out",
        str(tmp_path / "r.csv"), "--retire-now",
    )  # fmt: skip
    assert f"Retired {len(listed)} subjects on Zooniverse" in capsys.readouterr().out
    assert panoptes.calls[:2] == [("Panoptes.connect", {}), ("Workflow.find", 10880)]
    retired = {
        s: reason
        for name, wid, ids, reason in panoptes.calls[2:]
        if name == "Workflow.retire_subjects" and wid == 10880
        for s in ids
    }
    assert retired == listed and set(retired.values()) <= {"consensus", "other"}
