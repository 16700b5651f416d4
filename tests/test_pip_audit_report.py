"""`make audit` never claims a clean result for packages it did not check."""

import subprocess
import sys
from pathlib import Path

from tests.pip_audit_report import summarise

SCRIPT = Path(__file__).resolve().parent / "pip_audit_report.py"
SKIP = "Dependency not found on PyPI and could not be audited: x (1.0)"


def test_nothing_audited_is_said_plainly_and_passes_unless_strict():
    report = {
        "dependencies": [{"name": "a", "skip_reason": SKIP}, {"name": "b", "skip_reason": SKIP}]
    }
    status, lines = summarise(report, pinned=2, strict=False)
    text = "\n".join(lines)
    assert status == 0
    assert "0 of 2 pinned packages audited, 2 NOT audited" in text
    assert "no known vulnerabilities" not in text.lower()
    assert summarise(report, pinned=2, strict=True)[0] == 1


def test_a_partial_audit_counts_both_sides():
    report = {
        "dependencies": [
            {"name": "a", "version": "1", "vulns": []},
            {"name": "b", "skip_reason": SKIP},
        ]
    }
    status, lines = summarise(report, pinned=2, strict=False)
    assert status == 0
    assert lines[0] == "pip-audit: no known vulnerabilities in the 1 packages audited"
    assert "1 of 2 pinned packages audited, 1 NOT audited" in lines[1]


def test_a_known_vulnerability_fails_and_names_the_package():
    vuln = {"id": "GHSA-aaaa-bbbb-cccc", "fix_versions": ["1.1"]}
    report = {"dependencies": [{"name": "a", "version": "1.0", "vulns": [vuln]}]}
    status, lines = summarise(report, pinned=1, strict=False)
    assert status == 1
    assert "1 known vulnerabilities in 1 of the 1 packages audited" in lines[0]
    assert "a 1.0: GHSA-aaaa-bbbb-cccc (fixed in 1.1)" in lines[1]


def test_an_unreachable_database_is_not_a_clean_result(tmp_path):
    reqs = tmp_path / "requirements.txt"
    reqs.write_text("# pins\nsix==1.17.0\nidna==3.20\n")
    dead = "http://127.0.0.1:9"  # nothing listens: every request to PyPI fails
    env = {"PATH": "/usr/bin:/bin", "HTTPS_PROXY": dead, "HTTP_PROXY": dead, "HOME": str(tmp_path)}
    cmd = [sys.executable, str(SCRIPT), "-r", str(reqs), "--no-deps", "--disable-pip"]
    run = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "0 of 2 pinned packages audited, 2 NOT audited" in run.stdout
    assert "no known vulnerabilities" not in run.stdout.lower()
    strict = subprocess.run(
        [*cmd, "--strict"], env=env, capture_output=True, text=True, timeout=120
    )
    assert strict.returncode == 1, strict.stdout
