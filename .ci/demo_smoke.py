#!/usr/bin/env python3
"""CI smoke of `make demo` on this checkout, as a newcomer runs it (stdlib only).

Runs `make demo` on a small survey in its own process group, with a data directory that does
not exist yet (as var/ on a fresh clone), then checks: /healthz answers,
every Procfile process runs (web, three workers, beat) and a heartbeat sent by beat was run
by a worker, a classify page and a cutout render, one vote cast through the JSON API with a
real session and CSRF token, the console opens with the login the demo printed. Then a
Ctrl-C (SIGINT to the demo's process group) must leave no process of the demo behind.
Any failure exits non-zero with the demo's output. Figures go to stdout.

    python3 .ci/demo_smoke.py [--port 8123 (or DEMO_SMOKE_PORT)] [--timeout 1800]
"""

from __future__ import annotations

import argparse
import http.cookiejar
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# A small survey: the same steps as `make demo`, minutes less of simulation.
SIZES = ["DEMO_N=400", "DEMO_VOLUNTEERS=20", "DEMO_VOTES=300", "DEMO_FILE=data/smoke.fits"]
EXPECTED = {  # process -> what its command line contains
    "web": "gunicorn labelapp.wsgi",
    "worker-cpu": "worker -Q cpu",
    "worker-gpu": "worker -Q gpu",
    "worker-web": "worker -Q web",
    "beat": "labelapp beat",
}


class Failed(Exception):
    pass


def session_processes(sid: int) -> dict[int, str]:
    """Every live process of session ``sid`` (the demo and all it started), pid -> cmdline."""
    found = {}
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            stat = (proc / "stat").read_text()
            fields = stat[stat.rindex(")") + 2 :].split()
            if int(fields[3]) == sid and fields[0] != "Z":  # fields[3]: session id
                found[int(proc.name)] = (proc / "cmdline").read_bytes().replace(b"\0", b" ")
        except (OSError, ValueError):
            continue  # it exited while we looked
    return {pid: cmd.decode(errors="replace").strip() for pid, cmd in found.items()}


class Client:
    """A browser's cookie jar: the session and csrftoken cookies the site sets."""

    def __init__(self, base: str):
        self.base = base
        self.jar = http.cookiejar.CookieJar()
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(self.jar))

    def cookie(self, name: str) -> str:
        for c in self.jar:
            if c.name == name:
                return c.value
        raise Failed(f"the site set no {name} cookie")

    def request(self, path, data=None, headers=None, expect=200):
        req = urllib.request.Request(self.base + path, data=data, headers=headers or {})
        try:
            with self.opener.open(req, timeout=60) as resp:
                status, body, ctype = resp.status, resp.read(), resp.headers.get_content_type()
        except urllib.error.HTTPError as exc:
            status, body, ctype = exc.code, exc.read(), exc.headers.get_content_type()
        if status != expect:
            raise Failed(f"{path}: HTTP {status}, expected {expect}: {body[:300]!r}")
        return body, ctype

    def get_json(self, path):
        return json.loads(self.request(path)[0])

    def post_json(self, path, payload, expect=200):
        headers = {
            "Content-Type": "application/json",
            "X-CSRFToken": self.cookie("csrftoken"),
            "Referer": self.base + "/classify/",
        }
        body = json.dumps(payload).encode()
        return json.loads(self.request(path, body, headers, expect=expect)[0])

    def post_form(self, path, fields):
        fields = {**fields, "csrfmiddlewaretoken": self.cookie("csrftoken")}
        data = urllib.parse.urlencode(fields).encode()
        return self.request(path, data, {"Referer": self.base + path})


def wait(condition, timeout, what, demo):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if demo.poll() is not None:
            raise Failed(f"`make demo` exited with code {demo.returncode} while waiting for {what}")
        value = condition()
        if value:
            return value
        time.sleep(1)
    raise Failed(f"timed out after {timeout:.0f} s waiting for {what}")


def healthz(base):
    try:
        with urllib.request.urlopen(base + "/healthz", timeout=10) as resp:
            return json.loads(resp.read())
    except (OSError, ValueError):
        return None


