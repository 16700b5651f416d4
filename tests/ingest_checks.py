"""What every refused ingest must leave behind: nothing (no candidate, batch, truth row,
external score, nor a cutout store directory), and an error that names what is wrong."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from labelapp.models import Candidate, CandidateTruth, ExternalScore, IngestBatch
from labelapp.services.survey.ingest import IngestError


def assert_nothing_written(settings) -> None:
    assert Candidate.objects.count() == 0 and IngestBatch.objects.count() == 0
    assert CandidateTruth.objects.count() == 0 and ExternalScore.objects.count() == 0
    root = Path(settings.STORE_ROOT)
    assert not root.exists() or list(root.iterdir()) == []


def assert_refused(ingest: Callable[[], object], settings, *fragments: str) -> str:
    """``ingest()`` raises IngestError whose message holds every fragment, and writes
    nothing; the message."""
    with pytest.raises(IngestError) as info:
        ingest()
    message = str(info.value)
    for fragment in fragments:
        assert fragment in message, message
    assert_nothing_written(settings)
    return message
