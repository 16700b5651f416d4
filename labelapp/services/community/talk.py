"""Talk: boards and candidate threads, comments with hashtags, flags to the science team,
moderation and notifications (issue 28). ``check_*`` validate; the others mutate, each in
one transaction (with its ``record_audit`` where a moderator or scientist acts).

Who may do what (tests/test_talk.py):

- reading is open to everyone, except that a candidate's thread stays closed to a volunteer
  who has not classified that candidate while it is in the queue or a gold standard
  (:func:`can_read_candidate`): reading others' opinions first would sway the vote, and a
  thread on a gold standard would give its answer away (docs/security.md, "gold peekers");
  an exam gold standard's thread stays closed even then (its answer must never be told);
- posting (comments, threads, flags, reports) needs an account (not an anonymous session),
  no active suspension, and stays within ``TALK_POST_RATE`` (reports ``TALK_REPORT_RATE``);
- moderators (the science team, staff, and members of ``TALK_MODERATOR_GROUP``) hide and
  show comments and suspend accounts; only the science team acts on flags (gold, experts).

A comment's body is stored as typed and rendered by :mod:`.markup` when shown.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F, Q
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext, pgettext_lazy

from labelapp.errors import Forbidden, InvalidInput, NotFound, RateLimited, Unauthenticated
from labelapp.models import (
    Board,
    Candidate,
    Comment,
    CommentHashtag,
    Flag,
    GoldStandard,
    Hashtag,
    Notification,
    Report,
    Suspension,
    Thread,
    Volunteer,
    Vote,
)
from labelapp.selectors.volunteers import is_expert
from labelapp.services.community import markup
from labelapp.services.crowd import curation
from labelapp.services.operations.audit import record_audit
from labelapp.services.operations.ratelimit import hit_rate_limit

BODY_MAX = 5000  # characters of a comment
TITLE_MAX = 120
FLAG_TEXT_MAX = 1000
REPORT_REASON_MAX = 300
MODERATION_REASON_MAX = 200
SUSPEND_MAX_DAYS = 3650
NOTIFY_MAX = 200  # participants told about one reply (the most recent first)
TAGS_PER_COMMENT = 20
BOARDS = [
    ("general", "General", "Anything about the project and the sky it looks at.", 1),
    ("science", "Science", "Lines, redshifts, what the candidates are: ask and explain.", 2),
    ("help", "Help", "How to classify, what the pictures show, how the site works.", 3),
    ("bugs", "Bugs", "Something broken on the site? Say what you did and what you saw.", 4),
]


# --- who may do what --------------------------------------------------------------------


def is_science_team(user) -> bool:
    return is_expert(user)


def is_moderator(user) -> bool:
    if not getattr(user, "is_authenticated", False) or not user.is_active:
        return False
    if is_expert(user):
        return True
    return user.groups.filter(name=settings.TALK_MODERATOR_GROUP).exists()


def active_suspension(user) -> Suspension | None:
    now = timezone.now()
    return (
        Suspension.objects.filter(user_id=user.pk, lifted_at__isnull=True)
        .exclude(until__lte=now)
        .order_by("-created_at")
        .first()
    )


def check_can_post(*, user, kind: str = "post") -> None:
    """Raise why ``user`` may not post now: no account, suspended, or over the rate limit
    (which this counts: call it once per post)."""
    _require_account(user)
    suspension = active_suspension(user)
    if suspension is not None:
        if suspension.until:
            raise Forbidden(
                gettext(
                    "your account may not post on Talk until %(until)s UTC (a moderator "
                    "suspended it: %(reason)s); you can still classify"
                )
                % {"until": f"{suspension.until:%Y-%m-%d %H:%M}", "reason": suspension.reason}
            )
        raise Forbidden(
            gettext(
                "your account may not post on Talk for now (a moderator suspended it: "
                "%(reason)s); you can still classify"
            )
            % {"reason": suspension.reason}
        )
    if is_moderator(user):
        return
    limit, window_s = settings.TALK_REPORT_RATE if kind == "report" else settings.TALK_POST_RATE
    decision = hit_rate_limit(key=f"talk:{kind}:{user.pk}", limit=limit, window_s=window_s)
    if not decision.allowed:
        raise RateLimited(
            (
                gettext(
                    "that is more than %(limit)d reports in %(minutes)d minute(s): wait "
                    "%(wait)d s and send it again (your text is kept below)"
                )
                if kind == "report"
                else gettext(
                    "that is more than %(limit)d posts in %(minutes)d minute(s): wait "
                    "%(wait)d s and send it again (your text is kept below)"
                )
            )
            % {"limit": limit, "minutes": window_s // 60 or 1, "wait": decision.retry_after_s},
            retry_after_s=decision.retry_after_s,
        )


def _require_account(user) -> None:
    if not getattr(user, "is_authenticated", False):
        raise Unauthenticated(
            gettext("log in or sign up to take part in Talk (reading needs no account)")
        )


def check_moderator(user) -> None:
    if not is_moderator(user):
        raise Forbidden(gettext("only Talk moderators and the science team can do this"))


def can_read_candidate(*, candidate: Candidate, user, volunteer: Volunteer | None) -> bool:
    """May this viewer read the candidate's thread? See the module docstring."""
    return candidate.pk in readable_candidates(
        candidate_ids=[candidate.pk], user=user, volunteer=volunteer
    )


