"""Template context shared by every page."""

from labelapp.views.console.access import is_scientist


def console(request) -> dict:
    """Whether to show the console link (one group lookup, only for signed-in users)."""
    user = getattr(request, "user", None)
    return {"show_console": bool(user and user.is_authenticated and is_scientist(user))}


def talk(request) -> dict:
    """Unread Talk notifications for the nav (one indexed COUNT, signed-in users only)."""
    user = getattr(request, "user", None)
    if not (user and user.is_authenticated):
        return {"talk_unread": 0}
    from labelapp.selectors.talk import unread_count

    return {"talk_unread": unread_count(user)}
