"""The light-crowd loop, several seeds and arms: candidates retired and label error. Figures only.

Each arm is the in-silico campaign (``manage.py run_campaign --compare random --n 4000
--rounds 2 --labels-per-round 500 --volunteers 300 --holdout 400 --epochs 1``: 300 simulated
volunteers with Zooniverse-like activity, 3,000 votes a round) run per seed in its own data
directory (SQLite, no Redis), optionally on another checkout's code (``git archive REV | tar
-x -C DIR``) and with environment settings. Every arm casts the same votes, so candidates
retired after round 2 compare directly: the ratio column is votes per retired candidate
against the first arm. Label error is round 2's training-label error (retired labels and
gold, against the simulator's truth).

    .venv/bin/python bench/bench_light_crowd.py --seeds 1-8 --jobs 2 \\
        --arm "before #24@/tmp/before24" \\
        --arm "P 0.99@/tmp/before24:LABELAPP_RETIRE_P_HI=0.99,LABELAPP_RETIRE_P_LO=0.01" \\
        --arm "today" --arm "today, P 0.90:LABELAPP_RETIRE_P_HI=0.90,LABELAPP_RETIRE_P_LO=0.10"

An arm is ``NAME[@TREE][:VAR=VALUE,...]`` (TREE defaults to this checkout).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CAMPAIGN = [
    "run_campaign", "--compare", "random", "--n", "4000", "--rounds", "2",
    "--labels-per-round", "500", "--volunteers", "300", "--holdout", "400", "--epochs", "1",
]  # fmt: skip


def parse_arm(text: str) -> tuple[str, Path, dict[str, str]]:
    head, _, settings = text.partition(":")
    name, _, tree = head.partition("@")
    env = {}
    for item in filter(None, settings.split(",")):
        key, eq, value = item.partition("=")
        if not eq or not key:
            raise SystemExit(f"--arm {text!r}: settings are VAR=VALUE, comma-separated")
        env[key] = value
    tree_path = Path(tree).resolve() if tree else ROOT
    if not (tree_path / "manage.py").is_file():
        raise SystemExit(f"--arm {text!r}: {tree_path} holds no manage.py")
    return name, tree_path, env


def parse_seeds(text: str) -> list[int]:
    if "-" in text:
        lo, hi = text.split("-")
        return list(range(int(lo), int(hi) + 1))
    return [int(s) for s in text.split(",")]


def run_one(tree: Path, env: dict[str, str], seed: int, work: Path) -> tuple[int, float]:
    """(retired after round 2, round 2's training-label error) of one seed."""
    data = work / "data"
    data.mkdir(parents=True)
    run_env = {
        **os.environ, **env,
        "LABELAPP_DATA_DIR": str(data), "DATABASE_URL": f"sqlite:///{data}/db.sqlite3",
        "REDIS_URL": "", "OMP_NUM_THREADS": "1", "DJANGO_SETTINGS_MODULE": "labelapp.settings",
    }  # fmt: skip
    out = work / "out"
    cmd = [sys.executable, "manage.py", *CAMPAIGN, "--seed", str(seed), "--out", str(out)]
    with open(work / "log.txt", "w") as log:
        subprocess.run(cmd, cwd=tree, env=run_env, stdout=log, stderr=subprocess.STDOUT, check=True)
    last = json.loads((out / "random.json").read_text())["rounds"][-1]
    return int(last["retired_total"]), float(last["train_label_error"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--arm", action="append", required=True, help="NAME[@TREE][:VAR=VAL,...]")
    parser.add_argument("--seeds", default="1-8")
    parser.add_argument("--jobs", type=int, default=2, help="campaigns at a time")
    parser.add_argument("--keep", type=Path, help="keep each run's directory under here")
    args = parser.parse_args()
    arms = [parse_arm(a) for a in args.arm]
    seeds = parse_seeds(args.seeds)
    base = args.keep or Path(tempfile.mkdtemp(prefix="bench-light-crowd-"))
    jobs = [(i, s) for i in range(len(arms)) for s in seeds]
    try:
        with ThreadPoolExecutor(args.jobs) as pool:
            futures = {
                job: pool.submit(run_one, arms[job[0]][1], arms[job[0]][2], job[1],
                                 base / f"arm{job[0]}" / f"seed{job[1]}")
                for job in jobs
            }  # fmt: skip
            results = {job: f.result() for job, f in futures.items()}
    finally:
        if args.keep is None:
            shutil.rmtree(base, ignore_errors=True)
    print(f"seeds {seeds[0]}-{seeds[-1]}; {' '.join(CAMPAIGN)}")
    print(
        "| arm | retired per seed | total | votes per retired vs the first arm "
        "| label error (mean) |"
    )
    print("|---|---|---|---|---|")
    first = sum(results[(0, s)][0] for s in seeds)
    for i, (name, _, _) in enumerate(arms):
        retired = [results[(i, s)][0] for s in seeds]
        error = sum(results[(i, s)][1] for s in seeds) / len(seeds)
        ratio = first / sum(retired) if sum(retired) else float("inf")
        print(f"| {name} | {' '.join(map(str, retired))} | {sum(retired):,} | {ratio:.2f}x | "
              f"{error:.3f} |")  # fmt: skip


if __name__ == "__main__":
    main()
