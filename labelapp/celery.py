"""The Celery application. Configuration lives in Django settings under ``CELERY_*``."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "labelapp.settings")

app = Celery("labelapp")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks(["labelapp"])


@app.on_after_configure.connect
def _make_data_dirs(sender, **kwargs):
    """kombu's filesystem broker (the demo default) fails if its folders do not exist; a
    process may reach the broker before Django's app registry is ready (labelapp.apps)."""
    from django.conf import settings

    from labelapp.datadirs import ensure_data_dirs

    ensure_data_dirs(settings)
