"""Resident memory and start time of the web process (gunicorn, one worker), by install.

For each Python environment given (default: this one), on a small demo database:
start `python -m gunicorn labelapp.wsgi --workers 1`, time until /healthz answers, make a
volunteer's requests (classify page, next candidate, cutout, vote), then read VmRSS of the
master and of the worker from /proc. Repeated --runs times; medians printed. The variant
`+torch` loads bench/_wsgi_with_torch.py instead: the cost the web role avoids by never
importing torch (tests/test_web_without_torch.py keeps it so).

    python bench/bench_web_process.py [--env NAME=/path/to/venv/bin/python ...] [--runs 3]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from http.cookiejar import CookieJar
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for {pid}")


def site_packages_mib(python: str) -> float:
    out = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    du = subprocess.run(["du", "-sm", out], capture_output=True, text=True, check=True)
    return float(du.stdout.split()[0])


def prepare(python: str, data: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LABELAPP_", "DJANGO_"))}
    env.update(LABELAPP_DATA_DIR=str(data), DATABASE_URL="", REDIS_URL="")
    survey = data / "s.fits"
    for args in (
        ["migrate", "--no-input"],
        ["simulate_survey", "--n", "200", "--seed", "1", "--out", str(survey)],
        ["ingest", str(survey)],
    ):
        subprocess.run(
            [python, "manage.py", *args], cwd=ROOT, env=env, check=True, capture_output=True
        )
    return env


def one_run(python: str, app: str, env: dict[str, str]) -> dict[str, float]:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    cmd = [python, "-m", "gunicorn", app, "--workers", "1", "--bind", f"127.0.0.1:{port}"]
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        while True:
            try:
                with urllib.request.urlopen(base + "/healthz", timeout=5) as resp:
                    resp.read()
                break
            except OSError:
                if proc.poll() is not None or time.perf_counter() - t0 > 120:
                    raise RuntimeError(f"{' '.join(cmd)} did not serve") from None
                time.sleep(0.05)
        start_s = time.perf_counter() - t0
        jar = CookieJar()
        opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
        opener.open(base + "/classify/?skip=1").read()
        nxt = json.loads(opener.open(base + "/api/next/").read())["candidates"][0]
        opener.open(base + nxt["cutout_url"]).read()
        token = next(c.value for c in jar if c.name == "csrftoken")
        body = json.dumps({"detectid": nxt["detectid"], "answer": "yes"}).encode()
        req = urllib.request.Request(
            base + "/api/votes/",
            data=body,
            headers={"Content-Type": "application/json", "X-CSRFToken": token},
        )
        opener.open(req).read()
        children = Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split()
        return {
            "start_s": start_s,
            "master_mib": rss_mib(proc.pid),
            "worker_mib": rss_mib(int(children[0])),
        }
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", action="append", default=[], help="NAME=/path/to/python")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--with-torch", action="store_true", help="also the +torch variant")
    args = parser.parse_args()
    envs = [e.split("=", 1) for e in args.env] or [["this env", sys.executable]]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, python in envs:
            data = Path(tmp) / name
            env = prepare(python, data)
            variants = [("labelapp.wsgi", name)]
            has_torch = subprocess.run([python, "-c", "import torch"], capture_output=True)
            if args.with_torch and has_torch.returncode == 0:
                variants.append(("bench._wsgi_with_torch", f"{name} +torch"))
            for app, label in variants:
                runs = [one_run(python, app, env) for _ in range(args.runs)]
                med = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
                rows.append((label, med, site_packages_mib(python)))
    base = rows[0][1]
    print(
        "| web process | start s | master RSS MiB | worker RSS MiB | vs first row "
        "| site-packages MiB |"
    )
    print("|---|---|---|---|---|---|")
    for label, med, disk in rows:
        ratio = med["worker_mib"] / base["worker_mib"]
        print(
            f"| {label} | {med['start_s']:.2f} | {med['master_mib']:.0f} | "
            f"{med['worker_mib']:.0f} | {ratio:.2f}x RSS, "
            f"{med['start_s'] / base['start_s']:.2f}x start | {disk:.0f} |"
        )


if __name__ == "__main__":
    main()
