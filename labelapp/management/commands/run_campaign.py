"""In-silico campaign. One strategy in this database, or --compare several, each in its own
fresh data directory (same survey seed), with an HTML + JSON report."""

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from labelapp.research.simulated_campaign import (
    STRATEGIES,
    CampaignConfig,
    CampaignError,
    run_campaign,
    write_comparison,
)
from mlcore.acquisition import DIVERSITY
from mlcore.cnn.pretrain import APPROACHES
from mlcore.cnn.training import KEEP

# CampaignConfig fields set from the options of the same name; --compare passes them on
# unchanged to each strategy's own run_campaign.
PASSED_ON = (
    "rounds", "labels_per_round", "volunteers", "epochs", "random_fraction", "low_sn_weight",
    "power", "carry_fraction", "mc_samples", "diversity", "holdout", "keep", "members", "seed",
    "executor", "pretrain", "pretrain_epochs",
)  # fmt: skip


class Command(BaseCommand):
    help = (
        "Run the active-learning loop end to end with simulated volunteers. With "
        "--compare, each strategy runs in a fresh data directory on the same simulated "
        "survey, and a report compares them."
    )

    def add_arguments(self, parser):
        parser.add_argument("--strategy", choices=STRATEGIES, default="bald")
        parser.add_argument("--compare", help="comma-separated strategies, e.g. bald,random")
        parser.add_argument("--rounds", type=int, default=CampaignConfig.rounds)
        parser.add_argument("--labels-per-round", type=int, default=CampaignConfig.labels_per_round)
        parser.add_argument("--volunteers", type=int, default=CampaignConfig.volunteers)
        parser.add_argument("--epochs", type=int, default=CampaignConfig.epochs)
        parser.add_argument(
            "--random-fraction",
            type=float,
            default=CampaignConfig.random_fraction,
            help="share of each batch picked uniformly at random (strategies other than random)",
        )
        parser.add_argument(
            "--diversity",
            choices=DIVERSITY,
            default=CampaignConfig.diversity,
            help="how a batch is spread (not for random): wavelength strata, k-center on CNN "
            "embeddings, or none",
        )
        parser.add_argument(
            "--mc-samples",
            type=int,
            default=CampaignConfig.mc_samples,
            help="MC-dropout passes when scoring the catalogue (BALD's estimate)",
        )
        parser.add_argument(
            "--power",
            type=float,
            default=CampaignConfig.power,
            help="acquisition draws the exploit share with P ~ score**power (default 1); "
            "0: strict top-k",
        )
        parser.add_argument(
            "--carry-fraction",
            type=float,
            default=CampaignConfig.carry_fraction,
            help="at most this share of each batch goes to the previous round's candidates "
            "that took votes but did not settle (default 0: never carry over)",
        )
        parser.add_argument(
            "--low-sn-weight",
            type=float,
            default=CampaignConfig.low_sn_weight,
            help="acquisition weight of 4.8 <= S/N <= 5.5 candidates (not for random)",
        )
        parser.add_argument(
            "--holdout",
            type=int,
            default=CampaignConfig.holdout,
            help="candidates held out from training and answered from truth, as experts "
            "would (half from each S/N regime): the promotion gate's evaluation set and the "
            "unbiased yardstick (bacc_*_holdout; default: 5%% of the catalogue, at most 1000; "
            "0: gate on the gold standards)",
        )
        parser.add_argument(
            "--keep",
            choices=KEEP,
            default=CampaignConfig.keep,
            help="which weights each retrain keeps: the lowest validation loss (best) or the "
            "end of the learning-rate schedule (last)",
        )
        parser.add_argument(
            "--members",
            type=int,
            default=CampaignConfig.members,
            help="CNNs per retrained model (a deep ensemble when more than 1)",
        )
        parser.add_argument(
            "--pretrain",
            choices=APPROACHES,
            default=CampaignConfig.pretrain,
            help="before round 1, pretrain an encoder on the whole catalogue without labels "
            "(the held-out sample left out; costs no label) and start every retrain from it "
            "(default: from scratch)",
        )
        parser.add_argument(
            "--pretrain-epochs",
            type=int,
            default=CampaignConfig.pretrain_epochs,
            help="with --pretrain: pretraining epochs",
        )
        parser.add_argument("--seed", type=int, default=CampaignConfig.seed)
        parser.add_argument(
            "--n",
            type=int,
            default=20000,
            help="with --compare: candidates in the simulated survey",
        )
        parser.add_argument("--out", default="var/campaign", help="report directory")
        parser.add_argument(
            "--executor",
            choices=("inline", "celery"),
            default="inline",
            help="inline: call the services here; celery: send the real tasks to workers",
        )
        parser.add_argument(
            "--start-worker",
            action="store_true",
            help="with --executor celery: start one worker on the web, cpu and gpu queues "
            "for the run (else workers must already be running)",
        )

    def handle(self, *args, **opts):
        if opts["compare"]:
            return self._compare(opts)
        config = CampaignConfig(
            strategy=opts["strategy"],
            **({k: opts[k] for k in PASSED_ON} | {"power": opts["power"] or None}),  # 0: top-k
        )
        worker = None
        if opts["start_worker"]:
            if config.executor != "celery":
                raise CommandError("--start-worker goes with --executor celery")
            worker = self._start_worker(config)
        try:
            report = run_campaign(config=config, log=lambda m: self.stderr.write(m))
        except CampaignError as exc:
            raise CommandError(str(exc)) from exc
        finally:
            if worker is not None:
                worker.terminate()
                worker.wait(timeout=60)
        out = Path(opts["out"])
        out.mkdir(parents=True, exist_ok=True)
        path = out / f"{config.strategy}.json"
        path.write_text(report.to_json())
        self.stdout.write(f"Campaign ({config.strategy}, {config.rounds} rounds) written to {path}")

    def _start_worker(self, config):
        logs = Path(settings.LOGS_DIR)  # created at start-up (labelapp/datadirs.py)
        log = open(logs / "campaign-worker.log", "a")  # open as long as the worker lives
        env = {**os.environ, "LABELAPP_SCORE_MC_SAMPLES": str(config.mc_samples)}
        cmd = [sys.executable, "-m", "celery", "-A", "labelapp", "worker", "-Q", "web,cpu,gpu"]
        cmd += ["--pool", "solo", "--hostname", "campaign@%h", "--loglevel", "INFO"]
        self.stderr.write(f"started a Celery worker on web,cpu,gpu (log: {log.name})")
        return subprocess.Popen(cmd, env=env, cwd=settings.BASE_DIR, stdout=log, stderr=log)

    def _compare(self, opts):
        strategies = [s.strip() for s in opts["compare"].split(",") if s.strip()]
        bad = [s for s in strategies if s not in STRATEGIES]
        if bad or not strategies:
            raise CommandError(f"--compare takes strategies from {STRATEGIES}, got {bad}")
        out = Path(opts["out"]).resolve()
        reports = {}
        for strategy in strategies:
            work = Path(tempfile.mkdtemp(prefix=f"campaign-{strategy}-"))
            env = {
                **os.environ,
                "LABELAPP_DATA_DIR": str(work),
                "DATABASE_URL": "",
                "REDIS_URL": "",
                "LABELAPP_VOTE_RATE_LIMIT": "1000000",
            }
            manage = [sys.executable, str(Path(settings.BASE_DIR) / "manage.py")]
            steps = [
                ["migrate", "-v0"],
                [
                    "simulate_survey",
                    "--n",
                    str(opts["n"]),
                    "--seed",
                    str(opts["seed"]),
                    "--out",
                    str(work / "survey.fits"),
                    "--no-progress",
                ],
                ["ingest", str(work / "survey.fits"), "--no-progress"],
                [
                    "run_campaign",
                    "--strategy",
                    strategy,
                    "--out",
                    str(out),
                    *(
                        a
                        for k in PASSED_ON
                        if opts[k] is not None  # unset: the strategy's run picks the default
                        for a in (f"--{k.replace('_', '-')}", str(opts[k]))
                    ),
                    *(["--start-worker"] if opts["start_worker"] else []),
                ],
            ]
            for step in steps:
                self.stderr.write(f"[{strategy}] manage.py {' '.join(step[:1])} ...")
                done = subprocess.run(manage + step, env=env, cwd=settings.BASE_DIR)
                if done.returncode != 0:
                    raise CommandError(
                        f"[{strategy}] manage.py {step[0]} failed "
                        f"(exit {done.returncode}); data kept in {work}"
                    )
            reports[strategy] = json.loads((out / f"{strategy}.json").read_text())
        path = write_comparison(reports, out)
        self.stdout.write(f"Comparison report: {path} (and campaign.json)")
