"""Talk pages (services.community.talk does the work, selectors.talk reads). Thin.

Reading is open; every write is a POST form with Django's CSRF token. A refused post
re-renders its page with the message and the text that was typed, with the error's status
(400 bad input, 403 suspended or not allowed, 429 too fast); a post without an account goes
to the log-in page.
"""

from __future__ import annotations

import re

from django.contrib import messages
from django.core.paginator import Paginator
from django.http import Http404
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext as _
from django.utils.translation import ngettext
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from labelapp.errors import Forbidden, NotFound, PlatformError, Unauthenticated
from labelapp.models import Flag, Hashtag, Thread
from labelapp.selectors import talk as reads
from labelapp.services.community import talk
from labelapp.services.crowd.volunteers import get_volunteer
from labelapp.views.errors import http_status

TAG_RE = re.compile(r"^[a-z][a-z0-9_-]{1,39}$")


def _viewer(request):
    return get_volunteer(session=request.session, user=request.user)


def _login(request, back: str):
    messages.info(request, _("Log in or sign up to take part in Talk."))
    return redirect(f"{reverse('login')}?next={back}")


def _back(request, default: str) -> str:
    target = request.POST.get("next") or ""
    if url_has_allowed_host_and_scheme(target, {request.get_host()}, request.is_secure()):
        return target
    return default


def _refused(request, exc: PlatformError, back: str):
    """A moderation or report action that was refused: its own small page, with its status."""
    if isinstance(exc, Unauthenticated):
        return _login(request, back)
    return render(
        request,
        "talk/refused.html",
        {"message": exc.message, "back": back},
        status=http_status(exc),
    )


def _comment_rows(request, comments) -> list[dict]:
    comments = list(comments)
    bodies = talk.render_bodies([c.body for c in comments])
    user = request.user
    signed_in = user.is_authenticated
    moderator = talk.is_moderator(user)
    return [
        {
            "c": c,
            "html": html,
            "can_report": signed_in and c.author_id != user.pk and not c.hidden,
            "can_moderate": moderator,
            "can_suspend": moderator and c.author_id != user.pk,
        }
        for c, html in zip(comments, bodies, strict=True)
    ]


def _talk_context(request) -> dict:
    user = request.user
    return {
        "signed_in": user.is_authenticated,
        "moderator": talk.is_moderator(user),
        "suspension": talk.active_suspension(user) if user.is_authenticated else None,
        "body_max": talk.BODY_MAX,
    }


# --- home, boards, threads --------------------------------------------------------------


@require_GET
def talk_home(request):
    boards = talk.ensure_boards()
    return render(
        request,
        "talk/home.html",
        {
            "boards": reads.boards_with_counts(boards),
            "recent": reads.recent_candidate_threads(),
            "tags": reads.top_hashtags(limit=20),
        },
    )


@require_GET
def board(request, board: str):
    try:
        the_board = talk.get_board(board)
    except NotFound as exc:
        raise Http404(exc.message) from None
    return _board_page(request, the_board)


def _board_page(request, the_board, *, error: str = "", form=None, status: int = 200):
    page = Paginator(reads.board_threads(the_board), reads.THREADS_PER_PAGE).get_page(
        request.GET.get("page")
    )
    return render(
        request,
        "talk/board.html",
        {
            "board": the_board,
            "page": page,
            "error": error,
            "form": form or {},
            "title_max": talk.TITLE_MAX,
            **_talk_context(request),
        },
        status=status,
    )


@require_POST
def thread_create(request, board: str):
    try:
        the_board = talk.get_board(board)
    except NotFound as exc:
        raise Http404(exc.message) from None
    try:
        thread = talk.create_thread(
            user=request.user,
            board_slug=the_board.slug,
            title=request.POST.get("title", ""),
            body=request.POST.get("body", ""),
        )
    except Unauthenticated:
        return _login(request, reverse("talk-board", args=[the_board.slug]))
    except PlatformError as exc:
        return _board_page(
            request, the_board, error=exc.message, form=request.POST, status=http_status(exc)
        )
    return redirect("talk-thread", thread_id=thread.pk)


@require_GET
def thread(request, thread_id: int):
    the_thread = Thread.objects.select_related("board", "candidate").filter(pk=thread_id).first()
    if the_thread is None:
        raise Http404("there is no such thread")
    if the_thread.candidate is not None:
        return redirect("talk-candidate", detectid=the_thread.candidate.detectid)
    return _thread_page(request, the_thread)


def _thread_page(request, the_thread, *, error: str = "", body: str = "", status: int = 200):
    talk.mark_thread_read(user=request.user, thread=the_thread)
    moderator = talk.is_moderator(request.user)
    page = Paginator(
        reads.thread_comments(the_thread, include_hidden=moderator), reads.COMMENTS_PER_PAGE
    ).get_page(request.GET.get("page"))
    return render(
        request,
        "talk/thread.html",
        {
            "thread": the_thread,
            "page": page,
            "rows": _comment_rows(request, page.object_list),
            "error": error,
            "body": body,
            **_talk_context(request),
        },
        status=status,
    )


