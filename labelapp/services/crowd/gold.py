"""Gold-standard candidates: known answers that teach volunteers and measure their skill.

Scientists mark them (admin, or ``manage.py seed_gold`` from simulator truth in the demo).
Each kind comes with a short feedback text that says what to look at. Two roles: teaching
gold tells its answer and feedback after each yes/no (and sets levels); exam gold never tells
anything, and only its answers prove a volunteer -- an answer that is told can be learned
by a script and replayed by any number of new sessions (docs/security.md, "gold peekers").
"""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth.base_user import AbstractBaseUser
from django.db import transaction
from django.db.models import Q
from django.utils.translation import gettext_noop

from labelapp.errors import Conflict
from labelapp.models import Candidate, CandidateTruth, GoldStandard, Vote
from labelapp.selectors.regimes import regime_q
from labelapp.services.survey.rendering import candidate_pixels
from mlcore.render import line_column
from mlcore.survey import REAL_TYPES
from mlcore.teaching import teaching_check

# What a volunteer is told after answering a gold candidate of each kind (stored in English
# with the gold standard; told in the volunteer's language while it is this default text,
# see votes.gold_feedback).
FEEDBACK: dict[str, str] = {
    "lae": gettext_noop(
        "A real line: a compact glow right at the marks in the summed image, "
        "seen in more than one fiber, and a bump in the spectrum at the dotted line."
    ),
    "oii": gettext_noop(
        "A real line (from a nearer galaxy): a blob at the marks shared by several "
        "fibers, with a matching bump in the spectrum."
    ),
    "noise": gettext_noop(
        "Just noise: the middle is no brighter than the speckles around it, and the "
        "spectrum has no clear bump above its grey error band."
    ),
    "sky": gettext_noop(
        "A sky line: a thin vertical stripe through every fiber at the same wavelength, "
        "left over from the glow of the night sky. Real galaxies are not in every fiber."
    ),
    "cosmic": gettext_noop(
        "That bright dot in one fiber only is a cosmic ray: a particle hit on the "
        "detector. Light from a galaxy lands in several fibers."
    ),
    "hotcol": gettext_noop(
        "A hot column: a narrow stripe straight up and down through a fiber's whole "
        "strip, often a dark dip next to a bright bump. It is the detector, not the sky."
    ),
    "meteor": gettext_noop(
        "A meteor or satellite: bright light from one exposure only, so it sits in one "
        "or two fibers and the summed image barely shows it, unlike a galaxy's steady glow."
    ),
    "badfiber": gettext_noop(
        "A bad fiber: one whole fiber is brighter or darker than the others from end "
        "to end, not just in the middle."
    ),
    "star": gettext_noop(
        "A star: bright light along the whole spectrum; the 'line' is a gap between "
        "absorption features, not emission."
    ),
}


def feedback_for(kind: str) -> str:
    return FEEDBACK.get(kind, "")


class GoldRoleError(Conflict):
    """A gold standard that has taught cannot become exam gold: its answer is out."""


def has_taught(candidate_id: int) -> bool:
    """Was this candidate's answer ever told: a yes/no vote on it while it was teaching gold
    (a vote on exam gold or on a plain candidate tells nothing)."""
    return (
        Vote.objects.filter(candidate_id=candidate_id, was_gold=True)
        .exclude(answer=Vote.Answer.UNSURE)
        .exclude(candidate__gold__exam=True)
        .exists()
    )


def exam_due(kind: str) -> bool:
    """Should the next new gold of ``kind`` be exam gold: fewer than EXAM_GOLD_SHARE of the
    kind's active gold are (so every kind, real or artefact, is both taught and examined)."""
    active = GoldStandard.objects.filter(kind=kind, active=True)
    return active.filter(exam=True).count() < settings.EXAM_GOLD_SHARE * (active.count() + 1)


