"""Helpers shared by the benchmarks: run a command and measure its own time and peak memory;
a fresh PostgreSQL database; a minimal HTTP/1.1 volunteer client for load generators."""

from __future__ import annotations

import json
import os
import socket
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
    except Exception as exc:
        print(f"(PostgreSQL not available: {exc})")
        return None


def django_on_fresh_database(dbname: str) -> str:
    """A fresh PostgreSQL database ``dbname`` (exit when PostgreSQL is not reachable) and the
    environment that points Django at it (no Redis, data under /tmp/<dbname>); its URL."""
    import os
    import sys

    db_url = postgres_url(dbname)
    if db_url is None:
        sys.exit("PostgreSQL is not reachable on 127.0.0.1:5432: nothing to measure")
    os.environ.update(
        DATABASE_URL=db_url, REDIS_URL="", LABELAPP_DATA_DIR=f"/tmp/{dbname}",
        DJANGO_SETTINGS_MODULE="labelapp.settings",
    )  # fmt: skip
    return db_url


def drop_database(dbname: str) -> None:
    """Drop a bench database (closing Django's connections to it first, if any)."""
    import psycopg

    try:
        from django.db import connections

        connections.close_all()
    except Exception:  # noqa: S110 - Django not set up in this process: nothing to close
        pass
    with psycopg.connect("postgresql://postgres@127.0.0.1:5432/postgres", autocommit=True) as c:
        c.execute(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)')


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Volunteer:
    """One browser: cookies (session + csrftoken) and a keep-alive connection.

    A minimal HTTP/1.1 client on a plain socket (http.client's header parsing and objects
    cost several times more CPU, and the load generator shares the cores with the server).
    """

    def __init__(self, port: int, timeout: float = 30):
        self.port = port
        self.timeout = timeout
        self.cookies: dict[str, str] = {}
        self.sock = self.rfile = None

    def _connect(self) -> None:
        self.close()
        self.sock = socket.create_connection(("127.0.0.1", self.port), timeout=self.timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.rfile = self.sock.makefile("rb")

    def request(self, method: str, path: str, body: dict | None = None) -> tuple[int, dict]:
        status, _, payload = self.request_raw(method, path, body)
        return status, (json.loads(payload) if payload else {})

    def request_raw(
        self, method: str, path: str, body: dict | None = None
    ) -> tuple[int, dict[str, list[str]], bytes]:
        """(status, headers, body bytes); OSError when the connection fails twice."""
        head = f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        if self.cookies:
            head += "Cookie: " + "; ".join(f"{k}={v}" for k, v in self.cookies.items()) + "\r\n"
        data = b""
        if body is not None:
            data = json.dumps(body).encode()
            head += (
                f"Content-Type: application/json\r\nContent-Length: {len(data)}\r\n"
                f"X-CSRFToken: {self.cookies.get('csrftoken', '')}\r\n"
                f"Referer: http://127.0.0.1:{self.port}/classify/\r\n"
            )
        message = (head + "\r\n").encode() + data
        for attempt in range(2):
            try:
                if self.sock is None:
                    self._connect()
                self.sock.sendall(message)
                status, headers, payload = self._response()
                break
            except OSError:
                if attempt:
                    self.close()
                    raise
                self._connect()  # server closed the keep-alive connection: reconnect
        for value in headers.get("set-cookie", ()):
            name, _, rest = value.partition("=")
            self.cookies[name] = rest.split(";", 1)[0]
        if headers.get("connection", [""])[0].lower() == "close":
            self.close()
        return status, headers, payload

    def _response(self) -> tuple[int, dict[str, list[str]], bytes]:
        line = self.rfile.readline()
        if not line:
            raise ConnectionResetError("connection closed")
        status = int(line.split(None, 2)[1])
        headers: dict[str, list[str]] = {}
        while (line := self.rfile.readline()) not in (b"\r\n", b"\n", b""):
            name, _, value = line.decode("latin-1").partition(":")
            headers.setdefault(name.strip().lower(), []).append(value.strip())
        if "content-length" in headers:
            return status, headers, self.rfile.read(int(headers["content-length"][0]))
        chunks = []  # chunked transfer encoding
        while size := int(self.rfile.readline().split(b";")[0], 16):
            chunks.append(self.rfile.read(size))
            self.rfile.readline()
        self.rfile.readline()
        return status, headers, b"".join(chunks)

    def close(self):
        if self.sock is not None:
            self.rfile.close()
            self.sock.close()
        self.sock = self.rfile = None
