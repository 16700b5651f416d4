"""Dependencies by role (pyproject.toml) agree with the complete lock (requirements.txt), and
the web role has no torch."""

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _pins(lines) -> dict[str, str]:
    pins = {}
    for line in lines:
        line = line.split("#")[0].strip()
        if not line or line.startswith("-"):
            continue
        name, sep, version = line.partition("==")
        assert sep, f"not pinned exactly: {line!r}"
        pins[_norm(name.split("[")[0])] = version.strip()
    return pins


def _roles() -> dict[str, dict[str, str]]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    roles = {"web": _pins(project["dependencies"])}
    roles.update({k: _pins(v) for k, v in project["optional-dependencies"].items()})
    return roles


def test_every_role_pins_the_locked_version():
    lock = _pins((ROOT / "requirements.txt").read_text().splitlines())
    for role, pins in _roles().items():
        for name, version in pins.items():
            assert lock.get(name) == version, (
                f"{role}: {name}=={version}, lock has {lock.get(name)}"
            )


def test_the_web_role_has_no_torch_and_no_developer_tools():
    roles = _roles()
    assert "torch" not in roles["web"] and "torch" in roles["ml"]
    for tool in ("pytest", "ruff", "bandit", "pip-audit", "playwright", "hypothesis"):
        assert tool not in roles["web"] and tool in roles["dev"]
