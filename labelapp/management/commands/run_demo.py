"""Run the whole platform in the foreground: gunicorn web, one Celery worker, one beat.

Used by ``make demo``. Ctrl-C stops all three. Each process logs to var/logs/<name>.log.
"""

import signal
import subprocess
import sys
import time
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = "Start web (gunicorn), a Celery worker and Celery beat; stop all on Ctrl-C."

    def add_arguments(self, parser):
        parser.add_argument("--port", type=int, default=8000)
        parser.add_argument("--host", default="127.0.0.1")

    def handle(self, *args, **opts):
        logs = Path(settings.DATA_DIR) / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        py = sys.executable
        commands = {
            "web": [
                py,
                "-m",
                "gunicorn",
                "labelapp.wsgi",
                "--bind",
                f"{opts['host']}:{opts['port']}",
                "--workers",
                "2",
                "--timeout",
                "60",
            ],
            # One worker on every queue for the demo; production runs one per queue.
            "worker": [
                py,
                "-m",
                "celery",
                "-A",
                "labelapp",
                "worker",
                "-Q",
                "web,cpu,gpu",
                "--concurrency",
                "2",
                "--hostname",
                "demo@%h",
                "--loglevel",
                "INFO",
            ],
            "beat": [
                py,
                "-m",
                "celery",
                "-A",
                "labelapp",
                "beat",
                "--loglevel",
                "INFO",
                "--pidfile",
                str(logs / "beat.pid"),
            ],
        }
        procs = {}
        for name, cmd in commands.items():
            log = open(logs / f"{name}.log", "a")
            procs[name] = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
        url = f"http://{opts['host']}:{opts['port']}/"
        self.stdout.write(f"Demo running at {url}  (health: {url}healthz, admin: {url}admin/)")
        self.stdout.write(f"Logs in {logs}/. Press Ctrl-C to stop web, worker and beat.")
        stop = {"now": False}
        # Explicit handlers: a shell may start us with SIGINT ignored (background job).
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: stop.update(now=True))
        try:
            while not stop["now"]:
                for name, proc in procs.items():
                    if proc.poll() is not None:
                        self.stderr.write(
                            f"{name} exited with code {proc.returncode}; see "
                            f"{logs / (name + '.log')}. Stopping the demo."
                        )
                        stop["now"] = True
                time.sleep(1)
        except KeyboardInterrupt:
            pass
        finally:
            for proc in procs.values():
                if proc.poll() is None:
                    proc.terminate()
            for proc in procs.values():
                try:
                    proc.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    proc.kill()
            self.stdout.write("Stopped.")