def closed_after_classifying(*, candidate: Candidate, user, volunteer: Volunteer | None) -> bool:
    """Is this a thread the viewer cannot read although they classified the candidate (an
    exam gold standard's)? The page then says so instead of asking them to classify it."""
    return GoldStandard.objects.filter(
        candidate=candidate, active=True, exam=True
    ).exists() and candidate.pk in _classified(
        candidate_ids=[candidate.pk], user=user, volunteer=volunteer
    )


def _classified(*, candidate_ids, user, volunteer: Volunteer | None) -> set[int]:
    """The candidates the viewer (session or account) has a vote on."""
    who = Q()
    if volunteer is not None:
        who |= Q(volunteer=volunteer)
    if getattr(user, "is_authenticated", False):
        who |= Q(volunteer__user_id=user.pk)  # the account's volunteer, however found
    if not who:
        return set()
    return set(
        Vote.objects.filter(who, candidate_id__in=candidate_ids).values_list(
            "candidate_id", flat=True
        )
    )


def readable_candidates(*, candidate_ids, user, volunteer: Volunteer | None) -> set[int]:
    """Which of these candidates (primary keys) the viewer may read the threads of, in three
    queries whatever their number: moderators read all; a candidate in the queue or an active
    gold standard only once the viewer (session or account) has classified it; an active
    exam gold standard never (others' comments would tell its answer, which proves volunteers:
    docs/security.md)."""
    ids = set(candidate_ids)
    if not ids or is_moderator(user):
        return ids
    in_play = set(
        Candidate.objects.filter(pk__in=ids, status=Candidate.Status.ACTIVE).values_list(
            "pk", flat=True
        )
    ) | set(
        GoldStandard.objects.filter(candidate_id__in=ids, active=True).values_list(
            "candidate_id", flat=True
        )
    )
    if not in_play:
        return ids
    voted = _classified(candidate_ids=in_play, user=user, volunteer=volunteer)
    exam = set(
        GoldStandard.objects.filter(candidate_id__in=in_play, active=True, exam=True).values_list(
            "candidate_id", flat=True
        )
    )
    return ids - (in_play - (voted - exam))


# --- text -------------------------------------------------------------------------------

# What _clean's messages call each field (the subject of their sentences).
FIELD_NAMES = {
    "comment": pgettext_lazy("talk field", "the comment"),
    "title": pgettext_lazy("talk field", "the title"),
    "note": pgettext_lazy("talk field", "the note"),
    "reason": pgettext_lazy("talk field", "the reason"),
}


def _clean(value, *, field: str, max_len: int, required: bool, multiline: bool) -> str:
    if value is None:
        value = ""
    if not isinstance(value, str):
        raise InvalidInput(gettext("%(field)s must be text") % {"field": FIELD_NAMES[field]})
    value = unicodedata.normalize("NFC", markup.normalise(value))
    allowed = "\n\t" if multiline else ""
    if any(unicodedata.category(ch) in ("Cc", "Cf") and ch not in allowed for ch in value):
        raise InvalidInput(
            gettext("%(field)s contains invisible control characters: remove them")
            % {"field": FIELD_NAMES[field]}
        )
    if required and not value:
        raise InvalidInput(
            gettext("%(field)s is empty: write something first") % {"field": FIELD_NAMES[field]}
        )
    if len(value) > max_len:
        raise InvalidInput(
            gettext("%(field)s is %(n)d characters long: %(max)d at most")
            % {"field": FIELD_NAMES[field], "n": len(value), "max": max_len}
        )
    return value


