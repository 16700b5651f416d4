"""Zooniverse in and out: the platform as the brain behind an existing Zooniverse project.

**In** (:func:`import_zooniverse`): a classification export, with the subject export (subject
-> candidate through a metadata key, ``detectid`` by default, hidden ``#``/``!`` keys
included) and the workflow export (what each answer means). Every classification of the
chosen workflow (and version range) becomes at most one vote:

* one vote per volunteer per candidate: the first classification (by ``created_at``, then
  classification id), as Zooniverse's reducers count a volunteer once; later ones counted;
* logged-in classifiers are volunteers keyed by ``user_id``; each ``not-logged-in-<hash>``
  is its own anonymous volunteer (``ZooniverseVolunteer.anonymous``), with no account and
  so no more weight than any unproven volunteer;
* ``gold_standard`` rows (the project's known answers, classified in gold-standard mode)
  make the candidate a gold standard instead of a vote; ``expert`` rows are votes marked
  ``expert`` in their provenance, which the live consensus treats as an expert's answer;
* provenance per vote (:class:`ZooniverseClassification`: classification id, subject,
  workflow id and version, created_at, the import run).

It streams the file once, validating every row and staging the good ones in a temporary
table; if any row is bad, the whole import is refused and every bad line is named (nothing
is written: one transaction). Then set-based SQL writes volunteers, votes and provenance
(``ON CONFLICT DO NOTHING`` on the one-vote-per-volunteer-per-candidate index, so importing
the same export twice, or a newer export that contains the older one, adds only what is new),
refreshes volunteer counters, and recomputes the live consensus of every candidate that got
votes.

**Out**: :func:`export_manifest` writes a round's batch as a subject manifest (hidden
metadata, priority order, PNGs beside it) for ``panoptes subject-set upload-subjects``;
:func:`retired_subjects` lists the subjects whose candidates the platform has settled, with
Panoptes' retirement reasons, for ``POST /workflows/{id}/retired_subjects``. With the optional
panoptes-client, :func:`upload_manifest` and :func:`retire_on_zooniverse` do both directly
(thin; tested against a stand-in for the client only, never against Zooniverse).

**Report**: :func:`compare_with_fixed_rule` (and :func:`record_comparison`, which keeps it
for the console's Zooniverse page) compares an aggregation run's skill-weighted labels with
DEE's fixed-count majority rule on the candidates with Zooniverse votes.
"""

from __future__ import annotations

import csv
import logging
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np
from django.db import connection, transaction

from labelapp import errors
from labelapp.models import (
    AggregationRun,
    Candidate,
    GoldStandard,
    Label,
    RetirementEvent,
    Round,
    RoundCandidate,
    Volunteer,
    VolunteerSkill,
    Vote,
    ZooniverseClassification,
    ZooniverseComparison,
    ZooniverseImport,
    ZooniverseSubject,
    ZooniverseVolunteer,
)
from labelapp.services.crowd.consensus import retirement_rule, update_consensus
from labelapp.services.crowd.gold import feedback_for
from labelapp.services.survey.rendering import cutout_png_path
from mlcore.aggregation import log_odds_of, posterior_of, regime_index, vote_llr
from mlcore.zooniverse import (
    MANIFEST_COLUMNS,
    AnswerMap,
    Classification,
    LineProblem,
    Skipped,
    SubjectRow,
    VersionRange,
    ZooniverseFormatError,
    manifest_metadata,
    manifest_row,
    parse_answer_map,
    read_classifications,
    read_subjects,
    read_workflow,
    retired_payloads,
)

logger = logging.getLogger(__name__)

MAX_PROBLEMS = 10_000  # bad lines kept with their reason (all are counted)
STAGE_BATCH = 5_000
PROGRESS_EVERY = 100_000


class ZooniverseError(errors.PlatformError):
    """Zooniverse exports or batches that cannot be used."""


class ZooniverseImportError(ZooniverseError, errors.InvalidInput):
    """A refused export: ``problems`` (also in ``extra``) names every bad line."""

    code = "zooniverse_import"

    def __init__(self, message: str, problems: list[LineProblem] | None = None, **extra):
        super().__init__(message, problems=problems or [], **extra)
        self.problems = problems or []


class ZooniverseExportError(ZooniverseError, errors.InvalidInput):
    code = "zooniverse_export"


@dataclass
class ImportResult:
    run: ZooniverseImport
    counts: dict[str, int]
    unknown_subject_ids: list[int] = field(default_factory=list)


def _refuse(message: str, problems: list[LineProblem], n_problems: int | None = None):
    n = n_problems if n_problems is not None else len(problems)
    shown = "\n".join(f"  {p}" for p in problems[:50])
    more = f"\n  ... and {n - 50} more" if n > 50 else ""
    raise ZooniverseImportError(
        f"{message}: {n} bad line(s), nothing imported; fix them and run again:\n{shown}{more}",
        problems=problems,
        n_problems=n,
    )


