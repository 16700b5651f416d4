"""Who may use the console: staff and members of the scientists group (EXPERT_GROUP).

Anonymous visitors are sent to log in; signed-in volunteers get 403 on every console page,
action, API and export. Every console view is wrapped in :func:`scientist_required`
(tests/test_console_access.py walks all console URLs to keep that true).
"""

from __future__ import annotations

from functools import wraps

from django.conf import settings
from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied


def is_scientist(user) -> bool:
    if not getattr(user, "is_authenticated", False) or not user.is_active:
        return False
    if user.is_staff:
        return True
    return user.groups.filter(name=settings.EXPERT_GROUP).exists()


def scientist_required(view):
    @wraps(view)
    def wrapped(request, *args, **kwargs):
        if not request.user.is_authenticated:
            return redirect_to_login(request.get_full_path())
        if not is_scientist(request.user):
            raise PermissionDenied("The console is for the survey's scientists.")
        return view(request, *args, **kwargs)

    wrapped.scientist_only = True  # the access test checks every console view carries it
    return wrapped
