"""`make audit`'s known-vulnerability check, honest about what it did not check.

pip-audit prints "No known vulnerabilities found" even when it audited nothing (each package
it could not look up is only listed as skipped; a network failure is a traceback). This runs
pip-audit with JSON output and prints how many packages were audited and how many were not.
Exit status: 1 when a known vulnerability is found (or pip-audit fails in a way other than not
reaching the database); 0 otherwise, also when some or all packages could not be audited,
which is then said plainly. AUDIT_STRICT=1 (or --strict) makes "not audited" a failure too.

    python tests/pip_audit_report.py -r requirements.txt [pip-audit options, e.g. --ignore-vuln ID]
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

# pip-audit's errors when the vulnerability database (PyPI's JSON API) cannot be reached.
_UNREACHABLE = ("ConnectionError", "ProxyError", "ConnectTimeout", "ReadTimeout", "SSLError")


def pinned_count(requirements: Path) -> int:
    lines = requirements.read_text().splitlines()
    return sum(1 for ln in lines if ln.strip() and not ln.lstrip().startswith(("#", "-")))


def summarise(report: dict, *, pinned: int, strict: bool) -> tuple[int, list[str]]:
    """(exit status, lines to print) from pip-audit's JSON report."""
    deps = report.get("dependencies", [])
    skipped = [d for d in deps if d.get("skip_reason")]
    audited = [d for d in deps if not d.get("skip_reason")]
    vulnerable = [d for d in audited if d.get("vulns")]
    lines = []
    for dep in vulnerable:
        for vuln in dep["vulns"]:
            fixes = ", ".join(vuln.get("fix_versions") or []) or "no fixed version"
            lines.append(
                f"  {dep['name']} {dep.get('version', '?')}: {vuln['id']} (fixed in {fixes})"
            )
    n_vulns = sum(len(d["vulns"]) for d in vulnerable)
    if vulnerable:
        lines.insert(
            0,
            f"pip-audit: {n_vulns} known vulnerabilities in {len(vulnerable)} of the "
            f"{len(audited)} packages audited:",
        )
    elif audited:
        lines.append(f"pip-audit: no known vulnerabilities in the {len(audited)} packages audited")
    not_audited = pinned - len(audited)
    lines.append(
        f"pip-audit: {len(audited)} of {pinned} pinned packages audited, {not_audited} NOT audited"
    )
    if skipped:
        reasons = sorted({d["skip_reason"].split(":")[0] for d in skipped})
        names = ", ".join(d["name"] for d in skipped[:8]) + (" ..." if len(skipped) > 8 else "")
        lines.append(f"  not audited ({'; '.join(reasons)}): {names}")
    if not_audited:
        lines.append(
            "  Those packages were not checked for known vulnerabilities: run `make audit` "
            "where PyPI's JSON API is reachable (docs/deploy.md, Security audit)."
        )
    if vulnerable:
        return 1, lines
    if not_audited and strict:
        lines.append("pip-audit: failing because of AUDIT_STRICT / --strict")
        return 1, lines
    return 0, lines


def main(argv: list[str]) -> int:
    strict = os.environ.get("AUDIT_STRICT", "") not in ("", "0") or "--strict" in argv
    argv = [a for a in argv if a != "--strict"]
    requirements = Path(argv[argv.index("-r") + 1]) if "-r" in argv else Path("requirements.txt")
    pinned = pinned_count(requirements)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "audit.json"
        cmd = [sys.executable, "-m", "pip_audit", *argv, "--progress-spinner", "off"]
        cmd += ["--format", "json", "--output", str(out)]
        run = subprocess.run(cmd, capture_output=True, text=True)
        report = json.loads(out.read_text()) if out.exists() else None
    if report is None:
        err = (run.stderr.strip().splitlines() or ["(no output)"])[-1]
        if any(name in run.stderr for name in _UNREACHABLE):
            print(f"pip-audit: 0 of {pinned} pinned packages audited, {pinned} NOT audited:")
            print(f"  the vulnerability database could not be reached ({err[:200]})")
            print("  Run `make audit` where PyPI's JSON API is reachable (docs/deploy.md).")
            return 1 if strict else 0
        print(f"pip-audit failed (exit {run.returncode}): {err}\n{run.stderr[-2000:]}")
        return run.returncode or 1
    status, lines = summarise(report, pinned=pinned, strict=strict)
    print("\n".join(lines))
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