def exercise(base: str, output: Path, demo: subprocess.Popen, timeout: float, t0: float) -> None:
    first = wait(lambda: healthz(base), timeout, "/healthz to answer", demo)
    print(f"demo smoke: /healthz answered {time.monotonic() - t0:.0f} s after `make demo`")
    if not (first["database"]["ok"] and first["broker"]["ok"]):
        raise Failed(f"/healthz reports a problem: {first}")
    login = wait(
        lambda: re.search(r"username (\S+)\s+password (\S+)", output.read_text()),
        60,
        "the demo to print the console login",
        demo,
    )
    # All of the Procfile's processes run; beat's heartbeat went through the broker to a worker.
    cmdlines = "\n".join(session_processes(demo.pid).values())
    missing = [name for name, needle in EXPECTED.items() if needle not in cmdlines]
    if missing:
        raise Failed(f"processes not running: {', '.join(missing)}\n{cmdlines}")
    wait(
        lambda: (healthz(base) or {}).get("workers", {}).get("alive", 0) >= 1,
        120,
        "a worker to run the heartbeat beat sends (/healthz workers.alive)",
        demo,
    )

    volunteer = Client(base)
    page, _ = volunteer.request("/classify/?skip=1")
    if b"classify" not in page.lower():
        raise Failed("/classify/ did not render the classify page")
    nxt = volunteer.get_json("/api/next/")
    if not nxt["candidates"]:
        raise Failed(f"/api/next/ offered no candidate: {nxt}")
    candidate = nxt["candidates"][0]
    _, ctype = volunteer.request(candidate["cutout_url"])
    if not ctype.startswith("image/"):
        raise Failed(f"{candidate['cutout_url']} is {ctype}, not an image")
    # As the page does: the vote carries the token /api/next/ served with the candidate.
    vote = {"detectid": candidate["detectid"], "token": candidate["token"], "answer": "yes"}
    result = volunteer.post_json("/api/votes/", {**vote, "next": 0}, expect=201)
    if not (result.get("created") and result["vote"]["detectid"] == candidate["detectid"]):
        raise Failed(f"the vote was not stored: {result}")
    print(f"demo smoke: vote on candidate {candidate['detectid']} stored: {result['vote']}")

    scientist = Client(base)
    scientist.request("/accounts/login/")
    scientist.post_form(
        "/accounts/login/?next=/console/",
        {"username": login[1], "password": login[2]},
    )
    console, _ = scientist.request("/console/")
    if b"console" not in console.lower():
        raise Failed("/console/ did not render for the demo scientist")
    print(f"demo smoke: console opened as {login[1]} with the printed password")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=int(os.environ.get("DEMO_SMOKE_PORT", 8123)))
    parser.add_argument("--timeout", type=float, default=1800, help="for make demo to serve")
    args = parser.parse_args()
    base = f"http://127.0.0.1:{args.port}"
    if healthz(base) is not None:
        print(f"demo smoke: something already answers on {base}; pick --port", file=sys.stderr)
        return 2
    artifacts = ROOT / "test-artifacts"
    artifacts.mkdir(exist_ok=True)
    output = artifacts / "demo-smoke.log"
    # A data directory that does not exist yet, as var/ on a fresh clone: whatever ran before
    # in this checkout (make test creates var/) cannot hide a directory the demo fails to make.
    data_dir = artifacts / "demo-smoke-data"
    shutil.rmtree(data_dir, ignore_errors=True)
    # A heartbeat every 2 s, so "beat -> broker -> worker" is seen within seconds.
    env = {**os.environ, "LABELAPP_HEARTBEAT_INTERVAL_S": "2", "LABELAPP_DATA_DIR": str(data_dir)}
    for name in ("DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL", "DJANGO_ENV"):
        env.pop(name, None)  # the demo's self-contained defaults, as on a laptop
    t0 = time.monotonic()
    with open(output, "w") as log:
        demo = subprocess.Popen(
            ["make", "demo", f"PORT={args.port}", *SIZES],
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group and session, like a terminal's job
        )
    ok = False
    try:
        exercise(base, output, demo, args.timeout, t0)
        ok = True
    except (Failed, OSError, KeyError, ValueError) as exc:
        print(f"demo smoke FAILED: {exc}", file=sys.stderr)
    finally:
        # Ctrl-C: SIGINT to the whole foreground group, as a terminal sends it.
        if demo.poll() is None:
            os.killpg(demo.pid, signal.SIGINT)
        try:
            demo.wait(timeout=90)
        except subprocess.TimeoutExpired:
            print("demo smoke FAILED: make demo still running 90 s after SIGINT", file=sys.stderr)
            ok = False
        # make has exited; its grandchildren (gunicorn and Celery pool processes) may take a
        # few seconds more on a loaded machine: "nothing left" means none within 30 s.
        left = session_processes(demo.pid)
        deadline = time.monotonic() + 30
        while left and time.monotonic() < deadline:
            time.sleep(1)
            left = session_processes(demo.pid)
        if left:
            ok = False
            print("demo smoke FAILED: processes left after Ctrl-C:", file=sys.stderr)
            for pid, cmd in left.items():
                print(f"  {pid} {cmd[:160]}", file=sys.stderr)
                os.kill(pid, signal.SIGKILL)
        if healthz(base) is not None:
            ok = False
            print(f"demo smoke FAILED: {base} still answers after Ctrl-C", file=sys.stderr)
        if not ok:
            print(f"--- last lines of `make demo` ({output}):", file=sys.stderr)
            print("\n".join(output.read_text().splitlines()[-40:]), file=sys.stderr)
    if ok:
        print(f"demo smoke passed in {time.monotonic() - t0:.0f} s; nothing left after Ctrl-C")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
