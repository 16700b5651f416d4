"""Which candidate a volunteer sees next.

* Only active candidates (never retired or waiting for an expert), never one this volunteer
  has answered: an anti-join (NOT EXISTS) on the Vote (volunteer, candidate) unique index.
* Ordered by ``-priority`` on the ``candidate_queue`` index (status, -priority): the scan
  walks the index from the top and stops after a few unseen rows, so it never reads the
  table. The active-learning loop sets priorities; until it does, ingest's ``priority =
  -sn`` puts low S/N first.
* One of the top ``TOP_K`` unseen rows is picked at random, so volunteers asking at the same
  moment spread over several candidates instead of all piling onto one.
* Gold-standard candidates are mixed in at a rate that falls with experience
  (:func:`gold_rate`), like Zooniverse's subject selector; they are kept out of the regular
  path so the rate is what the schedule says. Which gold: exam gold first for a newcomer,
  teaching gold once exam answers proved them (:func:`gold_preference`).
* Levels (``services.crowd.levels``): at ``level=1`` only high-S/N candidates and high-S/N
  gold are served (the low-S/N ones unlock at level 2); ``level=None`` serves every regime
  (levels not in force, or a caller without levels such as the research harness).
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from functools import lru_cache

from django.conf import settings
from django.db import connection
from django.db.models import Exists, OuterRef, QuerySet
from django.db.models.expressions import RawSQL

from labelapp.models import Candidate, GoldStandard, Volunteer, Vote
from mlcore.survey import SN_LOW_MAX

# (classifications made so far < n) -> fraction of gold; 10% after the last step.
GOLD_SCHEDULE: tuple[tuple[int, float], ...] = ((20, 0.40), (40, 0.30), (60, 0.20))
GOLD_RATE_EXPERIENCED = 0.10
TOP_K = 8
QUEUE_FIELDS = ("id", "detectid", "wave", "field")


def gold_rate(n_votes: int) -> float:
    """Fraction of gold candidates for a volunteer who has made ``n_votes`` classifications."""
    for below, rate in GOLD_SCHEDULE:
        if n_votes < below:
            return rate
    return GOLD_RATE_EXPERIENCED


def gold_preference(volunteer: Volunteer | None) -> tuple[bool | None, ...]:
    """Which gold a volunteer is served, in order of preference (``exam`` True / False, None
    for either; the last is the fallback when none of the first is left): exam gold until
    they have PROVEN_MIN_GOLD exam answers, so an honest newcomer is proven as soon as when
    every gold counted; then either kind while those answers have not proven them; teaching
    gold once they have (it explains itself, and levels are measured on it).

    Measured (bench_attacks, docs/security.md): serving both kinds after the first four, so
    exam answers kept measuring proven volunteers, cast 64 % of the honest crowd's votes
    unproven instead of 19 % (small exam samples dip under 70 % by chance) and cost 33.3
    honest votes per retired candidate instead of 24.0. A guesser who passes four stays
    proven, but their votes weigh what their skill on all gold answers says."""
    n = volunteer.n_exam if volunteer is not None else 0
    if n < settings.PROVEN_MIN_GOLD:
        return (True, None)
    if volunteer.n_exam_correct < settings.PROVEN_MIN_ACCURACY * n:
        return (None,)
    return (False, None)


def exam_first(volunteer: Volunteer | None) -> int:
    """How many of a newcomer's next candidates are gold whatever :func:`gold_rate` says
    (``NEWCOMER_EXAM_FIRST``): the exam answers they still need to be proven, while they have
    cast fewer than twice PROVEN_MIN_GOLD answers (someone who answers "not sure" to every
    exam gold is not kept on gold). Their votes before that count little (unproven), so
    asking the exam first spends the same gold earlier and fewer of their answers go to
    waste; 0 when off. Off by default: it proves attackers who classify gold well as early,
    and they flipped more labels in the attack campaign (docs/security.md)."""
    if not settings.NEWCOMER_EXAM_FIRST:
        return 0
    n_exam = volunteer.n_exam if volunteer is not None else 0
    n_votes = volunteer.n_votes if volunteer is not None else 0
    if n_votes >= 2 * settings.PROVEN_MIN_GOLD:
        return 0
    return max(0, settings.PROVEN_MIN_GOLD - n_exam)


def _unseen(qs: QuerySet, volunteer: Volunteer | None, field: str) -> QuerySet:
    if volunteer is None or volunteer.pk is None:
        return qs
    seen = Vote.objects.filter(volunteer_id=volunteer.pk, candidate_id=OuterRef(field))
    return qs.filter(~Exists(seen))


_HIGH_SN_LITERAL = repr(float(SN_LOW_MAX))  # "5.5"


def _high_only(level: int | None) -> bool:
    """Whether ``level`` is served high-S/N candidates only (level 1)."""
    return level is not None and level < 2


def queue_queryset(
    *, volunteer: Volunteer | None, exclude: Sequence[int] = (), level: int | None = None
) -> QuerySet:
    """Active, unseen, non-gold candidates in queue order (the query EXPLAIN checks)."""
    qs = Candidate.objects.filter(status=Candidate.Status.ACTIVE)
    if _high_only(level):
        # A literal, not a parameter: a prepared statement's generic plan cannot prove that
        # ``sn > $1`` implies the partial index ``candidate_queue_high_sn``'s ``sn > 5.5``.
        qs = qs.filter(sn__gt=RawSQL(_HIGH_SN_LITERAL, ()))  # noqa: S611 (a constant)
    qs = _unseen(qs, volunteer, "pk")
    qs = qs.filter(~Exists(GoldStandard.objects.filter(candidate_id=OuterRef("pk"), active=True)))
    if exclude:
        qs = qs.exclude(detectid__in=list(exclude))
    return qs.order_by("-priority")


def _gold_queryset(
    *,
    volunteer: Volunteer | None,
    exclude: Sequence[int] = (),
    level: int | None = None,
    exam: bool | None = None,
) -> QuerySet:
    """Active gold candidates this volunteer has not answered, in random order; ``exam``
    True / False: exam or teaching gold only, None: either."""
    # The gold set is small (hundreds to a few thousand), so a random pick over the unseen
    # ones is cheap; it is still an index anti-join, never a scan of the candidate table.
    qs = GoldStandard.objects.filter(active=True, candidate__status=Candidate.Status.ACTIVE)
    if exam is not None:
        qs = qs.filter(exam=exam)
    if _high_only(level):
        qs = qs.filter(candidate__sn__gt=SN_LOW_MAX)
    qs = _unseen(qs, volunteer, "candidate_id")
    if exclude:
        qs = qs.exclude(candidate__detectid__in=list(exclude))
    return qs.order_by("?").values(
        "candidate_id", "candidate__detectid", "candidate__wave", "candidate__field"
    )


class _Someone:
    """Stands in for a volunteer while a query is compiled (only ``pk`` is read)."""

    def __init__(self, pk: int):
        self.pk = pk


# Parameter values no real volunteer id or detectid takes: compiled into a query in their
# place, then found again in its parameter list to know which slot takes which value.
_VOLUNTEER_MARK = -7_000_000_000_001
_EXCLUDE_MARK = -8_000_000_000_000


@lru_cache(maxsize=128)
def _compiled(
    kind: str,
    alias: str,
    with_volunteer: bool,
    n_exclude: int,
    top_k: int,
    high_only: bool,
    exam: bool | None = None,
):
    """SQL + parameter recipe of the queue (``kind`` 'regular') or gold query, per shape.

    Building and compiling these querysets (two NOT EXISTS subqueries) cost more CPU than
    PostgreSQL spends running them, so each shape is compiled once per process from the very
    querysets above (the SQL is theirs, the plan the one EXPLAIN checks) and run with new
    values. Recipe: per parameter slot, 'v' (volunteer id), an int (index into exclude) or
    ('c', constant).
    """
    volunteer = _Someone(_VOLUNTEER_MARK) if with_volunteer else None
    marks = [_EXCLUDE_MARK - k for k in range(n_exclude)]
    level = 1 if high_only else None
    if kind == "regular":
        qs = queue_queryset(volunteer=volunteer, exclude=marks, level=level)
        qs = qs.values(*QUEUE_FIELDS)[:top_k]
    else:
        qs = _gold_queryset(volunteer=volunteer, exclude=marks, level=level, exam=exam)[:1]
    sql, params = qs.query.get_compiler(using=alias).as_sql()
    recipe = []
    for p in params:
        if p == _VOLUNTEER_MARK:
            recipe.append("v")
        elif isinstance(p, int) and not isinstance(p, bool) and p in marks:
            recipe.append(_EXCLUDE_MARK - p)
        else:
            recipe.append(("c", p))
    assert recipe.count("v") == int(with_volunteer), sql
    return sql, tuple(recipe)


def _run(
    kind: str,
    volunteer: Volunteer | None,
    exclude: Sequence[int],
    level: int | None = None,
    exam: bool | None = None,
) -> list[tuple]:
    exclude = list(dict.fromkeys(exclude))  # the IN list holds each detectid once
    with_volunteer = volunteer is not None and volunteer.pk is not None
    sql, recipe = _compiled(
        kind, connection.alias, with_volunteer, len(exclude), TOP_K, _high_only(level), exam
    )
    vid = volunteer.pk if with_volunteer else None
    params = [vid if r == "v" else r[1] if isinstance(r, tuple) else exclude[r] for r in recipe]
    with connection.cursor() as cur:
        cur.execute(sql, params)
        return cur.fetchall()


def _regular(volunteer, exclude, count, rng, level=None) -> list[dict]:
    found = _run("regular", volunteer, exclude, level)
    rows = [dict(zip(QUEUE_FIELDS, r, strict=True)) for r in found]
    return rng.sample(rows, min(count, len(rows)))


def _gold_seeded(volunteer, exclude, rng: random.Random, level=None, exam=None) -> dict | None:
    """A gold pick drawn with ``rng`` (reproducible; for simulations): the unseen active gold
    in id order, one chosen by the caller's generator instead of the database's random()."""
    rows = list(
        _gold_queryset(volunteer=volunteer, exclude=exclude, level=level, exam=exam).order_by(
            "candidate_id"
        )
    )
    if not rows:
        return None
    row = rng.choice(rows)
    values = ("candidate_id", "candidate__detectid", "candidate__wave", "candidate__field")
    return dict(zip(QUEUE_FIELDS, (row[k] for k in values), strict=True))


def _gold(volunteer, exclude, level=None, exam=None) -> dict | None:
    rows = _gold_sample(volunteer, exclude, level, exam)
    if not rows:  # none of the sample is left for this volunteer: ask over all the gold
        rows = _run("gold", volunteer, exclude, level, exam)
    if not rows:
        return None
    return dict(zip(QUEUE_FIELDS, rows[0], strict=True))


GOLD_SAMPLE = 32


def _gold_sample(volunteer, exclude, level=None, exam=None) -> list[tuple]:
    """A uniform random pick among the unseen, active gold of a random sample of GOLD_SAMPLE
    gold rows (so uniform over all unseen gold whenever the sample holds one).

    The exhaustive query (:func:`_gold_queryset`) draws a random number for *every* gold row
    and joins each to its candidate and the volunteer's votes before sorting: ~4 ms of
    PostgreSQL time on 500 gold rows, asked for 10-40% of all answers. Here only the gold
    table's own rows are drawn and sorted (a few hundred, no join), and only the sample is
    joined. Empty when the sample holds nothing for this volunteer (they have seen most of
    the gold); the caller then runs the exhaustive query.
    """
    qn = connection.ops.quote_name
    which = "" if exam is None else (" AND exam" if exam else " AND NOT exam")
    params: list = [GOLD_SAMPLE]
    sql = (
        "SELECT c.id, c.detectid, c.wave, c.field FROM (SELECT candidate_id, random() AS r "  # noqa: S608
        f"FROM {qn(GoldStandard._meta.db_table)} WHERE active{which} ORDER BY 2 LIMIT %s) g "
        f"JOIN {qn(Candidate._meta.db_table)} c ON c.id = g.candidate_id WHERE c.status = %s"
    )
    params.append(Candidate.Status.ACTIVE)
    if _high_only(level):
        sql += " AND c.sn > %s"
        params.append(SN_LOW_MAX)
    if volunteer is not None and volunteer.pk is not None:
        sql += (
            f" AND NOT EXISTS (SELECT 1 FROM {qn(Vote._meta.db_table)} u "  # noqa: S608
            "WHERE u.volunteer_id = %s AND u.candidate_id = c.id)"
        )
        params.append(volunteer.pk)
    exclude = list(dict.fromkeys(exclude))
    if exclude:
        sql += f" AND c.detectid NOT IN ({', '.join(['%s'] * len(exclude))})"
        params += exclude
    with connection.cursor() as cur:
        cur.execute(sql + " ORDER BY g.r LIMIT 1", params)
        return cur.fetchall()


def next_candidates(
    *,
    volunteer: Volunteer | None,
    count: int = 1,
    exclude: Sequence[int] = (),
    rng: random.Random | None = None,
    level: int | None = None,
) -> list[dict]:
    """Up to ``count`` candidates for ``volunteer`` (None: someone with no votes yet).

    ``exclude``: detectids the page already holds (shown or preloaded), so they are not
    handed out twice. Returns dicts with ``id``, ``detectid``, ``wave``, ``field``; an
    empty list when nothing is left for this volunteer. With ``rng`` every random choice
    (gold or not, which gold, which of the top few) comes from it, so a simulation with a
    seeded generator is reproducible; without, the fast database-side gold sample is used.
    ``level`` (``services.crowd.levels.serving_level``): 1 serves high-S/N candidates and
    gold only; None or 2+ every regime.
    """
    seeded = rng is not None
    rng = rng or random
    n_votes = volunteer.n_votes if volunteer is not None else 0
    held = list(exclude)
    picked: list[dict] = []
    first = exam_first(volunteer)
    n_gold = sum(k < first or rng.random() < gold_rate(n_votes + k) for k in range(count))
    for _ in range(n_gold):
        row = None
        for exam in gold_preference(volunteer):
            if seeded:
                row = _gold_seeded(volunteer, held, rng, level, exam)
            else:
                row = _gold(volunteer, held, level, exam)
            if row is not None:
                break
        if row is None:
            break
        picked.append(row)
        held.append(row["detectid"])
    if len(picked) < count:
        picked += _regular(volunteer, held, count - len(picked), rng, level)
    rng.shuffle(picked)
    return picked


def next_candidate(
    *, volunteer: Volunteer | None, exclude: Sequence[int] = (), level: int | None = None
) -> dict | None:
    """The single next candidate for ``volunteer``, or None when the queue is empty for them."""
    rows = next_candidates(volunteer=volunteer, count=1, exclude=exclude, level=level)
    return rows[0] if rows else None
