"""An in-silico campaign runs the loop round after round and reports per-regime accuracy."""

import json

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from labelapp.models import HoldoutLabel, ModelVersion, Round, RoundCandidate, Vote
from labelapp.research.simulated_campaign import (
    CampaignConfig,
    CampaignError,
    labels_to_reach,
    run_campaign,
    write_comparison,
)
from labelapp.services.learning.training import consensus_targets
from labelapp.services.survey.ingest import ingest_survey
from mlcore.simulator import simulate_survey
from mlcore.survey_io import write_survey

pytestmark = pytest.mark.django_db


@pytest.mark.slow
def test_two_rounds_of_the_loop(tmp_path, settings, capsys):
    settings.MODELS_DIR = tmp_path / "models"
    settings.VOTE_RATE_LIMIT = 10**6
    ingest_survey(path=write_survey(tmp_path / "s.fits", simulate_survey(500, seed=6)))
    call_command(
        "run_campaign",
        "--strategy",
        "bald",
        "--rounds",
        "2",
        "--labels-per-round",
        "30",
        "--volunteers",
        "20",
        "--epochs",
        "1",
        "--carry-fraction",
        "0.5",
        "--out",
        str(tmp_path / "out"),
    )
    report = json.loads((tmp_path / "out" / "bald.json").read_text())
    assert [r["round"] for r in report["rounds"]] == [1, 2]
    assert report["rounds"][1]["votes_total"] > report["rounds"][0]["votes_total"] > 0
    assert all(r["bacc_high"] is not None for r in report["rounds"])
    assert ModelVersion.objects.count() == 2
    # round 1 is low-S/N first; round 2 was chosen from the live model's scores
    assert [r.scored_by_id is not None for r in Round.objects.order_by("number")] == [False, True]
    assert Vote.objects.count() == report["rounds"][1]["votes_total"]
    last = report["rounds"][1]
    live = ModelVersion.objects.get(pk=last["live_model"])
    assert last["labels_trained"] == live.card["n_labels"] > 0
    # evaluation only: how often the labels training would use disagree with the truth
    assert 0.0 <= last["train_label_error"] <= 1.0 and 0.0 <= last["train_frac_real"] <= 1.0
    assert 0 <= last["train_labels_low"] <= last["labels_trained"]
    # the default acquisition draws the batch (power 1); the round records it
    assert Round.objects.order_by("number").last().acquisition["power"] == 1.0
    # carry-over asked for: round 2 first finished round 1's unsettled (up to half its batch)
    carried = RoundCandidate.objects.filter(round__number=2, reason="carry").count()
    assert report["config"]["carry_fraction"] == 0.5 and 0 < last["carried"] == carried <= 15
    # 5% of the 500 held out (default), never trained on, and the gate judged on them
    held = set(HoldoutLabel.objects.values_list("candidate_id", flat=True))
    assert len(held) == 25 and live.card["gate"]["set"] == "held-out expert"
    # and each round is also judged on that sample alone (the unbiased figure)
    # (None where the 12-13 candidates of a regime hold only one class)
    held_bacc = [r[f"bacc_{g}_holdout"] for r in report["rounds"] for g in ("low", "high")]
    assert all(v is None or 0.0 <= v <= 1.0 for v in held_bacc)
    assert any(v is not None for v in held_bacc)
    assert live.card["test_set"] == "held-out expert sample"
    assert report["config"]["holdout"] == 25  # the size used, not "default"
    assert live.card["n_labels"] == len(consensus_targets()) and not held & set(consensus_targets())


