"""The campaign at a glance: candidates per S/N regime, votes per day, the round, tasks."""

from __future__ import annotations

import datetime as dt

from django.core.cache import cache
from django.db.models import Count, Q
from django.db.models.functions import TruncDate
from django.utils import timezone

from labelapp.models import (
    AggregationRun,
    CampaignSettings,
    Candidate,
    Round,
    RoundCandidate,
    TaskProgress,
    Volunteer,
    Vote,
)
from labelapp.selectors.models import headline, live_model
from labelapp.selectors.regimes import regime_q
from mlcore.survey import REGIME_NAMES

SUMMARY_TTL_S = 60  # a full-table COUNT on 2.5M rows costs ~1 s: at most once a minute

REGIME_FILTERS = {name: regime_q(name) for name in REGIME_NAMES}


def candidate_counts() -> dict[str, dict[str, int]]:
    """Per regime: total, seen (at least one vote), active, retired, in the expert queue.
    One scan of the candidate table with conditional counts, cached for a minute."""
    key = "console:candidate-counts"
    found = cache.get(key)
    if found is not None:
        return found
    aggs = {}
    for reg, q in REGIME_FILTERS.items():
        aggs[f"{reg}_total"] = Count("pk", filter=q)
        aggs[f"{reg}_seen"] = Count("pk", filter=q & Q(consensus__isnull=False))
        for status in Candidate.Status.values:
            aggs[f"{reg}_{status}"] = Count("pk", filter=q & Q(status=status))
    row = Candidate.objects.aggregate(**aggs)
    out = {
        reg: {k.split("_", 1)[1]: v for k, v in row.items() if k.startswith(reg + "_")}
        for reg in REGIME_FILTERS
    }
    out["all"] = {k: out["low"][k] + out["high"][k] for k in out["low"]}
    cache.set(key, out, SUMMARY_TTL_S)
    return out


def activity(days: int = 60) -> dict:
    """Votes and distinct active volunteers per UTC day (one GROUP BY over the window) and
    totals; cached for a minute like the candidate counts (a scan of the vote table)."""
    key = f"console:activity:{days}"
    found = cache.get(key)
    if found is None:
        found = _activity(days)
        cache.set(key, found, SUMMARY_TTL_S)
    return found


def _activity(days: int) -> dict:
    since = timezone.now() - dt.timedelta(days=days)
    rows = list(
        Vote.objects.filter(created_at__gte=since)
        .annotate(day=TruncDate("created_at"))
        .values("day")
        .annotate(votes=Count("pk"), volunteers=Count("volunteer", distinct=True))
        .order_by("day")
    )
    day_ago = timezone.now() - dt.timedelta(days=1)
    return {
        "days": [r["day"].isoformat() for r in rows],
        "votes": [r["votes"] for r in rows],
        "volunteers": [r["volunteers"] for r in rows],
        "votes_total": Vote.objects.count(),
        "votes_24h": Vote.objects.filter(created_at__gte=day_ago).count(),
        "volunteers_total": Volunteer.objects.filter(n_votes__gt=0).count(),
        "volunteers_24h": Volunteer.objects.filter(last_vote_at__gte=day_ago).count(),
    }


