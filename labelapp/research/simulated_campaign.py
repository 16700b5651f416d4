"""In-silico campaigns: the whole loop, round after round, with simulated volunteers.

Each round: simulated volunteers vote through the services on the current queue until the
round's label budget is retired (or a vote cap is hit) -> batch aggregation -> a CNN is
trained on the consensus labels -> promotion gate -> the catalogue is scored -> the next
round's queue is chosen by the strategy. Each round's model is then judged against ground
truth on every candidate (balanced accuracy per S/N regime). Ground truth never enters the
loop itself, only this evaluation.

Two executors run the same steps: ``inline`` calls the services in this process (quick,
what the comparisons in bench/ use), ``celery`` sends the real tasks -- aggregate_votes,
retrain_model (gpu queue), then on promotion score_catalogue fanning out score_chunk (cpu
queue) whose last chunk opens the next round -- and waits on the rows they write, so the
whole Celery chain is exercised exactly as in production (workers must be running).
"""

from __future__ import annotations

import json
import math
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from html import escape
from pathlib import Path

import numpy as np

from labelapp.errors import PlatformError
from labelapp.models import (
    AggregationRun,
    CampaignSettings,
    Candidate,
    CandidateScore,
    CandidateTruth,
    ModelVersion,
    Round,
    TaskProgress,
    Vote,
)
from labelapp.research.simulated_volunteers import SimulatedCrowd
from labelapp.services.crowd.aggregation import aggregate_votes
from labelapp.services.crowd.gold import seed_gold_from_truth
from labelapp.services.learning.encoders import encoder_summary
from labelapp.services.learning.holdout import HoldoutError, hold_out_from_truth
from labelapp.services.learning.promotion import gate_model, live_model
from labelapp.services.learning.rounds import RoundError, acquisition_config, start_round
from labelapp.services.learning.scoring import score_all
from labelapp.services.learning.training import (
    TrainingError,
    consensus_targets,
    train_model_version,
)
from mlcore.acquisition import CARRY
from mlcore.aggregation import regime_index
from mlcore.cnn.evaluation import balanced_accuracy
from mlcore.cnn.pretrain import APPROACHES
from mlcore.cnn.training import KEEP

STRATEGIES = ("bald", "entropy", "margin", "random")
HOLDOUT_MAX = 1000


class CampaignError(PlatformError):
    pass


@dataclass
class CampaignConfig:
    strategy: str = "bald"
    rounds: int = 8
    labels_per_round: int = 500
    volunteers: int = 300
    votes_per_label: float = 6.0  # vote cap per round = labels_per_round * this
    epochs: int = 6
    keep: str = "best"  # which epoch's weights a retrain keeps (mlcore TrainConfig.keep)
    members: int = 1  # CNNs per retrained model (a deep ensemble when > 1)
    low_sn_weight: float = 2.0
    random_fraction: float = 0.1
    power: float | None = 1.0  # acquisition: draw with P ~ score**power; None = top-k
    carry_fraction: float = 0.0  # batch share for the last round's unsettled candidates
    diversity: str = "wavelength"  # or "kcenter" (CNN embeddings), "none"
    mc_samples: int = 5
    gold_per_kind: int = 10
    # expert-answered evaluation sample, never trained on (0: none; None: 5% of the
    # catalogue, at most HOLDOUT_MAX)
    holdout: int | None = None
    seed: int = 0
    executor: str = "inline"  # or "celery"
    # before round 1, pretrain an encoder on the catalogue without labels (an approach of
    # mlcore.cnn.pretrain, e.g. "masked"; None: every retrain starts from scratch) and
    # start every retrain from it
    pretrain: str | None = None
    pretrain_epochs: int = 5
    step_timeout_s: float = 3600.0  # celery: longest wait for one task of the chain