@pytest.mark.slow
def test_pretrained_campaign_starts_every_retrain_from_one_encoder(tmp_path, settings):
    """--pretrain: an encoder pretrained on the catalogue before round 1 (no label read,
    the held-out sample left out), and every round's retrain starts from it."""
    from labelapp.models import PretrainedEncoder

    settings.MODELS_DIR = tmp_path / "models"
    settings.VOTE_RATE_LIMIT = 10**6
    ingest_survey(path=write_survey(tmp_path / "s.fits", simulate_survey(300, seed=5)))
    call_command(
        "run_campaign", "--rounds", "2", "--labels-per-round", "20", "--volunteers", "15",
        "--epochs", "1", "--holdout", "30", "--pretrain", "masked", "--pretrain-epochs", "1",
        "--out", str(tmp_path / "out"),
    )  # fmt: skip
    report = json.loads((tmp_path / "out" / "bald.json").read_text())
    enc = PretrainedEncoder.objects.get()  # one encoder for the whole campaign
    assert enc.approach == "masked" and enc.card["epochs"] == 1
    # the catalogue less the held-out sample; pretrained before any label existed
    assert enc.n_candidates == 300 - 30 and enc.card["selection"]["holdout_excluded"]
    assert enc.created_at < Vote.objects.order_by("created_at").first().created_at
    assert report["config"]["pretrain"] == "masked" and report["config"]["pretrain_epochs"] == 1
    assert report["encoder"]["encoder"] == enc.pk
    assert report["encoder"]["weights_sha256"] == enc.card["weights_sha256"]
    versions = ModelVersion.objects.order_by("pk")
    assert versions.count() == 2
    assert all(v.card["pretrained_from"]["encoder"] == enc.pk for v in versions)
    # the same settings, strategies' reports side by side: the report says they match
    reports = {"bald": report, "random": json.loads(json.dumps(report))}
    reports["random"]["config"]["strategy"] = "random"
    html = write_comparison(reports, tmp_path / "cmp").read_text()
    summary = json.loads((tmp_path / "cmp" / "campaign.json").read_text())["summary"]
    assert summary["same_encoder"] is True
    assert "fine-tuned from a masked encoder pretrained on the catalogue (1 epochs" in html
    reports["random"]["encoder"]["weights_sha256"] = "other"
    write_comparison(reports, tmp_path / "cmp")
    summary = json.loads((tmp_path / "cmp" / "campaign.json").read_text())["summary"]
    assert summary["same_encoder"] is False


def test_campaign_from_scratch_records_no_encoder(tmp_path):
    reports = {"bald": {"rounds": [{"labels_total": 10, "labels_trained": 8, "votes_total": 30,
                                    "bacc_low": 0.8, "bacc_high": 0.9}],
                        "config": {"strategy": "bald", "power": 1.0}}}  # fmt: skip
    html = write_comparison(reports, tmp_path).read_text()
    assert "fine-tuned from" not in html
    assert "same_encoder" not in json.loads((tmp_path / "campaign.json").read_text())["summary"]


def test_bad_acquisition_settings_fail_before_any_vote(tmp_path):
    ingest_survey(path=write_survey(tmp_path / "s.fits", simulate_survey(60, seed=2)))
    with pytest.raises(CommandError, match="power must be finite and > 0"):
        call_command("run_campaign", "--rounds", "1", "--power", "-1", "--out", str(tmp_path))
    with pytest.raises(CommandError, match="random_fraction must be in"):
        call_command("run_campaign", "--rounds", "1", "--random-fraction", "2")
    with pytest.raises(CampaignError, match="--keep must be one of"):
        run_campaign(config=CampaignConfig(keep="final"), log=lambda m: None)
    with pytest.raises(CommandError, match="--mc-samples must be at least 1"):
        call_command("run_campaign", "--rounds", "1", "--mc-samples", "0")
    with pytest.raises(CommandError, match="--members must be at least 1"):
        call_command("run_campaign", "--rounds", "1", "--members", "0")
    with pytest.raises(CampaignError, match="--pretrain must be one of"):
        run_campaign(config=CampaignConfig(pretrain="autoencoder"), log=lambda m: None)
    with pytest.raises(CommandError, match="--pretrain-epochs must be between 1 and 200"):
        call_command("run_campaign", "--rounds", "1", "--pretrain", "masked",
                     "--pretrain-epochs", "0")  # fmt: skip
    assert Vote.objects.count() == 0


def test_training_label_quality_compares_settled_labels_with_truth(tmp_path, monkeypatch):
    from labelapp.models import Candidate, CandidateTruth
    from labelapp.research import simulated_campaign as campaign

    ingest_survey(path=write_survey(tmp_path / "s.fits", simulate_survey(80, seed=3)))
    rows = list(CandidateTruth.objects.values_list("candidate_id", "is_real"))
    sn = dict(Candidate.objects.values_list("pk", "sn"))
    low = [r for r in rows if 4.8 <= sn[r[0]] <= 5.5][:2]
    high = [r for r in rows if sn[r[0]] > 5.5][:2]
    assert len(low) == len(high) == 2
    # what training would use (consensus_targets is tested with the training service):
    # a soft posterior on the right side, one low-S/N label wrong
    targets = {low[0][0]: 0.95 if low[0][1] else 0.05, low[1][0]: 0.0 if low[1][1] else 1.0}
    targets |= {c: float(real) for c, real in high}
    monkeypatch.setattr(campaign, "consensus_targets", lambda: targets)
    q = campaign.training_label_quality()
    assert q["train_label_error"] == 0.25 and q["train_label_error_low"] == 0.5
    assert q["train_labels_low"] == 2
    assert q["train_frac_real"] == round(sum(r for _, r in low + high) / 4, 3)
    monkeypatch.setattr(campaign, "consensus_targets", dict)
    assert campaign.training_label_quality()["train_label_error"] is None


