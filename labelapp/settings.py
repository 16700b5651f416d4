"""Django settings, all from environment variables with safe defaults.

With nothing set, the site runs self-contained for a demo: SQLite in ``var/`` and Celery on
kombu's filesystem broker (see the README for why). Set ``DATABASE_URL`` (PostgreSQL) and
``REDIS_URL`` (broker + cache) for production and for the integration tests.
"""

from pathlib import Path

import dj_database_url
from celery.schedules import crontab
from django.core.exceptions import ImproperlyConfigured

from labelapp.env import env_bool, env_int, env_list, env_str

BASE_DIR = Path(__file__).resolve().parent.parent

DEBUG = env_bool("DJANGO_DEBUG", True)
# A dev-only key so the demo runs with nothing set; refused whenever DEBUG is off.
_DEV_SECRET = "dev-only-insecure-secret-key-change-me-for-any-real-deployment"  # noqa: S105
SECRET_KEY = env_str("DJANGO_SECRET_KEY", _DEV_SECRET)
if not DEBUG and SECRET_KEY == _DEV_SECRET:
    raise ImproperlyConfigured("DJANGO_SECRET_KEY must be set when DJANGO_DEBUG is off")
ALLOWED_HOSTS = env_list("DJANGO_ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]", "testserver"])

# Everything the platform writes: SQLite db, cutout stores, render cache, demo broker.
DATA_DIR = Path(env_str("LABELAPP_DATA_DIR", str(BASE_DIR / "var")))
# Cutout stores must be on storage every worker sees (a shared mount in production).
STORE_ROOT = Path(env_str("LABELAPP_STORE_ROOT", str(DATA_DIR / "stores")))
RENDER_CACHE_DIR = Path(env_str("LABELAPP_RENDER_CACHE", str(DATA_DIR / "render-cache")))
# float16 halves the store with rounding far below pixel noise (bench/bench_store.py).
STORE_DTYPE = env_str("LABELAPP_STORE_DTYPE", "float16")
INGEST_CHUNK = env_int("LABELAPP_INGEST_CHUNK", 2048)

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_celery_beat",
    "labelapp",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "labelapp.urls"
WSGI_APPLICATION = "labelapp.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

DATABASE_URL = env_str("DATABASE_URL", "")
if DATABASE_URL:
    DATABASES = {"default": dj_database_url.parse(DATABASE_URL, conn_max_age=60)}
else:
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": DATA_DIR / "db.sqlite3",
            # web, worker and beat share the file: wait for locks instead of failing.
            "OPTIONS": {"timeout": 30, "transaction_mode": "IMMEDIATE"},
        }
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REDIS_URL = env_str("REDIS_URL", "")
if REDIS_URL:
    CACHES = {
        "default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL}
    }
else:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.filebased.FileBasedCache",
            "LOCATION": str(DATA_DIR / "cache"),
        }
    }

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = DATA_DIR / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATICFILES_FINDERS = [
    "django.contrib.staticfiles.finders.FileSystemFinder",
    "django.contrib.staticfiles.finders.AppDirectoriesFinder",
    # plotly.min.js comes from the pinned plotly package: served locally, never a CDN.
    "labelapp.staticfinders.PlotlyFinder",
]

# --- Celery ---------------------------------------------------------------------------
if REDIS_URL:
    CELERY_BROKER_URL = REDIS_URL
    # Longer than the longest task (a nightly retrain), or Redis redelivers it mid-run.
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "visibility_timeout": env_int("LABELAPP_VISIBILITY_TIMEOUT_S", 6 * 3600)
    }
else:
    # Embedded broker: messages are files under var/broker, so a real worker and beat run
    # with no system service installed. Single machine only; production uses Redis.
    _BROKER_DIR = DATA_DIR / "broker"
    CELERY_BROKER_URL = "filesystem://"
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_BROKER_DIR / "queue"),
        "data_folder_out": str(_BROKER_DIR / "queue"),
        "control_folder": str(_BROKER_DIR / "control"),
    }
