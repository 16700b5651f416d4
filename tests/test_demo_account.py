"""The demo's scientist login: a fresh random password each start, refused in production."""

import pytest
from django.contrib.auth.models import User

from labelapp.services.operations.demo_account import DemoAccountRefused, reset_demo_scientist

pytestmark = pytest.mark.django_db


def test_the_demo_scientist_can_open_the_console_with_the_printed_password(client):
    username, password = reset_demo_scientist()
    assert client.login(username=username, password=password)
    assert client.get("/console/").status_code == 200


def test_each_start_sets_a_new_password_and_the_old_one_stops_working(client):
    username, first = reset_demo_scientist()
    _, second = reset_demo_scientist()
    assert first != second and len(second) >= 16
    assert not client.login(username=username, password=first)
    assert client.login(username=username, password=second)
    assert User.objects.filter(username=username).count() == 1


def test_refused_under_production_settings(settings):
    settings.PRODUCTION = True
    with pytest.raises(DemoAccountRefused, match="DJANGO_ENV=production"):
        reset_demo_scientist()
    assert not User.objects.exists()
