"""Model versions for the console: the paper's table across rounds, confusion matrices,
calibration, per-contaminant and per-field errors -- all read from the model cards, so no
page load runs the network. (This module must not import torch: web processes read it.)"""

from __future__ import annotations

from labelapp.models import ModelVersion, PretrainedEncoder, Round

REGIMES = ("overall", "low", "high")
REGIME_NAMES = {"overall": "all", "low": "4.8 ≤ S/N ≤ 5.5", "high": "S/N > 5.5"}
METRICS = ("balanced_accuracy", "precision", "recall", "roc_auc")


def live_model() -> ModelVersion | None:
    return ModelVersion.objects.filter(status=ModelVersion.Status.PROMOTED).first()


def _regimes(card: dict, source: str) -> dict:
    if source == "gate":
        return (card.get("gate") or {}).get("regimes") or {}
    return (card.get("metrics") or {}).get("regimes") or {}


HEADLINE_REGIMES = ("low", "high")
NOT_MEASURED_NO_SAMPLE = (
    "no held-out expert sample was there when this model was judged (gold standards and "
    "expert answers are trained on, so they give no figure)"
)


def _cell(m: dict | None) -> dict:
    """One headline cell: a held-out figure with its interval, or why it is not measured."""
    m = m or {}
    if m.get("balanced_accuracy") is None:
        why = "no held-out candidates" if not m.get("n") else "held-out sample has one class"
        return {"measured": False, "why": why, "n": m.get("n") or 0}
    return {"measured": True, **m}


def headline(card: dict | None) -> dict:
    """The console's headline figure for a model: balanced accuracy on the held-out expert
    sample with its 95% interval, per S/N regime and per field -- never a number from data
    the model trained on. ``measured`` False (and ``why``) where no held-out sample was."""
    held = (card or {}).get("heldout")
    if not held:
        return {"measured": False, "why": NOT_MEASURED_NO_SAMPLE, "regimes": {}, "fields": []}
    regs = held.get("regimes") or {}
    fields = [
        {"field": f, "cells": [_cell(cells.get(r)) for r in HEADLINE_REGIMES]}
        for f, cells in sorted((held.get("fields") or {}).items())
    ]
    return {
        "measured": True,
        "level": held.get("level", 0.95),
        "n_labels": held.get("n_labels"),
        "evaluated_utc": held.get("evaluated_utc"),
        "regimes": {r: _cell(regs.get(r)) for r in HEADLINE_REGIMES},
        "fields": fields,
    }


def model_table() -> list[dict]:
    """One row per model version, newest first: status, provenance, metrics per regime on
    its card's test set and on the promotion gate's fixed evaluation set."""
    rounds = dict(
        Round.objects.filter(trained_model__isnull=False).values_list("trained_model_id", "number")
    )
    rows = []
    for mv in ModelVersion.objects.all():
        card = mv.card or {}
        rows.append(
            {
                "mv": mv,
                "round": rounds.get(mv.pk),
                "n_labels": card.get("n_labels"),
                "test": {r: _regimes(card, "test").get(r) or {} for r in REGIMES},
                "gate": {r: _regimes(card, "gate").get(r) or {} for r in REGIMES},
                "gate_n": (card.get("gate") or {}).get("n_labels"),
                "headline": headline(card),
                "evaluated_against": (card.get("metrics") or {}).get("evaluated_against"),
            }
        )
    return rows


def _gate_measured(row: dict) -> bool:
    return bool(row.get("headline", {}).get("measured"))


