"""One error tree per layer: every error the platform defines is a PlatformError (HTTP
statuses assigned in one place), every error mlcore defines an MlcoreError."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import pytest

import labelapp
import mlcore
from labelapp import errors
from labelapp.services.crowd import curation, votes
from labelapp.views.errors import HTTP_STATUS, http_status
from mlcore.errors import MlcoreError

INTERNAL = {"labelapp.services.crowd.curation._Lost"}  # a private control-flow signal


def _defined_exceptions(package) -> list[type]:
    found = []
    for info in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
        if ".migrations" in info.name or info.name.endswith(".celery"):
            continue
        module = importlib.import_module(info.name)
        for _, obj in inspect.getmembers(module, inspect.isclass):
            if issubclass(obj, BaseException) and obj.__module__ == info.name:
                found.append(obj)
    return found


def test_every_platform_error_is_in_the_tree():
    classes = _defined_exceptions(labelapp)
    outside = [
        f"{c.__module__}.{c.__qualname__}"
        for c in classes
        if not issubclass(c, errors.PlatformError)
        and f"{c.__module__}.{c.__qualname__}" not in INTERNAL
    ]
    assert len(classes) > 15 and outside == []


def test_every_mlcore_error_is_in_its_tree():
    classes = _defined_exceptions(mlcore)
    assert classes and [c for c in classes if not issubclass(c, MlcoreError)] == []


@pytest.mark.parametrize(
    ("exc", "status"),
    [
        (votes.InvalidVote("x"), 400),
        (errors.UnknownCandidate("x"), 404),
        (votes.CandidateNotInQueue("x"), 409),
        (votes.RateLimited("x", retry_after_s=3), 429),
        (votes.NothingToUndo("x"), 404),
        (curation.NotGold("x"), 404),
        (curation.NotInExpertQueue("x"), 409),
        (errors.Unavailable("x"), 503),
        (errors.Unauthenticated("x"), 401),
        (errors.PlatformError("x"), 400),
    ],
)
def test_http_statuses_come_from_one_table(exc, status):
    assert http_status(exc) == status
    assert set(HTTP_STATUS.values()) == {400, 401, 403, 404, 409, 429, 503}


def test_one_unknown_candidate_for_votes_and_curation():
    assert votes.UnknownCandidate is curation.UnknownCandidate is errors.UnknownCandidate


def test_no_error_carries_its_own_http_status():
    """The mapping lives in one table: an error class with a ``status`` of its own would
    silently bypass it (two did before the tree)."""
    carriers = [
        f"{c.__module__}.{c.__qualname__}"
        for c in _defined_exceptions(labelapp)
        if any("status" in vars(k) for k in c.__mro__ if k is not Exception)
    ]
    assert carriers == []
