"""The Procfile is the one description of the processes: `make demo` (run_demo) starts exactly
its lines, and every queue a task can be sent to has a worker line."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.conf import settings

from labelapp.management.commands.run_demo import PROCFILE, demo_environment
from labelapp.procfile import ProcfileError, read_procfile, shell_command

ROOT = Path(__file__).resolve().parent.parent


def _argv(command: str, env: dict[str, str]) -> list[str]:
    """The argv the line's process gets after sh expands it (what `exec` would run)."""
    script = shell_command(command)[2].replace("exec ", "set -- ", 1) + '; printf "%s\\0" "$@"'
    out = subprocess.run(["/bin/sh", "-c", script], env=env, capture_output=True, check=True)
    return out.stdout.decode().split("\0")[:-1]


def test_the_procfile_describes_web_a_worker_per_queue_and_beat():
    processes = read_procfile(PROCFILE)
    assert set(processes) == {"web", "worker-cpu", "worker-gpu", "worker-web", "beat"}
    env = demo_environment({"PATH": os.environ["PATH"]}, host="127.0.0.1", port=8123)
    argv = {name: _argv(command, env) for name, command in processes.items()}
    web = argv["web"]
    assert web[:2] == ["gunicorn", "labelapp.wsgi"]
    assert web[web.index("--bind") + 1] == "127.0.0.1:8123"
    assert web[web.index("--workers") + 1] == "2"
    served = set()
    for name, args in argv.items():
        if name.startswith("worker-"):
            assert args[:4] == ["celery", "-A", "labelapp", "worker"]
            served |= set(args[args.index("-Q") + 1].split(","))
    routed = {r["queue"] for r in settings.CELERY_TASK_ROUTES.values()}
    assert routed | {settings.CELERY_TASK_DEFAULT_QUEUE} <= served
    assert argv["beat"][:4] == ["celery", "-A", "labelapp", "beat"]


@pytest.mark.parametrize(
    "text, error",
    [
        ("web gunicorn x\n", r"Procfile:1: expected 'name: command'"),
        ("# only a comment\n", "no processes defined"),
        ("a: x\n\nb: y\na: z\n", r"Procfile:4: process 'a' is defined twice"),
    ],
)
def test_a_bad_procfile_says_which_line(tmp_path, text, error):
    path = tmp_path / "Procfile"
    path.write_text(text)
    with pytest.raises(ProcfileError, match=error):
        read_procfile(path)


@pytest.mark.slow
def test_run_demo_starts_each_line_of_the_procfile_and_stops_them_on_ctrl_c(tmp_path):
    """Stand-in lines record their expanded variables and pid; SIGINT stops every one."""
    out = tmp_path / "out"
    out.mkdir()
    line = (
        "{name}: python -c 'import os, sys, time; "
        'open(os.path.join(os.environ["OUT"], "{name}"), "w").write('
        'str(os.getpid()) + " " + os.environ["BIND"] + " " + sys.argv[1]); '
        'time.sleep(300)\' "${{WEB_CONCURRENCY:-9}}"'
    )
    procfile = tmp_path / "Procfile"
    procfile.write_text("# stand-ins\n" + "\n".join(line.format(name=n) for n in "abc") + "\n")
    env = {
        **os.environ,
        "OUT": str(out),
        "LABELAPP_DATA_DIR": str(tmp_path / "data"),
        "DATABASE_URL": "",
        "REDIS_URL": "",
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
    }
    assert (
        subprocess.run(
            [sys.executable, "manage.py", "migrate", "--no-input"], cwd=ROOT, env=env, timeout=300
        ).returncode
        == 0
    )
    demo = subprocess.Popen(
        [sys.executable, "manage.py", "run_demo", "--procfile", str(procfile), "--port", "8199"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 60
        while len(list(out.iterdir())) < 3 and time.monotonic() < deadline:
            time.sleep(0.2)
        records = {p.name: p.read_text().split() for p in out.iterdir()}
        assert set(records) == {"a", "b", "c"}
        for _pid, bind, workers in records.values():
            assert bind == "127.0.0.1:8199" and workers == "2"  # the demo's sizes
        os.killpg(demo.pid, signal.SIGINT)
        output, _ = demo.communicate(timeout=60)
    finally:
        if demo.poll() is None:
            os.killpg(demo.pid, signal.SIGKILL)
    assert "Started a, b, c" in output and "Console login" in output
    assert "Stopped." in output
    for pid, _, _ in records.values():
        with pytest.raises(ProcessLookupError):
            os.kill(int(pid), 0)


def test_stop_also_ends_what_a_process_left_behind(tmp_path):
    """A parent that exits on SIGTERM leaving a child that ignores it (a gunicorn worker its
    master no longer waits for): stop() ends the child too, through the process group."""
    from labelapp.procfile import start, stop

    pidfile = tmp_path / "child.pid"
    (tmp_path / "child.py").write_text(
        "import os, signal, sys, time\n"
        "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        "open(sys.argv[1], 'w').write(str(os.getpid()))\n"
        "time.sleep(300)\n"
    )
    (tmp_path / "parent.py").write_text(
        "import os, signal, subprocess, sys, time\n"
        "subprocess.Popen([sys.executable, sys.argv[1], sys.argv[2]])\n"
        "signal.signal(signal.SIGTERM, lambda *a: os._exit(0))\n"
        "time.sleep(300)\n"
    )
    line = f"{sys.executable} {tmp_path / 'parent.py'} {tmp_path / 'child.py'} {pidfile}"
    procs = start({"parent": line}, env=dict(os.environ), logs=tmp_path)
    deadline = time.monotonic() + 30
    while not (pidfile.exists() and pidfile.read_text()) and time.monotonic() < deadline:
        time.sleep(0.1)
    child = int(pidfile.read_text())
    codes = stop(procs, timeout=5)
    assert codes["parent"] == 0  # it exited on SIGTERM by itself
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            os.kill(child, 0)
        except ProcessLookupError:
            break
        time.sleep(0.1)
    with pytest.raises(ProcessLookupError):
        os.kill(child, 0)
