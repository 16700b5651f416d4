"""WSGI app for ``bench_web_process.py``: the web app with torch imported first, i.e. what a
web process would cost if a view or a start-up import pulled torch in."""

import torch  # noqa: F401

from labelapp.wsgi import application  # noqa: F401
