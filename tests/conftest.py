"""Shared fixtures. Integration tests (marker ``integration``) need PostgreSQL + Redis:
they run under ``make integration`` / ``make test``, which sets DATABASE_URL and REDIS_URL."""

from __future__ import annotations

import os

import pytest

from tests.factories import make_survey


def _integration_ready() -> str | None:
    """None when the integration tier can run, else why not."""
    if not os.environ.get("DATABASE_URL", "").startswith(("postgres://", "postgresql://")):
        return "DATABASE_URL is not a PostgreSQL URL"
    if not os.environ.get("REDIS_URL", "").startswith("redis://"):
        return "REDIS_URL is not set"
    return None


@pytest.hookimpl(trylast=True)  # after `-m` deselection: only tests that would run count
def pytest_collection_modifyitems(config, items):
    why = _integration_ready()
    if why is None:
        return
    marked = [item for item in items if "integration" in item.keywords]
    if not marked:
        return
    if os.environ.get("REQUIRE_INTEGRATION"):
        raise pytest.UsageError(
            f"REQUIRE_INTEGRATION is set but {why}: integration tier cannot run"
        )
    skip = pytest.mark.skip(
        reason=f"integration tier skipped: {why}; run `make integration` "
        "with PostgreSQL and Redis reachable"
    )
    for item in marked:
        item.add_marker(skip)


@pytest.fixture(autouse=True)
def _isolated_storage(settings, tmp_path):
    """Every test writes stores and renders under its own temporary directory."""
    from labelapp.services.rendering import open_store

    settings.STORE_ROOT = tmp_path / "stores"
    settings.RENDER_CACHE_DIR = tmp_path / "render-cache"
    open_store.cache_clear()
    yield
    open_store.cache_clear()


@pytest.fixture
def survey():
    return make_survey(40, seed=3)


@pytest.fixture
def fits_file(tmp_path, survey):
    from mlcore.survey_io import write_survey

    return write_survey(tmp_path / "survey.fits", survey)


@pytest.fixture
def hdf5_file(tmp_path, survey):
    from mlcore.survey_io import write_survey

    return write_survey(tmp_path / "survey.h5", survey)


@pytest.fixture
def own_cache(settings, request):
    """An empty in-memory cache for this test alone (rate-limit counters live in the cache)."""
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.locmem.LocMemCache",
            "LOCATION": request.node.nodeid,
        }
    }
