"""Helpers shared by the benchmarks: run a command and measure its own time and peak memory."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def run_measured(args: list[str], env: dict[str, str]) -> tuple[float, float, str]:
    """Run ``args``; return (wall seconds, peak RSS in MiB of that process, output)."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        args,
        cwd=ROOT,
        env={**os.environ, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - t0
    out = proc.stdout.read()
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed ({proc.returncode}):\n{out[-3000:]}")
    return seconds, usage.ru_maxrss / 1024, out


def postgres_url(dbname: str) -> str | None:
    """Create (fresh) database ``dbname`` on the local PostgreSQL; None if not reachable."""
    try:
        import psycopg

        with psycopg.connect(
            "postgresql://postgres@127.0.0.1:5432/postgres", autocommit=True, connect_timeout=3
        ) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{dbname}"')
            conn.execute(f'CREATE DATABASE "{dbname}"')
        return f"postgres://postgres@127.0.0.1:5432/{dbname}"
    except Exception as exc:  # noqa: BLE001 - any failure means "not available here"
        print(f"(PostgreSQL not available: {exc})")
        return None