def check_body(body) -> str:
    return _clean(body, field="comment", max_len=BODY_MAX, required=True, multiline=True)


def check_title(title) -> str:
    return _clean(title, field="title", max_len=TITLE_MAX, required=True, multiline=False)


def render_bodies(bodies: list[str]) -> list[str]:
    """HTML of each body (markup.render), with the candidates they name looked up at once:
    a number becomes a link only where such a candidate exists."""
    wanted = set()
    for body in bodies:
        wanted |= markup.extract(body).detectids
    known = (
        set(Candidate.objects.filter(detectid__in=wanted).values_list("detectid", flat=True))
        if wanted
        else set()
    )

    def candidate_url(detectid: int) -> str | None:
        return reverse("talk-candidate", args=[detectid]) if detectid in known else None

    def tag_url(name: str) -> str:
        return reverse("talk-tag", args=[name])

    return [markup.render(b, tag_url=tag_url, candidate_url=candidate_url) for b in bodies]


# --- boards and threads -----------------------------------------------------------------


def ensure_boards() -> list[Board]:
    """The boards, creating the default four when there are none."""
    boards = list(Board.objects.all())
    if not boards:
        for slug, name, description, position in BOARDS:
            Board.objects.get_or_create(
                slug=slug, defaults={"name": name, "description": description, "position": position}
            )
        boards = list(Board.objects.all())
    return boards


def get_board(slug: str) -> Board:
    ensure_boards()
    board = Board.objects.filter(slug=str(slug)[:40]).first()
    if board is None:
        raise NotFound(f"there is no board called {str(slug)[:40]!r}")
    return board


def get_candidate(detectid) -> Candidate:
    try:
        detectid = int(detectid)
    except (TypeError, ValueError):
        raise InvalidInput(f"detectid must be a whole number, not {str(detectid)[:40]!r}") from None
    candidate = Candidate.objects.filter(detectid=detectid).first()
    if candidate is None:
        raise NotFound(f"there is no candidate with detectid {detectid}")
    return candidate


def create_thread(*, user, board_slug: str, title, body) -> Thread:
    """A new thread on a board with its first comment."""
    _require_account(user)
    board = get_board(board_slug)
    title, body = check_title(title), check_body(body)
    check_can_post(user=user)
    with transaction.atomic():
        thread = Thread.objects.create(
            board=board, title=title, created_by=user, last_post_at=timezone.now()
        )
        _add_comment(thread=thread, user=user, body=body)
    return thread


def post_comment(*, user, volunteer: Volunteer | None, thread_id, body, reply_to=None) -> Comment:
    """A comment in an existing thread (a board's or a candidate's)."""
    _require_account(user)
    thread = Thread.objects.select_related("candidate").filter(pk=_int(thread_id, "thread")).first()
    if thread is None:
        raise NotFound(gettext("there is no such thread"))
    if thread.candidate is not None and not can_read_candidate(
        candidate=thread.candidate, user=user, volunteer=volunteer
    ):
        raise Forbidden(gettext("classify this candidate first, then join its discussion"))
    body = check_body(body)
    parent = _reply_to(thread, reply_to)
    check_can_post(user=user)
    with transaction.atomic():
        return _add_comment(thread=thread, user=user, body=body, reply_to=parent)


def post_candidate_comment(*, user, volunteer: Volunteer | None, detectid, body) -> Comment:
    """A comment in a candidate's thread (made with its first comment)."""
    _require_account(user)
    candidate = get_candidate(detectid)
    if not can_read_candidate(candidate=candidate, user=user, volunteer=volunteer):
        raise Forbidden(gettext("classify this candidate first, then join its discussion"))
    body = check_body(body)
    check_can_post(user=user)
    with transaction.atomic():
        return _add_comment(thread=_candidate_thread(candidate, user), user=user, body=body)


