"""The Celery application. Configuration lives in Django settings under ``CELERY_*``."""

import os
from pathlib import Path

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "labelapp.settings")

app = Celery("labelapp")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks(["labelapp"])


@app.on_after_configure.connect
def _make_embedded_broker_dirs(sender, **kwargs):
    """kombu's filesystem broker (the demo default) fails if its folders do not exist."""
    options = sender.conf.broker_transport_options or {}
    for key in ("data_folder_in", "data_folder_out", "control_folder"):
        if key in options:
            Path(options[key]).mkdir(parents=True, exist_ok=True)
