"""The demo's way into the scientist console: one account with a fresh random password.

Only for ``make demo`` on a laptop: refused under production settings (DJANGO_ENV=production),
where scientists get accounts from an operator (docs/deploy.md). The password is printed once
by ``manage.py run_demo`` and stored nowhere but as Django's hash.
"""

from __future__ import annotations

import secrets

from django.conf import settings
from django.contrib.auth.models import Group, User
from django.db import transaction

from labelapp.errors import Conflict

DEMO_SCIENTIST = "demo-scientist"


class DemoAccountRefused(Conflict):
    pass


@transaction.atomic
def reset_demo_scientist(*, username: str = DEMO_SCIENTIST) -> tuple[str, str]:
    """Create (or reset) the demo scientist in the experts group; returns (username, password).
    Every call sets a new password, so the one printed last is the one that works."""
    if settings.PRODUCTION:
        raise DemoAccountRefused(
            "the demo scientist account is refused when DJANGO_ENV=production: create real "
            "accounts with `manage.py createsuperuser` or add users to the "
            f"{settings.EXPERT_GROUP!r} group in the admin"
        )
    password = secrets.token_urlsafe(12)
    user, _ = User.objects.get_or_create(username=username)
    user.set_password(password)
    user.is_active = True
    user.save()
    user.groups.add(Group.objects.get_or_create(name=settings.EXPERT_GROUP)[0])
    return username, password
