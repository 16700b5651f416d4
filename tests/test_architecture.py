"""The arrow goes one way: labelapp imports mlcore, mlcore never imports Django or labelapp."""

import ast
import subprocess
import sys
from pathlib import Path

MLCORE = Path(__file__).resolve().parent.parent / "mlcore"


def test_no_mlcore_module_imports_django_or_labelapp():
    offenders = []
    for path in MLCORE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            offenders += [
                f"{path.name}: {n}"
                for n in names
                if n.split(".")[0] in ("django", "labelapp", "celery")
            ]
    assert offenders == []


def test_mlcore_imports_with_numpy_and_torch_alone():
    """Import every mlcore module in a fresh interpreter where Django, astropy, h5py, Pillow
    and plotly cannot be imported: a GPU box needs nothing but numpy and torch to load it
    (file formats and rendering import their libraries when used)."""
    modules = sorted(
        ".".join(p.relative_to(MLCORE.parent).with_suffix("").parts)
        for p in MLCORE.rglob("*.py")
        if p.name != "__main__.py"
    )
    code = (
        "import sys, importlib\n"
        "BLOCKED = ('django', 'labelapp', 'celery', 'astropy', 'h5py', 'PIL', 'plotly')\n"
        "class Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] in BLOCKED:\n"
        "            raise ImportError('blocked: ' + name)\n"
        "sys.meta_path.insert(0, Block())\n"
        f"for m in {modules!r}:\n"
        "    importlib.import_module(m.removesuffix('.__init__'))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=MLCORE.parent, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr[-2000:]


def test_web_processes_do_not_load_torch():
    """Loading every URL's view (what a gunicorn worker does) must not import torch: web
    workers stay small, and only the views that draw attribution maps load it, lazily."""
    code = (
        "import os, sys\n"
        "os.environ['DJANGO_SETTINGS_MODULE'] = 'labelapp.settings'\n"
        "import django\n"
        "django.setup()\n"
        "from django.urls import get_resolver\n"
        "def walk(patterns):\n"
        "    for p in patterns:\n"
        "        walk(p.url_patterns) if hasattr(p, 'url_patterns') else p.callback\n"
        "walk(get_resolver().url_patterns)\n"
        "import labelapp.wsgi\n"
        "print('torch' in sys.modules)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=MLCORE.parent, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "False"
