"""A thin Procfile runner: the Procfile is the one description of the platform's processes.

Deployments run its lines with any Procfile runner (honcho, foreman) or one systemd unit /
container per line; ``manage.py run_demo`` runs the same lines through :func:`start`, with
only environment variables (ports, concurrency) differing, so the demo and a deployment
cannot drift apart.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from pathlib import Path

from labelapp.errors import InvalidInput

_LINE = re.compile(r"^(?P<name>[A-Za-z0-9_-]+):\s*(?P<command>\S.*)$")


class ProcfileError(InvalidInput):
    pass


def read_procfile(path: Path) -> dict[str, str]:
    """``{name: command}`` in file order; comments (#) and blank lines are skipped."""
    processes: dict[str, str] = {}
    for number, line in enumerate(Path(path).read_text().splitlines(), start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        match = _LINE.match(line)
        if match is None:
            raise ProcfileError(f"{path}:{number}: expected 'name: command', got {line[:60]!r}")
        name = match["name"]
        if name in processes:
            raise ProcfileError(f"{path}:{number}: process {name!r} is defined twice")
        processes[name] = match["command"].strip()
    if not processes:
        raise ProcfileError(f"{path}: no processes defined")
    return processes


def shell_command(command: str) -> list[str]:
    """The argv a Procfile line runs as: POSIX sh expands its ${VAR:-default} values; exec
    makes the process itself (not a shell) the one that receives signals."""
    return ["/bin/sh", "-c", f"exec {command}"]


def start(
    processes: dict[str, str], *, env: dict[str, str], logs: Path
) -> dict[str, subprocess.Popen]:
    """Start every process, each logging to ``logs/<name>.log`` (appended)."""
    started = {}
    for name, command in processes.items():
        log = open(Path(logs) / f"{name}.log", "a")
        # Each in its own process group (same session), so stop() can signal a process and
        # everything it started: a gunicorn worker orphaned by its master's exit once
        # outlived the demo's Ctrl-C (CI demo smoke).
        started[name] = subprocess.Popen(
            shell_command(command),
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            process_group=0,
        )
        log.close()  # the child holds its own descriptor
    return started


def stop(procs: dict[str, subprocess.Popen], timeout: float = 20) -> dict[str, int]:
    """SIGTERM every running process (warm shutdown for Celery, graceful for gunicorn), then
    SIGKILL whatever is left after ``timeout`` seconds, and whatever they started that
    outlived them (each process group, see start()). Returns each exit code."""
    for proc in procs.values():
        if proc.poll() is None:
            _signal_group(proc, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    for proc in procs.values():
        try:
            proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    for proc in procs.values():
        _signal_group(proc, signal.SIGKILL)  # a child its parent left behind
    return {name: proc.returncode for name, proc in procs.items()}


def _signal_group(proc: subprocess.Popen, sig: int) -> None:
    try:
        os.killpg(proc.pid, sig)
    except (ProcessLookupError, PermissionError):
        pass  # the group is empty: everything in it has exited


def path_with(bin_dir: Path, env: dict[str, str] | None = None) -> str:
    """PATH with ``bin_dir`` first, so `gunicorn` and `celery` are the virtualenv's."""
    current = (env if env is not None else os.environ).get("PATH", "")
    return os.pathsep.join([str(bin_dir), current]) if current else str(bin_dir)
