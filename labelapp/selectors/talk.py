"""Reads for Talk's pages and the console's Talk page: counts come from counters kept on
the rows (``Thread.n_comments``, ``Hashtag.n_comments``) or one grouped query, never a
Python loop over comments."""

from __future__ import annotations

from django.db.models import Count, Max, Q, QuerySet

from labelapp.models import (
    Board,
    Comment,
    CommentHashtag,
    Flag,
    Hashtag,
    Notification,
    Report,
    Suspension,
    Thread,
)

THREADS_PER_PAGE = 30
COMMENTS_PER_PAGE = 50


def boards_with_counts(boards: list[Board]) -> list[dict]:
    counts = {
        r["board_id"]: r
        for r in Thread.objects.filter(board__in=boards)
        .values("board_id")
        .annotate(n_threads=Count("pk"), last=Max("last_post_at"))
    }
    return [
        {
            "board": b,
            "n_threads": counts.get(b.pk, {}).get("n_threads", 0),
            "last": counts.get(b.pk, {}).get("last"),
        }
        for b in boards
    ]


def board_threads(board: Board) -> QuerySet:
    return (
        Thread.objects.filter(board=board)
        .select_related("created_by")
        .order_by("-last_post_at", "-pk")
    )


def recent_candidate_threads(*, limit: int = 12) -> list[Thread]:
    return list(
        Thread.objects.filter(candidate__isnull=False, n_comments__gt=0)
        .select_related("candidate")
        .order_by("-last_post_at")[:limit]
    )


def thread_comments(thread: Thread, *, include_hidden: bool) -> QuerySet:
    qs = Comment.objects.filter(thread=thread).select_related("author", "flag", "reply_to")
    if not include_hidden:
        qs = qs.filter(hidden_at__isnull=True)
    return qs.order_by("created_at", "pk")


def top_hashtags(*, limit: int = 30) -> list[Hashtag]:
    return list(Hashtag.objects.filter(n_comments__gt=0).order_by("-n_comments", "name")[:limit])


def hashtag_candidates(tag: Hashtag, *, limit: int = 60) -> list[dict]:
    """Candidates whose visible comments use the tag, most tagged first."""
    return list(
        CommentHashtag.objects.filter(
            hashtag=tag, candidate__isnull=False, comment__hidden_at__isnull=True
        )
        .values("candidate_id", "candidate__detectid")
        .annotate(n=Count("pk"))
        .order_by("-n", "candidate__detectid")[:limit]
    )


def hashtag_comments(tag: Hashtag, *, limit: int = 50) -> QuerySet:
    return (
        Comment.objects.filter(tags__hashtag=tag, hidden_at__isnull=True)
        .select_related("author", "thread__candidate", "thread__board")
        .order_by("-created_at")[:limit]
    )


def unread_count(user) -> int:
    return Notification.objects.filter(recipient=user, read_at__isnull=True).count()


def notifications(user, *, limit: int = 100) -> list[Notification]:
    return list(
        Notification.objects.filter(recipient=user)
        .select_related("comment__author", "comment__thread__candidate", "comment__thread__board")
        .order_by("-created_at", "-pk")[:limit]
    )


def has_open_flag(*, candidate_id: int, user) -> bool:
    return Flag.objects.filter(
        candidate_id=candidate_id, author_id=user.pk, resolved_at__isnull=True
    ).exists()


# --- the console ------------------------------------------------------------------------


def open_flags_by_candidate(*, limit: int = 100) -> list[dict]:
    """Candidates with open flags: how many, for which reasons, how discussed, oldest
    first within the most flagged."""
    rows = list(
        Flag.objects.filter(resolved_at__isnull=True)
        .values("candidate_id", "candidate__detectid", "candidate__sn", "candidate__wave",
                "candidate__status", "candidate__talk_thread__n_comments")
        .annotate(
            n_flags=Count("pk"),
            n_interesting=Count("pk", filter=Q(reason=Flag.Reason.INTERESTING)),
            n_artefact=Count("pk", filter=Q(reason=Flag.Reason.ARTEFACT)),
            n_broken=Count("pk", filter=Q(reason=Flag.Reason.BROKEN)),
            first=Max("created_at"),
        )
        .order_by("-n_flags", "first")[:limit]
    )  # fmt: skip
    tags = tags_by_candidate([r["candidate_id"] for r in rows])
    for r in rows:
        r["tags"] = tags.get(r["candidate_id"], [])
    return rows


def well_discussed(*, limit: int = 20) -> list[Thread]:
    """Candidate threads with the most visible comments."""
    return list(
        Thread.objects.filter(candidate__isnull=False, n_comments__gt=0)
        .select_related("candidate")
        .order_by("-n_comments", "-last_post_at")[:limit]
    )


def tags_by_candidate(candidate_ids: list[int], *, per: int = 5) -> dict[int, list[tuple]]:
    out: dict[int, list[tuple]] = {}
    rows = (
        CommentHashtag.objects.filter(
            candidate_id__in=candidate_ids, comment__hidden_at__isnull=True
        )
        .values("candidate_id", "hashtag__name")
        .annotate(n=Count("pk"))
        .order_by("candidate_id", "-n", "hashtag__name")
    )
    for r in rows:
        got = out.setdefault(r["candidate_id"], [])
        if len(got) < per:
            got.append((r["hashtag__name"], r["n"]))
    return out


def open_reports(*, limit: int = 100) -> list[Report]:
    return list(
        Report.objects.filter(resolved_at__isnull=True)
        .select_related("comment__author", "comment__thread__candidate", "reporter")
        .order_by("created_at")[:limit]
    )


def active_suspensions(*, now) -> list[Suspension]:
    return list(
        Suspension.objects.filter(lifted_at__isnull=True)
        .exclude(until__lte=now)
        .select_related("user", "created_by")
        .order_by("-created_at")
    )