def _int(raw, name: str) -> int:
    try:
        return int(raw)
    except (TypeError, ValueError):
        raise InvalidInput(f"{name} must be a whole number, not {str(raw)[:40]!r}") from None


def _reply_to(thread: Thread, raw) -> Comment | None:
    if raw in (None, ""):
        return None
    parent = Comment.objects.filter(pk=_int(raw, "reply_to"), thread=thread).first()
    if parent is None:
        raise InvalidInput(gettext("the comment you answer is not in this thread"))
    return parent


def _candidate_thread(candidate: Candidate, user) -> Thread:
    thread = Thread.objects.filter(candidate=candidate).first()
    if thread is not None:
        return thread
    try:
        with transaction.atomic():
            return Thread.objects.create(
                candidate=candidate, created_by=user, last_post_at=timezone.now()
            )
    except IntegrityError:  # the first two comments at once
        return Thread.objects.get(candidate=candidate)


def _add_comment(*, thread: Thread, user, body: str, reply_to: Comment | None = None) -> Comment:
    """Inside the caller's transaction: the comment, its hashtags, the thread's counters,
    and the notifications of everyone who took part before."""
    now = timezone.now()
    comment = Comment.objects.create(
        thread=thread,
        author=user,
        body=body,
        reply_to=reply_to,
        science_team=is_science_team(user),
    )
    _tag(comment, thread, markup.extract(body).hashtags, now)
    Thread.objects.filter(pk=thread.pk).update(n_comments=F("n_comments") + 1, last_post_at=now)
    _notify(comment, thread, reply_to)
    return comment


def _tag(comment: Comment, thread: Thread, names, now) -> None:
    names = sorted(names)[:TAGS_PER_COMMENT]
    if not names:
        return
    Hashtag.objects.bulk_create([Hashtag(name=n) for n in names], ignore_conflicts=True)
    tags = list(Hashtag.objects.filter(name__in=names))
    CommentHashtag.objects.bulk_create(
        [CommentHashtag(comment=comment, hashtag=t, candidate_id=thread.candidate_id) for t in tags]
    )
    Hashtag.objects.filter(pk__in=[t.pk for t in tags]).update(
        n_comments=F("n_comments") + 1, last_used_at=now
    )


def _notify(comment: Comment, thread: Thread, reply_to: Comment | None) -> None:
    participants = list(
        Comment.objects.filter(thread=thread, hidden_at__isnull=True)
        .exclude(author_id=comment.author_id)
        .order_by("-created_at")
        .values_list("author_id", flat=True)[: NOTIFY_MAX * 5]
    )
    recipients = []
    for uid in ([reply_to.author_id] if reply_to else []) + participants + [thread.created_by_id]:
        if uid and uid != comment.author_id and uid not in recipients:
            recipients.append(uid)
    kind = Notification.Kind.SCIENCE if comment.science_team else Notification.Kind.REPLY
    Notification.objects.bulk_create(
        [
            Notification(recipient_id=uid, comment=comment, kind=kind)
            for uid in recipients[:NOTIFY_MAX]
        ],
        ignore_conflicts=True,
    )


# --- flags to the science team ----------------------------------------------------------


def flag_candidate(*, user, volunteer: Volunteer | None, detectid, reason, text="") -> Flag:
    """A note to the science team about a candidate: a comment in its thread (where the
    team answers) that the console lists until a scientist acts on it."""
    _require_account(user)
    candidate = get_candidate(detectid)
    if reason not in Flag.Reason.values:
        choices = ", ".join(Flag.Reason.values)
        raise InvalidInput(
            gettext("say why you flag it: the reason must be one of %(choices)s")
            % {"choices": choices}
        )
    if not can_read_candidate(candidate=candidate, user=user, volunteer=volunteer):
        raise Forbidden(gettext("classify this candidate first, then flag it"))
    text = _clean(text, field="note", max_len=FLAG_TEXT_MAX, required=False, multiline=True)
    if (
        getattr(user, "is_authenticated", False)
        and Flag.objects.filter(candidate=candidate, author=user, resolved_at__isnull=True).exists()
    ):
        raise InvalidInput(
            gettext(
                "you flagged this candidate already and the science team has not looked yet: "
                "add to the discussion instead"
            )
        )
    check_can_post(user=user)
    try:
        with transaction.atomic():
            thread = _candidate_thread(candidate, user)
            comment = _add_comment(thread=thread, user=user, body=text)
            return Flag.objects.create(
                candidate=candidate, author=user, reason=reason, comment=comment
            )
    except IntegrityError:  # the same flag sent twice at once
        raise InvalidInput(gettext("you flagged this candidate already")) from None


