"""Factories for the volunteer tests: candidates without pixels, gold, volunteers."""

from __future__ import annotations

from labelapp.models import Candidate, GoldStandard, IngestBatch, Volunteer
from labelapp.services.crowd.gold import feedback_for


def make_candidates(n: int, *, first_id: int = 5_000_000, sn0: float = 4.8) -> list[Candidate]:
    """``n`` active candidates with S/N rising from ``sn0`` and ingest's priority (-sn)."""
    batch = IngestBatch.objects.create(
        name=f"b{first_id}",
        file_sha256=f"{first_id:064d}",
        source_path="/dev/null",
        file_format="fits",
        n_candidates=n,
        store_path="/nonexistent",
        store_dtype="float16",
    )
    rows = []
    for i in range(n):
        sn = sn0 + 0.01 * i
        rows.append(
            Candidate(
                detectid=first_id + i, batch=batch, row=i, shotid=1, field="cosmos",
                ra=150.0, dec=2.2, wave=4000.0 + i, flux=10, flux_err=2, linewidth=3,
                continuum=0, sn=sn, chi2=1, priority=-sn,
            )
        )  # fmt: skip
    return Candidate.objects.bulk_create(rows)


def make_gold(
    candidate: Candidate, *, is_real: bool, kind: str | None = None, exam: bool = False
) -> GoldStandard:
    """Teaching gold, or exam gold (``exam=True``: its answers are what prove a volunteer)."""
    kind = kind or ("lae" if is_real else "cosmic")
    return GoldStandard.objects.create(
        candidate=candidate, is_real=is_real, kind=kind, feedback=feedback_for(kind), exam=exam
    )


def make_volunteer(**kw) -> Volunteer:
    return Volunteer.objects.create(**kw)


def make_proven_volunteer(**kw) -> Volunteer:
    """A volunteer whose exam gold answers proved them (10 of 10 right) and who passed
    probation: their votes count fully."""
    return Volunteer.objects.create(
        **{
            "n_gold": 10, "n_gold_correct": 10, "n_exam": 10, "n_exam_correct": 10,
            "probation_passed": True, **kw,
        }
    )  # fmt: skip


def served_token(client, detectid: int) -> str:
    """The token the server hands out with candidate ``detectid`` to ``client``'s session (as
    if /api/next/ had served it). Gives the session its nonce first when it has none."""
    from labelapp.services.crowd.vote_guard import NONCE_KEY, session_nonce, sign_served

    session = client.session
    if NONCE_KEY not in session:
        session_nonce(session)
        session.save()
        from django.conf import settings

        client.cookies[settings.SESSION_COOKIE_NAME] = session.session_key
    return sign_served(nonce=session[NONCE_KEY], detectid=detectid)


def with_token(client, body: dict) -> dict:
    """``body`` plus the served token of its detectid (unless it carries one already)."""
    if "token" in body or not isinstance(body.get("detectid"), int):
        return body
    if isinstance(body["detectid"], bool):
        return body
    return {**body, "token": served_token(client, body["detectid"])}


def assert_matches_vote_schema(body: dict) -> None:
    """The vote view writes its JSON itself (not through ninja's answer validation): what it
    writes must be exactly what VoteResponse validates and dumps (no extra key, no wrong
    type, no missing field)."""
    from labelapp.views.api import VoteResponse

    dumped = VoteResponse.model_validate(body).model_dump(
        mode="json", by_alias=True, exclude_unset=True
    )
    assert dumped == body