def activity_figure(act: dict) -> dict | None:
    """Votes (bars) and active volunteers (line) per day; None before the first vote (the
    page says what to do instead of drawing empty axes)."""
    if not act["days"] or not sum(act["votes"]):
        return None
    short = len(act["days"]) <= 14
    first = dt.datetime.fromisoformat(str(act["days"][0])[:10])  # midnight UTC
    last = dt.datetime.fromisoformat(str(act["days"][-1])[:10])
    # a week at least, so one or two days are day-wide bars, not the whole plot
    x_range = [
        (first - dt.timedelta(hours=12)).isoformat(),
        (max(last, first + dt.timedelta(days=6)) + dt.timedelta(hours=12)).isoformat(),
    ]
    few = max(act["volunteers"] or [0]) <= 8  # whole volunteers on the right axis
    return {
        "data": [
            {
                "type": "bar",
                "x": act["days"],
                "y": act["votes"],
                "name": "votes",
                # a lone bar would otherwise be drawn a hairline wide on a date axis
                **({"width": 0.8 * DAY_MS} if short else {}),
            },
            {
                "type": "scatter",
                "mode": "lines+markers",
                "x": act["days"],
                "y": act["volunteers"],
                "name": "active volunteers",
                "yaxis": "y2",
            },
        ],
        "layout": {
            "title": {"text": "Votes and active volunteers per day (UTC)"},
            # one tick a day while that is readable (plotly's own ticks repeat a date when
            # there are only a few days); automargin keeps the axis titles off the ticks
            "xaxis": {
                "type": "date",
                "tickformat": "%b %d",
                "automargin": True,
                **({"dtick": DAY_MS, "range": x_range} if short else {}),
            },
            "yaxis": {"title": {"text": "votes"}, "automargin": True, "rangemode": "tozero"},
            "yaxis2": {
                "title": {"text": "volunteers"},
                "overlaying": "y",
                "side": "right",
                "automargin": True,
                "rangemode": "tozero",
                "tickformat": "d",
                **({"dtick": 1} if few else {}),
                "showgrid": False,
            },
            "legend": {"orientation": "h", "y": -0.25},
        },
    }


DAY_MS = 86_400_000


def current_round() -> dict | None:
    """The open round and how far it got: votes since it opened, queued candidates retired."""
    rnd = Round.objects.filter(status=Round.Status.OPEN).select_related("scored_by").first()
    if rnd is None:
        return None
    done = (
        RoundCandidate.objects.filter(round=rnd)
        .exclude(candidate__status=Candidate.Status.ACTIVE)
        .count()
    )
    return {
        "round": rnd,
        "votes": Vote.objects.filter(pk__gt=rnd.max_vote_id_start).count(),
        "queued_done": done,
        "carried": RoundCandidate.objects.filter(round=rnd, reason="carry").count(),
        "for_shift": RoundCandidate.objects.filter(round=rnd, reason="shift").count(),
        "fraction": done / rnd.n_queued if rnd.n_queued else 0.0,
    }


def task_rows(*, recent: int = 8) -> dict[str, list[TaskProgress]]:
    """Running (or queued) tasks, failures of the last week, and the latest finished ones."""
    week = timezone.now() - dt.timedelta(days=7)
    running = [TaskProgress.State.QUEUED, TaskProgress.State.RUNNING]
    return {
        "running": list(TaskProgress.objects.filter(state__in=running)[:50]),
        "failed": list(
            TaskProgress.objects.filter(state=TaskProgress.State.FAILED, updated_at__gte=week)[:20]
        ),
        "done": list(TaskProgress.objects.filter(state=TaskProgress.State.DONE)[:recent]),
    }


def progress_payload() -> list[dict]:
    """What the campaign page polls: running tasks with their fraction done."""
    return [
        {
            "id": t.pk,
            "name": t.name,
            "key": t.key,
            "state": t.state,
            "done": t.done,
            "total": t.total,
            "fraction": round(t.fraction, 4),
            "message": t.message,
            "updated_at": t.updated_at.isoformat(),
        }
        for t in task_rows()["running"]
    ]


def campaign_overview() -> dict:
    return {
        "counts": candidate_counts(),
        "activity": activity(),
        "round": current_round(),
        "tasks": task_rows(),
        "live_model": (live := live_model()),
        "live_headline": headline(live.card if live else None),
        "last_aggregation": AggregationRun.objects.first(),
        "rounds": list(Round.objects.select_related("scored_by", "trained_model")[:12]),
    }


def campaign_flag(name: str) -> bool:
    """A boolean campaign setting (``CampaignSettings``): its saved value, or the field's
    default while none is saved. Read here so every layer (ingest included) asks the same."""
    row = CampaignSettings.objects.filter(pk=1).values_list(name, flat=True).first()
    return CampaignSettings._meta.get_field(name).default if row is None else bool(row)