CELERY_RESULT_BACKEND = None  # task state the console needs is kept in our own models
# Queues: web (light, user-facing), cpu (scoring chunks, any number of workers), gpu
# (training). A worker serves the queues given by `celery worker -Q ...`.
CELERY_TASK_ROUTES = {
    "labelapp.tasks.retrain_model": {"queue": "gpu"},
    "labelapp.tasks.score_catalogue": {"queue": "cpu"},
    "labelapp.tasks.score_chunk": {"queue": "cpu"},
    "labelapp.tasks.start_round": {"queue": "cpu"},
}
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_DEFAULT_QUEUE = "web"
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
CELERY_BEAT_SCHEDULE = {
    "aggregate-votes": {
        "task": "labelapp.tasks.aggregate_votes",
        "schedule": float(env_int("LABELAPP_AGGREGATE_INTERVAL_S", 600)),
    },
    # Nightly retrain (when enough new labels arrived); scoring and the next round follow a
    # promotion by themselves (labelapp.tasks).
    "nightly-retrain": {
        "task": "labelapp.tasks.retrain_if_enough_labels",
        "schedule": crontab(hour=env_int("LABELAPP_RETRAIN_HOUR_UTC", 3), minute=0),
    },
    "worker-heartbeat": {
        "task": "labelapp.tasks.record_heartbeat",
        "schedule": float(env_int("LABELAPP_HEARTBEAT_INTERVAL_S", 30)),
    },
}
# Health: a worker counts as alive if it ran a heartbeat task this recently.
HEARTBEAT_MAX_AGE_S = env_int("LABELAPP_HEARTBEAT_MAX_AGE_S", 120)

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env_str("LABELAPP_LOG_LEVEL", "INFO")},
}

# --- Volunteers -------------------------------------------------------------------------
# Classify pages, accounts and the vote API (labelapp/urls_volunteer.py; README "Volunteer site").
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "classify"
LOGOUT_REDIRECT_URL = "home"
DEFAULT_FROM_EMAIL = env_str(
    "DJANGO_DEFAULT_FROM_EMAIL", "Dark Energy Explorers <noreply@localhost>"
)
if DEBUG:
    # Password-reset mails are printed on the console in development.
    EMAIL_BACKEND = "django.core.mail.backends.console.EmailBackend"
else:
    EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    EMAIL_HOST = env_str("DJANGO_EMAIL_HOST", "localhost")
    EMAIL_PORT = env_int("DJANGO_EMAIL_PORT", 25)
# Sessions are read on every API call: served from the cache (Redis in production), written
# through to the database so they survive a cache flush.
SESSION_ENGINE = "django.contrib.sessions.backends.cached_db"
# Votes per volunteer per fixed window (a fast volunteer answers about one a second).
VOTE_RATE_LIMIT = env_int("LABELAPP_VOTE_RATE_LIMIT", 120)
VOTE_RATE_WINDOW_S = env_int("LABELAPP_VOTE_RATE_WINDOW_S", 60)
# How long after answering a volunteer may take the answer back.
VOTE_UNDO_WINDOW_S = env_int("LABELAPP_VOTE_UNDO_WINDOW_S", 10)
# A failed CSRF check on /api/ answers JSON (the page shows its message), HTML elsewhere.
CSRF_FAILURE_VIEW = "labelapp.views.api.csrf_failure"

# --- Aggregation and retirement -----------------------------------------------------------
# Retire when the live posterior passes a threshold after RETIRE_MIN_VOTES yes/no votes;
# send to the expert queue when RETIRE_MAX_VOTES are reached and it is still uncertain.
RETIRE_P_HI = float(env_str("LABELAPP_RETIRE_P_HI", "0.95"))
RETIRE_P_LO = float(env_str("LABELAPP_RETIRE_P_LO", "0.05"))
RETIRE_MIN_VOTES = env_int("LABELAPP_RETIRE_MIN_VOTES", 2)
RETIRE_MAX_VOTES = env_int("LABELAPP_RETIRE_MAX_VOTES", 15)
# Skill assumed for a volunteer before any gold answer or batch run has measured them.
DEFAULT_SENSITIVITY = float(env_str("LABELAPP_DEFAULT_SENSITIVITY", "0.75"))
DEFAULT_SPECIFICITY = float(env_str("LABELAPP_DEFAULT_SPECIFICITY", "0.75"))
# Users in this group (and staff) are experts: their answer settles a candidate's label.
EXPERT_GROUP = env_str("LABELAPP_EXPERT_GROUP", "scientists")

# --- Models -------------------------------------------------------------------------------
# Weights and cards of every model version (shared storage, like the cutout stores).
MODELS_DIR = Path(env_str("LABELAPP_MODELS_DIR", str(DATA_DIR / "models")))
SCORE_MC_SAMPLES = env_int("LABELAPP_SCORE_MC_SAMPLES", 10)  # MC-dropout passes per candidate
# A new model may be this much worse (balanced accuracy, per S/N regime) than the live one
# on the gold + expert evaluation set and still be promoted (noise on a small set).
PROMOTION_TOLERANCE = float(env_str("LABELAPP_PROMOTION_TOLERANCE", "0.01"))
RETRAIN_MIN_NEW_LABELS = env_int("LABELAPP_RETRAIN_MIN_NEW_LABELS", 500)
