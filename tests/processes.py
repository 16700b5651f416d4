"""Start real Celery worker / beat processes for tests, and wait for conditions."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def start_celery(kind: str, env: dict[str, str], log: Path, *extra: str) -> subprocess.Popen:
    """``kind`` is 'worker' or 'beat'. Output goes to ``log`` (shown when a test fails)."""
    args = [sys.executable, "-m", "celery", "-A", "labelapp", kind, "--loglevel", "INFO"]
    if kind == "worker":
        args += ["--pool", "solo", "--without-mingle", "--without-gossip"]
    if kind == "beat":
        args += ["--pidfile", str(log.with_suffix(".pid")), "--max-interval", "1"]
    fh = open(log, "w")
    return subprocess.Popen(
        args + list(extra),
        cwd=ROOT,
        env={**os.environ, **env},
        stdout=fh,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def stop(proc: subprocess.Popen, timeout: float = 20) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def wait_for(condition: Callable[[], object], timeout: float, what: str, logs=()) -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.5)
    tails = "\n".join(f"--- {p}:\n{Path(p).read_text()[-3000:]}" for p in logs if Path(p).exists())
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}\n{tails}")


def manage(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=300,
    )


def worker_env(settings=None, **extra: str) -> dict[str, str]:
    """Environment for a worker started from a test: pytest-django's test database (not the
    real one), the test's model directory, and ``extra`` (e.g. LABELAPP_SCORE_MC_SAMPLES)."""
    from django.db import connection

    s = connection.settings_dict
    env = {"DATABASE_URL": f"postgres://{s['USER']}@{s['HOST']}:{s['PORT']}/{s['NAME']}"}
    if settings is not None and hasattr(settings, "MODELS_DIR"):
        env["LABELAPP_MODELS_DIR"] = str(settings.MODELS_DIR)
    env.update(extra)
    return env