def import_zooniverse(
    *,
    classifications: str | Path,
    subjects: str | Path,
    workflows: str | Path,
    workflow_id: int | None = None,
    versions: str | None = None,
    subject_key: str = "detectid",
    answer_map: str | None = None,
    task: str | None = None,
    refresh_consensus: bool = True,
    progress: Callable[[int], None] | None = None,
) -> ImportResult:
    """Import a Zooniverse classification export (see the module docstring). Raises
    ZooniverseImportError (nothing written) when any file or row cannot be used."""
    try:
        workflow = read_workflow(workflows, workflow_id=workflow_id, task=task)
        answers = AnswerMap.build(workflow, parse_answer_map(answer_map) if answer_map else None)
        version_range = VersionRange.parse(versions)
    except ZooniverseFormatError as exc:
        if exc.problems:
            _refuse(f"{workflows}", exc.problems)
        raise ZooniverseImportError(str(exc)) from exc
    except OSError as exc:
        raise ZooniverseImportError(f"cannot read {workflows}: {exc}") from exc
    t0 = time.perf_counter()
    subject_map, retired_at, unknown_keys = _subject_map(subjects, subject_key, workflow)

    counts = dict.fromkeys(
        ("rows", "classifications", "skipped_other_workflow", "skipped_version",
         "skipped_multi_subject", "unknown_subject_rows", "gold_rows", "gold_created",
         "gold_unusable", "staged", "already_imported", "duplicates", "votes_new",
         "expert_votes_new", "volunteers_new", "anonymous_volunteers_new",
         "candidates_with_new_votes", "subjects_mapped", "retired_by_consensus"),
        0,
    )  # fmt: skip
    unknown_subjects: set[int] = set()
    problems: list[LineProblem] = []
    n_problems = 0
    people: dict[str, tuple[int | None, str]] = {}
    gold_rows: list[tuple[int, str]] = []

    with transaction.atomic():
        run = ZooniverseImport.objects.create(
            workflow_id=workflow.workflow_id,
            versions=str(version_range),
            classifications_path=str(classifications),
            subjects_path=str(subjects),
            workflows_path=str(workflows),
        )
        with connection.cursor() as cur:
            _create_stage(cur)
            stage = _StageWriter(cur)
            try:
                items = read_classifications(
                    classifications,
                    workflow_id=workflow.workflow_id,
                    answers=answers,
                    versions=version_range,
                )
                for item in items:
                    counts["rows"] += 1
                    if progress and counts["rows"] % PROGRESS_EVERY == 0:
                        progress(counts["rows"])
                    if type(item) is Classification:
                        counts["classifications"] += 1
                        candidate_id = subject_map.get(item.subject_id)
                        if candidate_id is None:
                            counts["unknown_subject_rows"] += 1
                            unknown_subjects.add(item.subject_id)
                            continue
                        if item.gold_standard:
                            counts["gold_rows"] += 1
                            gold_rows.append((candidate_id, item.answer))
                            continue
                        people.setdefault(item.user_key, (item.user_id, item.user_name))
                        stage.add(item, candidate_id)
                    elif type(item) is Skipped:
                        counts[f"skipped_{item.reason}"] += 1
                    else:
                        n_problems += 1
                        if len(problems) < MAX_PROBLEMS:
                            problems.append(item)
                stage.flush()
            except ZooniverseFormatError as exc:  # a missing column: the whole file
                stage.abort(exc)
                raise ZooniverseImportError(str(exc), problems=exc.problems) from exc
            except OSError as exc:
                stage.abort(exc)
                raise ZooniverseImportError(f"cannot read {classifications}: {exc}") from exc
            except BaseException as exc:
                stage.abort(exc)
                raise
            if n_problems:
                _refuse(str(classifications), problems, n_problems)
            counts["staged"] = stage.n
            counts["seconds_read"] = round(time.perf_counter() - t0, 2)
            counts["unknown_subjects"] = len(unknown_subjects)
            counts["subjects_mapped"] = _save_subjects(subject_map, retired_at)
            new_people = _save_volunteers(people)
            counts["volunteers_new"] = len(new_people)
            counts["anonymous_volunteers_new"] = sum(k.startswith("anon:") for k in new_people)
            counts.update(_write_votes(cur, run, workflow.workflow_id))
            counts["duplicates"] = (
                counts["staged"] - counts["votes_new"] - counts["already_imported"]
            )
            _refresh_volunteer_counters(cur)
            counts.update(_apply_gold(gold_rows))
            touched = _touched_candidates(cur)
            counts["candidates_with_new_votes"] = len(touched)
            _drop_stage(cur)
            counts["seconds_write"] = round(time.perf_counter() - t0 - counts["seconds_read"], 2)
        if refresh_consensus:
            counts["retired_by_consensus"] = _refresh_consensus(touched)
        counts["unknown_subject_keys"] = unknown_keys
        run.counts = counts
        run.save(update_fields=["counts"])
    logger.info("zooniverse import %s: %s", run.pk, counts)
    return ImportResult(run=run, counts=counts, unknown_subject_ids=sorted(unknown_subjects))


