"""The public results page: live counts, what the votes did, news.

Cheap on millions of candidates: every count reads an index or a counter the platform
already keeps (volunteers' ``n_votes``, the ingest batches' sizes, the queue index on
candidate status), and "today" starts at the first vote or retirement of the UTC day, found
by a binary search on the primary key (rows are written in time order). The whole summary is
cached for a minute. Accuracy figures are the held-out ones of the model cards (never a
figure from data a model trained on); the N(z) is the console's cached report.
"""

from __future__ import annotations

import datetime as dt

from django.core.cache import cache
from django.db.models import Max, Min, Model, Sum
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from labelapp.models import (
    AuditEvent,
    Candidate,
    IngestBatch,
    ModelVersion,
    NewsItem,
    RetirementEvent,
    Round,
    Volunteer,
    Vote,
)
from labelapp.selectors.models import headline

COUNTS_TTL_S = 60
NEWS_SHOWN = 10
# Models that were live at some time (the volunteers' "what the votes did"): promoted now,
# or superseded by a later one. Rejected and never-judged models were never used.
WERE_LIVE = (ModelVersion.Status.PROMOTED, ModelVersion.Status.RETIRED)
COLOURS = {"low": "#d95f02", "high": "#1b9e77", "before": "#b2182b", "after": "#2166ac"}
FILL_BEFORE = "rgba(178, 24, 43, 0.18)"
REGIME_WORDS = {
    "low": gettext_lazy("faint lines (S/N 4.8-5.5)"),
    "high": gettext_lazy("brighter lines (S/N > 5.5)"),
}


def utc_midnight(now: dt.datetime | None = None) -> dt.datetime:
    now = now or timezone.now()
    return now.astimezone(dt.UTC).replace(hour=0, minute=0, second=0, microsecond=0)


def first_pk_since(model: type[Model], since: dt.datetime, field: str = "created_at") -> int | None:
    """The smallest primary key whose ``field`` is at or after ``since``, by a binary search
    on the primary key (about 2 log2(N) index lookups, never a scan), for tables written in
    time order. None when no row is that recent."""
    bounds = model.objects.aggregate(lo=Min("pk"), hi=Max("pk"))
    lo, hi = bounds["lo"], bounds["hi"]
    if hi is None:
        return None
    qs = model.objects.order_by("pk").values_list("pk", field)

    def at_or_after(pk: int) -> tuple[int, dt.datetime] | None:
        return qs.filter(pk__gte=pk).first()

    last = at_or_after(hi)
    if last is None or last[1] < since:
        return None
    answer = last[0]
    while lo <= hi:  # invariant: every row at or after `answer` is recent
        mid = (lo + hi) // 2
        row = at_or_after(mid)
        if row is None:
            hi = mid - 1
        elif row[1] >= since:
            answer = min(answer, row[0])
            hi = mid - 1
        else:
            lo = row[0] + 1
    return answer


def live_counts(*, use_cache: bool = True) -> dict:
    """Classifications, volunteers and settled candidates, all time and since midnight UTC."""
    key = "results:counts:v1"
    if use_cache and (hit := cache.get(key)) is not None:
        return hit
    now = timezone.now()
    midnight = utc_midnight(now)
    vol = Volunteer.objects.filter(n_votes__gt=0)
    first_vote = first_pk_since(Vote, midnight)
    first_event = first_pk_since(RetirementEvent, midnight)
    out = {
        "classifications": vol.aggregate(n=Sum("n_votes"))["n"] or 0,
        "volunteers": vol.count(),
        "candidates": IngestBatch.objects.aggregate(n=Sum("n_candidates"))["n"] or 0,
        # the queue index (status, -priority) answers these without reading other rows
        "settled": Candidate.objects.filter(status=Candidate.Status.RETIRED).count(),
        "with_experts": Candidate.objects.filter(status=Candidate.Status.EXPERT).count(),
        "classifications_today": (
            Vote.objects.filter(pk__gte=first_vote).count() if first_vote else 0
        ),
        "volunteers_today": Volunteer.objects.filter(last_vote_at__gte=midnight).count(),
        "settled_today": (
            RetirementEvent.objects.filter(
                pk__gte=first_event, to_status=Candidate.Status.RETIRED
            ).count()
            if first_event
            else 0
        ),
        "as_of": now,
        "since": midnight,
    }
    out["settled_share"] = out["settled"] / out["candidates"] if out["candidates"] else 0.0
    if use_cache:
        cache.set(key, out, COUNTS_TTL_S)
    return out


