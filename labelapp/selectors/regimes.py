"""The S/N regimes as database filters: the same split as :func:`mlcore.survey.regime_index`
(low: sn <= 5.5, high: above), so a count in the console and a metric in a model card
always put a candidate in the same regime."""

from __future__ import annotations

from django.db.models import Q

from mlcore.survey import REGIME_NAMES, SN_LOW_MAX


def regime_q(regime: str, field: str = "sn") -> Q:
    """Filter for one regime; ``field`` is the S/N column's path (``candidate__sn``)."""
    if regime not in REGIME_NAMES:
        raise ValueError(f"unknown S/N regime {regime!r}: one of {REGIME_NAMES}")
    lookup = "lte" if regime == "low" else "gt"
    return Q(**{f"{field}__{lookup}": SN_LOW_MAX})
