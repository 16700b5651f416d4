"""Levels by shown skill: the glue between the gold answers in the database and the maths in
:mod:`mlcore.aggregation.levels`.

* :func:`refresh_level` recomputes a volunteer's level from their teaching gold answers
  (after each; one indexed query over their gold votes; exam gold never moves a level) and
  stores it on the Volunteer row, which every queue request already reads: serving by level
  costs no extra query.
* :func:`serving_level` is the level the queue serves: the stored one while levels are in
  force, or None (every regime) while the site has too few gold standards to measure skill
  (``LEVELS_SITE_MIN_GOLD`` of each class in each regime). A new site therefore serves work
  to everyone. The gold is counted (one aggregate over the gold table, hundreds of rows)
  only for level-1 volunteers: from level 2 on every regime is served either way, and the
  answer is kept per process for ``LEVELS_IN_FORCE_TTL_S`` seconds (gold saved or deleted
  in the process forgets it at once).
* :func:`level_progress` says on /me/ what level, what the next needs, and what was measured.
* :func:`record_artefact_answer` keeps a level-3 volunteer's answer to the follow-up task
  (which artefact a 'no' was); :func:`artefact_targets` (in ``selectors.artefacts``) makes
  one training target per candidate from them, which retrains use (``services.learning``).

How this meets the crowd-integrity checks (``services.crowd.vote_guard``): the queue serves a
level-1 volunteer high-S/N candidates and gold only, and a vote needs the served token of its
candidate, so a level-1 session cannot vote on a low-S/N candidate it was never shown. A
volunteer demoted between being served a candidate and answering it may still answer it
(it was served); the next ones follow the new level.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from django.conf import settings
from django.db import connection
from django.utils import timezone
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from labelapp.errors import Forbidden, InvalidInput
from labelapp.models import ArtefactAnswer, Candidate, GoldStandard, Volunteer, Vote
from labelapp.selectors.artefacts import (  # noqa: F401 - re-exported: a selector, so that
    ArtefactTarget,  # the training service (services.learning, which may not import this
    artefact_targets,  # sibling concern) reads the same targets
)
from mlcore.aggregation.levels import (
    HIGH,
    LEVEL_REGIMES,
    LOW,
    MAX_LEVEL,
    LevelRule,
    RegimeSkill,
    keeps_skill,
    level_for,
    regime_skills,
    shows_skill,
)
from mlcore.survey import SN_LOW_MAX

# Lazy: shown to volunteers in their language (locale/), evaluated when rendered.
LEVEL_NAMES = {
    1: _("Level 1: clear candidates"),
    2: _("Level 2: faint candidates unlocked"),
    3: _("Level 3: artefact spotter"),
}
# The names inside a sentence ("Promoted to level 2: ..."): a translation keeps its own
# capitals (German nouns), which lower-casing LEVEL_NAMES would lose.
LEVEL_NAMES_IN_TEXT = {
    1: _("level 1: clear candidates"),
    2: _("level 2: faint candidates unlocked"),
    3: _("level 3: artefact spotter"),
}
LEVEL_UNLOCKS = {
    1: _("candidates with S/N above 5.5, where a line (or its absence) is clear"),
    2: _("the faint candidates, S/N 4.8-5.5: the ones the science needs most"),
    3: _(
        "a follow-up question after a 'no': which artefact it is (your answers train the network)"
    ),
}
REGIME_LABELS = {
    HIGH: _("clear candidates (S/N above 5.5)"),
    LOW: _("faint candidates (S/N 4.8-5.5)"),
}


def level_rule() -> LevelRule:
    return LevelRule(
        skill=settings.LEVEL_SKILL,
        credible=settings.LEVEL_CREDIBLE,
        min_gold=settings.LEVEL_MIN_GOLD,
    )


def levels_in_force() -> bool:
    """Levels apply when enabled and the site has enough gold to measure skill with: at least
    ``LEVELS_SITE_MIN_GOLD`` active teaching gold standards of each class in each S/N regime.

    Asked on every next candidate and vote of a level-1 volunteer (1.4 times per vote), so
    the answer is kept per process for ``LEVELS_IN_FORCE_TTL_S`` seconds (the signature
    query below was 1.4 of a vote's 12 statements, bench_votes.py), and gold saved or
    deleted in the process forgets it at once (:func:`forget_levels_in_force`, connected to
    GoldStandard's save and delete). Past that time the process reads a signature of the
    active gold (count, sum of candidate ids, count real): one aggregate over the gold
    table (0.2 ms at 500 gold), and only a new signature runs the grouped join to the
    candidates (1.4-3.3 ms at 2.5 M candidates). So another process's change, or a
    rolled-back one, is seen within the TTL."""
    if not settings.LEVELS_ENABLED:
        return False
    now = time.monotonic()
    fresh = _IN_FORCE_NOW.get(connection.alias)
    if fresh is not None and now - fresh[0] < settings.LEVELS_IN_FORCE_TTL_S:
        return fresh[1]
    in_force = _levels_in_force_by_signature()
    _IN_FORCE_NOW[connection.alias] = (now, in_force)
    return in_force


def forget_levels_in_force(*_args, **_kwargs) -> None:
    """Drop this process's remembered answer (the gold set changed here): the next
    :func:`levels_in_force` reads the gold table again. A signal receiver too."""
    _IN_FORCE_NOW.clear()


_IN_FORCE_NOW: dict[str, tuple[float, bool]] = {}  # alias -> (monotonic time, answer)


def _levels_in_force_by_signature() -> bool:
    qn = connection.ops.quote_name
    gold = qn(GoldStandard._meta.db_table)
    with connection.cursor() as cur:
        cur.execute(
            f"SELECT COUNT(*), COALESCE(SUM(candidate_id), 0), "  # noqa: S608
            f"COUNT(*) FILTER (WHERE is_real) FROM {gold} WHERE active AND NOT exam"
        )
        key = (connection.alias, settings.LEVELS_SITE_MIN_GOLD, *cur.fetchone())
        hit = _IN_FORCE.get(key)
        if hit is not None:
            return hit
        # one grouped count over the active gold joined to its candidates (raw SQL: the ORM's
        # query building cost ten times the query: 2.6 ms against 0.24 ms for 500 gold)
        cur.execute(
            f"SELECT g.is_real, c.sn <= %s, COUNT(*) FROM {gold} g "  # noqa: S608
            f"JOIN {qn(Candidate._meta.db_table)} c ON c.id = g.candidate_id "
            "WHERE g.active AND NOT g.exam GROUP BY 1, 2",
            [SN_LOW_MAX],
        )
        found = {(bool(real), bool(low)): n for real, low, n in cur.fetchall()}
    counts = [found.get((real, low), 0) for real in (False, True) for low in (False, True)]
    in_force = min(counts) >= settings.LEVELS_SITE_MIN_GOLD
    if len(_IN_FORCE) > 64:  # a handful of gold sets in a process's life; tests make more
        _IN_FORCE.clear()
    _IN_FORCE[key] = in_force
    return in_force


_IN_FORCE: dict[tuple, bool] = {}


def serving_level(*, volunteer: Volunteer | None) -> int | None:
    """The level the queue serves ``volunteer`` at: None (every regime) while levels are not
    in force; otherwise their stored level (1 for someone with no answers yet)."""
    level = volunteer.level if volunteer is not None and volunteer.pk is not None else 1
    if level >= 2:
        return level  # every regime is served from level 2 on: no need to count the gold
    return 1 if levels_in_force() else None


def gold_skills(*, volunteer: Volunteer, rule: LevelRule | None = None) -> dict[int, RegimeSkill]:
    """Skill per regime from the volunteer's yes/no answers on gold standards."""
    with connection.cursor() as cur:
        cur.execute(_GOLD_ANSWERS_SQL(), [volunteer.pk, Vote.Answer.YES, Vote.Answer.NO])
        rows = cur.fetchall()
    said_yes = np.array([a == Vote.Answer.YES for a, _, _ in rows], bool)
    is_real = np.array([bool(r) for _, r, _ in rows], bool)
    regime = np.array([int(sn > SN_LOW_MAX) for _, _, sn in rows], np.int64)
    return regime_skills(said_yes, is_real, regime, rule or level_rule())


@lru_cache(maxsize=1)
def _GOLD_ANSWERS_SQL() -> str:
    """The volunteer's yes/no answers on teaching gold: answer, the gold's is_real, the
    candidate's S/N. Exam gold is left out: a level is shown to the volunteer, and one moved
    by exam answers would tell whether they were right (docs/security.md). Raw SQL: it runs
    after every new gold answer, and the ORM's query building for the two joins cost ten
    times the query (bench_votes.py)."""
    q = connection.ops.quote_name
    return (
        f"SELECT v.answer, g.is_real, c.sn FROM {q(Vote._meta.db_table)} v "  # noqa: S608
        f"JOIN {q(GoldStandard._meta.db_table)} g ON g.candidate_id = v.candidate_id "
        f"JOIN {q(Candidate._meta.db_table)} c ON c.id = v.candidate_id "
        "WHERE v.volunteer_id = %s AND v.was_gold AND NOT g.exam AND v.answer IN (%s, %s)"
    )


@dataclass(frozen=True)
class LevelChange:
    old: int
    new: int

    @property
    def promoted(self) -> bool:
        return self.new > self.old

    def message(self) -> str:
        level = LEVEL_NAMES_IN_TEXT[self.new]
        if self.promoted:
            return gettext(
                "Promoted to %(level)s! Your answers on the teaching examples show skill, so "
                "you now get %(unlocks)s."
            ) % {"level": level, "unlocks": LEVEL_UNLOCKS[self.new]}
        return gettext(
            "Back to %(level)s for now: your recent teaching examples went less well. Keep "
            "going; the level comes back when your answers do."
        ) % {"level": level}

    def as_dict(self) -> dict:
        return {
            "from": self.old,
            "to": self.new,
            "promoted": self.promoted,
            "message": self.message(),
        }


def refresh_level(*, volunteer: Volunteer) -> LevelChange | None:
    """Recompute and store the volunteer's level; the change, or None when it stays.

    Levels move only while they are in force (a site without enough gold measures nobody).
    """
    if volunteer.pk is None or not levels_in_force():
        return None
    rule = level_rule()
    new = level_for(gold_skills(volunteer=volunteer, rule=rule), volunteer.level, rule)
    if new == volunteer.level:
        return None
    change = LevelChange(volunteer.level, new)
    now = timezone.now()
    Volunteer.objects.filter(pk=volunteer.pk).update(level=new, level_changed_at=now)
    volunteer.level, volunteer.level_changed_at = new, now
    return change


@dataclass
class RegimeProgress:
    regime: str
    label: str
    n_gold: int
    n_right: int
    sens_mean: float
    spec_mean: float
    lower: float  # the weaker lower credible bound
    shown: bool  # meets the promotion test
    kept: bool  # meets the keeping test
    gold_needed: int  # yes/no gold answers still missing for the minimum


@dataclass
class LevelProgress:
    level: int
    name: str
    unlocks: str
    in_force: bool
    next_level: int | None
    next_name: str | None
    next_name_in_text: str | None
    next_unlocks: str | None
    needs: list[RegimeProgress]  # the regimes the next level needs
    needs_label: str  # their labels joined for a sentence ("... and of ...")
    regimes: list[RegimeProgress]  # both regimes, high S/N first
    skill: float
    credible_pct: int
    min_gold: int
    changed_at: object


def _join_labels(labels: list) -> str:
    """A and of B, in the volunteer's language (the sentence reads "on the teaching
    examples of A and of B")."""
    out = str(labels[0]) if labels else ""
    for label in labels[1:]:
        out = gettext("%(first)s and of %(second)s") % {"first": out, "second": label}
    return out


def level_progress(*, volunteer: Volunteer | None) -> LevelProgress:
    """What /me/ shows: the level, the rules, and how far the volunteer is towards the next."""
    rule = level_rule()
    level = volunteer.level if volunteer is not None else 1
    if volunteer is not None and volunteer.pk is not None:
        skills = gold_skills(volunteer=volunteer, rule=rule)
    else:
        skills = regime_skills(np.zeros(0, bool), np.zeros(0, bool), np.zeros(0, int), rule)
    regimes = {}
    for r in (HIGH, LOW):
        s = skills[r]
        regimes[r] = RegimeProgress(
            regime="high" if r == HIGH else "low",
            label=REGIME_LABELS[r],
            n_gold=s.n_gold,
            n_right=s.n_real_right + s.n_fake_right,
            sens_mean=s.sens_mean,
            spec_mean=s.spec_mean,
            lower=s.lower,
            shown=shows_skill(s, rule),
            kept=keeps_skill(s, rule),
            gold_needed=max(0, rule.min_gold - s.n_gold),
        )
    nxt = level + 1 if level < MAX_LEVEL else None
    return LevelProgress(
        level=level,
        name=LEVEL_NAMES[level],
        unlocks=LEVEL_UNLOCKS[level],
        in_force=levels_in_force(),
        next_level=nxt,
        next_name=LEVEL_NAMES[nxt] if nxt else None,
        next_name_in_text=LEVEL_NAMES_IN_TEXT[nxt] if nxt else None,
        next_unlocks=LEVEL_UNLOCKS[nxt] if nxt else None,
        needs=[regimes[r] for r in LEVEL_REGIMES[nxt]] if nxt else [],
        needs_label=_join_labels([regimes[r].label for r in LEVEL_REGIMES[nxt]] if nxt else []),
        regimes=[regimes[HIGH], regimes[LOW]],
        skill=rule.skill,
        credible_pct=round(rule.credible * 100),
        min_gold=rule.min_gold,
        changed_at=volunteer.level_changed_at if volunteer is not None else None,
    )


# --- level 3: which artefact is it? -------------------------------------------------------


class NotLevelThree(Forbidden):
    code = "level_required"


def asks_artefact_type(*, volunteer: Volunteer | None) -> bool:
    """Whether the classify page asks this volunteer the follow-up task after a 'no'."""
    return volunteer is not None and volunteer.level >= 3 and levels_in_force()


def record_artefact_answer(*, volunteer: Volunteer, vote: Vote, kind: str) -> ArtefactAnswer:
    """Keep a level-3 volunteer's answer to "which artefact is it?" for their 'no' ``vote``
    (a second answer on the same vote replaces the first)."""
    if kind not in ArtefactAnswer.Kind.values:
        raise InvalidInput(
            f"kind must be one of {', '.join(ArtefactAnswer.Kind.values)}, not {kind!r}"
        )
    if vote.volunteer_id != volunteer.pk or vote.answer != Vote.Answer.NO:
        raise InvalidInput("the artefact type goes with your own 'no' answer only")
    if not asks_artefact_type(volunteer=volunteer):
        raise NotLevelThree("naming the artefact type is the level-3 task")
    answer, _ = ArtefactAnswer.objects.update_or_create(
        vote=vote,
        defaults={
            "candidate_id": vote.candidate_id,
            "volunteer": volunteer,
            "kind": kind,
            "level": volunteer.level,
        },
    )
    return answer