# --- what the votes did: held-out accuracy of each model that was live ----------------------


def accuracy_rows() -> list[dict]:
    """Per model that was live, oldest first: its round and held-out headline (balanced
    accuracy with a 95% interval per S/N regime, or not measured)."""
    rounds = dict(
        Round.objects.filter(trained_model__isnull=False).values_list("trained_model_id", "number")
    )
    rows = []
    for mv in ModelVersion.objects.filter(status__in=WERE_LIVE).order_by("pk").only("pk", "card"):
        rows.append(
            {
                "version": mv.pk,
                "round": rounds.get(mv.pk),
                "label": (
                    _("round %(n)s") % {"n": rounds[mv.pk]}
                    if mv.pk in rounds
                    else _("model %(n)s") % {"n": mv.pk}
                ),
                "headline": headline(mv.card),
            }
        )
    return rows


def accuracy_figure(rows: list[dict]) -> dict | None:
    """Held-out balanced accuracy per model, one series per S/N regime with its interval as
    error bars; only measured cells get a point. None when nothing is measured."""
    measured = [r for r in rows if r["headline"]["measured"]]
    if not any(c["measured"] for r in measured for c in r["headline"]["regimes"].values()):
        return None
    x = [r["label"] for r in measured]
    data = []
    for reg in ("high", "low"):
        cells = [r["headline"]["regimes"].get(reg) or {"measured": False} for r in measured]
        y = [c["balanced_accuracy"] if c["measured"] else None for c in cells]
        up = [c["ci_high"] - c["balanced_accuracy"] if c["measured"] else None for c in cells]
        down = [c["balanced_accuracy"] - c["ci_low"] if c["measured"] else None for c in cells]
        n = [c.get("n", 0) for c in cells]
        data.append(
            {
                "type": "scatter",
                "mode": "lines+markers",
                "name": str(REGIME_WORDS[reg]),
                "x": x,
                "y": y,
                "customdata": n,
                "error_y": {"type": "data", "array": up, "arrayminus": down, "visible": True},
                "marker": {"size": 10, "color": COLOURS[reg]},
                "line": {"color": COLOURS[reg]},
                # plotly's %{...} fields stay as they are in every language
                "hovertemplate": _("%{y:.2f} (checked on %{customdata} candidates)")
                + "<extra></extra>",
            }
        )
    return {
        "data": data,
        "layout": {
            "title": {
                "text": _("How often the model is right, on candidates it never learnt from")
            },
            "xaxis": {"type": "category", "automargin": True},
            "yaxis": {
                "title": {"text": _("balanced accuracy")},
                "range": [0.4, 1.02],
                "tickformat": ".0%",
                "automargin": True,
            },
            "legend": {"orientation": "h", "y": -0.25},
            "height": 380,
        },
    }


# --- N(z) before and after the CNN cut -------------------------------------------------------