# -- subjects ----------------------------------------------------------------------------


def _subject_map(path, key: str, workflow) -> tuple[dict[int, int], dict[int, str], int]:
    """subject id -> candidate id for every subject whose key names a known candidate; the
    Zooniverse retirement time (for this workflow) of those; the number without a usable key.
    Raises ZooniverseImportError naming every bad row."""
    keys: dict[int, int | None] = {}
    retired: dict[int, str] = {}
    problems: list[LineProblem] = []
    try:
        for row in read_subjects(path, key=key):
            if isinstance(row, LineProblem):
                problems.append(row)
                continue
            assert isinstance(row, SubjectRow)
            value = _as_int(row.key_value)
            previous = keys.get(row.subject_id, value)
            if previous != value:
                problems.append(
                    LineProblem(
                        str(path), row.line,
                        f"subject {row.subject_id} has {key} {value}, another row says {previous}",
                    )
                )  # fmt: skip
                continue
            keys[row.subject_id] = value
            if row.workflow_id == workflow.workflow_id and row.retired_at:
                retired[row.subject_id] = row.retired_at
    except ZooniverseFormatError as exc:
        raise ZooniverseImportError(str(exc), problems=exc.problems) from exc
    except OSError as exc:
        raise ZooniverseImportError(f"cannot read {path}: {exc}") from exc
    if problems:
        _refuse(str(path), problems)
    detectids = sorted({v for v in keys.values() if v is not None})
    pk_of: dict[int, int] = {}
    for i in range(0, len(detectids), 20_000):
        chunk = detectids[i : i + 20_000]
        pk_of.update(
            Candidate.objects.filter(detectid__in=chunk).values_list("detectid", "pk").iterator()
        )
    mapping = {s: pk_of[d] for s, d in keys.items() if d is not None and d in pk_of}
    no_key = sum(v is None for v in keys.values())
    return mapping, {s: t for s, t in retired.items() if s in mapping}, no_key


def _as_int(value) -> int | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        f = float(value)
    except (TypeError, ValueError):
        return None
    return int(f) if f.is_integer() else None


def _save_subjects(mapping: dict[int, int], retired: dict[int, str]) -> int:
    objs = (
        ZooniverseSubject(subject_id=s, candidate_id=c, retired_at=retired.get(s, "")[:40])
        for s, c in mapping.items()
    )
    batch: list[ZooniverseSubject] = []
    for obj in objs:
        batch.append(obj)
        if len(batch) >= STAGE_BATCH:
            _upsert_subjects(batch)
            batch = []
    _upsert_subjects(batch)
    return len(mapping)


def _upsert_subjects(batch: list[ZooniverseSubject]) -> None:
    if batch:
        ZooniverseSubject.objects.bulk_create(
            batch,
            update_conflicts=True,
            unique_fields=["subject_id"],
            update_fields=["candidate", "retired_at"],
        )


# -- staging -----------------------------------------------------------------------------

_STAGE_COLUMNS = (
    "classification_id", "vkey", "candidate_id", "subject_id", "answer", "created_at",
    "workflow_version", "expert",
)  # fmt: skip


def _create_stage(cur) -> None:
    _drop_stage(cur)
    ts = "timestamptz" if connection.vendor == "postgresql" else "datetime"
    cur.execute(
        "CREATE TEMP TABLE zv_stage (classification_id bigint, vkey varchar(100), "
        f"candidate_id bigint, subject_id bigint, answer varchar(6), created_at {ts}, "
        "workflow_version varchar(20), expert boolean)"
    )


def _drop_stage(cur) -> None:
    cur.execute("DROP TABLE IF EXISTS zv_new")
    cur.execute("DROP TABLE IF EXISTS zv_first")
    cur.execute("DROP TABLE IF EXISTS zv_stage")


