"""Shift reports for the console: the newest verdict per batch, field and group of
observing nights for the live model, and the batches nobody has checked. Reads only (no
torch)."""

from __future__ import annotations

from labelapp.models import BatchAdaptation, Candidate, IngestBatch, ModelVersion, ShiftReport

VERDICT_CLASS = {"in distribution": "ok", "shifted": "shifted", "far": "far"}


def shift_overview(model_version: ModelVersion | None) -> dict:
    """Rows per ingest batch: its whole-batch report and its per-field ones (newest each),
    or None where the batch was never checked against this model; the fields across the
    catalogue; and the groups of observing nights (in date order)."""
    if model_version is None:
        return {
            "model": None, "batches": [], "fields": [], "nights": [], "n_reports": 0,
            "adaptations": [],
        }  # fmt: skip
    latest: dict[tuple[int | None, str], ShiftReport] = {}
    nights = []
    for r in latest_reports(model_version):
        if r.night_first is None:
            latest[(r.batch_id, r.field)] = r
        else:
            nights.append(r)
    nights.sort(key=lambda r: (r.night_first, r.night_last, r.batch_id or 0, r.field))
    adapted = {a.batch_id: a for a in BatchAdaptation.objects.filter(model_version=model_version)}
    batches = []
    for b in IngestBatch.objects.order_by("pk"):
        fields = sorted(
            Candidate.objects.filter(batch=b).values_list("field", flat=True).distinct()
        )
        batches.append(
            {
                "batch": b,
                "fields": fields,
                "report": _row(latest.get((b.pk, ""))),
                # how this model scores the batch: its own statistics (AdaBN) or as trained
                "adaptation": adapted.get(b.pk),
                "per_field": [
                    {"field": f, "report": _row(latest.get((b.pk, f)))}
                    for f in fields
                    if (b.pk, f) in latest
                ],
            }
        )
    across = [
        {"field": f, "report": _row(r)}
        for (bid, f), r in sorted(latest.items(), key=str)
        if bid is None
    ]
    return {
        "model": model_version,
        "batches": batches,
        "fields": across,
        "nights": [
            {"nights": r.nights, "batch": r.batch_id, "field": r.field, "report": _row(r)}
            for r in nights
        ],
        "n_reports": len(latest) + len(nights),
        "adaptations": list(adapted.values()),
        "thresholds_source": next(
            (r.report.get("thresholds", {}).get("source") for r in [*latest.values(), *nights]),
            None,
        ),
    }


def _row(r: ShiftReport | None) -> dict | None:
    if r is None:
        return None
    rep = r.report
    inputs = rep.get("inputs", {})
    return {
        "id": r.pk,
        "verdict": r.verdict,
        "css": VERDICT_CLASS.get(r.verdict, ""),
        "reasons": rep.get("reasons", []),
        "n_new": r.n_new,
        "n_ref": r.n_ref,
        "created_at": r.created_at,
        "inputs": [{"name": k, **v, "over": v["ks"] >= v["threshold"]} for k, v in inputs.items()],
        "rep": rep.get("representation", {}),
        "scores": rep.get("scores", {}),
        "wave": _wave_row(rep.get("wavelengths")),
    }


def _wave_row(w: dict | None) -> dict | None:
    """The wavelength-spike statistic of a report (absent from reports made before it)."""
    if not w:
        return None
    th = w.get("threshold")
    return {**w, "over": th is not None and w["z"] >= th}


def latest_reports(model_version: ModelVersion) -> list[ShiftReport]:
    """The newest report per (batch, field, group of nights) for ``model_version``. A night
    group's report is superseded by a newer one of the same batch and field whose nights
    overlap it (the groups change as batches arrive)."""
    seen, out = set(), []
    nights: dict[tuple[int | None, str], list[tuple[int, int]]] = {}
    for r in ShiftReport.objects.filter(model_version=model_version).select_related("batch"):
        key = (r.batch_id, r.field, r.night_first, r.night_last)
        if key in seen:
            continue
        seen.add(key)
        if r.night_first is not None:
            newer = nights.setdefault((r.batch_id, r.field), [])
            if any(a <= r.night_last and r.night_first <= b for a, b in newer):
                continue
            newer.append((r.night_first, r.night_last))
        out.append(r)
    return out