def nz_figure(report: dict) -> dict | None:
    """The console's N(z) report as volunteers see it: candidates per redshift bin before
    and after the CNN cut, spikes marked. None when there are no candidates."""
    by_key = {s["key"]: s for s in report["selections"]}
    before, after = by_key.get("all"), by_key.get("cnn")
    if not before or not before.get("available") or not before["n"]:
        return None
    z = report["z_centres"]
    data = []
    series = [("before", before, _("every candidate the survey found (S/N ≥ 4.8)"))]
    if after and after.get("available") and report.get("n_scored"):  # a model yet to score: no line
        series.append(("after", after, _("kept by the model your votes trained")))
    for key, sel, name in series:
        line = {"shape": "hvh", "color": COLOURS[key], "width": 1 if key == "before" else 2}
        data.append(
            {
                "type": "scatter",
                "mode": "lines",
                "x": z,
                "y": sel["counts"],
                "name": name,
                "line": line,
                # "before" as a pale area behind, "after" as the line on top of it
                **({"fill": "tozeroy", "fillcolor": FILL_BEFORE} if key == "before" else {}),
                "hovertemplate": _("z = %{x:.2f}: %{y} candidates") + "<extra></extra>",
            }
        )
        if sel["spikes"]:
            data.append(
                {
                    "type": "scatter",
                    "mode": "markers",
                    "name": _("spike before the cut")
                    if key == "before"
                    else _("spike after the cut"),
                    "x": [s["z"] for s in sel["spikes"]],
                    "y": [s["observed"] for s in sel["spikes"]],
                    "marker": {
                        "symbol": "triangle-down",
                        "size": 11,
                        "color": COLOURS[key],
                        "line": {"color": "#000", "width": 1},
                    },
                    "hovertemplate": _("spike at z = %{x:.2f}") + "<extra></extra>",
                }
            )
    return {
        "data": data,
        "layout": {
            "title": {"text": _("Candidates per redshift, before and after the model's cut")},
            "xaxis": {
                "title": {"text": _("redshift z (if the line is Lyman-alpha)")},
                "range": [z[0], z[-1]] if z else None,
                "automargin": True,
            },
            "yaxis": {
                "title": {"text": _("candidates per bin")},
                "rangemode": "tozero",
                "automargin": True,
                # a handful of candidates: whole numbers, not 0.2 steps
                **({"dtick": 1} if max(before["counts"]) <= 5 else {}),
            },
            "legend": {"orientation": "h", "y": -0.3},
            "height": 400,
        },
    }


def nz_summary(report: dict) -> dict:
    by_key = {s["key"]: s for s in report["selections"]}
    before, after = by_key.get("all") or {}, by_key.get("cnn") or {}
    return {
        "has_model": report.get("model") is not None,
        "before_n": before.get("n", 0),
        "before_spikes": before.get("n_spikes", 0),
        "after_available": bool(after.get("available")),
        "after_n": after.get("n", 0),
        "after_spikes": after.get("n_spikes", 0),
        "cut": report.get("cut"),
        "n_scored": report.get("n_scored"),
    }


# --- lines confirmed by external spectra ------------------------------------------------------


def external_confirmation() -> dict | None:
    """The latest successful cross-match with an external spectroscopic catalogue (the
    console's External page records each in the audit log): how many of our lines another
    telescope's spectra confirm, per S/N regime, and how many the live model kept."""
    for event in AuditEvent.objects.filter(action="external_validation").order_by("-pk")[:20]:
        d = event.detail or {}
        if not d.get("ok"):
            continue
        regimes = d.get("regimes") or {}
        rows = []
        for key in ("high", "low"):
            matched, recovered = (regimes.get(key) or [0, None])[:2]
            rows.append(
                {
                    "key": key,
                    "label": str(REGIME_WORDS[key]),
                    "confirmed": matched or 0,
                    "kept": recovered,
                    "kept_share": (recovered / matched)
                    if matched and recovered is not None
                    else None,
                }
            )
        return {
            "when": event.created_at,
            "n_external": d.get("n_external", 0),
            "confirmed": d.get("n_matched", 0),
            "cut": d.get("cut"),
            "rows": rows,
        }
    return None


def news_items(*, limit: int = NEWS_SHOWN) -> list[NewsItem]:
    return list(NewsItem.objects.filter(published=True, published_at__lte=timezone.now())[:limit])