@dataclass
class CampaignReport:
    config: CampaignConfig
    rounds: list[dict] = field(default_factory=list)
    encoder: dict | None = None  # the pretrained encoder every retrain started from

    def to_json(self) -> str:
        out = {"config": asdict(self.config), "rounds": self.rounds}
        if self.encoder is not None:
            out["encoder"] = self.encoder
        return json.dumps(out, indent=2)


def _retired_count() -> int:
    """Candidates retired now. Not retirement events: a candidate re-opened (a volunteer who
    settled it lost proven status) still counted, and counted again when retired again
    (that inflated one seed of the light-crowd measurement 2.6-fold, docs/security.md)."""
    return Candidate.objects.filter(status=Candidate.Status.RETIRED).count()


def evaluate_against_truth(model_version, holdout_only: bool = False) -> dict[str, float | None]:
    """Balanced accuracy per regime of a model's scores on every candidate with truth, or
    with ``holdout_only`` on the held-out sample alone.

    The whole catalogue includes the candidates the model trained on, and each strategy
    trains on different ones (BALD on more low-S/N ones), so its figure mixes training and
    test accuracy. The held-out sample is never trained on and is the same candidates for
    every strategy on a seed: the unbiased comparison, if a noisier one (a few hundred per
    regime)."""
    truth = dict(CandidateTruth.objects.values_list("candidate_id", "is_real"))
    scores = CandidateScore.objects.filter(model_version=model_version)
    if holdout_only:
        scores = scores.filter(candidate__holdout__isnull=False)
    rows = list(scores.values_list("candidate_id", "prob", "candidate__sn"))
    if not rows:
        return {"low": None, "high": None, "overall": None}
    cid, prob, sn = (np.asarray(x) for x in zip(*rows, strict=True))
    y = np.asarray([truth[c] for c in cid.tolist()])
    pred = prob >= 0.5
    reg = regime_index(sn)

    def bacc(m: np.ndarray) -> float | None:  # None: no candidate, or only one class
        v = float(balanced_accuracy(y[m], pred[m])) if m.any() else math.nan
        return None if math.isnan(v) else v

    return {"overall": bacc(reg >= 0), "low": bacc(reg == 0), "high": bacc(reg == 1)}


def training_label_quality() -> dict[str, float | int | None]:
    """How often the labels training would use now disagree with ground truth (overall and
    at 4.8 <= S/N <= 5.5), and their real fraction: shows whether a strategy's labels are
    wrong more often or just different (evaluation only; truth never enters the loop)."""
    targets = consensus_targets()
    truth = dict(
        CandidateTruth.objects.filter(candidate_id__in=list(targets)).values_list(
            "candidate_id", "is_real"
        )
    )
    sn = dict(Candidate.objects.filter(pk__in=list(truth)).values_list("pk", "sn"))
    ids = [c for c in targets if c in truth]
    out: dict[str, float | int | None] = {"train_labels_low": 0, "train_label_error": None}
    if not ids:
        return out | {"train_label_error_low": None, "train_frac_real": None}
    pred = np.asarray([targets[c] >= 0.5 for c in ids])
    y = np.asarray([truth[c] for c in ids])
    low = regime_index(np.asarray([sn[c] for c in ids])) == 0
    wrong = pred != y
    out["train_label_error"] = round(float(wrong.mean()), 4)
    out["train_labels_low"] = int(low.sum())
    out["train_label_error_low"] = round(float(wrong[low].mean()), 4) if low.any() else None
    out["train_frac_real"] = round(float(y.mean()), 3)
    return out


