"""Serve ``vendor/plotly.min.js`` from the installed (pinned) plotly package.

The site must work offline, so plotly.js is served from our static files, never a CDN; taking
it from the package keeps the JS and the Python library at the same version without
committing a 4 MB file.
"""

from pathlib import Path

import plotly
from django.contrib.staticfiles.finders import BaseFinder
from django.core.files.storage import FileSystemStorage

PLOTLY_JS = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"
STATIC_PATH = "vendor/plotly.min.js"


class PlotlyFinder(BaseFinder):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.storage = FileSystemStorage(location=str(PLOTLY_JS.parent))
        self.storage.prefix = "vendor"

    def check(self, **kwargs):
        from django.core.checks import Error

        if not PLOTLY_JS.exists():
            return [
                Error(
                    f"plotly.min.js not found at {PLOTLY_JS}",
                    id="labelapp.E001",
                    hint="Reinstall the pinned plotly package (make install).",
                )
            ]
        return []

    def find(self, path, find_all=False, **kwargs):
        if path == STATIC_PATH:
            return [str(PLOTLY_JS)] if find_all else str(PLOTLY_JS)
        return []

    def list(self, ignore_patterns):
        yield PLOTLY_JS.name, self.storage
