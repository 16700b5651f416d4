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
    from labelapp.services.survey.rendering import open_store

    settings.STORE_ROOT = tmp_path / "stores"
    settings.RENDER_CACHE_DIR = tmp_path / "render-cache"
    open_store.cache_clear()
    yield
    open_store.cache_clear()


@pytest.fixture(autouse=True)
def _levels_asked_afresh():
    """Each test's gold is rolled back at its end, which no signal reports: the next test
    must not trust an answer remembered from this one's gold (services.crowd.levels)."""
    from labelapp.services.crowd.levels import forget_levels_in_force

    forget_levels_in_force()
    yield
    forget_levels_in_force()


@pytest.fixture(autouse=True)
def _proof_rule_asked_afresh():
    """Whether probation is in force (a trusted live model) is kept per process for 30 s
    (services.crowd.consensus.proof_min_checks): the next test must not inherit this one's
    model, which its rollback removed."""
    from labelapp.services.crowd import consensus

    consensus._CHECKS.clear()
    yield
    consensus._CHECKS.clear()


@pytest.fixture(autouse=True)
def _default_language():
    """A request with a language cookie or Accept-Language leaves that language active in the
    test's thread (LocaleMiddleware activates, nothing deactivates): back to the default, so
    the next test's services speak English."""
    yield
    from django.utils import translation

    translation.deactivate()


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


# --- the scientist console: a small campaign with a real (briefly trained) model -----------


@pytest.fixture(scope="session")
def console_survey_file(tmp_path_factory):
    from mlcore.simulator import simulate_survey
    from mlcore.survey_io import write_survey

    return write_survey(tmp_path_factory.mktemp("s") / "s.fits", simulate_survey(400, seed=5))


@pytest.fixture(scope="session")
def console_model_dir(tmp_path_factory, console_survey_file):
    """A real (briefly trained) model with its card, as the training service writes it."""
    import numpy as np

    from mlcore.cnn.data import spec_windows
    from mlcore.cnn.pipeline import (
        SPEC_HALF_WIDTH,
        FitPlan,
        LabelledArrays,
        fit_evaluate_write,
        make_splits,
    )
    from mlcore.cnn.training import TrainConfig
    from mlcore.survey import stack_cutouts
    from mlcore.survey_io import read_survey

    s = read_survey(console_survey_file)
    y = s.truth["truth_real"].astype(np.float32)
    sn = s.catalog["sn"]
    splits = make_splits(y, sn, test_frac=0.25, val_frac=0.15, max_train=None, seed=0)
    out = tmp_path_factory.mktemp("m") / "v"
    fit_evaluate_write(
        LabelledArrays(
            cutouts=stack_cutouts(s.im_sum, s.im_array),
            targets=y,
            sn=sn,
            cols={**s.catalog, "truth_type": s.truth["truth_type"]},
            spec=spec_windows(s.spec1d, s.spec1d_err, s.catalog["wave"], SPEC_HALF_WIDTH),
        ),
        FitPlan(
            splits=splits,
            label_source="truth",
            data_hash="test",
            train=TrainConfig(epochs=1, seed=0, max_time_s=30),
        ),
        out,
    )
    return out


@pytest.fixture
def console_campaign(console_survey_file, console_model_dir, own_cache):
    """Ingested survey, gold standards, a live scored model, votes and one aggregation."""
    import json

    from labelapp.models import Candidate, ModelVersion
    from labelapp.services.crowd.aggregation import aggregate_votes
    from labelapp.services.crowd.gold import seed_gold_from_truth
    from labelapp.services.crowd.votes import submit_vote
    from labelapp.services.learning.scoring import score_all
    from labelapp.services.survey.ingest import ingest_survey
    from mlcore.cnn.card import CARD_NAME
    from tests.factories_volunteers import make_volunteer

    ingest_survey(path=console_survey_file)
    seed_gold_from_truth(per_kind=3)
    card = json.loads((console_model_dir / CARD_NAME).read_text())
    mv = ModelVersion.objects.create(
        label_source="truth",
        directory=str(console_model_dir),
        card=card,
        n_train=card["n_train"],
        status=ModelVersion.Status.PROMOTED,
    )
    old = ModelVersion.objects.create(
        label_source="truth",
        directory=str(console_model_dir),
        card=card,
        status=ModelVersion.Status.RETIRED,
    )
    # no shift report yet: the shift tests build theirs (or let scoring build them)
    score_all(model_version=mv, n_samples=2, shift_reports=False)
    cands = list(Candidate.objects.filter(gold__isnull=True).order_by("sn")[:40])
    for k in range(4):
        vol = make_volunteer()
        for c in cands:
            submit_vote(volunteer=vol, detectid=c.detectid, answer="yes" if k % 2 else "no")
    aggregate_votes()
    return {"live": mv, "old": old, "voted": cands}


@pytest.fixture
def default_retirement_rules(settings):
    """The retirement rule and default skills as shipped, whatever the environment says:
    tests of the crowd's defences measure against these."""
    settings.RETIRE_P_HI, settings.RETIRE_P_LO = 0.95, 0.05
    settings.RETIRE_MIN_VOTES, settings.RETIRE_MAX_VOTES = 2, 15
    settings.DEFAULT_SENSITIVITY = settings.DEFAULT_SPECIFICITY = 0.75


@pytest.fixture
def sci(client):
    """A test client logged in as a scientist (the console's role); ``sci.user`` is that
    account. Files that need the scientist user instead define their own ``sci``."""
    from tests.factories_console import make_scientist

    user = make_scientist()
    client.force_login(user)
    client.user = user
    return client
