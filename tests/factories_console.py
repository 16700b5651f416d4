"""Users for console tests: a scientist (in the experts group) and a plain volunteer."""

from django.conf import settings
from django.contrib.auth.models import Group, User

PASSWORD = "pw-Console-1"  # every account made here (the browser tests log in with it)


def make_scientist(username: str = "sci", **kw) -> User:
    user = User.objects.create_user(username=username, password=PASSWORD, **kw)
    group, _ = Group.objects.get_or_create(name=settings.EXPERT_GROUP)
    user.groups.add(group)
    return user


def make_account(username: str = "vol", **kw) -> User:
    return User.objects.create_user(username=username, password=PASSWORD, **kw)