class _StageWriter:
    """Rows into the staging table: COPY on PostgreSQL (one stream), batches elsewhere."""

    def __init__(self, cur):
        self.cur, self.n, self.rows = cur, 0, []
        self.pg = connection.vendor == "postgresql"
        self.copy = None
        if self.pg:
            columns = ", ".join(_STAGE_COLUMNS)
            self._copy_cm = cur.cursor.copy(f"COPY zv_stage ({columns}) FROM STDIN")
            self.copy = self._copy_cm.__enter__()

    def add(self, c: Classification, candidate_id: int) -> None:
        self.n += 1
        if self.pg:
            self.copy.write_row(
                (c.classification_id, c.user_key, candidate_id, c.subject_id, c.answer,
                 c.created_at, c.workflow_version, c.expert)
            )  # fmt: skip
            return
        self.rows.append(
            (c.classification_id, c.user_key, candidate_id, c.subject_id, c.answer,
             connection.ops.adapt_datetimefield_value(c.created_at), c.workflow_version,
             c.expert)
        )  # fmt: skip
        if len(self.rows) >= STAGE_BATCH:
            self._insert()

    def _insert(self) -> None:
        params = ", ".join(["%s"] * len(_STAGE_COLUMNS))
        self.cur.executemany(
            f"INSERT INTO zv_stage ({', '.join(_STAGE_COLUMNS)}) VALUES ({params})",  # noqa: S608
            self.rows,
        )
        self.rows = []

    def abort(self, exc: BaseException) -> None:
        """End an open COPY with an error, so the connection can roll back."""
        if self.pg and self.copy is not None:
            self.copy = None
            try:
                self._copy_cm.__exit__(type(exc), exc, exc.__traceback__)
            except Exception:  # noqa: S110 - the caller re-raises the original error
                pass

    def flush(self) -> None:
        if self.pg and self.copy is not None:
            self._copy_cm.__exit__(None, None, None)
            self.copy = None
        elif self.rows:
            self._insert()


# -- writes ------------------------------------------------------------------------------


@lru_cache(maxsize=1)
def _t() -> dict[str, str]:
    q = connection.ops.quote_name
    return {
        "vote": q(Vote._meta.db_table),
        "vol": q(Volunteer._meta.db_table),
        "zvol": q(ZooniverseVolunteer._meta.db_table),
        "zcls": q(ZooniverseClassification._meta.db_table),
        "gold": q(GoldStandard._meta.db_table),
    }


def _save_volunteers(people: dict[str, tuple[int | None, str]]) -> list[str]:
    """Volunteers for the classifiers not seen before; returns their keys."""
    keys = list(people)
    known: set[str] = set()
    for i in range(0, len(keys), 20_000):
        known.update(
            ZooniverseVolunteer.objects.filter(key__in=keys[i : i + 20_000]).values_list(
                "key", flat=True
            )
        )
    new = [k for k in keys if k not in known]
    for i in range(0, len(new), STAGE_BATCH):
        chunk = new[i : i + STAGE_BATCH]
        vols = Volunteer.objects.bulk_create([Volunteer(tutorial_done=True) for _ in chunk])
        ZooniverseVolunteer.objects.bulk_create(
            [
                ZooniverseVolunteer(
                    volunteer_id=v.pk,
                    key=k,
                    zooniverse_user_id=people[k][0],
                    user_name=people[k][1],
                    anonymous=k.startswith("anon:"),
                )
                for v, k in zip(vols, chunk, strict=True)
            ]
        )
    return new


def _write_votes(cur, run: ZooniverseImport, workflow_id: int) -> dict[str, int]:
    """Staged rows -> votes and their provenance, set-based. ``zv_first`` holds the first
    classification of each volunteer and candidate (with the volunteer's id), ``zv_new`` the
    votes this run added (id, volunteer, candidate): the counters, the touched candidates and
    the provenance are written from it instead of joining the whole vote table again."""
    t = _t()
    cur.execute(
        "SELECT COUNT(*) FROM zv_stage s WHERE EXISTS (SELECT 1 FROM "  # noqa: S608
        f"{t['zcls']} z WHERE z.classification_id = s.classification_id)"
    )
    already = cur.fetchone()[0]
    # The first classification of each volunteer and candidate, in (volunteer, candidate)
    # order so the vote indexes are written in order; partitioned by the volunteer's id, not
    # the key text (an integer sort, and the window's order is already the output's).
    cur.execute(
        "CREATE TEMP TABLE zv_first AS SELECT volunteer_id, classification_id, candidate_id, "  # noqa: S608
        "subject_id, answer, created_at, workflow_version, expert FROM (SELECT zv.volunteer_id, "
        "s.classification_id, s.candidate_id, s.subject_id, s.answer, s.created_at, "
        "s.workflow_version, s.expert, ROW_NUMBER() OVER (PARTITION BY zv.volunteer_id, "
        "s.candidate_id ORDER BY s.created_at, s.classification_id) AS rn FROM zv_stage s "
        f"JOIN {t['zvol']} zv ON zv.key = s.vkey) r WHERE r.rn = 1 "
        "ORDER BY volunteer_id, candidate_id"
    )
    cur.execute("CREATE TEMP TABLE zv_new (id bigint, volunteer_id bigint, candidate_id bigint)")
    insert_votes = (
        f"INSERT INTO {t['vote']} (volunteer_id, candidate_id, answer, reason, created_at, "  # noqa: S608
        "was_gold, response_ms, client) SELECT f.volunteer_id, f.candidate_id, f.answer, '', "
        f"f.created_at, g.candidate_id IS NOT NULL, NULL, %s FROM zv_first f LEFT JOIN "
        f"{t['gold']} g ON g.candidate_id = f.candidate_id AND g.active WHERE 1 = 1 "
        "ORDER BY f.volunteer_id, f.candidate_id "
        "ON CONFLICT (volunteer_id, candidate_id) DO NOTHING"
    )
    if connection.vendor == "postgresql":
        # The inserted rows come straight back (RETURNING): no join against the vote table.
        cur.execute(
            f"WITH ins AS ({insert_votes} RETURNING id, volunteer_id, candidate_id) "  # noqa: S608
            "INSERT INTO zv_new SELECT id, volunteer_id, candidate_id FROM ins",
            [Vote.Client.API],
        )
    else:  # SQLite: no INSERT inside WITH; a Zooniverse volunteer's vote without provenance
        # is one this statement just added (imports write both in one transaction).
        cur.execute(insert_votes, [Vote.Client.API])
        cur.execute(
            f"INSERT INTO zv_new SELECT v.id, v.volunteer_id, v.candidate_id FROM zv_first f "  # noqa: S608
            f"JOIN {t['vote']} v ON v.volunteer_id = f.volunteer_id AND v.candidate_id = "
            f"f.candidate_id WHERE NOT EXISTS (SELECT 1 FROM {t['zcls']} z WHERE z.vote_id = "
            "v.id)"
        )
    cur.execute(
        f"INSERT INTO {t['zcls']} (classification_id, vote_id, source, subject_id, "  # noqa: S608
        "workflow_id, workflow_version, created_at, expert, import_run_id) SELECT "
        "f.classification_id, n.id, 'zooniverse', f.subject_id, %s, f.workflow_version, "
        "f.created_at, f.expert, %s FROM zv_new n JOIN zv_first f ON f.volunteer_id = "
        "n.volunteer_id AND f.candidate_id = n.candidate_id",
        [workflow_id, run.pk],
    )
    new = cur.rowcount
    cur.execute(
        "SELECT COUNT(*) FROM zv_first f JOIN zv_new n ON n.volunteer_id = "
        "f.volunteer_id AND n.candidate_id = f.candidate_id WHERE f.expert"
    )
    experts = cur.fetchone()[0]
    return {"already_imported": already, "votes_new": new, "expert_votes_new": experts}


