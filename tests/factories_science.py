"""A small scored and labelled catalogue for the science API and its client, plus tokens."""

from __future__ import annotations

from pathlib import Path

from django.utils import timezone

from labelapp.models import (
    AggregationRun,
    Candidate,
    CandidateScore,
    ConsensusState,
    Label,
    ModelVersion,
    PretrainedEncoder,
    Round,
    RoundCandidate,
    Vote,
)
from labelapp.selectors.models import PLATFORM_MODEL_CONFIG
from labelapp.services.science import tokens
from labelapp.services.survey.ingest import ingest_survey
from mlcore.survey_io import write_survey
from tests.factories import make_survey
from tests.factories_console import make_account, make_scientist
from tests.factories_volunteers import make_volunteer

ALL_SCOPES = sorted(tokens.SCOPES)


def make_science_catalogue(tmp_path: Path, n: int = 12) -> dict:
    """``n`` ingested candidates (with pixels); a live model scoring the first 8 (prob
    0.1 i + 0.05) and a retired one scoring all (0.5); labels of record on the first 4
    (real for i >= 2) from the latest succeeded run; a consensus on the first; rounds 1 and 2
    queuing candidates 1 and 2; votes from a registered and an anonymous volunteer; a
    pretrained encoder the retired model started from, and a retired encoder."""
    ingest_survey(path=write_survey(tmp_path / "science.fits", make_survey(n, seed=11)))
    cands = list(Candidate.objects.order_by("detectid"))
    encoder = make_encoder(tmp_path / "enc1", loss_curve=[0.5, 0.25], data_hash="cd" * 32)
    retired_encoder = make_encoder(
        tmp_path / "enc2", approach="contrastive", retired_reason="superseded by v1"
    )
    old = ModelVersion.objects.create(
        status=ModelVersion.Status.RETIRED,
        label_source="truth",
        directory=str(tmp_path / "m1"),
        card={"pretrained_from": {"encoder": encoder.pk, "approach": "masked"}},
    )
    live = ModelVersion.objects.create(
        status=ModelVersion.Status.PROMOTED,
        label_source="consensus",
        directory=str(tmp_path / "m2"),
        card={"version": 2, "metrics": {"low": {"auc": 0.9, "n": 40}}},
        n_train=321,
        data_hash="ab" * 32,
    )
    for i, c in enumerate(cands):
        CandidateScore.objects.create(model_version=old, candidate=c, prob=0.5, entropy=1, bald=0)
        if i < 8:
            CandidateScore.objects.create(
                model_version=live, candidate=c, prob=0.1 * i + 0.05, entropy=0.3, bald=i / 10
            )
    AggregationRun.objects.create(method="majority", status="done")
    run = AggregationRun.objects.create(method="dawid_skene", status="done")
    AggregationRun.objects.create(method="dawid_skene", status="failed")
    for i, c in enumerate(cands[:4]):
        Label.objects.create(
            run=run, candidate=c, posterior=0.2 + 0.2 * i, is_real=i >= 2, confidence=0.9,
            n_votes=3 + i, info_gain=0.1,
        )  # fmt: skip
    ConsensusState.objects.create(candidate=cands[0], posterior=0.9, n_votes=3, expert_label=True)
    r1 = Round.objects.create(number=1, status="closed")
    r2 = Round.objects.create(number=2)
    RoundCandidate.objects.create(round=r1, candidate=cands[1], rank=1, reason="exploit")
    RoundCandidate.objects.create(round=r1, candidate=cands[2], rank=2, reason="exploit")
    RoundCandidate.objects.create(round=r2, candidate=cands[2], rank=1, reason="random")
    alice = make_account("alice-secret", email="alice@example.org")
    registered = make_volunteer(user=alice)
    anonymous = make_volunteer()
    votes = [
        Vote.objects.create(volunteer=registered, candidate=cands[0], answer="yes"),
        Vote.objects.create(volunteer=registered, candidate=cands[1], answer="no", reason="sky"),
        Vote.objects.create(volunteer=anonymous, candidate=cands[1], answer="unsure"),
    ]
    return {
        "cands": cands,
        "live": live,
        "old": old,
        "run": run,
        "votes": votes,
        "volunteers": (registered, anonymous),
        "encoder": encoder,
        "retired_encoder": retired_encoder,
    }


def make_encoder(
    directory: Path,
    *,
    approach: str = "masked",
    width: int = PLATFORM_MODEL_CONFIG["width"],
    loss_curve=(0.9, 0.6),
    data_hash: str = "",
    retired_reason: str | None = None,
) -> PretrainedEncoder:
    """A PretrainedEncoder row with a card like pretraining writes (no weights on disk):
    the retrain's architecture unless ``width`` says otherwise; retired when
    ``retired_reason`` is given."""
    card = {
        "kind": "pretrained-encoder",
        "approach": approach,
        "n_candidates": 12,
        "epochs": len(loss_curve),
        "loss_curve": list(loss_curve),
        "data_source": "catalogue: all of the 12 active candidates with a cutout",
        "data_hash": data_hash,
        "model_config": {**PLATFORM_MODEL_CONFIG, "width": width},
        "selection": {"fields": {"cosmos": 12}, "n_eligible": 12, "sampled": False},
    }
    retired = retired_reason is not None
    return PretrainedEncoder.objects.create(
        approach=approach,
        directory=str(directory),
        card=card,
        n_candidates=12,
        data_hash=data_hash,
        retired_at=timezone.now() if retired else None,
        retired_by="sci" if retired else "",
        retired_reason=retired_reason or "",
    )


def make_token(scopes=None, *, username: str = "sci", user=None) -> tokens.NewToken:
    user = user or make_scientist(username)
    return tokens.create_token(user=user, name="notebook", scopes=scopes or ALL_SCOPES)
