"""Template context shared by every page."""

from labelapp.views.console.access import is_scientist


def console(request) -> dict:
    """Whether to show the console link (one group lookup, only for signed-in users)."""
    user = getattr(request, "user", None)
    return {"show_console": bool(user and user.is_authenticated and is_scientist(user))}