@require_POST
def comment_create(request, thread_id: int):
    the_thread = Thread.objects.select_related("board", "candidate").filter(pk=thread_id).first()
    if the_thread is None:
        raise Http404("there is no such thread")
    if the_thread.candidate is not None:  # a candidate's thread has its own form and rules
        return candidate_comment(request, the_thread.candidate.detectid)
    try:
        comment = talk.post_comment(
            user=request.user,
            volunteer=_viewer(request),
            thread_id=the_thread.pk,
            body=request.POST.get("body", ""),
            reply_to=request.POST.get("reply_to") or None,
        )
    except Unauthenticated:
        return _login(request, reverse("talk-thread", args=[the_thread.pk]))
    except PlatformError as exc:
        return _thread_page(
            request,
            the_thread,
            error=exc.message,
            body=request.POST.get("body", ""),
            status=http_status(exc),
        )
    return redirect(_last_page_url(reverse("talk-thread", args=[the_thread.pk]), comment))


def _last_page_url(url: str, comment) -> str:
    n = comment.thread.comments.filter(hidden_at__isnull=True).count()
    page = max(1, (n + reads.COMMENTS_PER_PAGE - 1) // reads.COMMENTS_PER_PAGE)
    return f"{url}?page={page}#comment-{comment.pk}" if page > 1 else f"{url}#comment-{comment.pk}"


# --- a candidate's thread ---------------------------------------------------------------


@require_GET
def candidate(request, detectid: int):
    try:
        cand = talk.get_candidate(detectid)
    except NotFound as exc:
        raise Http404(exc.message) from None
    return _candidate_page(request, cand)


def _candidate_page(request, cand, *, error: str = "", body: str = "", flag=None, status=200):
    volunteer = _viewer(request)
    readable = talk.can_read_candidate(candidate=cand, user=request.user, volunteer=volunteer)
    the_thread = Thread.objects.filter(candidate=cand).first()
    moderator = talk.is_moderator(request.user)
    page = rows = None
    if readable and the_thread is not None:
        talk.mark_thread_read(user=request.user, thread=the_thread)
        page = Paginator(
            reads.thread_comments(the_thread, include_hidden=moderator), reads.COMMENTS_PER_PAGE
        ).get_page(request.GET.get("page"))
        rows = _comment_rows(request, page.object_list)
    return render(
        request,
        "talk/candidate.html",
        {
            "candidate": cand,
            "readable": readable,
            "kept_closed": not readable
            and talk.closed_after_classifying(
                candidate=cand, user=request.user, volunteer=volunteer
            ),
            "thread": the_thread,
            "page": page,
            "rows": rows or [],
            "error": error,
            "body": body,
            "flag_form": flag or {},
            "flag_reasons": Flag.Reason.choices,
            "flagged": request.user.is_authenticated
            and reads.has_open_flag(candidate_id=cand.pk, user=request.user),
            "flag_text_max": talk.FLAG_TEXT_MAX,
            **_talk_context(request),
        },
        status=status,
    )


@require_POST
def candidate_comment(request, detectid: int):
    back = reverse("talk-candidate", args=[detectid])
    try:
        cand = talk.get_candidate(detectid)
    except NotFound as exc:
        raise Http404(exc.message) from None
    try:
        comment = talk.post_candidate_comment(
            user=request.user,
            volunteer=_viewer(request),
            detectid=detectid,
            body=request.POST.get("body", ""),
        )
    except Unauthenticated:
        return _login(request, back)
    except PlatformError as exc:
        return _candidate_page(
            request,
            cand,
            error=exc.message,
            body=request.POST.get("body", ""),
            status=http_status(exc),
        )
    return redirect(_last_page_url(back, comment))


@require_POST
def candidate_flag(request, detectid: int):
    back = reverse("talk-candidate", args=[detectid])
    try:
        cand = talk.get_candidate(detectid)
    except NotFound as exc:
        raise Http404(exc.message) from None
    try:
        flag = talk.flag_candidate(
            user=request.user,
            volunteer=_viewer(request),
            detectid=detectid,
            reason=request.POST.get("reason", ""),
            text=request.POST.get("text", ""),
        )
    except Unauthenticated:
        return _login(request, back)
    except PlatformError as exc:
        return _candidate_page(
            request, cand, error=exc.message, flag=request.POST, status=http_status(exc)
        )
    messages.success(
        request,
        _(
            "Flagged for the science team (%(reason)s). Their answers will appear in this "
            "thread and in your notifications."
        )
        % {"reason": flag.get_reason_display()},
    )
    return redirect(_last_page_url(back, flag.comment))


# --- hashtags ---------------------------------------------------------------------------


@require_GET
def hashtag(request, tag: str):
    name = tag.lower()
    if not TAG_RE.match(name):
        raise Http404("not a hashtag: a letter, then letters, digits, - or _ (2-40 characters)")
    the_tag = Hashtag.objects.filter(name=name).first()
    volunteer = _viewer(request)
    comments, candidates, n_closed = [], [], 0
    if the_tag is not None:
        tagged = list(reads.hashtag_comments(the_tag))
        tagged_candidates = reads.hashtag_candidates(the_tag)
        # a tag on a candidate the viewer has not classified says too much (#cosmic-ray on
        # a gold standard): those threads' comments and rows are left out, and counted
        readable = talk.readable_candidates(
            candidate_ids={c.thread.candidate_id for c in tagged if c.thread.candidate_id}
            | {r["candidate_id"] for r in tagged_candidates},
            user=request.user,
            volunteer=volunteer,
        )
        shown = [
            c for c in tagged if c.thread.candidate_id is None or c.thread.candidate_id in readable
        ]
        n_closed = len(tagged) - len(shown)
        comments = _comment_rows(request, shown)
        candidates = [r for r in tagged_candidates if r["candidate_id"] in readable]
    return render(
        request,
        "talk/hashtag.html",
        {
            "name": name,
            "tag": the_tag,
            "rows": comments,
            "candidates": candidates,
            "n_closed": n_closed,
        },
    )


# --- moderation -------------------------------------------------------------------------


@require_POST
def comment_report(request, comment_id: int):
    back = _back(request, reverse("talk"))
    try:
        created = talk.report_comment(
            user=request.user, comment_id=comment_id, reason=request.POST.get("reason", "")
        )
    except NotFound as exc:
        raise Http404(exc.message) from None
    except PlatformError as exc:
        return _refused(request, exc, back)
    messages.success(
        request,
        _("Reported: the moderators will have a look. Thank you.")
        if created
        else _("You reported this comment already: the moderators will have a look."),
    )
    return redirect(back)


@require_POST
def comment_hide(request, comment_id: int):
    back = _back(request, reverse("talk"))
    hide = request.POST.get("hidden", "1") not in ("0", "false", "")
    try:
        changed = talk.set_comment_hidden(
            user=request.user,
            comment_id=comment_id,
            hidden=hide,
            reason=request.POST.get("reason", ""),
        )
    except NotFound as exc:
        raise Http404(exc.message) from None
    except PlatformError as exc:
        return _refused(request, exc, back)
    if changed:
        messages.success(
            request,
            _("Comment hidden (kept for the record).") if hide else _("Comment shown again."),
        )
    else:
        messages.info(request, _("Nothing changed: the comment already was in that state."))
    return redirect(back)


@require_POST
def comment_suspend(request, comment_id: int):
    """Suspend the author of a comment from Talk."""
    from labelapp.models import Comment

    back = _back(request, reverse("talk"))
    comment = Comment.objects.filter(pk=comment_id).select_related("author").first()
    if comment is None:
        raise Http404("there is no such comment")
    try:
        talk.suspend_user(
            moderator=request.user,
            user_id=comment.author_id,
            reason=request.POST.get("reason", ""),
            days=request.POST.get("days", "").strip() or None,
        )
    except PlatformError as exc:
        return _refused(request, exc, back)
    messages.success(
        request, _("%(name)s may not post on Talk now.") % {"name": comment.author.get_username()}
    )
    return redirect(back)


@require_GET
def moderation(request):
    if not request.user.is_authenticated:
        return _login(request, reverse("talk-moderation"))
    if not talk.is_moderator(request.user):
        return _refused(request, Forbidden(_("this page is for Talk moderators")), reverse("talk"))
    reports = reads.open_reports()
    bodies = talk.render_bodies([r.comment.body for r in reports])
    return render(
        request,
        "talk/moderation.html",
        {
            "reports": list(zip(reports, bodies, strict=True)),
            "suspensions": reads.active_suspensions(now=timezone.now()),
        },
    )


@require_POST
def report_dismiss(request, pk: int):
    try:
        talk.dismiss_report(user=request.user, report_id=pk)
    except PlatformError as exc:
        return _refused(request, exc, reverse("talk-moderation"))
    messages.success(request, _("Report dismissed."))
    return redirect("talk-moderation")


@require_POST
def suspension_lift(request, pk: int):
    try:
        lifted = talk.lift_suspension(moderator=request.user, suspension_id=pk)
    except PlatformError as exc:
        return _refused(request, exc, reverse("talk-moderation"))
    messages.success(
        request, _("Suspension lifted.") if lifted else _("That suspension was not active.")
    )
    return redirect("talk-moderation")


# --- notifications ----------------------------------------------------------------------


@require_http_methods(["GET", "POST"])
def notifications(request):
    if not request.user.is_authenticated:
        return _login(request, reverse("talk-notifications"))
    if request.method == "POST":
        ids = request.POST.getlist("id") or None
        try:
            n = talk.mark_notifications_read(user=request.user, ids=ids)
        except PlatformError as exc:
            return _refused(request, exc, reverse("talk-notifications"))
        messages.success(
            request,
            ngettext("%(n)d notification marked read.", "%(n)d notifications marked read.", n)
            % {"n": n},
        )
        return redirect("talk-notifications")
    return render(
        request,
        "talk/notifications.html",
        {"notifications": reads.notifications(request.user)},
    )