@transaction.atomic
def mark_gold(
    *,
    candidate: Candidate,
    is_real: bool,
    kind: str,
    feedback: str = "",
    created_by: AbstractBaseUser | None = None,
    exam: bool | None = None,
) -> GoldStandard:
    """Mark (or re-mark) one candidate as gold; feedback defaults to the kind's text.

    ``exam``: exam gold (its answer never told; only these answers prove a volunteer) or
    teaching gold; None keeps an existing gold's role and makes a new one exam while
    :func:`exam_due`. Raises GoldRoleError for exam on a gold that has taught."""
    existing = GoldStandard.objects.filter(candidate=candidate).first()
    if exam is None:
        exam = existing.exam if existing is not None else exam_due(kind)
    if exam and not (existing is not None and existing.exam) and has_taught(candidate.pk):
        raise GoldRoleError(
            f"candidate {candidate.detectid} has taught (its answer was told with a vote): "
            "it cannot become exam gold"
        )
    gold, _ = GoldStandard.objects.update_or_create(
        candidate=candidate,
        defaults={
            "is_real": is_real,
            "kind": kind,
            "feedback": feedback or feedback_for(kind),
            "created_by": created_by,
            "active": True,
            "exam": exam,
        },
    )
    return gold


def seed_gold_from_truth(*, per_kind: int = 20) -> int:
    """Demo/simulation helper: make sure up to ``per_kind`` candidates of each truth kind
    are gold, half from each S/N regime where the kind has clear examples in both.

    Gold teaches, so a candidate becomes gold only where its picture shows what its
    feedback text says (:func:`clear_examples`: measured on the cutout volunteers see, e.g.
    a cosmic ray's dot in exactly one fiber); within a regime the clearest come first. A
    regime with too few clear examples of a kind gets fewer (its place is taken by clear
    examples of the other regime), never an example that contradicts its text: near the
    threshold (S/N <= 5.5) real lines are seldom clear, while many artefacts are. The
    promotion gate judges models on held-out expert labels (HoldoutLabel), not on gold.
    Running it again only tops up (idempotent). Returns how many gold candidates exist.
    """
    kinds = CandidateTruth.objects.values_list("kind", flat=True).distinct()
    regimes = (regime_q("low", "candidate__sn"), regime_q("high", "candidate__sn"))
    for kind in kinds:
        for k, regime in enumerate(regimes):
            want = per_kind // 2 + (per_kind % 2 if k else 0)
            have = GoldStandard.objects.filter(regime, kind=kind, active=True).count()
            _top_up(kind, regime, want - have)
        # a kind with too few clear examples in one regime: fill up from the other
        _top_up(kind, Q(), per_kind - GoldStandard.objects.filter(kind=kind, active=True).count())
    return GoldStandard.objects.filter(active=True).count()


POOL = 300  # candidates per kind and regime whose pictures are measured (highest S/N first)


def clear_examples(
    kind: str, where: Q | None = None, *, pool: int = POOL
) -> list[tuple[float, Candidate]]:
    """(clarity, candidate) of the active, not-yet-gold candidates of truth ``kind`` whose
    cutout shows what the kind's feedback says, clearest first. Candidates without a
    cutout cannot teach and are left out."""
    rows = (
        CandidateTruth.objects.filter(where, kind=kind, candidate__status=Candidate.Status.ACTIVE)
        .exclude(candidate__gold__isnull=False)
        .exclude(candidate__cutout_flags__gt=0)
        .select_related("candidate", "candidate__batch")
        .order_by("-candidate__sn")[:pool]
    )
    found = []
    for truth in rows:
        c = truth.candidate
        try:
            pixels = candidate_pixels(c)
        except (OSError, ValueError, IndexError):  # a store that is gone or unreadable
            continue
        check = teaching_check(kind, pixels["cutouts"], line_column(pixels["im_wave"], c.wave))
        if check.shows:
            found.append((check.clarity, c))
    found.sort(key=lambda t: (-t[0], t[1].pk))
    return found


def _top_up(kind: str, where: Q, missing: int) -> None:
    if missing <= 0:
        return
    for _, candidate in clear_examples(kind, where)[:missing]:
        mark_gold(candidate=candidate, is_real=kind in REAL_TYPES, kind=kind)