@dataclass(frozen=True)
class FlagAction:
    detectid: int
    action: str
    flags_resolved: int
    changed: bool  # False: already in the expert queue (nothing changed there)


def act_on_flags(
    *, user, detectid, action: str, is_real=None, kind: str = "", feedback: str = ""
) -> FlagAction:
    """The science team's answer to a discussed candidate: make it a gold standard
    (``curation.flag_gold``), send it to the expert queue (``curation.flag_expert``), or just
    close its flags. Its open flags are resolved and the whole is audited, in one
    transaction. Nothing is posted in the thread: a thread saying "now gold" would give the
    answer away to volunteers who have not seen it yet."""
    if not is_science_team(user):
        raise Forbidden("only the science team acts on flags")
    candidate = get_candidate(detectid)
    if action not in ("gold", "expert", "close"):
        raise InvalidInput("action must be 'gold', 'expert' or 'close'")
    with transaction.atomic():
        changed = True
        if action == "gold":
            curation.flag_gold(
                detectid=candidate.detectid,
                is_real=curation.parse_is_real(is_real),
                kind=(kind or "").strip(),
                feedback=feedback or "",
                user=user,
            )
        elif action == "expert":
            changed = curation.flag_expert(detectid=candidate.detectid, user=user)
        open_flags = list(
            Flag.objects.select_for_update()
            .filter(candidate=candidate, resolved_at__isnull=True)
            .values_list("pk", flat=True)
        )
        Flag.objects.filter(pk__in=open_flags).update(
            resolved_at=timezone.now(), resolved_by=user, resolution=action
        )
        record_audit(
            user=user,
            action=f"talk_flags_{action}",
            target=f"candidate:{candidate.detectid}",
            detail={"flags": open_flags, "changed": changed},
        )
    return FlagAction(
        detectid=candidate.detectid, action=action, flags_resolved=len(open_flags), changed=changed
    )


# --- moderation -------------------------------------------------------------------------


def report_comment(*, user, comment_id, reason="") -> bool:
    """Report a comment to the moderators; False when this account reported it already."""
    _require_account(user)
    comment = Comment.objects.filter(pk=_int(comment_id, "comment")).first()
    if comment is None:
        raise NotFound("there is no such comment")
    reason = _clean(
        reason, field="reason", max_len=REPORT_REASON_MAX, required=False, multiline=False
    )
    if getattr(user, "is_authenticated", False) and comment.author_id == user.pk:
        raise InvalidInput(gettext("that is your own comment"))
    if (
        getattr(user, "is_authenticated", False)
        and Report.objects.filter(comment=comment, reporter=user).exists()
    ):
        return False
    check_can_post(user=user, kind="report")
    try:
        with transaction.atomic():
            Report.objects.create(comment=comment, reporter=user, reason=reason)
    except IntegrityError:
        return False
    return True


def set_comment_hidden(*, user, comment_id, hidden: bool, reason="") -> bool:
    """Hide a comment (kept, shown to moderators only) or show it again; audited. Returns
    False when it already was in that state (nothing changed, nothing audited)."""
    check_moderator(user)
    reason = _clean(
        reason, field="reason", max_len=MODERATION_REASON_MAX, required=False, multiline=False
    )
    with transaction.atomic():
        comment = Comment.objects.select_for_update().filter(pk=_int(comment_id, "comment")).first()
        if comment is None:
            raise NotFound("there is no such comment")
        if comment.hidden == hidden:
            return False
        now = timezone.now()
        step = -1 if hidden else 1
        if hidden:
            comment.hidden_at, comment.hidden_by, comment.hidden_reason = now, user, reason
            Report.objects.filter(comment=comment, resolved_at__isnull=True).update(
                resolved_at=now, resolved_by=user, resolution="hidden"
            )
            Notification.objects.filter(comment=comment, read_at__isnull=True).update(read_at=now)
        else:
            comment.hidden_at, comment.hidden_by, comment.hidden_reason = None, None, ""
        comment.save(update_fields=["hidden_at", "hidden_by", "hidden_reason"])
        Thread.objects.filter(pk=comment.thread_id).update(n_comments=F("n_comments") + step)
        Hashtag.objects.filter(uses__comment=comment).update(n_comments=F("n_comments") + step)
        record_audit(
            user=user,
            action="talk_hide" if hidden else "talk_unhide",
            target=f"comment:{comment.pk}",
            detail={"author": comment.author_id, "thread": comment.thread_id, "reason": reason},
        )
    return True


