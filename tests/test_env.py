"""Settings helpers fail loudly on bad values instead of silently using a default."""

import pytest
from django.core.exceptions import ImproperlyConfigured

from labelapp.env import env_bool, env_int, env_list


def test_env_bool(monkeypatch):
    monkeypatch.setenv("X_FLAG", "yes")
    assert env_bool("X_FLAG", False) is True
    monkeypatch.setenv("X_FLAG", "0")
    assert env_bool("X_FLAG", True) is False
    monkeypatch.setenv("X_FLAG", "maybe")
    with pytest.raises(ImproperlyConfigured, match="X_FLAG='maybe' is not a boolean"):
        env_bool("X_FLAG", True)
    monkeypatch.delenv("X_FLAG")
    assert env_bool("X_FLAG", True) is True


def test_env_int_and_list(monkeypatch):
    monkeypatch.setenv("X_N", "12")
    assert env_int("X_N", 1) == 12
    monkeypatch.setenv("X_N", "twelve")
    with pytest.raises(ImproperlyConfigured, match="not an integer"):
        env_int("X_N", 1)
    monkeypatch.setenv("X_HOSTS", "a.org, b.org,")
    assert env_list("X_HOSTS", []) == ["a.org", "b.org"]