def metrics_figure(rows: list[dict], source: str = "test") -> dict:
    """Balanced accuracy per regime across model versions (oldest first), the paper's
    targets (94% at S/N > 5.5, 85% at 4.8-5.5) as dotted lines. On the gate's set only the
    models judged on a held-out expert sample get a point (gold is trained on)."""
    rows = list(reversed(rows))
    if source == "gate":
        rows = [r if _gate_measured(r) else {**r, "gate": {k: {} for k in REGIMES}} for r in rows]
    x = [f"v{r['mv'].pk}" + (f" (round {r['round']})" if r["round"] else "") for r in rows]
    colours = {"overall": "#555", "low": "#d95f02", "high": "#1b9e77"}
    data = [
        {
            "type": "scatter",
            "mode": "lines+markers",
            "name": REGIME_NAMES[reg],
            "x": x,
            "y": [r[source][reg].get("balanced_accuracy") for r in rows],
            "line": {"color": colours[reg]},
        }
        for reg in REGIMES
    ]
    where = "card's test set" if source == "test" else "gate's fixed evaluation set"
    shapes = [
        {
            "type": "line",
            "xref": "paper",
            "x0": 0,
            "x1": 1,
            "y0": y,
            "y1": y,
            "line": {"dash": "dot", "color": colours[reg], "width": 1},
        }
        for reg, y in (("high", 0.94), ("low", 0.85))
    ]
    notes = [
        {
            "xref": "paper",
            "x": 1,
            "xanchor": "right",
            "y": y,
            "yanchor": "bottom",
            "text": f"paper's target, {REGIME_NAMES[reg]}: {y:.2f}",
            "showarrow": False,
            "font": {"size": 11, "color": colours[reg]},
        }
        for reg, y in (("high", 0.94), ("low", 0.85))
    ]
    return {
        "data": data,
        "layout": {
            "title": {"text": f"Balanced accuracy per S/N regime ({where})"},
            "yaxis": {"title": {"text": "balanced accuracy"}, "range": [0.4, 1.0]},
            "xaxis": {"type": "category", "automargin": True},
            "shapes": shapes,
            "annotations": notes,
            "legend": {"orientation": "h", "y": -0.25},
        },
    }


def confusion(metrics: dict) -> dict | None:
    if not metrics or metrics.get("tp") is None:
        return None
    return {k: metrics.get(k) for k in ("tp", "fp", "fn", "tn", "n", "n_real", "n_false")}


# A bin of a handful of candidates swings between 0 and 1 and makes the curve zig-zag: such
# bins say nothing about calibration, so they are left out (their counts are in the card).
RELIABILITY_MIN_BIN = 10


def reliability_figure(card: dict) -> dict | None:
    cal = (card.get("metrics") or {}).get("calibration") or {}
    if not cal:
        return None
    data = [
        {
            "type": "scatter",
            "mode": "lines",
            "x": [0, 1],
            "y": [0, 1],
            "name": "perfect",
            "line": {"dash": "dot", "color": "#888"},
        }
    ]
    series = [
        ("reliability_uncalibrated", "before temperature scaling", "#d95f02"),
        ("reliability_calibrated", f"T = {cal.get('temperature', 1):.2f} (even odds)", "#1f3b73"),
    ]
    if cal.get("reliability_prior_corrected"):  # cards from before the prior shift lack it
        sh = cal.get("prior_shift") or {}
        series.append((
            "reliability_prior_corrected",
            f"+ prior shift (low {sh.get('low', 0):+.2f}, high {sh.get('high', 0):+.2f})",
            "#1b9e77",
        ))  # fmt: skip
    for key, name, colour in series:
        curve = cal.get(key) or {}
        pts = [
            (m, f, c)
            for m, f, c in zip(
                curve.get("mean_pred", []),
                curve.get("frac_real", []),
                curve.get("count", []),
                strict=False,
            )
            if m is not None and f is not None and c and c >= RELIABILITY_MIN_BIN
        ]
        data.append(
            {
                "type": "scatter",
                "mode": "lines+markers",
                "name": name,
                "x": [p[0] for p in pts],
                "y": [p[1] for p in pts],
                "text": [f"{p[2]} candidates" for p in pts],
                "line": {"color": colour},
            }
        )
    ece_c, ece_u = cal.get("ece_calibrated"), cal.get("ece_uncalibrated")
    title = f"Reliability (held-out test, bins of {RELIABILITY_MIN_BIN}+ candidates)"
    if ece_c is not None and ece_u is not None:
        title += f": ECE {ece_u:.3f} → {ece_c:.3f}"
        if cal.get("ece_prior_corrected") is not None:
            title += f" → {cal['ece_prior_corrected']:.3f}"
    return {
        "data": data,
        "layout": {
            "title": {"text": title},
            "xaxis": {"title": {"text": "predicted P(real)"}, "range": [0, 1]},
            "yaxis": {"title": {"text": "fraction real"}, "range": [0, 1]},
            # below the plot: inside it, the legend sat on the curves it names
            "legend": {"orientation": "h", "y": -0.22},
        },
    }


