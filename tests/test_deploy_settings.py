"""Production settings (DJANGO_ENV=production) pass `check --deploy` and refuse to start
half-configured; the Procfile and docs/deploy.md describe what the code does."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
GOOD_SECRET = "t3st-only-Secret-for-check-deploy-0123456789-abcdefghijklmnopqrstuvwxyz"


def run_settings(tmp_path, code: str, **env: str | None) -> subprocess.CompletedProcess:
    """Run ``code`` in a fresh interpreter with the production environment plus ``env``
    (None removes a variable): settings are read once per process."""
    full = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "LABELAPP_"))}
    full.update(
        DJANGO_SETTINGS_MODULE="labelapp.settings",
        DJANGO_ENV="production",
        DJANGO_SECRET_KEY=GOOD_SECRET,
        DJANGO_ALLOWED_HOSTS="explorers.example.org",
        LABELAPP_DATA_DIR=str(tmp_path),
    )
    for key, value in env.items():
        if value is None:
            full.pop(key, None)
        else:
            full[key] = value
    return subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=full, capture_output=True, text=True,
        timeout=120,
    )  # fmt: skip


CHECK_DEPLOY = (
    "import sys; from django.core.management import execute_from_command_line as run; "
    "run(['manage.py', 'check', '--deploy', '--fail-level', 'WARNING'])"
)
IMPORT_SETTINGS = "import labelapp.settings"


def test_check_deploy_has_no_warnings_in_production(tmp_path):
    result = run_settings(tmp_path, CHECK_DEPLOY)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "System check identified no issues (0 silenced)." in output
    assert "WARNING" not in output and "security.W" not in output


def test_check_deploy_warns_when_the_ssl_redirect_is_turned_off(tmp_path):
    """The switches are real: turning one off is visible to check --deploy."""
    result = run_settings(tmp_path, CHECK_DEPLOY, DJANGO_SECURE_SSL_REDIRECT="0")
    assert result.returncode != 0 and "security.W008" in result.stderr


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"DJANGO_SECRET_KEY": None}, "DJANGO_SECRET_KEY must be set when DJANGO_DEBUG is off"),
        ({"DJANGO_SECRET_KEY": "short-secret"}, "DJANGO_SECRET_KEY is too weak"),
        ({"DJANGO_SECRET_KEY": "x" * 60}, "DJANGO_SECRET_KEY is too weak"),
        (
            {"DJANGO_SECRET_KEY_FALLBACKS": "old-and-short"},
            "DJANGO_SECRET_KEY_FALLBACKS[0] is too weak",
        ),
        ({"DJANGO_ALLOWED_HOSTS": None}, "DJANGO_ALLOWED_HOSTS must be set when DJANGO_ENV"),
        ({"DJANGO_ALLOWED_HOSTS": " , "}, "DJANGO_ALLOWED_HOSTS must be set when DJANGO_ENV"),
        ({"DJANGO_DEBUG": "1"}, "DJANGO_DEBUG=1 is refused when DJANGO_ENV=production"),
        ({"DJANGO_ENV": "prod"}, "DJANGO_ENV='prod' is not one of: development, production"),
    ],
)
def test_production_refuses_to_start_half_configured(tmp_path, env, message):
    result = run_settings(tmp_path, IMPORT_SETTINGS, **env)
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr and message in result.stderr


def test_production_settings_values(tmp_path):
    code = (
        "import json, labelapp.settings as s; print(json.dumps({k: getattr(s, k, None) for k in "
        "['DEBUG', 'SECURE_SSL_REDIRECT', 'SECURE_HSTS_SECONDS', 'SECURE_HSTS_PRELOAD', "
        "'SESSION_COOKIE_SECURE', 'CSRF_COOKIE_SECURE', 'SECURE_PROXY_SSL_HEADER', "
        "'STORAGES', 'AUTH_RATE_SIGNUP']}))"
    )
    import json

    result = run_settings(
        tmp_path, code, DJANGO_BEHIND_PROXY="1", DJANGO_HSTS_SECONDS="3600",
        DJANGO_HSTS_PRELOAD="0", LABELAPP_SIGNUP_RATE="5/60",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    values = json.loads(result.stdout)
    assert values["DEBUG"] is False and values["SECURE_SSL_REDIRECT"] is True
    assert values["SECURE_HSTS_SECONDS"] == 3600 and values["SECURE_HSTS_PRELOAD"] is False
    assert values["SESSION_COOKIE_SECURE"] and values["CSRF_COOKIE_SECURE"]
    assert values["SECURE_PROXY_SSL_HEADER"] == ["HTTP_X_FORWARDED_PROTO", "https"]
    assert values["STORAGES"]["staticfiles"]["BACKEND"].endswith(
        "CompressedManifestStaticFilesStorage"
    )
    assert values["AUTH_RATE_SIGNUP"] == [5, 60]


def test_a_bad_rate_fails_loudly(tmp_path):
    result = run_settings(tmp_path, IMPORT_SETTINGS, LABELAPP_LOGIN_LOCKOUT="five")
    assert "LABELAPP_LOGIN_LOCKOUT='five' is not a rate: write COUNT/SECONDS" in result.stderr


def test_development_default_is_unchanged():
    """Nothing set: DEBUG on, Django's plain static storage (no collectstatic needed), no
    HTTPS-only cookies or redirects."""
    import labelapp.settings as configured

    assert configured.ENVIRONMENT == "development" and configured.DEBUG
    assert not hasattr(configured, "STORAGES")
    assert not getattr(configured, "SECURE_SSL_REDIRECT", False)
    assert not getattr(configured, "SESSION_COOKIE_SECURE", False)
    assert "testserver" in configured.ALLOWED_HOSTS


def procfile() -> dict[str, str]:
    lines = (ROOT / "Procfile").read_text().splitlines()
    return dict(line.split(":", 1) for line in lines if line.strip() and not line.startswith("#"))


def test_procfile_has_web_workers_per_queue_and_one_beat():
    procs = {name: cmd.strip() for name, cmd in procfile().items()}
    assert set(procs) == {"web", "worker-cpu", "worker-gpu", "worker-web", "beat"}
    assert procs["web"].startswith("gunicorn labelapp.wsgi ")
    for flag in ("--workers", "--threads", "--timeout"):
        assert flag in procs["web"]
    assert "-Q cpu " in procs["worker-cpu"]
    assert "-Q gpu " in procs["worker-gpu"] and "--concurrency 1 " in procs["worker-gpu"]
    assert "-Q web " in procs["worker-web"]
    assert sum(" beat " in f" {cmd} " for cmd in procs.values()) == 1
    queues = {q for cmd in procs.values() for q in re.findall(r"-Q (\w+)", cmd)}
    from django.conf import settings

    routed = {route["queue"] for route in settings.CELERY_TASK_ROUTES.values()}
    assert routed | {settings.CELERY_TASK_DEFAULT_QUEUE} <= queues  # every queue is served


def test_gunicorn_and_audit_tools_are_pinned():
    pins = dict(
        line.split("==")
        for line in (ROOT / "requirements.txt").read_text().splitlines()
        if "==" in line
    )
    assert {"gunicorn", "bandit", "pip-audit"} <= {name.lower() for name in pins}


def test_deploy_doc_lists_every_environment_variable():
    settings_src = (ROOT / "labelapp" / "settings.py").read_text()
    names = set(re.findall(r'env_\w+\(\s*"([A-Z0-9_]+)"', settings_src)) | {
        "DATABASE_URL",
        "REDIS_URL",
    }
    doc = (ROOT / "docs" / "deploy.md").read_text()
    missing = sorted(name for name in names if f"`{name}`" not in doc)
    assert not missing, f"docs/deploy.md does not describe: {missing}"
