"""Volunteers for scientists: skill per S/N regime with its uncertainty, how active they
are, and who looks like a spammer. Volunteers appear by number or username, never e-mail."""

from __future__ import annotations

import hashlib
import hmac
import math

import numpy as np
from django.conf import settings
from django.core.cache import cache
from django.db.models import Count, Q

from labelapp.models import VolunteerSkill, Vote

# A volunteer is suspect when, with enough votes to tell, they are no better than chance
# (sensitivity + specificity - 1 = Youden's J below this, in the regime where they voted most)
# or give one answer almost always.
SPAM_MIN_VOTES = 20
SPAM_MAX_J = 0.0
SPAM_ONE_ANSWER_SHARE = 0.95
PLOT_MAX_POINTS = 3000  # the skill scatter shows the most active volunteers


def _beta_sd(a: float, b: float) -> float:
    return math.sqrt(a * b / ((a + b) ** 2 * (a + b + 1)))


def skill_rows(*, limit: int = PLOT_MAX_POINTS) -> list[dict]:
    """Per (volunteer, regime): Beta posterior means and standard deviations."""
    rows = (
        VolunteerSkill.objects.select_related("volunteer__user")
        .order_by("-n_votes")
        .values(
            "volunteer_id",
            "volunteer__user__username",
            "regime",
            "n_votes",
            "sens_alpha",
            "sens_beta",
            "spec_alpha",
            "spec_beta",
        )[:limit]
    )
    out = []
    for r in rows:
        sa, sb, pa, pb = r["sens_alpha"], r["sens_beta"], r["spec_alpha"], r["spec_beta"]
        out.append(
            {
                "volunteer": r["volunteer_id"],
                "name": r["volunteer__user__username"] or f"anonymous #{r['volunteer_id']}",
                "regime": "low" if r["regime"] == 0 else "high",
                "n_votes": r["n_votes"],
                "sens": sa / (sa + sb),
                "sens_sd": _beta_sd(sa, sb),
                "spec": pa / (pa + pb),
                "spec_sd": _beta_sd(pa, pb),
            }
        )
    return out


def skill_figure(rows: list[dict]) -> dict:
    data = []
    for regime, colour in (("low", "#d95f02"), ("high", "#1b9e77")):
        sel = [r for r in rows if r["regime"] == regime]
        bar = {"width": 0, "thickness": 1, "color": colour + "55"}  # faint: many overlap
        data.append(
            {
                "type": "scatter",
                "mode": "markers",
                "name": f"{regime} S/N",
                "x": [r["spec"] for r in sel],
                "y": [r["sens"] for r in sel],
                "error_x": {"type": "data", "array": [r["spec_sd"] for r in sel], **bar},
                "error_y": {"type": "data", "array": [r["sens_sd"] for r in sel], **bar},
                "text": [f"{r['name']}: {r['n_votes']} votes" for r in sel],
                "marker": {"color": colour, "size": 6, "opacity": 0.6},
            }
        )
    data.append(
        {
            "type": "scatter",
            "mode": "lines",
            "name": "chance",
            "x": [0, 1],
            "y": [1, 0],
            "line": {"dash": "dot", "color": "#888"},
        }
    )
    return {
        "data": data,
        "layout": {
            "title": {"text": "Skill per S/N regime (posterior mean ± 1 sd)"},
            "xaxis": {"title": {"text": "specificity P(no | artefact)"}, "range": [0, 1.02]},
            "yaxis": {"title": {"text": "sensitivity P(yes | real)"}, "range": [0, 1.02]},
        },
    }


