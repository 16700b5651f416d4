"""A worker SIGKILLed in the middle of a long task, under each broker: when does the task
come back, and does it finish exactly once?

For each broker URL: start a worker (prefork, as the Procfile does) on queue `cpu`, send a
task that sleeps --task-s seconds (acks_late + reject_on_worker_lost, like the platform's
tasks), SIGKILL the worker's whole process group --kill-after-s seconds into the task (a
machine or container dying), start a second worker at once, and time until the task starts
again and finishes. Redis is run with LABELAPP_VISIBILITY_TIMEOUT_S=--visibility-s (the
production default is 6 h: the same wait, that long). Prints one row per broker.

    python bench/bench_broker_sigkill.py --redis redis://127.0.0.1:6379/11 \\
        --amqp amqp://guest:guest@127.0.0.1:5672/wt21 [--visibility-s 30] [--task-s 20]
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def worker(env: dict[str, str], log: Path, name: str) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "celery", "-A", "bench._broker_app", "worker", "-Q", "cpu"]
    cmd += ["--concurrency", "1", "--hostname", f"{name}@%h", "--without-mingle"]
    cmd += ["--without-gossip", "--loglevel", "INFO"]
    return subprocess.Popen(
        cmd,
        cwd=ROOT,
        env=env,
        stdout=open(log, "w"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def events(path: Path) -> list[tuple[str, float, str]]:
    if not path.exists():
        return []
    rows = [line.split() for line in path.read_text().splitlines() if line.strip()]
    return [(r[0], float(r[1]), r[2]) for r in rows]


def wait(condition, timeout: float):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.2)
    return None


def measure(label: str, broker: str, cache: str, args, tmp: Path) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LABELAPP_", "DJANGO_"))}
    env.update(
        LABELAPP_DATA_DIR=str(tmp / label),
        DATABASE_URL="",
        REDIS_URL=cache,
        CELERY_BROKER_URL=broker,
        LABELAPP_VISIBILITY_TIMEOUT_S=str(args.visibility_s),
    )
    purge = [sys.executable, "-m", "celery", "-A", "bench._broker_app", "purge", "-f", "-Q", "cpu"]
    subprocess.run(purge, cwd=ROOT, env=env, capture_output=True, timeout=120)
    record = tmp / f"{label}.events"
    w1 = worker(env, tmp / f"{label}-w1.log", "w1")
    w2 = None
    try:
        send = (
            "from bench._broker_app import long_task;"
            f"long_task.apply_async(({str(record)!r}, {args.task_s}), queue='cpu')"
        )
        subprocess.run([sys.executable, "-c", send], cwd=ROOT, env=env, check=True, timeout=120)
        if not wait(lambda: events(record), 120):
            return f"| {label} | the first worker never started the task |"
        time.sleep(args.kill_after_s)
        os.killpg(w1.pid, signal.SIGKILL)
        w1.wait()
        killed = time.time()
        w2 = worker(env, tmp / f"{label}-w2.log", "w2")
        limit = args.visibility_s + args.task_s + 120
        again = wait(
            lambda: [e for e in events(record) if e[0] == "start" and e[1] > killed], limit
        )
        if not again:
            return f"| {label} | not redelivered within {limit:.0f} s of the kill |"
        redelivered = again[0][1] - killed
        wait(lambda: any(e[0] == "done" for e in events(record)), args.task_s + 60)
        time.sleep(args.settle_s)  # a duplicate, if any, would start within this
        ev = events(record)
        starts = sum(e[0] == "start" for e in ev)
        dones = sum(e[0] == "done" for e in ev)
        return (
            f"| {label} | {redelivered:.1f} s | {starts} | {dones} | "
            f"{'yes' if dones == 1 else 'NO'} |"
        )
    finally:
        for proc in (w1, w2):
            if proc is not None and proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--redis", help="Redis URL (broker for one run, cache for both)")
    parser.add_argument("--amqp", help="RabbitMQ URL")
    parser.add_argument("--task-s", type=float, default=20)
    parser.add_argument("--kill-after-s", type=float, default=3)
    parser.add_argument("--visibility-s", type=int, default=30)
    parser.add_argument("--settle-s", type=float, default=15)
    args = parser.parse_args()
    if not args.redis:
        parser.error("--redis is needed (the cache, and the Redis broker run)")
    print(
        f"task {args.task_s:.0f} s, SIGKILL {args.kill_after_s:.0f} s into it, second worker "
        f"started at once; Redis visibility timeout {args.visibility_s} s"
    )
    print("| broker | task started again after the kill | starts | finishes | exactly once |")
    print("|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        runs = [("Redis", args.redis)] + ([("RabbitMQ (quorum)", args.amqp)] if args.amqp else [])
        for label, url in runs:
            print(measure(label.split()[0], url, args.redis, args, Path(tmp)), flush=True)


if __name__ == "__main__":
    main()
