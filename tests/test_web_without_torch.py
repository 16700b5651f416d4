"""The web process never imports torch: not when gunicorn loads the WSGI app, not on any
volunteer request. Workers import it; a web machine need not even have it installed
(pyproject.toml: torch is in the `ml` extra)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

# Runs in a fresh interpreter: the WSGI app as gunicorn loads it, then a volunteer's visit.
VISIT = r"""
import json, sys
from io import BytesIO
from http.cookies import SimpleCookie
from wsgiref.util import setup_testing_defaults

from labelapp.wsgi import application
loaded = sorted(m for m in ("torch", "plotly") if m in sys.modules)

cookies = {}
def call(method, path, body=b"", ctype="application/json"):
    path, _, query = path.partition("?")
    env = {"REQUEST_METHOD": method, "PATH_INFO": path, "QUERY_STRING": query,
           "wsgi.input": BytesIO(body), "CONTENT_LENGTH": str(len(body)), "CONTENT_TYPE": ctype,
           "HTTP_COOKIE": "; ".join(f"{k}={v}" for k, v in cookies.items()),
           "HTTP_X_CSRFTOKEN": cookies.get("csrftoken", ""), "HTTP_HOST": "testserver"}
    setup_testing_defaults(env)
    status = {}
    def start(s, headers, exc=None):
        status["code"] = int(s.split()[0])
        for k, v in headers:
            if k.lower() == "set-cookie":
                for name, morsel in SimpleCookie(v).items():
                    cookies[name] = morsel.value
    out = b"".join(application(env, start))
    return status["code"], out

codes = {}
for path in ["/", "/tutorial/", "/classify/?skip=1", "/field-guide/", "/api/", "/api/openapi.json",
             "/accounts/login/", "/accounts/signup/", "/healthz", "/me/"]:
    codes[path] = call("GET", path)[0]
code, body = call("GET", "/api/next/?count=2")
cand = json.loads(body)["candidates"][0]
codes["next"] = code
codes["cutout"] = call("GET", cand["cutout_url"])[0]
codes["spectrum"] = call("GET", cand["spectrum_url"])[0]
def post(path, **data):
    return call("POST", path, json.dumps({"detectid": cand["detectid"], **data}).encode())[0]
codes["vote"] = post("/api/votes/", answer="no", token=cand["token"])
codes["reason"] = post("/api/votes/reason/", reason="sky")
codes["undo"] = post("/api/votes/undo/")
codes["detail"] = call("GET", f"/candidates/{cand['detectid']}/")[0]
print(json.dumps({"codes": codes, "at_load": loaded, "torch": "torch" in sys.modules,
                  "mlcore_cnn": sorted(m for m in sys.modules if m.startswith("mlcore.cnn"))}))
"""


@pytest.mark.slow
def test_loading_the_wsgi_app_and_a_volunteer_visit_do_not_import_torch(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LABELAPP_", "DJANGO_"))}
    env.update(LABELAPP_DATA_DIR=str(tmp_path), DATABASE_URL="", REDIS_URL="")
    survey = tmp_path / "s.fits"
    for args in (
        ["migrate", "--no-input"],
        ["simulate_survey", "--n", "60", "--seed", "2", "--out", str(survey)],
        ["ingest", str(survey)],
    ):
        done = subprocess.run(
            [sys.executable, "manage.py", *args],
            cwd=ROOT,
            env=env,
            capture_output=True,
            timeout=300,
        )
        assert done.returncode == 0, done.stderr[-2000:]
    visit = subprocess.run(
        [sys.executable, "-c", VISIT],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert visit.returncode == 0, visit.stderr[-3000:]
    result = json.loads(visit.stdout.strip().splitlines()[-1])
    codes = result["codes"]
    assert codes["vote"] == 201 and codes["reason"] == 200 and codes["undo"] == 200, codes
    assert all(code in (200, 201, 302) for code in codes.values()), codes  # /me/ -> log in
    assert result["at_load"] == []  # gunicorn's load: neither torch nor plotly
    assert not result["torch"], f"torch imported; mlcore.cnn modules: {result['mlcore_cnn']}"