def dismiss_report(*, user, report_id) -> bool:
    check_moderator(user)
    with transaction.atomic():
        n = Report.objects.filter(pk=_int(report_id, "report"), resolved_at__isnull=True).update(
            resolved_at=timezone.now(), resolved_by=user, resolution="dismissed"
        )
        if n:
            record_audit(user=user, action="talk_report_dismiss", target=f"report:{report_id}")
    return bool(n)


def suspend_user(*, moderator, user_id, reason, days=None) -> Suspension:
    """Stop an account posting on Talk for ``days`` (None or empty: until lifted)."""
    from django.contrib.auth import get_user_model

    check_moderator(moderator)
    reason = _clean(
        reason, field="reason", max_len=MODERATION_REASON_MAX, required=True, multiline=False
    )
    until = None
    if days not in (None, ""):
        days = _int(days, "days")
        if not 1 <= days <= SUSPEND_MAX_DAYS:
            raise InvalidInput(f"days must be between 1 and {SUSPEND_MAX_DAYS} (empty: indefinite)")
        until = timezone.now() + timedelta(days=days)
    target = get_user_model().objects.filter(pk=_int(user_id, "user")).first()
    if target is None:
        raise NotFound("there is no such account")
    if target.pk == moderator.pk:
        raise InvalidInput(gettext("you cannot suspend yourself"))
    if is_moderator(target):
        raise Forbidden(
            gettext("moderators and the science team cannot be suspended here (ask an admin)")
        )
    with transaction.atomic():
        suspension = Suspension.objects.create(
            user=target, reason=reason, until=until, created_by=moderator
        )
        record_audit(
            user=moderator,
            action="talk_suspend",
            target=f"user:{target.pk}",
            detail={"username": target.get_username(), "reason": reason,
                    "until": until.isoformat() if until else None},
        )  # fmt: skip
    return suspension


def lift_suspension(*, moderator, suspension_id) -> bool:
    check_moderator(moderator)
    with transaction.atomic():
        suspension = (
            Suspension.objects.select_for_update()
            .filter(pk=_int(suspension_id, "suspension"), lifted_at__isnull=True)
            .first()
        )
        if suspension is None:
            return False
        suspension.lifted_at, suspension.lifted_by = timezone.now(), moderator
        suspension.save(update_fields=["lifted_at", "lifted_by"])
        record_audit(
            user=moderator, action="talk_unsuspend", target=f"user:{suspension.user_id}",
            detail={"suspension": suspension.pk},
        )  # fmt: skip
    return True


# --- notifications ----------------------------------------------------------------------


def mark_notifications_read(*, user, ids=None) -> int:
    """Mark the account's unread notifications read: all of them, or those in ``ids``."""
    if not getattr(user, "is_authenticated", False):
        raise Unauthenticated(gettext("log in to see your notifications"))
    qs = Notification.objects.filter(recipient=user, read_at__isnull=True)
    if ids is not None:
        qs = qs.filter(pk__in=[_int(i, "notification") for i in ids][:500])
    return qs.update(read_at=timezone.now())


def mark_thread_read(*, user, thread: Thread) -> int:
    """Opening a thread reads its notifications (no-op for visitors without an account)."""
    if not getattr(user, "is_authenticated", False):
        return 0
    return Notification.objects.filter(
        recipient=user, comment__thread=thread, read_at__isnull=True
    ).update(read_at=timezone.now())
