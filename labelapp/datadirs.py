"""Every directory the platform writes to, created in one place at start-up.

``LabelappConfig.ready`` (every Django process: web, manage.py, Celery worker and beat) and
the Celery app's configure hook call :func:`ensure_data_dirs`. Code that writes under these
directories may then assume they exist; a fresh clone has no ``var/`` (it is ignored by git).
"""

from __future__ import annotations

from pathlib import Path

from django.core.exceptions import ImproperlyConfigured


def writable_dirs(settings) -> dict[str, Path]:
    """The directories to create, each named by the setting (or env var) that points at it."""
    dirs = {
        "LABELAPP_DATA_DIR": Path(settings.DATA_DIR),
        "LABELAPP_DATA_DIR (logs)": Path(settings.LOGS_DIR),
        "LABELAPP_STORE_ROOT": Path(settings.STORE_ROOT),
        "LABELAPP_RENDER_CACHE": Path(settings.RENDER_CACHE_DIR),
        "LABELAPP_MODELS_DIR": Path(settings.MODELS_DIR),
    }
    db = settings.DATABASES["default"]
    if db["ENGINE"].endswith("sqlite3") and str(db["NAME"]) != ":memory:":
        dirs["the SQLite database (LABELAPP_DATA_DIR)"] = Path(db["NAME"]).parent
    cache = settings.CACHES["default"]
    if cache["BACKEND"].endswith("FileBasedCache"):
        dirs["the file cache (LABELAPP_DATA_DIR)"] = Path(cache["LOCATION"])
    options = getattr(settings, "CELERY_BROKER_TRANSPORT_OPTIONS", None) or {}
    for key in ("data_folder_in", "data_folder_out", "control_folder"):
        if key in options:
            dirs[f"the embedded broker's {key} (LABELAPP_DATA_DIR)"] = Path(options[key])
    return dirs


def ensure_data_dirs(settings=None) -> list[Path]:
    """Create every writable directory (idempotent); a path that cannot be created is an
    ImproperlyConfigured naming its setting and the OS's reason."""
    if settings is None:
        from django.conf import settings
    made = []
    for name, path in writable_dirs(settings).items():
        try:
            path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ImproperlyConfigured(
                f"cannot create the directory {path} for {name}: {exc.strerror or exc}. "
                "Point the variable at a writable directory."
            ) from exc
        made.append(path)
    return made