def activity_histogram() -> dict:
    """Votes per volunteer on log-spaced bins (the counter column, no vote-table scan)."""
    from labelapp.models import Volunteer

    n = np.asarray(
        Volunteer.objects.filter(n_votes__gt=0).values_list("n_votes", flat=True), np.int64
    )
    if not len(n):
        return {"data": [], "layout": {"title": {"text": "No votes yet"}}}
    edges = np.unique(np.round(np.logspace(0, np.log10(n.max() + 1), 20)).astype(int))
    counts, _ = np.histogram(n, bins=edges)
    labels = [
        f"{a}–{b - 1}" if b - 1 > a else str(a) for a, b in zip(edges[:-1], edges[1:], strict=True)
    ]
    top = np.sort(n)[::-1]
    share_top10 = float(top[: max(1, len(top) // 10)].sum() / top.sum())
    return {
        "data": [{"type": "bar", "x": labels, "y": counts.tolist(), "name": "volunteers"}],
        "layout": {
            "title": {
                "text": f"Votes per volunteer ({len(n)} volunteers; the top 10% cast "
                f"{share_top10:.0%} of votes)"
            },
            "xaxis": {"title": {"text": "votes"}, "type": "category"},
            "yaxis": {"title": {"text": "volunteers"}, "type": "log"},
        },
    }


def suspected_spammers(*, limit: int = 50) -> list[dict]:
    """Volunteers worse than chance, or giving the same answer nearly always. One GROUP BY
    over the vote table, so the answer is cached for a few minutes."""
    found = cache.get("console:spammers")
    if found is None:
        found = _suspected_spammers()
        cache.set("console:spammers", found, 300)
    return found[:limit]


def _suspected_spammers() -> list[dict]:
    by_skill = {
        r["volunteer"]: r
        for r in skill_rows(limit=100_000)
        if r["n_votes"] >= SPAM_MIN_VOTES and r["sens"] + r["spec"] - 1 < SPAM_MAX_J
    }
    answers = (
        Vote.objects.values("volunteer_id", "volunteer__user__username")
        .annotate(
            n=Count("pk"),
            yes=Count("pk", filter=Q(answer=Vote.Answer.YES)),
            no=Count("pk", filter=Q(answer=Vote.Answer.NO)),
        )
        .filter(n__gte=SPAM_MIN_VOTES)
    )
    out = {}
    for a in answers:
        share = max(a["yes"], a["no"]) / a["n"]
        why = []
        if share >= SPAM_ONE_ANSWER_SHARE:
            which = "yes" if a["yes"] >= a["no"] else "no"
            why.append(f"answers '{which}' {share:.0%} of the time")
        skill = by_skill.get(a["volunteer_id"])
        if skill:
            j = skill["sens"] + skill["spec"] - 1
            why.append(f"no better than chance at {skill['regime']} S/N (J = {j:+.2f})")
        if why:
            out[a["volunteer_id"]] = {
                "volunteer": a["volunteer_id"],
                "name": a["volunteer__user__username"] or f"anonymous #{a['volunteer_id']}",
                "n_votes": a["n"],
                "why": "; ".join(why),
            }
    return sorted(out.values(), key=lambda r: -r["n_votes"])


def pseudonym(volunteer_id: int) -> str:
    """A stable, non-reversible name for a volunteer in exports (HMAC-SHA256, 16 hex)."""
    key = (getattr(settings, "EXPORT_PSEUDONYM_KEY", "") or settings.SECRET_KEY).encode()
    digest = hmac.new(key, f"volunteer:{volunteer_id}".encode(), hashlib.sha256).hexdigest()
    return f"v{digest[:16]}"


def expert_q(prefix: str = "") -> Q:
    """Who is an expert -- a scientist, in the console's words: an active account that is
    staff or in ``EXPERT_GROUP``. The one definition: console access and the weight of an
    answer in the consensus (an expert's settles the label) both use it. ``prefix`` is the
    path to the user (``"user__"`` from a volunteer)."""
    return Q(**{f"{prefix}is_active": True}) & (
        Q(**{f"{prefix}is_staff": True}) | Q(**{f"{prefix}groups__name": settings.EXPERT_GROUP})
    )


def expert_user_ids(user_ids) -> set[int]:
    """Which of these accounts are experts: one query."""
    from django.contrib.auth import get_user_model

    users = get_user_model().objects.filter(expert_q(), pk__in=list(user_ids))
    return set(users.values_list("pk", flat=True))


def is_expert(user) -> bool:
    if not getattr(user, "is_authenticated", False) or not user.pk or not user.is_active:
        return False
    return user.pk in expert_user_ids([user.pk])