def test_evaluation_on_the_held_out_sample_leaves_the_rest_out(tmp_path):
    """The whole catalogue includes what a model trained on; the held-out figure does not."""
    from labelapp.models import Candidate, CandidateScore, CandidateTruth
    from labelapp.research.simulated_campaign import evaluate_against_truth
    from labelapp.services.learning.holdout import hold_out_from_truth

    ingest_survey(path=write_survey(tmp_path / "s.fits", simulate_survey(200, seed=4)))
    assert hold_out_from_truth(n=40, low_share=0.5, seed=1) == 40
    held = set(HoldoutLabel.objects.values_list("candidate_id", flat=True))
    truth = dict(CandidateTruth.objects.values_list("candidate_id", "is_real"))
    sn = dict(Candidate.objects.values_list("pk", "sn"))
    version = ModelVersion.objects.create(label_source="truth", directory="/x")
    # right about every candidate outside the sample, wrong about every one inside it
    CandidateScore.objects.bulk_create(
        CandidateScore(model_version=version, candidate_id=c,
                       prob=float(truth[c] != (c in held)), entropy=0.1, bald=0.01)
        for c in truth
    )  # fmt: skip
    assert evaluate_against_truth(version, holdout_only=True) == {
        "overall": 0.0, "low": 0.0, "high": 0.0
    }  # fmt: skip
    whole = evaluate_against_truth(version)
    low = [c for c in truth if sn[c] <= 5.5]  # regime_index: the low regime
    real = [c for c in low if truth[c]]
    fake = [c for c in low if not truth[c]]
    by_hand = 0.5 * (
        sum(c not in held for c in real) / len(real) + sum(c not in held for c in fake) / len(fake)
    )
    assert whole["low"] == pytest.approx(by_hand) and 0.5 < whole["low"] < 1.0


def test_comparison_report_counts_labels_and_votes_saved(tmp_path):
    def rounds(values, votes_per_label, trained):
        return [
            {
                "labels_total": 100 * (k + 1),
                "labels_trained": trained * (k + 1),
                "votes_total": votes_per_label * 100 * (k + 1),
                "bacc_low": v,
                "bacc_high": 0.9,
            }
            for k, v in enumerate(values)
        ]

    # bald needs half the labels but each of its (harder) labels costs twice the votes
    reports = {
        "random": {"rounds": rounds([0.6, 0.7, 0.8, 0.85], 3, 50)},
        "bald": {"rounds": rounds([0.7, 0.86, 0.88, 0.9], 6, 30)},
    }
    assert labels_to_reach(reports["bald"]["rounds"], 0.85) == 200
    path = write_comparison(reports, tmp_path)
    summary = json.loads((tmp_path / "campaign.json").read_text())["summary"]
    assert summary["bald_labels_to_reach_random_final"] == 200
    assert summary["bald_label_ratio"] == 0.5
    assert summary["bald_votes_to_reach_random_final"] == 1200
    assert summary["bald_vote_ratio"] == 1.0
    # its live model had trained on 60 labels then; random's final one on 200
    assert summary["bald_trained_labels_to_reach_random_final"] == 60
    assert summary["bald_trained_label_ratio"] == 0.3
    assert "random_final_bacc_low_holdout" not in summary  # reports from before it existed
    for row in reports["random"]["rounds"] + reports["bald"]["rounds"]:
        row["bacc_low_holdout"] = None  # --holdout 0: nothing held out, nothing to draw
    assert "never trained on" not in write_comparison(reports, tmp_path).read_text()
    # judged on the held-out sample, bald first reaches random's final 0.82 in round 3
    for name, held in (("random", [0.6, 0.7, 0.75, 0.82]), ("bald", [0.7, 0.8, 0.83, 0.84])):
        for row, v in zip(reports[name]["rounds"], held, strict=True):
            row["bacc_low_holdout"] = v
    assert "held-out sample, never trained on" not in path.read_text()  # nothing before
    held_html = write_comparison(reports, tmp_path).read_text()
    assert "held-out sample, never trained on" in held_html and '"y0": 0.82' in held_html
    summary = json.loads((tmp_path / "campaign.json").read_text())["summary"]
    assert summary["random_final_bacc_low_holdout"] == 0.82
    assert summary["bald_trained_labels_to_reach_random_final_holdout"] == 90
    assert summary["bald_trained_label_ratio_holdout"] == 0.45
    assert summary["bald_trained_label_ratio"] == 0.3  # the catalogue's figure is unchanged
    for row in reports["bald"]["rounds"]:  # never reached
        row["bacc_low_holdout"] = 0.5
    write_comparison(reports, tmp_path)
    summary = json.loads((tmp_path / "campaign.json").read_text())["summary"]
    assert summary["bald_trained_labels_to_reach_random_final_holdout"] is None
    assert "bald_trained_label_ratio_holdout" not in summary
    for name in reports:
        for row in reports[name]["rounds"]:
            del row["bacc_low_holdout"]
    html = path.read_text()
    assert "plotly.min.js" in html and (tmp_path / "plotly.min.js").exists()
    assert "volunteer votes used" in html and "consensus labels used" in html
    assert "labels the live model trained on" in html
    assert "<th>random_final_bacc_low</th><td>0.850</td>" in html
    # the target drawn on each figure: random's final accuracy and half of random's cost
    assert '"y0": 0.85' in html and '"x0": 200.0' in html and '"x0": 100.0' in html
    # each strategy's settings, from the report's config when it has one
    reports["bald"]["config"] = {"strategy": "bald", "power": 1.0, "random_fraction": 0.1,
                                 "low_sn_weight": 2.0, "rounds": 4, "seed": 2}  # fmt: skip
    html = write_comparison(reports, tmp_path).read_text()
    assert "drawn with P ~ score^1.0, random share 0.1, low-S/N weight 2.0, diversity" in html
    assert "gate on gold standards" in html  # a report from before the held-out sample
    assert "one CNN" in html  # a report from before ensembles
    assert "no carry-over" in html  # nor carrying unsettled candidates over
    reports["bald"]["config"]["carry_fraction"] = 0.5
    assert (
        "unsettled carried over (up to 0.5 of a batch)"
        in write_comparison(reports, tmp_path).read_text()
    )
    reports["bald"]["config"]["members"] = 3
    assert "ensembles of 3 CNNs" in write_comparison(reports, tmp_path).read_text()
    reports["bald"]["config"]["holdout"] = 1000
    assert "gate on 1000 held-out" in write_comparison(reports, tmp_path).read_text()
    reports["bald"]["config"]["holdout"] = None
    assert "gate on 5% (at most 1000) held-out" in write_comparison(reports, tmp_path).read_text()
    assert "<b>random</b>: settings not recorded" in html
    alone = write_comparison({"bald": reports["bald"]}, tmp_path / "alone").read_text()
    assert "Dashed grey" not in alone and '"shapes": []' in alone