def _refresh_volunteer_counters(cur) -> None:
    """Counters of the volunteers who got votes (``zv_new``), recomputed from all their
    votes in one aggregate. Their gold answers all count as exam answers (proof): what a
    Zooniverse volunteer was told about gold is the Zooniverse project's feedback setting,
    outside this site (docs/zooniverse.md)."""
    t = _t()
    vol, vote = t["vol"], t["vote"]
    cur.execute(
        f"UPDATE {vol} SET n_votes = a.n, n_unsure = a.unsure, n_gold = a.gold, "  # noqa: S608
        "n_gold_correct = a.gold_correct, n_exam = a.gold, n_exam_correct = a.gold_correct, "
        "last_vote_at = a.last FROM (SELECT v.volunteer_id, "
        "COUNT(*) AS n, COUNT(*) FILTER (WHERE v.answer = 'unsure') AS unsure, "
        "COUNT(*) FILTER (WHERE v.was_gold) AS gold, COUNT(*) FILTER (WHERE v.was_gold AND "
        "((v.answer = 'yes' AND g.is_real) OR (v.answer = 'no' AND NOT g.is_real))) AS "
        f"gold_correct, MAX(v.created_at) AS last FROM {vote} v LEFT JOIN {t['gold']} g ON "
        "g.candidate_id = v.candidate_id WHERE v.volunteer_id IN (SELECT DISTINCT "
        f"volunteer_id FROM zv_new) GROUP BY v.volunteer_id) a WHERE {vol}.id = a.volunteer_id"
    )


def _apply_gold(rows: list[tuple[int, str]]) -> dict[str, int]:
    """Gold-standard classifications: the first yes/no answer per candidate becomes its gold
    standard where it has none (an existing one is left as it is)."""
    created, unusable, seen = 0, 0, set()
    existing = set(
        GoldStandard.objects.filter(candidate_id__in=[c for c, _ in rows]).values_list(
            "candidate_id", flat=True
        )
    )
    for candidate_id, answer in rows:
        if answer == Vote.Answer.UNSURE:
            unusable += 1
            continue
        if candidate_id in existing or candidate_id in seen:
            continue
        seen.add(candidate_id)
        kind = "lae" if answer == Vote.Answer.YES else "noise"
        GoldStandard.objects.create(
            candidate_id=candidate_id,
            is_real=answer == Vote.Answer.YES,
            kind=kind,
            feedback=feedback_for(kind),
        )
        created += 1
    return {"gold_created": created, "gold_unusable": unusable}


def _touched_candidates(cur) -> list[int]:
    cur.execute("SELECT DISTINCT candidate_id FROM zv_new ORDER BY candidate_id")
    return [r[0] for r in cur.fetchall()]


