"""Run the whole platform in the foreground, as the Procfile describes it, sized for a laptop.

Used by ``make demo``. The Procfile is the single description of the processes (web, one
worker per queue, beat); this command reads it (labelapp/procfile.py) and only sets the
environment variables its lines read (port, concurrency). Ctrl-C stops them all. Each
process logs to <LABELAPP_DATA_DIR>/logs/<name>.log.
"""

import os
import signal
import sys
import time
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from labelapp import procfile
from labelapp.services.operations.demo_account import DemoAccountRefused, reset_demo_scientist

PROCFILE = Path(settings.BASE_DIR) / "Procfile"


def demo_environment(environ: dict[str, str], *, host: str, port: int) -> dict[str, str]:
    """The variables the Procfile's lines read, set for one machine with a few cores. Values
    already in the environment win, so `WEB_CONCURRENCY=4 make demo` works."""
    sizes = {
        "WEB_CONCURRENCY": "2",
        "GUNICORN_TIMEOUT": "60",
        "CELERY_CPU_CONCURRENCY": "1",
        "CELERY_WEB_CONCURRENCY": "1",
        "CELERY_BEAT_PIDFILE": str(Path(settings.LOGS_DIR) / "beat.pid"),
    }
    env = {**sizes, **environ}
    env["BIND"] = f"{host}:{port}"  # --host/--port are the demo's own options
    env["PORT"] = str(port)
    env["PATH"] = procfile.path_with(Path(sys.executable).parent, environ)
    return env


class Command(BaseCommand):
    help = "Start the Procfile's processes (web, workers, beat); stop all on Ctrl-C."

    def add_arguments(self, parser):
        parser.add_argument("--port", type=int, default=8000)
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--procfile", type=Path, default=PROCFILE)
        parser.add_argument(
            "--no-scientist",
            action="store_true",
            help="do not create/reset the demo scientist account",
        )

    def handle(self, *args, **opts):
        try:
            processes = procfile.read_procfile(opts["procfile"])
        except (OSError, procfile.ProcfileError) as exc:
            raise CommandError(str(exc)) from exc
        login = None
        if not opts["no_scientist"]:
            try:
                login = reset_demo_scientist()
            except DemoAccountRefused as exc:
                raise CommandError(str(exc)) from exc
        logs = Path(settings.LOGS_DIR)
        env = demo_environment(dict(os.environ), host=opts["host"], port=opts["port"])
        stop = {"now": False}
        # Explicit handlers: a shell may start us with SIGINT ignored (background job).
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: stop.update(now=True))
        procs = procfile.start(processes, env=env, logs=logs)
        url = f"http://{opts['host']}:{opts['port']}/"
        names = ", ".join(procs)
        self.stdout.write(f"Started {names} from {opts['procfile']}; logs in {logs}/")
        self.stdout.write(f"Demo running at {url}  (health: {url}healthz)")
        self.stdout.write(f"Volunteers: {url}classify/   Scientists: {url}console/")
        if login is not None:
            self.stdout.write(
                f"Console login at {url}accounts/login/?next=/console/ (demo only, a new "
                f"password at each start): username {login[0]}  password {login[1]}"
            )
        self.stdout.write("Press Ctrl-C to stop every process.")
        self.stdout.flush()
        crashed = []
        try:
            while not stop["now"]:
                for name, proc in procs.items():
                    if proc.poll() is not None:
                        crashed.append(name)
                        self.stderr.write(
                            f"{name} exited with code {proc.returncode}; see "
                            f"{logs / (name + '.log')}. Stopping the demo."
                        )
                        stop["now"] = True
                time.sleep(0.5)
        finally:
            procfile.stop(procs)
            self.stdout.write("Stopped.")
        if crashed:
            raise CommandError(f"{', '.join(crashed)} stopped by itself: the demo is not running")
