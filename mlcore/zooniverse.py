"""Zooniverse (Panoptes) exports in, subject manifests out: pure parsing, no Django.

The formats, as Panoptes writes them (zooniverse/panoptes ``Formatter::Csv``, the fixtures of
zooniverse/aggregation-for-caesar) and as panoptes-cli reads them:

* **classification export**: one row per classification, columns
  :data:`CLASSIFICATION_COLUMNS`. ``created_at`` is ``YYYY-MM-DD HH:MM:SS UTC``;
  ``workflow_version`` is ``major.minor``; ``gold_standard`` and ``expert`` are ``true`` or
  empty; ``user_id`` is empty for volunteers not logged in, whose ``user_name`` is
  ``not-logged-in-<hash>``; ``annotations`` is a JSON list of ``{"task", "task_label",
  "value"}``: for a ``single`` question the value is the answer's label (the export resolves
  the index; it leaves the raw index when it could not find the workflow version), for
  ``multiple`` and ``shortcut`` tasks a list of labels. ``subject_ids`` is one id (several,
  ``;``-joined, for multi-subject workflows).
* **subject export**: ``subject_id, project_id, workflow_id, subject_set_id, metadata,
  locations, classifications_count, retired_at, retirement_reason, created_at, updated_at``;
  one row per subject and linked workflow. Metadata keys are the manifest's column names,
  ``#`` / ``!`` prefixes (hidden from volunteers) kept, ``%`` (indexed) stripped.
* **workflow export**: one row per workflow version: ``workflow_id, display_name, version,
  ..., first_task, ..., tasks, retirement, aggregation, strings, minor_version``. Task texts
  are keys into ``strings`` (``"T0.answers.0.label"``); older exports put the text in
  ``tasks`` directly.
* **subject manifest** (``panoptes subject-set upload-subjects SET manifest.csv``): a header
  row, one row per subject; a cell naming a file beside the manifest is uploaded, every
  column becomes metadata.

Everything here streams: the classification reader yields one row at a time.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import re
import sys
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

from mlcore.errors import DataError, MlcoreError

# Exports carry multi-kilobyte JSON cells (metadata, subject_data).
csv.field_size_limit(min(sys.maxsize, 2**31 - 1))

CLASSIFICATION_COLUMNS = (
    "classification_id", "user_name", "user_id", "user_ip", "workflow_id", "workflow_name",
    "workflow_version", "created_at", "gold_standard", "expert", "metadata", "annotations",
    "subject_data", "subject_ids",
)  # fmt: skip
# What the importer reads (the rest may be absent from a trimmed export).
REQUIRED_CLASSIFICATION_COLUMNS = (
    "classification_id", "user_name", "user_id", "workflow_id", "workflow_version",
    "created_at", "gold_standard", "expert", "annotations", "subject_ids",
)  # fmt: skip
SUBJECT_COLUMNS = (
    "subject_id", "project_id", "workflow_id", "subject_set_id", "metadata", "locations",
    "classifications_count", "retired_at", "retirement_reason", "created_at", "updated_at",
)  # fmt: skip
REQUIRED_SUBJECT_COLUMNS = ("subject_id", "workflow_id", "metadata")
REQUIRED_WORKFLOW_COLUMNS = ("workflow_id", "version", "tasks")

ANSWERS = ("yes", "no", "unsure")
# Panoptes' retirement reasons (POST /workflows/{id}/retired_subjects).
RETIREMENT_REASONS = ("classification_count", "flagged", "blank", "consensus", "other")
ANONYMOUS_PREFIX = "not-logged-in-"
HIDDEN_PREFIXES = ("", "#", "!", "%")  # how a metadata key may be written in an export

# Answer labels whose meaning is unambiguous (after normalise_label); anything else needs an
# explicit map. DEE's swipe task answers "Yes" / "No"; a shortcut adds e.g. "Not sure".
AUTO_ANSWERS: dict[str, str] = {
    "yes": "yes", "y": "yes", "real": "yes", "real line": "yes", "yes real line": "yes",
    "true": "yes", "no": "no", "n": "no", "not real": "no", "false": "no", "no line": "no",
    "not sure": "unsure", "unsure": "unsure", "i m not sure": "unsure", "im not sure": "unsure",
    "don t know": "unsure", "i don t know": "unsure", "dont know": "unsure",
    "can t tell": "unsure", "cant tell": "unsure", "maybe": "unsure",
}  # fmt: skip


class ZooniverseFormatError(DataError):
    """An export that cannot be imported; ``problems`` names every bad line."""

    def __init__(self, message: str, problems: list[LineProblem] | None = None):
        super().__init__(message)
        self.problems = problems or []


@dataclass(frozen=True, slots=True)
class LineProblem:
    path: str
    line: int
    message: str

    def __str__(self) -> str:
        return f"{self.path}, line {self.line}: {self.message}"


def normalise_label(text: object) -> str:
    """'**Yes!**' -> 'yes', "I'm not sure" -> 'i m not sure': lower case, markdown and
    punctuation gone, spaces collapsed."""
    return " ".join(re.sub(r"[^0-9a-z]+", " ", str(text).lower()).split())


# -- versions ---------------------------------------------------------------------------


def parse_version(text: str) -> tuple[int, int | None]:
    """'16.55' -> (16, 55); '16' -> (16, None). Raises ValueError."""
    major, _, minor = str(text).strip().partition(".")
    return int(major), (int(minor) if minor != "" else None)


@dataclass(frozen=True)
class VersionRange:
    """Workflow versions to import, both ends inclusive, like panoptes_aggregation's
    ``--min_version`` / ``--max_version``: a bare major version as the upper end takes every
    minor version of it; a single bare major version means all of that major version."""

    lo: tuple[int, int] | None = None
    hi: tuple[int, float] | None = None

    @classmethod
    def parse(cls, text: str | None) -> VersionRange:
        if not text:
            return cls()
        try:
            if "-" in text:
                a, b = (s.strip() for s in text.split("-", 1))
            else:
                a = b = text.strip()
            lo = hi = None
            if a:
                major, minor = parse_version(a)
                lo = (major, minor or 0)
            if b:
                major, minor = parse_version(b)
                hi = (major, float("inf") if minor is None else minor)
        except ValueError as exc:
            raise ZooniverseFormatError(
                f"versions must look like 16.55-18.2, 16-18, 16.55- or 17, not {text!r}"
            ) from exc
        return cls(lo, hi)

    def __contains__(self, version: tuple[int, int]) -> bool:
        return (self.lo is None or version >= self.lo) and (self.hi is None or version <= self.hi)

    def __str__(self) -> str:
        if self.lo is None and self.hi is None:
            return "all"
        return f"{self.lo or ''}-{self.hi or ''}"


# -- workflow export ---------------------------------------------------------------------


@dataclass
class TaskAnswers:
    """The binary question (and its shortcut, if any) of one workflow version."""

    question: str
    labels: list[str]
    shortcut: str | None = None
    shortcut_labels: list[str] = field(default_factory=list)


@dataclass
class Workflow:
    workflow_id: int
    name: str
    versions: dict[tuple[int, int], TaskAnswers]

    def labels(self) -> list[str]:
        seen: dict[str, None] = {}
        for task in self.versions.values():
            for label in (*task.labels, *task.shortcut_labels):
                seen.setdefault(label, None)
        return list(seen)


def _open_csv(path: str | Path, required: Iterable[str]) -> tuple[Iterator, csv.DictReader]:
    fh = open(path, newline="", encoding="utf-8-sig")  # closed by the caller
    reader = csv.DictReader(fh)
    header = reader.fieldnames or []
    missing = [c for c in required if c not in header]
    if missing:
        fh.close()
        raise ZooniverseFormatError(
            f"{path}: missing column(s) {', '.join(missing)}",
            [LineProblem(str(path), 1, f"missing column(s) {', '.join(missing)}")],
        )
    return fh, reader


def _json_cell(value: str, what: str):
    try:
        return json.loads(value)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{what} is not valid JSON ({exc})") from None


def read_workflow(path: str | Path, *, workflow_id: int | None = None, task: str | None = None):
    """The workflow's binary task per version from a workflow export.

    ``workflow_id`` may be left out when the export holds one workflow. ``task`` picks the
    question task (default: the workflow's ``first_task``, else its only single-answer task);
    its shortcut is the question's ``unlinkedTask`` or the workflow's shortcut task.
    """
    fh, reader = _open_csv(path, REQUIRED_WORKFLOW_COLUMNS)
    problems: list[LineProblem] = []
    rows: list[tuple[int, dict]] = []
    with fh:
        ids: set[int] = set()
        for row in reader:
            try:
                wid = int(row["workflow_id"])
            except (TypeError, ValueError):
                problems.append(LineProblem(str(path), reader.line_num, "workflow_id not a number"))
                continue
            ids.add(wid)
            if workflow_id is None or wid == workflow_id:
                rows.append((reader.line_num, row))
    if problems:
        raise ZooniverseFormatError(f"{path}: {len(problems)} bad line(s)", problems)
    if workflow_id is None:
        if len(ids) != 1:
            raise ZooniverseFormatError(
                f"{path} holds workflows {sorted(ids)}: choose one with --workflow-id"
            )
        workflow_id = ids.pop()
    if not rows:
        raise ZooniverseFormatError(
            f"{path} has no rows for workflow {workflow_id} (it holds {sorted(ids)})"
        )
    versions: dict[tuple[int, int], TaskAnswers] = {}
    name = ""
    for line, row in rows:
        try:
            major = int(row["version"])
            minor = int(row.get("minor_version") or 0)
            versions[(major, minor)] = _task_answers(row, task)
            name = row.get("display_name") or name
        except ValueError as exc:
            problems.append(LineProblem(str(path), line, str(exc)))
    if problems:
        raise ZooniverseFormatError(f"{path}: {len(problems)} bad line(s)", problems)
    return Workflow(workflow_id=workflow_id, name=name, versions=versions)


def _task_answers(row: Mapping[str, str], task_key: str | None) -> TaskAnswers:
    tasks = _json_cell(row["tasks"], "tasks")
    strings = _json_cell(row["strings"], "strings") if row.get("strings") else {}
    if not isinstance(tasks, dict) or not isinstance(strings, dict):
        raise ValueError("tasks and strings must be JSON objects")

    def text(key) -> str:
        return str(strings.get(key, key)) if isinstance(key, str) else str(key)

    def labels(task: dict) -> list[str]:
        return [text(a.get("label", "")) for a in task.get("answers", [])]

    if task_key is None:
        first = row.get("first_task") or ""
        if tasks.get(first, {}).get("type") == "single":
            task_key = first
        else:
            singles = [k for k, t in tasks.items() if t.get("type") == "single"]
            if len(singles) != 1:
                raise ValueError(
                    f"cannot tell which task is the yes/no question (single-answer tasks: "
                    f"{singles or 'none'}): name it with --task"
                )
            task_key = singles[0]
    question = tasks.get(task_key)
    if not isinstance(question, dict) or question.get("type") not in ("single", "shortcut"):
        raise ValueError(f"task {task_key!r} is not a single-answer question in this version")
    shortcut = question.get("unlinkedTask") or next(
        (k for k, t in tasks.items() if isinstance(t, dict) and t.get("type") == "shortcut"), None
    )
    return TaskAnswers(
        question=task_key,
        labels=labels(question),
        shortcut=shortcut,
        shortcut_labels=labels(tasks[shortcut]) if shortcut in tasks else [],
    )


# -- answers -----------------------------------------------------------------------------


def parse_answer_map(text: str) -> dict[str, str]:
    """'Yes=yes,No=no,Not sure=unsure' -> {'yes': 'yes', 'no': 'no', 'not sure': 'unsure'}."""
    out: dict[str, str] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        label, sep, answer = part.rpartition("=")
        answer = answer.strip().lower()
        if not sep or answer not in ANSWERS:
            raise ZooniverseFormatError(
                f"answer map entries look like 'Label=yes|no|unsure', not {part!r}"
            )
        out[normalise_label(label)] = answer
    return out


@dataclass
class AnswerMap:
    """Answer label (normalised) -> yes / no / unsure, plus per-version index lookups for
    raw annotations that still carry the answer's index."""

    by_label: dict[str, str]
    workflow: Workflow
    _seen: dict[str, str] = field(default_factory=dict, repr=False)

    @classmethod
    def build(cls, workflow: Workflow, explicit: Mapping[str, str] | None = None) -> AnswerMap:
        by_label: dict[str, str] = {}
        unmapped = []
        for label in workflow.labels():
            key = normalise_label(label)
            answer = (explicit or {}).get(key) or AUTO_ANSWERS.get(key)
            if answer is None:
                unmapped.append(label)
            else:
                by_label[key] = answer
        for key, answer in (explicit or {}).items():
            by_label.setdefault(key, answer)
        if unmapped:
            raise ZooniverseFormatError(
                f"workflow {workflow.workflow_id}: cannot tell what the answer(s) "
                f"{', '.join(repr(u) for u in unmapped)} mean: give --answer-map, e.g. "
                f"--answer-map '{unmapped[0]}=yes,...' (yes | no | unsure)"
            )
        return cls(by_label=by_label, workflow=workflow)

    def of_label(self, label) -> str | None:
        found = self._seen.get(label) if isinstance(label, str) else None
        if found is None:
            found = self.by_label.get(normalise_label(label))
            if isinstance(label, str) and found is not None and len(self._seen) < 10_000:
                self._seen[label] = found  # exports repeat a handful of labels millions of times
        return found

    def of_index(self, version: tuple[int, int], index: int, *, shortcut: bool) -> str | None:
        task = _task_of(self, version)
        labels = task.shortcut_labels if shortcut else task.labels
        return self.of_label(labels[index]) if 0 <= index < len(labels) else None


# -- subject export ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SubjectRow:
    line: int
    subject_id: int
    workflow_id: int | None
    key_value: object | None  # the metadata value under the subject key (None: absent)
    retired_at: str
    retirement_reason: str


def metadata_value(metadata: Mapping, key: str):
    """``metadata[key]``, also when written hidden (``#key``, ``!key``) or indexed."""
    for prefix in HIDDEN_PREFIXES:
        if prefix + key in metadata:
            return metadata[prefix + key]
    return None


def read_subjects(path: str | Path, *, key: str = "detectid") -> Iterator[SubjectRow | LineProblem]:
    """One SubjectRow (or a LineProblem) per row of a subject export, streaming."""
    fh, reader = _open_csv(path, REQUIRED_SUBJECT_COLUMNS)
    with fh:
        for row in reader:
            line = reader.line_num
            try:
                subject_id = int(row["subject_id"])
                wid = int(row["workflow_id"]) if row.get("workflow_id") else None
                metadata = _json_cell(row["metadata"], "metadata")
                if not isinstance(metadata, dict):
                    raise ValueError("metadata is not a JSON object")
            except (TypeError, ValueError) as exc:
                yield LineProblem(str(path), line, _why(exc))
                continue
            yield SubjectRow(
                line=line,
                subject_id=subject_id,
                workflow_id=wid,
                key_value=metadata_value(metadata, key),
                retired_at=row.get("retired_at") or "",
                retirement_reason=row.get("retirement_reason") or "",
            )


def _why(exc: Exception) -> str:
    text = str(exc)
    if "invalid literal for int()" in text:
        return f"not a whole number: {text.rsplit(':', 1)[-1].strip()}"
    return text


# -- classification export ---------------------------------------------------------------


@dataclass(slots=True)
class Classification:  # not frozen: a frozen dataclass's __init__ costs ~3x (millions of rows)
    line: int
    classification_id: int
    user_key: str  # "user:<user_id>" or "anon:<hash>": one platform volunteer each
    user_id: int | None
    user_name: str
    subject_id: int
    workflow_version: str
    created_at: dt.datetime
    answer: str  # yes | no | unsure
    gold_standard: bool
    expert: bool


@dataclass(frozen=True, slots=True)
class Skipped:
    line: int
    reason: str  # other_workflow | version | multi_subject


def parse_created_at(text: str) -> dt.datetime:
    """'2024-02-23 16:17:42 UTC' (or ISO 8601 with an offset) -> aware UTC datetime."""
    s = text.strip()
    if s.endswith(" UTC"):
        value = dt.datetime.fromisoformat(s[:-4]).replace(tzinfo=dt.UTC)
    else:
        value = dt.datetime.fromisoformat(s)
        if value.tzinfo is None:
            raise ValueError("no time zone")
    return value.astimezone(dt.UTC)


def _flag(text: str) -> bool:
    return text.strip().lower() in ("true", "t", "1")


def read_classifications(
    path: str | Path,
    *,
    workflow_id: int,
    answers: AnswerMap,
    versions: VersionRange | None = None,
) -> Iterator[Classification | Skipped | LineProblem]:
    """One item per row of a classification export, streaming: a Classification, a Skipped
    row (another workflow, a version outside ``versions``, several subjects), or a
    LineProblem naming what is wrong with the row. Rows are read as plain lists and cells
    found by the header's column positions (a dict per row cost ~10 % of the import)."""
    versions = versions or VersionRange()
    fh, reader = _open_csv(path, REQUIRED_CLASSIFICATION_COLUMNS)
    header = reader.fieldnames or []
    cols = _Columns(*(header.index(c) for c in REQUIRED_CLASSIFICATION_COLUMNS))
    width = len(header)
    wf_col = cols.workflow_id
    wf = str(workflow_id)
    name = str(path)
    rows = reader.reader  # the DictReader's csv.reader, past the header
    with fh:
        for row in rows:
            line = rows.line_num
            if not row:
                continue  # a blank line, as DictReader skips it
            if len(row) != width:
                yield LineProblem(name, line, f"{len(row)} cells, the header has {width}")
                continue
            if row[wf_col] != wf:
                if not row[wf_col].strip().isdigit():
                    yield LineProblem(name, line, f"workflow_id {row[wf_col]!r}")
                else:
                    yield Skipped(line, "other_workflow")
                continue
            try:
                yield _classification(row, cols, line, answers, versions)
            except _Skip as skip:
                yield Skipped(line, str(skip))
            except (ValueError, TypeError, KeyError) as exc:
                yield LineProblem(name, line, _why(exc))


class _Columns(NamedTuple):
    """Positions of the columns the importer reads (REQUIRED_CLASSIFICATION_COLUMNS)."""

    classification_id: int
    user_name: int
    user_id: int
    workflow_id: int
    workflow_version: int
    created_at: int
    gold_standard: int
    expert: int
    annotations: int
    subject_ids: int


class _Skip(MlcoreError):
    """A row to skip (the reason is the message): a control-flow signal inside this module."""


_VERSIONS: dict[str, tuple[int, int]] = {}  # "13.4" -> (13, 4): a handful per export
_UTC_SUFFIX = " UTC"


def _classification(row: list[str], c: _Columns, line: int, answers: AnswerMap, versions):
    version_text = row[c.workflow_version]
    version = _VERSIONS.get(version_text)
    if version is None:
        try:
            major, minor = parse_version(version_text)
        except ValueError:
            raise ValueError(f"workflow_version {version_text!r} is not major.minor") from None
        version = (major, minor or 0)
        if len(_VERSIONS) < 1000:
            _VERSIONS[version_text] = version
    if version not in versions:
        raise _Skip("version")
    subjects = row[c.subject_ids].strip()
    if ";" in subjects or "," in subjects:
        raise _Skip("multi_subject")
    try:
        classification_id = int(row[c.classification_id])
        subject_id = int(subjects)
    except ValueError as exc:
        raise ValueError(f"classification_id / subject_ids: {_why(exc)}") from None
    created_text = row[c.created_at]
    try:
        if created_text.endswith(_UTC_SUFFIX):  # Panoptes' own form: no conversion needed
            created_at = dt.datetime.fromisoformat(created_text[:-4]).replace(tzinfo=dt.UTC)
        else:
            created_at = parse_created_at(created_text)
    except ValueError:
        raise ValueError(f"created_at {created_text!r} is not a UTC timestamp") from None
    user_name = row[c.user_name]
    user_id_text = row[c.user_id]
    if user_id_text and user_id_text.strip():
        try:
            user_id = int(user_id_text)
        except ValueError:
            raise ValueError(f"user_id {user_id_text!r} is not a number") from None
        key = f"user:{user_id}"
    elif user_name.startswith(ANONYMOUS_PREFIX) and len(user_name) > len(ANONYMOUS_PREFIX):
        user_id, key = None, f"anon:{user_name[len(ANONYMOUS_PREFIX) :]}"
    else:
        raise ValueError(f"no user_id, and user_name {user_name!r} is not not-logged-in-<hash>")
    annotations = _json_cell(row[c.annotations], "annotations")
    if not isinstance(annotations, list):
        raise ValueError("annotations is not a JSON list")
    answer = _answer(annotations, answers, version)
    gold, expert = row[c.gold_standard], row[c.expert]
    return Classification(
        line,
        classification_id,
        key,
        user_id,
        user_name[:150],
        subject_id,
        version_text.strip(),
        created_at,
        answer,
        bool(gold) and _flag(gold),
        bool(expert) and _flag(expert),
    )


def _task_of(answers: AnswerMap, version: tuple[int, int]) -> TaskAnswers:
    """The task definition of ``version``; else of the same major version; else the latest
    version in the export (a classification newer than the workflow export)."""
    versions = answers.workflow.versions
    if version in versions:
        return versions[version]
    same_major = [t for (m, _), t in sorted(versions.items()) if m == version[0]]
    return same_major[-1] if same_major else versions[max(versions)]


def _answer(annotations: list, answers: AnswerMap, version: tuple[int, int]) -> str:
    task = _task_of(answers, version)
    by_task = {a.get("task"): a.get("value") for a in annotations if isinstance(a, dict)}
    shortcut = by_task.get(task.shortcut) if task.shortcut else None
    if shortcut not in (None, [], ""):  # a shortcut ("not sure", ...) overrides the question
        value = shortcut[0] if isinstance(shortcut, list) else shortcut
        return _map(value, answers, version, shortcut=True, task=task.shortcut)
    if task.question not in by_task:
        raise ValueError(f"no annotation for task {task.question}")
    value = by_task[task.question]
    if isinstance(value, list):
        if len(value) != 1:
            raise ValueError(f"task {task.question} has {len(value)} answers, not one")
        value = value[0]
    if value is None:
        raise ValueError(f"task {task.question} was not answered")
    return _map(value, answers, version, shortcut=False, task=task.question)


def _map(value, answers: AnswerMap, version, *, shortcut: bool, task: str) -> str:
    if isinstance(value, bool):
        value = str(value)
    if isinstance(value, int):
        found = answers.of_index(version, value, shortcut=shortcut)
    else:
        found = answers.of_label(value)
    if found is None:
        known = ", ".join(sorted(answers.by_label))
        raise ValueError(f"answer {value!r} to task {task} is not in the answer map ({known})")
    return found


# -- out: manifests and retirement -------------------------------------------------------

MANIFEST_IMAGE_COLUMN = "image"
MANIFEST_COLUMNS = (MANIFEST_IMAGE_COLUMN, "#detectid", "#priority", "#sn", "#wave", "#round")


def manifest_row(
    *, image: str, detectid: int, priority: int, sn: float, wave: float, round_number: int
) -> dict[str, str]:
    """One manifest row. Only the image is shown; ``#`` columns are hidden from volunteers
    (so S/N and wavelength cannot bias them). ``#priority`` is the integer Panoptes copies
    into the set member's priority for a ``prioritized`` workflow (lowest first)."""
    return {
        MANIFEST_IMAGE_COLUMN: image,
        "#detectid": str(detectid),
        "#priority": str(priority),
        "#sn": f"{sn:.3f}",
        "#wave": f"{wave:.2f}",
        "#round": str(round_number),
    }


def manifest_metadata(header: list[str], row: list[str]) -> dict[str, str]:
    """The metadata Panoptes stores for one manifest row, as panoptes-cli builds it: every
    column (``%`` of indexed columns stripped)."""
    return dict(zip((h.lstrip("%") for h in header), row, strict=True))


def retired_payloads(
    rows: Iterable[tuple[int, str]], *, batch: int = 500
) -> Iterator[dict[str, object]]:
    """Bodies for ``POST /workflows/{id}/retired_subjects``: ``{"subject_ids": [...],
    "retirement_reason": ...}``, one reason per body, at most ``batch`` ids each."""
    by_reason: dict[str, list[int]] = {}
    for subject_id, reason in rows:
        if reason not in RETIREMENT_REASONS:
            raise ZooniverseFormatError(
                f"retirement reason {reason!r} is not one of {', '.join(RETIREMENT_REASONS)}"
            )
        by_reason.setdefault(reason, []).append(int(subject_id))
    for reason, ids in by_reason.items():
        for i in range(0, len(ids), batch):
            yield {"subject_ids": ids[i : i + batch], "retirement_reason": reason}