def _refresh_consensus(candidate_ids: list[int]) -> int:
    """The live posterior (and retirement rule) of every candidate that got votes; gold
    candidates keep teaching and are left alone, as a native vote leaves them."""
    gold = set(
        GoldStandard.objects.filter(active=True, candidate_id__in=candidate_ids).values_list(
            "candidate_id", flat=True
        )
    )
    retired = 0
    for candidate_id in candidate_ids:
        if candidate_id in gold:
            continue
        update = update_consensus(candidate_id=candidate_id)
        retired += int(update.changed_status)
    return retired


# -- out: subject manifest ---------------------------------------------------------------


@dataclass
class ManifestResult:
    path: Path
    n_subjects: int
    n_images_rendered: int


def export_manifest(
    *, round_number: int, out_dir: str | Path, render: Callable[[Candidate], Path] | None = None
) -> ManifestResult:
    """Round ``round_number``'s batch as ``out_dir/manifest.csv`` plus one PNG per candidate
    beside it, in rank order (``#priority`` 1, 2, ... for a prioritized workflow). Only the
    image is visible to volunteers; detectid, priority, S/N and wavelength are hidden
    (``#``) columns. Candidates that left the queue since the round opened are left out."""
    render = render or cutout_png_path
    rnd = Round.objects.filter(number=round_number).first()
    if rnd is None:
        raise ZooniverseExportError(f"there is no round {round_number}")
    queued = (
        RoundCandidate.objects.filter(round=rnd, candidate__status=Candidate.Status.ACTIVE)
        .select_related("candidate", "candidate__batch")
        .order_by("rank")
    )
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    path = out / "manifest.csv"
    tmp = out / ".manifest.csv.partial"
    n = 0
    with open(tmp, "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=MANIFEST_COLUMNS)
        writer.writeheader()
        for rc in queued.iterator(chunk_size=2000):
            c = rc.candidate
            image = f"{c.detectid}.png"
            shutil.copyfile(render(c), out / image)
            n += 1
            writer.writerow(
                manifest_row(
                    image=image, detectid=c.detectid, priority=n, sn=c.sn, wave=c.wave,
                    round_number=rnd.number,
                )
            )  # fmt: skip
    tmp.replace(path)
    if n == 0:
        raise ZooniverseExportError(
            f"round {round_number} has no candidates still in the queue: nothing to upload"
        )
    return ManifestResult(path=path, n_subjects=n, n_images_rendered=n)


class ZooniverseUnavailable(ZooniverseError, errors.Unavailable):
    code = "zooniverse_unavailable"


def _panoptes_client(what_instead: str):
    """The optional ``panoptes_client`` module, or a ZooniverseUnavailable saying what to run
    instead."""
    try:
        import panoptes_client
    except ImportError as exc:
        raise ZooniverseUnavailable(
            f"panoptes-client is not installed: `pip install panoptes-client`, or {what_instead}"
        ) from exc
    return panoptes_client


@dataclass
class UploadResult:
    subject_set_id: int
    n_subjects: int


def upload_manifest(
    *,
    manifest: str | Path,
    project_id: int,
    subject_set_id: int | None = None,
    subject_set_name: str | None = None,
) -> UploadResult:
    """Upload a manifest written by :func:`export_manifest` with panoptes-client, when it is
    installed (an optional dependency, not in requirements.txt) and Zooniverse is reachable:
    into subject set ``subject_set_id``, or a new set named ``subject_set_name`` in project
    ``project_id``. One subject per row: the ``image`` file as its location, every column as
    metadata (``#`` columns stay hidden), as ``panoptes subject-set upload-subjects`` does.

    Thin on purpose: the tests run it against a recording stand-in for ``panoptes_client``,
    never against Zooniverse (no network here); the manifest plus panoptes-cli is the tested
    path. Not atomic: subjects saved before a failure stay on Zooniverse unlinked, and running
    it again uploads them again. Credentials come from panoptes-client's own configuration
    (``PANOPTES_USERNAME`` / ``PANOPTES_PASSWORD``)."""
    if (subject_set_id is None) == (subject_set_name is None):
        raise ZooniverseExportError("give either a subject set id or a name for a new set")
    manifest = Path(manifest)
    pc = _panoptes_client(
        f"upload the manifest with `panoptes subject-set upload-subjects "
        f"{subject_set_id or 'SUBJECT_SET_ID'} {manifest}`"
    )
    try:
        with open(manifest, newline="", encoding="utf-8") as fh:
            reader = csv.reader(fh)
            header = next(reader)
            rows = [manifest_metadata(header, row) for row in reader]
    except (OSError, StopIteration, ValueError) as exc:
        raise ZooniverseExportError(f"cannot read the manifest {manifest}: {exc}") from exc
    image = MANIFEST_COLUMNS[0]
    missing = [r[image] for r in rows if not (manifest.parent / r[image]).is_file()]
    if missing or not rows:
        raise ZooniverseExportError(
            f"{manifest}: {len(missing)} image(s) missing beside it ({', '.join(missing[:5])})"
            if missing
            else f"{manifest} has no subjects"
        )
    pc.Panoptes.connect()  # reads PANOPTES_USERNAME / PANOPTES_PASSWORD
    project = pc.Project.find(project_id)
    if subject_set_id is not None:
        subject_set = pc.SubjectSet.find(subject_set_id)
    else:
        subject_set = pc.SubjectSet()
        subject_set.links.project = project
        subject_set.display_name = subject_set_name
        subject_set.save()
    subjects = []
    for row in rows:
        subject = pc.Subject()
        subject.links.project = project
        subject.add_location(str(manifest.parent / row[image]))
        subject.metadata.update(row)
        subject.save()
        subjects.append(subject)
    subject_set.add(subjects)
    return UploadResult(subject_set_id=int(subject_set.id), n_subjects=len(subjects))


def retire_on_zooniverse(*, workflow_id: int) -> dict[str, int]:
    """Retire on Zooniverse, with panoptes-client (optional, like :func:`upload_manifest`),
    every subject :func:`retired_subjects` lists: ``Workflow.retire_subjects`` per reason,
    500 ids a call (``POST /workflows/{id}/retired_subjects``). Returns counts by reason.
    Untested against Zooniverse; ``export_zooniverse retired`` writes the same list as files."""
    pc = _panoptes_client(
        f"write the list with `manage.py export_zooniverse retired --workflow-id {workflow_id}` "
        "and retire with `panoptes workflow retire-subjects`"
    )
    rows = list(retired_subjects())
    pc.Panoptes.connect()
    workflow = pc.Workflow.find(workflow_id)
    counts: dict[str, int] = {}
    for body in retired_payloads(rows):
        ids, reason = body["subject_ids"], body["retirement_reason"]
        workflow.retire_subjects(ids, reason=reason)
        counts[reason] = counts.get(reason, 0) + len(ids)
    return counts


# -- out: retirement ---------------------------------------------------------------------

# Why the platform took a candidate out of the queue -> Panoptes' retirement reason.
RETIREMENT_REASON = {
    RetirementEvent.Reason.CONFIDENT: "consensus",
    RetirementEvent.Reason.BATCH: "consensus",
    RetirementEvent.Reason.EXPERT: "consensus",
    RetirementEvent.Reason.MAX_VOTES: "classification_count",
    RetirementEvent.Reason.MANUAL: "other",
}


def retired_subjects(*, include_retired_on_zooniverse: bool = False) -> Iterator[tuple[int, str]]:
    """(subject id, retirement reason) for every Zooniverse subject whose candidate the
    platform has taken out of the queue (retired, or sent to the experts), by the reason of
    its latest status change; subjects Zooniverse already retired are left out."""
    subjects = ZooniverseSubject.objects.exclude(candidate__status=Candidate.Status.ACTIVE)
    if not include_retired_on_zooniverse:
        subjects = subjects.filter(retired_at="")
    rows = list(subjects.order_by("subject_id").values_list("subject_id", "candidate_id"))
    latest: dict[int, str] = {}
    cand_ids = sorted({c for _, c in rows})
    for i in range(0, len(cand_ids), 20_000):
        events = (
            RetirementEvent.objects.filter(candidate_id__in=cand_ids[i : i + 20_000])
            .order_by("candidate_id", "pk")
            .values_list("candidate_id", "reason")
        )
        for cid, reason in events.iterator():
            latest[cid] = reason
    for subject_id, candidate_id in rows:
        yield subject_id, RETIREMENT_REASON.get(latest.get(candidate_id, ""), "other")


def write_retired(*, out: str | Path, workflow_id: int) -> dict[str, int]:
    """``out`` (CSV: subject_id, retirement_reason) and ``out`` with ``.json`` (the request
    bodies for ``POST /workflows/{workflow_id}/retired_subjects``). Returns counts by reason."""
    import json

    rows = list(retired_subjects())
    out = Path(out)
    with open(out, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["subject_id", "retirement_reason"])
        writer.writerows(rows)
    bodies = [
        {"path": f"/workflows/{workflow_id}/retired_subjects", "body": b}
        for b in retired_payloads(rows)
    ]
    out.with_suffix(".json").write_text(json.dumps(bodies, indent=1) + "\n")
    counts: dict[str, int] = {}
    for _, reason in rows:
        counts[reason] = counts.get(reason, 0) + 1
    return counts


# -- report: skill-weighted labels against DEE's fixed-count rule ------------------------


@dataclass
class RuleComparison:
    n_candidates: int  # candidates with imported votes
    fixed_votes: int
    settled_fixed: int  # >= fixed_votes yes/no votes and no tie among the first fixed_votes
    settled_platform: int  # past the retirement thresholds with the run's skills
    settled_both: int
    agree: int  # same label, among those settled by both
    votes_needed_platform: list[int]  # per platform-settled candidate, in vote time order

    def lines(self) -> list[str]:
        both = self.settled_both
        agreement = f"{self.agree / both:.1%}" if both else "not measured (none settled by both)"
        need = np.asarray(self.votes_needed_platform or [0])
        return [
            f"candidates with Zooniverse votes: {self.n_candidates:,}",
            f"settled by the fixed {self.fixed_votes}-vote majority: {self.settled_fixed:,}; "
            f"by the skill-weighted posterior: {self.settled_platform:,}; by both: {both:,}",
            f"agreement where both settled: {agreement} ({self.agree:,} of {both:,})",
            f"votes each needed: fixed rule {self.fixed_votes}; skill-weighted mean "
            f"{need.mean():.1f}, median {np.median(need):.0f}"
            + ("" if self.votes_needed_platform else " (none settled)"),
        ]


def compare_with_fixed_rule(*, run: AggregationRun, fixed_votes: int = 10) -> RuleComparison:
    """On the candidates with imported votes: the labels of aggregation ``run`` (skill-
    weighted) against DEE's rule (majority of the first ``fixed_votes`` yes/no votes), and how
    many votes, in the order they were cast, the skill-weighted posterior needed to pass the
    retirement thresholds with that run's skills."""
    rule = retirement_rule()
    t = _t()
    with connection.cursor() as cur:
        cur.execute(
            f"SELECT v.candidate_id, v.volunteer_id, v.answer, c.sn FROM {t['vote']} v "  # noqa: S608
            f"JOIN {connection.ops.quote_name(Candidate._meta.db_table)} c ON c.id = "
            "v.candidate_id WHERE v.answer <> 'unsure' AND v.id <= %s AND v.candidate_id IN "
            f"(SELECT v2.candidate_id FROM {t['zcls']} z JOIN {t['vote']} v2 ON v2.id = "
            "z.vote_id) ORDER BY v.candidate_id, v.created_at, v.id",
            [run.max_vote_id],
        )
        rows = cur.fetchall()
    skills = {
        (s.volunteer_id, s.regime): (s.sensitivity, s.specificity)
        for s in VolunteerSkill.objects.filter(volunteer_id__in={r[1] for r in rows})
    }
    labels = dict(Label.objects.filter(run=run).values_list("candidate_id", "posterior"))
    typical = run.typical_skill or {}
    sens_t = typical.get("sensitivity", [0.75, 0.75])
    spec_t = typical.get("specificity", [0.75, 0.75])
    prior = run.class_prior or [0.5, 0.5]
    out = RuleComparison(0, fixed_votes, 0, 0, 0, 0, [])
    i = 0
    while i < len(rows):
        j = i
        while j < len(rows) and rows[j][0] == rows[i][0]:
            j += 1
        votes = rows[i:j]
        cid, regime = votes[0][0], int(regime_index([votes[0][3]])[0])
        out.n_candidates += 1
        fixed = None
        if len(votes) >= fixed_votes:
            yes = sum(v[2] == Vote.Answer.YES for v in votes[:fixed_votes])
            if 2 * yes != fixed_votes:
                fixed = 2 * yes > fixed_votes
                out.settled_fixed += 1
        log_odds, needed = log_odds_of(prior[min(regime, len(prior) - 1)]), None
        for n, (_, vol, answer, _) in enumerate(votes, start=1):
            s, c = skills.get((vol, regime), (sens_t[regime], spec_t[regime]))
            log_odds += vote_llr(s, c, 1 if answer == Vote.Answer.YES else 0)
            if rule.decide_one(posterior_of(log_odds), n) == Candidate.Status.RETIRED:
                needed = n
                break
        posterior = labels.get(cid)
        platform = None
        if posterior is not None and rule.decide_one(posterior, len(votes)) == "retired":
            platform = posterior > 0.5
            out.settled_platform += 1
            if needed is not None:
                out.votes_needed_platform.append(needed)
        if fixed is not None and platform is not None:
            out.settled_both += 1
            out.agree += int(fixed == platform)
        i = j
    return out


def record_comparison(
    *, run: AggregationRun, fixed_votes: int = 10
) -> tuple[RuleComparison, ZooniverseComparison]:
    """:func:`compare_with_fixed_rule`, also kept (for the console's Zooniverse page)."""
    report = compare_with_fixed_rule(run=run, fixed_votes=fixed_votes)
    histogram: dict[str, int] = {}
    for n in sorted(report.votes_needed_platform):
        histogram[str(n)] = histogram.get(str(n), 0) + 1
    return report, ZooniverseComparison.objects.create(
        aggregation_run=run,
        fixed_votes=fixed_votes,
        n_candidates=report.n_candidates,
        settled_fixed=report.settled_fixed,
        settled_platform=report.settled_platform,
        settled_both=report.settled_both,
        agree=report.agree,
        votes_needed=histogram,
    )
