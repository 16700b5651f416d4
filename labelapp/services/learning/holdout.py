"""The held-out evaluation sample: expert answers for a random sample never trained on.

The promotion gate judges each new model on it (:mod:`labelapp.services.learning.promotion`), and a
consensus-trained model's card reports its test metrics on it. Gold standards cannot do
that job: they are the clearest example of each kind, picked to teach, and training uses
them, so a gate on gold let 2-5 point low-S/N drops through in campaigns
(bench/RESULTS.md). A representative sample that training never sees can show them.

Scientists draw the sample with ``manage.py holdout --draw N`` (a random, S/N-stratified
list of detectids for experts to answer) and load the answers with ``--import FILE``;
simulations take the answers from the simulator's truth (``--from-truth N``). Holdout
candidates are never trained on and go to the back of the volunteer queue.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
from django.contrib.auth.base_user import AbstractBaseUser
from django.db import transaction
from django.db.models import F

from labelapp.errors import InvalidInput
from labelapp.models import Candidate, CandidateTruth, GoldStandard, HoldoutLabel
from mlcore.csv_safe import SafeWriter
from mlcore.survey import regime_index, regime_name

# Held-out candidates sit this far below every other one in queue priority (-sn - offset):
# votes on them would never be trained on. start_round applies the same offset.
QUEUE_OFFSET = 200.0
TRUE_WORDS = {"1", "true", "yes", "real", "y", "t"}
FALSE_WORDS = {"0", "false", "no", "not real", "n", "f", "artefact", "artifact"}


class HoldoutError(InvalidInput):
    pass


def holdout_labels() -> dict[int, bool]:
    """candidate id -> is real, for every held-out candidate."""
    return dict(HoldoutLabel.objects.values_list("candidate_id", "is_real"))


def holdout_ids() -> set[int]:
    return set(HoldoutLabel.objects.values_list("candidate_id", flat=True))


def holdout_summary() -> dict:
    """Size of the held-out sample per S/N regime and how many of each are real; and the
    same per survey field (``fields``)."""
    rows = HoldoutLabel.objects.values_list("candidate__sn", "is_real", "candidate__field")
    out = {"n": 0, "low": 0, "low_real": 0, "high": 0, "high_real": 0, "fields": {}}
    for sn, real, field in rows:
        regime = regime_name(sn)
        f = out["fields"].setdefault(field, {"n": 0, "low": 0, "high": 0})
        for d in (out, f):
            d["n"] += 1
            d[regime] += 1
        out[f"{regime}_real"] += int(real)
    return out


def draw_sample(
    *, n: int, low_share: float | None = None, seed: int = 0, per_field: bool = False
) -> list[int]:
    """Candidate ids of a random sample of ``n`` not yet held out and not gold.

    ``low_share`` (0-1) fixes the share with 4.8 <= S/N <= 5.5 (the regime the campaign is
    about; the gate compares each regime on its own); None draws in proportion to the
    catalogue. Candidates already waiting for an expert are left out too (they are the
    crowd's hard cases, not a representative draw). ``per_field``: ``n`` from every survey
    field (all of a field's candidates where it has fewer), so the console can give each
    field its own held-out accuracy.
    """
    if per_field:
        if n < 1:
            raise HoldoutError(f"the sample size must be at least 1, not {n}")
        fields = (
            Candidate.objects.exclude(status=Candidate.Status.EXPERT)
            .filter(holdout__isnull=True, gold__isnull=True)
            .values_list("field", flat=True)
            .distinct()
        )
        out: list[int] = []
        for k, f in enumerate(sorted(set(fields))):
            out += _draw(n=n, low_share=low_share, seed=seed + k, field=f, at_most=True)
        return sorted(out)
    return _draw(n=n, low_share=low_share, seed=seed)


def _draw(
    *, n: int, low_share: float | None, seed: int, field: str | None = None, at_most=False
) -> list[int]:
    if n < 1:
        raise HoldoutError(f"the sample size must be at least 1, not {n}")
    if low_share is not None and not 0.0 <= low_share <= 1.0:
        raise HoldoutError(f"the low-S/N share must be between 0 and 1, not {low_share}")
    qs = Candidate.objects.exclude(status=Candidate.Status.EXPERT).filter(
        holdout__isnull=True, gold__isnull=True
    )
    if field is not None:
        qs = qs.filter(field=field)
    rows = np.asarray(
        qs.order_by("pk").values_list("pk", "sn"),
        dtype=np.float64,
    ).reshape(-1, 2)
    ids, low = rows[:, 0].astype(np.int64), regime_index(rows[:, 1]) == 0
    if at_most:
        n = min(n, len(ids))
    if n > len(ids):
        raise HoldoutError(f"asked for {n} candidates; only {len(ids)} can be held out")
    rng = np.random.default_rng(seed)
    if low_share is None:
        return sorted(rng.choice(ids, n, replace=False).tolist())
    want_low = int(round(n * low_share))
    if at_most:  # a small field: as close to the share as its regimes allow
        want_low = min(want_low, int(low.sum()))
        want_low = max(want_low, n - int((~low).sum()))
    pools = ((ids[low], want_low), (ids[~low], n - want_low))
    for pool, want in pools:
        if want > len(pool):
            raise HoldoutError(
                f"asked for {want} candidates from a regime that has {len(pool)} to hold out"
            )
    return sorted(x for pool, want in pools for x in rng.choice(pool, want, replace=False).tolist())


@transaction.atomic
def hold_out(
    *, labels: dict[int, bool], source: str, created_by: AbstractBaseUser | None = None
) -> int:
    """Store answers for candidate ids (all or nothing); returns how many are new.

    Gold candidates cannot be held out: volunteers see their answers, and training uses them.
    """
    gold = set(
        GoldStandard.objects.filter(candidate_id__in=list(labels)).values_list(
            "candidate_id", flat=True
        )
    )
    if gold:
        raise HoldoutError(
            f"{len(gold)} of these candidates are gold standards (e.g. id {min(gold)}): "
            "gold is trained on and shown to volunteers, so it cannot be held out"
        )
    n_new = len(set(labels) - holdout_ids())
    HoldoutLabel.objects.bulk_create(  # a re-import corrects earlier answers
        [
            HoldoutLabel(candidate_id=cid, is_real=bool(real), source=source, created_by=created_by)
            for cid, real in labels.items()
        ],
        update_conflicts=True,
        unique_fields=["candidate"],
        update_fields=["is_real", "source"],
    )
    # to the back of the volunteer queue now (start_round keeps them there)
    Candidate.objects.filter(pk__in=list(labels)).update(priority=-F("sn") - QUEUE_OFFSET)
    return n_new


def hold_out_from_truth(
    *, n: int, low_share: float | None = None, seed: int = 0, per_field: bool = False
) -> int:
    """Simulations: draw a sample and answer it from the simulator's truth, as experts would.
    Returns the size of the held-out set afterwards."""
    ids = draw_sample(n=n, low_share=low_share, seed=seed, per_field=per_field)
    truth = dict(CandidateTruth.objects.filter(candidate_id__in=ids).values_list(
        "candidate_id", "is_real"
    ))  # fmt: skip
    if len(truth) != len(ids):
        raise HoldoutError(
            "this survey has no simulator truth for every candidate: use --draw and "
            "--import with experts' answers instead"
        )
    hold_out(labels=truth, source="simulated truth")
    return HoldoutLabel.objects.count()


def write_sample(ids: list[int], path: Path) -> int:
    """The drawn sample as a CSV for experts: detectid, sn, wave, field, and an empty
    ``is_real`` column to fill in."""
    rows = Candidate.objects.filter(pk__in=ids).order_by("detectid")
    with open(path, "w", newline="") as fh:
        w = SafeWriter(fh)  # no spreadsheet formulas (mlcore.csv_safe)
        w.writerow(["detectid", "sn", "wave", "field", "is_real"])
        for c in rows.values_list("detectid", "sn", "wave", "field"):
            w.writerow([*c, ""])
    return len(ids)


def read_answers(path: Path) -> dict[int, bool]:
    """A CSV with ``detectid`` and ``is_real`` columns -> candidate id -> is real.

    Every row is checked before anything is stored: an unknown detectid, an unreadable
    answer or a repeated detectid fails the whole file, with its line number.
    """
    try:
        fh = open(path, newline="")
    except OSError as exc:
        raise HoldoutError(f"cannot read {path}: {exc.strerror}") from exc
    with fh:
        reader = csv.DictReader(fh)
        missing = {"detectid", "is_real"} - set(reader.fieldnames or ())
        if missing:
            raise HoldoutError(f"{path}: needs the columns {', '.join(sorted(missing))}")
        answers: dict[int, bool] = {}
        for line, row in enumerate(reader, start=2):
            try:
                detectid = int(row["detectid"])
            except (TypeError, ValueError):
                raise HoldoutError(
                    f"{path}, line {line}: detectid {row['detectid']!r} is not a number"
                ) from None
            word = (row["is_real"] or "").strip().lower()
            if word not in TRUE_WORDS | FALSE_WORDS:
                raise HoldoutError(
                    f"{path}, line {line}: is_real {row['is_real']!r} is not an answer "
                    "(use 1/0, true/false, yes/no)"
                )
            if detectid in answers:
                raise HoldoutError(f"{path}, line {line}: detectid {detectid} appears twice")
            answers[detectid] = word in TRUE_WORDS
    ids = dict(Candidate.objects.filter(detectid__in=list(answers)).values_list("detectid", "pk"))
    unknown = sorted(set(answers) - set(ids))
    if unknown:
        raise HoldoutError(
            f"{path}: {len(unknown)} detectids are not in the catalogue (e.g. {unknown[0]})"
        )
    if not answers:
        raise HoldoutError(f"{path}: no answers in the file")
    return {ids[d]: real for d, real in answers.items()}
