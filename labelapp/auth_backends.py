"""The authentication backend: Django's ModelBackend behind the one log-in limiter
(services.login_guard). A locked username is refused inside ``authenticate``, so no log-in
form (the volunteer one, the admin's) can let it in; every failed ``authenticate`` is
counted through the ``user_login_failed`` signal, whichever form it came from."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.contrib.auth.backends import ModelBackend
from django.contrib.auth.signals import user_login_failed
from django.core.exceptions import PermissionDenied
from django.dispatch import receiver

from labelapp.services.operations import login_guard


class LockoutModelBackend(ModelBackend):
    def authenticate(self, request, username=None, password=None, **kwargs):
        if username is None:
            username = kwargs.get(get_user_model().USERNAME_FIELD)
        if username is not None and login_guard.is_locked(username=username):
            raise PermissionDenied("this username is locked after repeated failed log-ins")
        return super().authenticate(request, username=username, password=password, **kwargs)


@receiver(user_login_failed, dispatch_uid="labelapp.login_failure")
def _count_failure(sender, credentials, request=None, **kwargs):
    username = credentials.get(get_user_model().USERNAME_FIELD) or credentials.get("username")
    if username:
        login_guard.note_login_failure(username=username)