def history_figure(card: dict) -> dict | None:
    hist = card.get("history") or []
    if not hist:
        return None
    data = []
    members = sorted({h.get("member", 0) for h in hist})
    for k in members:  # an ensemble: one pair of curves per member
        rows = [h for h in hist if h.get("member", 0) == k]
        ep = [h["epoch"] for h in rows]
        tag = f" (member {k + 1})" if len(members) > 1 else ""
        data += [
            {"type": "scatter", "x": ep, "y": [h["train_loss"] for h in rows],
             "name": f"train loss{tag}"},
            {"type": "scatter", "x": ep, "y": [h["val_loss"] for h in rows],
             "name": f"val loss{tag}"},
        ]  # fmt: skip
    return {
        "data": data,
        "layout": {
            "title": {
                "text": f"Training of {len(members)} members"
                if len(members) > 1
                else f"Training (best epoch {card.get('best_epoch')})"
            },
            "xaxis": {"title": {"text": "epoch"}},
            "yaxis": {"title": {"text": "loss"}},
        },
    }


def type_rows(card: dict) -> list[dict]:
    """Per truth type (simulated data): share called real per regime. For contaminants that
    share is the error rate -- which artefacts fool the model."""
    out = []
    for kind, m in ((card.get("metrics") or {}).get("types") or {}).items():
        out.append(
            {
                "type": kind,
                "real": m.get("kind") == "real",
                **{reg: m.get(reg) or {} for reg in REGIMES},
            }
        )
    return out


def field_rows(card: dict) -> list[dict]:
    """Per sky field: the referee's question, does a model hold on fields it was not
    trained on? (Fields in the test split; see the card's other_files for other surveys.)"""
    fields = (card.get("metrics") or {}).get("fields") or {}
    return [{"field": f, **{reg: m.get(reg) or {} for reg in REGIMES}} for f, m in fields.items()]


def artefact_head(card: dict) -> dict | None:
    """The artefact-type head's figures from the card, with the confusion matrix as labelled
    rows; None for a model without the head trained while there were no answers."""
    m = (card.get("metrics") or {}).get("artefact_type")
    answers = card.get("artefact_answers")
    if m is None and not (answers or {}).get("n_candidates_answered"):
        return None  # no head, and no volunteer has named an artefact yet
    out = {"metrics": m, "answers": answers, "rows": []}
    if m and m.get("confusion"):
        kinds = m["kinds"]
        out["rows"] = [
            {"kind": k, "n": sum(row), "cells": row}
            for k, row in zip(kinds, m["confusion"], strict=True)
        ]
    return out


def model_detail(mv: ModelVersion) -> dict:
    card = mv.card or {}
    regimes = _regimes(card, "test")
    return {
        "mv": mv,
        "card": card,
        "confusion": {r: confusion(regimes.get(r) or {}) for r in REGIMES},
        "gate": card.get("gate"),
        "headline": headline(card),
        "reliability_fig": reliability_figure(card),
        "history_fig": history_figure(card),
        "types": type_rows(card),
        "fields": field_rows(card),
        "artefact": artefact_head(card),
        "rounds_scored": list(mv.rounds_scored.values_list("number", flat=True)),
        "trained_from": list(mv.trained_from_round.values_list("number", flat=True)),
    }


