"""A fresh clone has no var/: every directory the platform writes to is created at start-up,
where the settings point (labelapp/datadirs.py), not as a side effect of another command."""

import subprocess
import sys
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured

from labelapp.datadirs import ensure_data_dirs

ROOT = Path(__file__).resolve().parent.parent


def _fresh_env(data_dir: Path) -> dict[str, str]:
    import os

    env = {k: v for k, v in os.environ.items() if not k.startswith(("LABELAPP_", "DJANGO_"))}
    env.update(LABELAPP_DATA_DIR=str(data_dir), DATABASE_URL="", REDIS_URL="")
    env.pop("CELERY_BROKER_URL", None)
    return env


def test_migrate_on_a_fresh_data_dir_creates_it_and_every_directory_under_it(tmp_path):
    data = tmp_path / "not" / "yet" / "there"
    result = subprocess.run(
        [sys.executable, "manage.py", "migrate", "--no-input"],
        cwd=ROOT,
        env=_fresh_env(data),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert (data / "db.sqlite3").is_file()
    for sub in ("logs", "stores", "render-cache", "models", "cache", "broker/queue"):
        assert (data / sub).is_dir(), sub
    assert (data / "broker" / "control").is_dir()


def test_directories_pointed_elsewhere_are_created_there(tmp_path, settings):
    settings.DATA_DIR = tmp_path / "data"
    settings.LOGS_DIR = tmp_path / "data" / "logs"
    settings.STORE_ROOT = tmp_path / "shared" / "stores"
    settings.RENDER_CACHE_DIR = tmp_path / "cache" / "renders"
    settings.MODELS_DIR = tmp_path / "shared" / "models"
    made = ensure_data_dirs(settings)
    for path in (settings.STORE_ROOT, settings.RENDER_CACHE_DIR, settings.MODELS_DIR):
        assert path.is_dir() and path in made
    ensure_data_dirs(settings)  # idempotent


def test_a_directory_that_cannot_be_created_names_its_variable(tmp_path, settings):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    settings.MODELS_DIR = blocker / "models"
    expected = r"a-file/models for LABELAPP_MODELS_DIR: Not a directory"
    with pytest.raises(ImproperlyConfigured, match=expected):
        ensure_data_dirs(settings)