def run_campaign(*, config: CampaignConfig, log: Callable[[str], None] = print) -> CampaignReport:
    if config.strategy not in STRATEGIES:
        raise CampaignError(f"--strategy must be one of {STRATEGIES}, not {config.strategy!r}")
    if not CandidateTruth.objects.exists():
        raise CampaignError(
            "a campaign needs a simulated survey (ground truth): run "
            "simulate_survey and ingest first"
        )
    if Vote.objects.exists():
        raise CampaignError(
            "this database already has votes: run a campaign on a fresh one "
            "(e.g. LABELAPP_DATA_DIR=/tmp/campaign manage.py ...)"
        )
    holdout = config.holdout
    if holdout is None:
        holdout = min(HOLDOUT_MAX, Candidate.objects.count() // 20)
    if holdout < 0:
        raise CampaignError(f"--holdout must be 0 or more, not {holdout}")
    acq = {
        "strategy": config.strategy,
        "batch_size": config.labels_per_round,
        "random_fraction": config.random_fraction,
        "low_sn_weight": config.low_sn_weight,
        "power": config.power,
        "carry_fraction": config.carry_fraction,
        "diversity": config.diversity,
        "seed": config.seed,
    }
    if config.strategy == "random":  # the baseline: no exploitation, no emphasis
        acq.update(random_fraction=1.0, low_sn_weight=1.0, diversity="none")
    if config.keep not in KEEP:
        raise CampaignError(f"--keep must be one of {KEEP}, not {config.keep!r}")
    if config.members < 1:
        raise CampaignError(f"--members must be at least 1, not {config.members}")
    if config.mc_samples < 1:
        raise CampaignError(f"--mc-samples must be at least 1, not {config.mc_samples}")
    try:  # bad settings fail here, not after the first round's votes
        acquisition_config(**acq)
    except (ValueError, RoundError) as exc:
        raise CampaignError(f"acquisition settings: {exc}") from exc
    if config.executor not in ("inline", "celery"):
        raise CampaignError(f"executor must be 'inline' or 'celery', not {config.executor!r}")
    if config.pretrain is not None and config.pretrain not in APPROACHES:
        raise CampaignError(f"--pretrain must be one of {APPROACHES}, not {config.pretrain!r}")
    if not 1 <= config.pretrain_epochs <= 200:
        raise CampaignError(
            f"--pretrain-epochs must be between 1 and 200, not {config.pretrain_epochs}"
        )
    # Settings checked: from here on the campaign writes to the database.
    seed_gold_from_truth(per_kind=config.gold_per_kind)
    if holdout:  # the gate's evaluation set: half from each regime, never trained on
        try:
            hold_out_from_truth(n=holdout, low_share=0.5, seed=config.seed)
        except HoldoutError as exc:
            raise CampaignError(f"--holdout: {exc}") from exc
    # The chain's own start_round (after scoring) reads the saved acquisition settings.
    CampaignSettings.objects.update_or_create(
        pk=1, defaults={"acquisition": acq, "updated_by": f"run_campaign ({config.strategy})"}
    )
    report = CampaignReport(config=replace(config, holdout=holdout))
    encoder_id = None
    if config.pretrain:  # after the hold-out, which pretraining leaves out; reads no label
        encoder_id, report.encoder = _pretrain(config, log)
    crowd = SimulatedCrowd(n_volunteers=config.volunteers, seed=config.seed)
    # round 1: no model yet, low S/N first (the same for every strategy)
    start_round(model_version=None)
    for k in range(1, config.rounds + 1):
        t0 = time.perf_counter()
        retired0 = _retired_count()
        cap = int(config.labels_per_round * config.votes_per_label)
        cast = 0
        while _retired_count() - retired0 < config.labels_per_round and cast < cap:
            step = min(200, cap - cast)
            sim = crowd.vote(n_votes=step)
            cast += sim.votes
            if sim.votes == 0:
                break
        if config.executor == "celery":
            run, version, promoted = _learn_via_celery(config, k, encoder_id)
        else:
            run, version, promoted = _learn_inline(config, k, encoder_id)
        model = live_model()
        metrics = evaluate_against_truth(model)
        held = evaluate_against_truth(model, holdout_only=True)
        voted = Round.objects.filter(status=Round.Status.OPEN).first()  # the round just voted
        row = {
            "round": k,
            # batch picks that finished the round before's unsettled candidates
            "carried": voted.queued.filter(reason=CARRY).count() if voted else 0,
            "votes_this_round": cast,
            "votes_total": Vote.objects.count(),
            "labels_total": run.n_candidates,  # candidates with any consensus label
            # the settled labels (+ gold, expert answers) the live model was trained on
            "labels_trained": int(model.card.get("n_labels", 0)) if model else 0,
            "retired_total": _retired_count(),
            "model": version.pk,
            "promoted": promoted,
            "live_model": model.pk if model else None,
            "bacc_low": metrics["low"],
            "bacc_high": metrics["high"],
            "bacc_overall": metrics["overall"],
            # the same on the held-out sample only (never trained on): the unbiased view
            "bacc_low_holdout": held["low"],
            "bacc_high_holdout": held["high"],
            **training_label_quality(),
            "seconds": round(time.perf_counter() - t0, 1),
        }
        report.rounds.append(row)
        log(json.dumps(row))
        if k < config.rounds and not (config.executor == "celery" and promoted):
            # (with Celery, a promotion already opened the next round after scoring)
            start_round(model_version=model, config=acquisition_config(**acq))
    return report


def _pretrain(config: CampaignConfig, log: Callable[[str], None]) -> tuple[int, dict]:
    """The platform's pretraining service on the whole catalogue (less the held-out
    sample), seeded by the campaign's seed: the same survey and seed give every strategy
    the same encoder (its weights hash is in the report to check). (encoder id, summary)"""
    from labelapp.services.learning.pretraining import PretrainingError, pretrain_encoder

    t0 = time.perf_counter()
    try:
        enc = pretrain_encoder(
            approach=config.pretrain, epochs=config.pretrain_epochs, seed=config.seed
        )
    except PretrainingError as exc:
        raise CampaignError(f"--pretrain: {exc}") from exc
    summary = encoder_summary(enc) | {"seconds": round(time.perf_counter() - t0, 1)}
    log(json.dumps({"pretrained": {k: v for k, v in summary.items() if k != "loss_curve"}}))
    return enc.pk, summary


def _learn_inline(config: CampaignConfig, k: int, encoder_id: int | None = None):
    """Aggregate, train (from the encoder, if any), gate, and score on promotion, in this
    process."""
    run = aggregate_votes()
    try:
        version = train_model_version(
            label_source="consensus",
            epochs=config.epochs,
            seed=config.seed,
            keep=config.keep,
            members=config.members,
            encoder_id=encoder_id,
        )
    except TrainingError as exc:
        raise CampaignError(f"round {k}: {exc}") from exc
    decision = gate_model(model_version=version)
    if decision.promoted:
        score_all(model_version=version, n_samples=config.mc_samples)
    return run, version, decision.promoted


def _wait(condition: Callable[[], object], timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.5)
    raise CampaignError(
        f"timed out after {timeout:.0f} s waiting for {what}: are Celery workers running on "
        "the web, cpu and gpu queues (celery -A labelapp worker -Q web,cpu,gpu)?"
    )


def _learn_via_celery(config: CampaignConfig, k: int, encoder_id: int | None = None):
    """The same step through the real task chain; waits on the rows the tasks write."""
    from labelapp import tasks

    last_run = AggregationRun.objects.values_list("pk", flat=True).first() or 0
    tasks.aggregate_votes.delay()
    run = _wait(
        lambda: (
            AggregationRun.objects.filter(pk__gt=last_run)
            .exclude(status=AggregationRun.Status.RUNNING)
            .first()
        ),
        config.step_timeout_s,
        f"round {k}'s aggregation",
    )
    if run.status != AggregationRun.Status.DONE:
        raise CampaignError(f"round {k}: aggregation run {run.pk} failed: {run.error}")
    last_model = ModelVersion.objects.values_list("pk", flat=True).first() or 0
    last_round = Round.objects.values_list("number", flat=True).first() or 0
    key = f"campaign-{uuid.uuid4().hex[:12]}"
    tasks.retrain_model.delay(
        label_source="consensus",
        epochs=config.epochs,
        progress_key=key,
        seed=config.seed,
        keep=config.keep,
        members=config.members,
        encoder_id=encoder_id,
    )
    done = (TaskProgress.State.DONE, TaskProgress.State.FAILED)
    row = _wait(
        lambda: TaskProgress.objects.filter(name="retrain_model", key=key, state__in=done).first(),
        config.step_timeout_s,
        f"round {k}'s training (gpu queue)",
    )
    if row.state == TaskProgress.State.FAILED:
        raise CampaignError(f"round {k}: training failed on the worker: {row.message}")
    version = ModelVersion.objects.filter(pk__gt=last_model).order_by("pk").first()
    promoted = version.status == ModelVersion.Status.PROMOTED
    if promoted and k < config.rounds:
        # scoring (cpu queue, in chunks) and then the next round follow by themselves
        _wait(
            lambda: Round.objects.filter(number__gt=last_round).exists(),
            config.step_timeout_s,
            f"round {k}'s scoring and the round after it (cpu queue)",
        )
    elif promoted:
        _wait(
            lambda: TaskProgress.objects.filter(
                name="score_catalogue", key=f"model-{version.pk}", state=TaskProgress.State.DONE
            ).exists(),
            config.step_timeout_s,
            f"round {k}'s scoring (cpu queue)",
        )
    return run, version, promoted


def first_reach(
    rounds: list[dict], target: float, key: str, cost: str = "labels_trained"
) -> tuple[int, float] | None:
    """(``cost`` of the first round whose ``key`` is at or above ``target``, that cost
    interpolated linearly between the round and the one before), or None if none did.
    Rounds without the figure are skipped."""
    prev = None
    for row in rounds:
        y, x = row.get(key), row.get(cost)
        if y is None or x is None:
            continue
        if y >= target:
            if prev is None or y == prev[1]:
                return x, float(x)
            x0, y0 = prev
            return x, float(x0 + (target - y0) / (y - y0) * (x - x0))
        prev = (x, y)
    return None


def labels_to_reach(
    rounds: list[dict], target: float, key: str = "bacc_low", cost: str = "labels_total"
) -> int | None:
    """Labels (or, with ``cost="votes_total"``, votes) a campaign needed to first reach
    ``target`` (None if it never did)."""
    reach = first_reach(rounds, target, key, cost)
    return reach[0] if reach else None


def write_comparison(reports: dict[str, dict], out_dir: Path) -> Path:
    """HTML (plotly, local script) + JSON comparing strategies on the same seed."""
    out_dir.mkdir(parents=True, exist_ok=True)
    baseline = reports.get("random")
    summary = {}
    if baseline:
        final_random = baseline["rounds"][-1]["bacc_low"]
        summary["random_final_bacc_low"] = final_random
        summary["random_labels"] = baseline["rounds"][-1]["labels_total"]
        summary["random_votes"] = baseline["rounds"][-1]["votes_total"]
        summary["random_labels_trained"] = baseline["rounds"][-1].get("labels_trained")
        # Three costs: consensus labels gathered (any vote), labels the model trained on
        # (settled ones: what "labels used" means for the model), votes (volunteer time).
        costs = (
            ("labels_total", "labels", "random_labels"),
            ("labels_trained", "trained_labels", "random_labels_trained"),
            ("votes_total", "votes", "random_votes"),
        )
        for name, rep in reports.items():
            if name == "random" or final_random is None:
                continue
            for cost, word, base in costs:
                if summary.get(base) is None:  # a report from before labels_trained existed
                    continue
                need = labels_to_reach(rep["rounds"], final_random, cost=cost)
                summary[f"{name}_{word}_to_reach_random_final"] = need
                if need and summary[base]:
                    ratio = f"{name}_{word.removesuffix('s')}_ratio"
                    summary[ratio] = round(need / summary[base], 3)
        # The same target judged on the held-out sample only (reports since it existed)
        final_held = baseline["rounds"][-1].get("bacc_low_holdout")
        base = summary.get("random_labels_trained")
        if final_held is not None and base:
            summary["random_final_bacc_low_holdout"] = final_held
            for name, rep in reports.items():
                if name == "random":
                    continue
                need = labels_to_reach(
                    rep["rounds"], final_held, key="bacc_low_holdout", cost="labels_trained"
                )
                summary[f"{name}_trained_labels_to_reach_random_final_holdout"] = need
                if need:
                    summary[f"{name}_trained_label_ratio_holdout"] = round(need / base, 3)
    encoders = {n: (r.get("encoder") or {}).get("weights_sha256") for n, r in reports.items()}
    if any(encoders.values()):  # pretrained: did every strategy start from the same weights?
        summary["encoder_weights_sha256"] = encoders
        summary["same_encoder"] = len(set(encoders.values())) == 1
    (out_dir / "campaign.json").write_text(
        json.dumps({"summary": summary, "strategies": reports}, indent=2)
    )
    target = baseline["rounds"][-1] if baseline else None
    figs = [_curve_figure(reports, "labels_total", "consensus labels used", target)]
    if all("labels_trained" in r for rep in reports.values() for r in rep["rounds"]):
        figs.append(
            _curve_figure(reports, "labels_trained", "labels the live model trained on", target)
        )
    figs.append(_curve_figure(reports, "votes_total", "volunteer votes used", target))
    # reports from before the held-out figure, or with --holdout 0, have no values to draw
    if any(
        r.get("bacc_low_holdout") is not None for rep in reports.values() for r in rep["rounds"]
    ):
        figs.append(
            _curve_figure(
                reports, "labels_trained", "labels the live model trained on", target, "_holdout"
            )
        )
    rows = "".join(f"<tr><th>{k}</th><td>{_cell(v)}</td></tr>" for k, v in summary.items())
    settings_list = "".join(
        f"<li><b>{escape(name)}</b>: {escape(_settings_line(rep.get('config') or {}))}</li>"
        for name, rep in reports.items()
    )
    return write_plotly_page(
        out_dir / "campaign.html",
        title="Campaign report",
        before=f"<h1>In-silico campaign: active learning against random</h1>\n"
        f"<ul>{settings_list}</ul>{TARGET_NOTE if target else ''}\n",
        figs=figs,
        after=f"<table>{rows}</table>\n",
    )


def write_plotly_page(
    path: Path, *, title: str, before: str, figs: list[dict], after: str = ""
) -> Path:
    """An HTML page with plotly figures between two blocks of HTML, and plotly.min.js copied
    next to it (the page works offline and from a file:// URL)."""
    from labelapp.staticfinders import PLOTLY_JS

    divs = "".join(f'<div id="fig{i}"></div>' for i in range(len(figs)))
    plots = "".join(
        f"Plotly.newPlot('fig{i}',{json.dumps(f['data'])},{json.dumps(f['layout'])});"
        for i, f in enumerate(figs)
    )
    html = f"""<!doctype html><html><head><meta charset="utf-8"><title>{escape(title)}</title>
<script src="plotly.min.js"></script></head>
<body style="font-family:system-ui;max-width:960px;margin:auto">
{before}{divs}{after}<script>{plots}</script></body></html>"""
    (path.parent / "plotly.min.js").write_bytes(PLOTLY_JS.read_bytes())
    path.write_text(html)
    return path


def _cell(value) -> str:
    if value is None:
        return "not reached"
    return f"{value:.3f}" if isinstance(value, float) else str(value)


TARGET_NOTE = """<p>Dashed grey: the random strategy's final low-S/N balanced accuracy, and
half of the labels (or votes) random used: the target is to cross the line left of the half
mark.</p>"""


def _settings_line(config: dict) -> str:
    if not config:
        return "settings not recorded"
    if config.get("strategy") == "random":
        acq = "uniform draw"
    else:
        power = config.get("power")
        acq = (
            f"{'drawn with P ~ score^' + str(power) if power else 'strict top-k'}, random "
            f"share {config.get('random_fraction')}, low-S/N weight {config.get('low_sn_weight')}, "
            f"diversity {config.get('diversity', 'wavelength')}"
        )
    held = config.get("holdout", 0)  # absent: a report from before the held-out sample
    if held is None:  # the default, from a run that did not record the size it used
        gate = "gate on 5% (at most 1000) held-out"
    else:
        gate = f"gate on {held} held-out" if held else "gate on gold standards"
    carry = config.get("carry_fraction", 0.0)  # absent: a report from before carrying over
    acq += f", unsettled carried over (up to {carry} of a batch)" if carry else ", no carry-over"
    members = config.get("members", 1)
    model = f"ensembles of {members} CNNs" if members > 1 else "one CNN"
    if config.get("pretrain"):  # absent: a report from before the option (from scratch)
        model += (
            f" fine-tuned from a {config['pretrain']} encoder pretrained on the catalogue "
            f"({config.get('pretrain_epochs')} epochs, no labels)"
        )
    return (
        f"{acq}; {config.get('rounds')} rounds x {config.get('labels_per_round')} labels, "
        f"{config.get('volunteers')} volunteers, {model}, {config.get('epochs')} epochs, "
        f"{config.get('mc_samples', 5)} MC passes, {gate}, seed {config.get('seed')}"
    )


def _curve_figure(
    reports: dict[str, dict],
    x_key: str,
    x_title: str,
    target: dict | None = None,
    suffix: str = "",
) -> dict:
    """Balanced accuracy per regime against a cost; ``suffix="_holdout"``: on the held-out
    sample (with random's final held-out value as the target) instead of the catalogue."""
    low, high = f"bacc_low{suffix}", f"bacc_high{suffix}"
    shapes, annotations = [], []
    if target and target.get(low) is not None and target.get(x_key):
        line = {"color": "#888", "dash": "dash", "width": 1}
        shapes = [
            {"type": "line", "xref": "paper", "x0": 0, "x1": 1, "y0": target[low],
             "y1": target[low], "line": line},
            {"type": "line", "yref": "paper", "y0": 0, "y1": 1, "x0": target[x_key] / 2,
             "x1": target[x_key] / 2, "line": line},
        ]  # fmt: skip
        annotations = [
            {"xref": "paper", "x": 0, "y": target[low], "yanchor": "bottom",
             "xanchor": "left", "showarrow": False, "text": "random's final (4.8-5.5)"},
            {"yref": "paper", "y": 1, "x": target[x_key] / 2, "xanchor": "left",
             "showarrow": False, "text": "half of random's"},
        ]  # fmt: skip
    traces = []
    for name, rep in reports.items():
        x = [r[x_key] for r in rep["rounds"]]
        for key, dash in ((low, "solid"), (high, "dot")):
            traces.append(
                {
                    "x": x,
                    "y": [r.get(key) for r in rep["rounds"]],
                    "mode": "lines+markers",
                    "name": f"{name} {'4.8-5.5' if key == low else '>5.5'}",
                    "line": {"dash": dash},
                }
            )
    where = "held-out sample, never trained on" if suffix else "whole catalogue"
    return {
        "data": traces,
        "layout": {
            "title": {
                "text": f"Balanced accuracy against {x_title}, per S/N regime"
                + (" (held-out sample)" if suffix else "")
            },
            "xaxis": {"title": {"text": x_title}},
            "yaxis": {"title": {"text": f"balanced accuracy (truth, {where})"}},
            "shapes": shapes,
            "annotations": annotations,
            "height": 480,
        },
    }
