"""Who may use the console: staff and members of the scientists group (EXPERT_GROUP).

Anonymous visitors are sent to log in; signed-in volunteers get 403 on every console page,
action, API and export. Every console view is wrapped in :func:`scientist_required`
(tests/test_console_access.py walks all console URLs to keep that true).
"""

from __future__ import annotations

from functools import wraps

from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied

from labelapp.selectors.volunteers import is_expert


def is_scientist(user) -> bool:
    """A scientist is an expert (:func:`labelapp.selectors.volunteers.is_expert`)."""
    return is_expert(user)


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
