"""Settings helpers fail loudly on bad values instead of silently using a default."""

import pytest
from django.core.exceptions import ImproperlyConfigured

from labelapp.env import env_bool, env_float, env_int, env_list


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


def test_env_float_names_the_variable_on_a_bad_value(monkeypatch):
    assert env_float("LABELAPP_X", 0.5) == 0.5
    monkeypatch.setenv("LABELAPP_X", "0.97")
    assert env_float("LABELAPP_X", 0.5, low=0.5, high=1.0) == 0.97
    for bad, why in (("high", "not a number"), ("nan", "not a finite"), ("1.5", "outside")):
        monkeypatch.setenv("LABELAPP_X", bad)
        with pytest.raises(ImproperlyConfigured, match=f"LABELAPP_X='{bad}' is {why}"):
            env_float("LABELAPP_X", 0.5, low=0.0, high=1.0)


def test_settings_refuse_a_bad_float_naming_it():
    """The settings module itself: a bad retirement threshold stops start-up by name."""
    import os
    import subprocess
    import sys

    env = {**os.environ, "LABELAPP_RETIRE_P_HI": "0,95"}
    out = subprocess.run(
        [sys.executable, "-c", "import django; django.setup()"],
        env=env | {"DJANGO_SETTINGS_MODULE": "labelapp.settings"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode != 0 and "LABELAPP_RETIRE_P_HI='0,95' is not a number" in out.stderr