# The architecture every platform retrain builds (mlcore.cnn.model.CNNConfig with the
# pipeline's width 12 and its 1D window of 2 x SPEC_HALF_WIDTH), written out here so the web
# process need not import torch to check an encoder against it; tests/test_pretrain_service.py
# checks it equals CNNConfig's. The artefact-type head comes and goes with the answers and is
# not part of it.
PLATFORM_WIDTH = 12
PLATFORM_MODEL_CONFIG = {
    "in_channels": 5,
    "rows": 9,
    "cols": 100,
    "width": PLATFORM_WIDTH,
    "hidden": 64,
    "dropout": 0.3,
    "spec_len": 200,
    "spec_channels": 2,
}


def architecture_problem(enc: PretrainedEncoder) -> str | None:
    """Why a retrain cannot start from ``enc`` (its trunks would not fit the network the
    retrain builds), or None when it can."""
    got = dict((enc.card or {}).get("model_config") or {})
    got.pop("artefact_kinds", None)
    if got == PLATFORM_MODEL_CONFIG:
        return None
    diff = ", ".join(
        f"{k} {got.get(k)!r} (the retrain builds {v!r})"
        for k, v in PLATFORM_MODEL_CONFIG.items()
        if got.get(k) != v
    )
    return (
        f"encoder v{enc.pk}'s architecture differs from the network a retrain builds: "
        f"{diff or 'unknown fields on its card'}; pretrain one with the default width and "
        "the 1D branch"
    )


def _encoder_row(enc: PretrainedEncoder) -> dict:
    card = enc.card or {}
    curve = card.get("loss_curve") or []
    sel = card.get("selection") or {}
    return {
        "enc": enc,
        "approach": card.get("approach", enc.approach),
        "n_candidates": card.get("n_candidates", enc.n_candidates),
        "fields": sel.get("fields") or {},
        "sampled": sel.get("sampled"),
        "n_eligible": sel.get("n_eligible"),
        "epochs": card.get("epochs", len(curve)),
        "loss_first": curve[0] if curve else None,
        "loss_last": curve[-1] if curve else None,
        "data_source": card.get("data_source", ""),
        "width": (card.get("model_config") or {}).get("width"),
        "time_s": card.get("pretrain_time_s"),
        "problem": architecture_problem(enc),
        "retired": enc.retired_at is not None,
        "used_by": [],
    }


def _started_from() -> list[tuple[int, int | None]]:
    """(model version, encoder it started from) for every version that started from one,
    newest first: the card's ``pretrained_from`` is the record (there is no column)."""
    return [
        (pk, ((card or {}).get("pretrained_from") or {}).get("encoder"))
        for pk, card in ModelVersion.objects.filter(card__has_key="pretrained_from")
        .order_by("-pk")
        .values_list("pk", "card")
    ]


def models_from(encoder_id: int) -> list[int]:
    """The model versions that started from encoder ``encoder_id``, newest first."""
    return [pk for pk, enc in _started_from() if enc == encoder_id]


def encoder_table() -> list[dict]:
    """One row per pretrained encoder, newest first: what it was pretrained on and how,
    whether a retrain can start from it (``offered``: not retired, and the retrain's
    architecture), and the model versions that did."""
    rows = [_encoder_row(enc) for enc in PretrainedEncoder.objects.all()]
    by_pk = {r["enc"].pk: r for r in rows}
    for row in rows:
        row["offered"] = not row["problem"] and not row["retired"]
    for pk, enc in _started_from():
        row = by_pk.get(enc)
        if row is not None:
            row["used_by"].append(pk)
    return rows


def encoder_detail(enc: PretrainedEncoder) -> dict:
    row = next(r for r in encoder_table() if r["enc"].pk == enc.pk)
    return {**row, "card": enc.card or {}, "loss_curve": (enc.card or {}).get("loss_curve") or []}