def test_compare_runs_each_strategy_with_the_same_options(tmp_path, monkeypatch):
    """--compare: one fresh run per strategy, every campaign option passed on unchanged."""
    from labelapp.management.commands import run_campaign as command

    calls = []

    def fake_run(args, env, cwd):
        calls.append(args)
        if args[2] == "run_campaign":  # stands in for the strategy's own run: its report
            strategy = args[args.index("--strategy") + 1]
            rounds = [{"round": 1, "labels_total": 10, "labels_trained": 8, "votes_total": 30,
                       "bacc_low": 0.8, "bacc_high": 0.9}]  # fmt: skip
            (tmp_path / f"{strategy}.json").write_text(json.dumps({"rounds": rounds}))
        assert env["DATABASE_URL"] == "" and env["LABELAPP_DATA_DIR"] != ""
        return type("Done", (), {"returncode": 0})()

    monkeypatch.setattr(command.subprocess, "run", fake_run)
    call_command(
        "run_campaign", "--compare", "bald,random", "--rounds", "3", "--power", "2",
        "--mc-samples", "7", "--random-fraction", "0.2", "--seed", "4", "--out", str(tmp_path),
        "--diversity", "kcenter", "--keep", "last", "--members", "3", "--carry-fraction", "0.25",
        "--pretrain", "masked", "--pretrain-epochs", "2",
    )  # fmt: skip
    runs = [c[2:] for c in calls if c[2] == "run_campaign"]
    assert [r[r.index("--strategy") + 1] for r in runs] == ["bald", "random"]
    for r in runs:
        opts = dict(zip(r[1::2], r[2::2], strict=False))
        assert opts["--rounds"] == "3" and opts["--power"] == "2.0"
        assert opts["--mc-samples"] == "7" and opts["--random-fraction"] == "0.2"
        assert opts["--seed"] == "4" and opts["--executor"] == "inline"
        assert opts["--diversity"] == "kcenter"
        assert "--holdout" not in opts  # unset: each run takes its own default
        assert opts["--keep"] == "last" and opts["--members"] == "3"
        assert opts["--carry-fraction"] == "0.25"
        assert opts["--pretrain"] == "masked" and opts["--pretrain-epochs"] == "2"
    assert (tmp_path / "campaign.html").exists()
    assert json.loads((tmp_path / "campaign.json").read_text())["summary"]["random_labels"] == 10
