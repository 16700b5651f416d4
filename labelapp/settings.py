"""Django settings, all from environment variables with safe defaults.

With nothing set, the site runs self-contained for a demo: SQLite in ``var/`` and Celery on
kombu's filesystem broker (see the README for why). Set ``DATABASE_URL`` (PostgreSQL) and
``REDIS_URL`` (cache, and broker unless ``CELERY_BROKER_URL`` names one: ``amqp://`` for
RabbitMQ) for production and for the integration tests.
"""

from pathlib import Path

import dj_database_url
from celery.schedules import crontab
from django.core.exceptions import ImproperlyConfigured

from labelapp.env import env_bool, env_choice, env_float, env_int, env_list, env_rate, env_str

BASE_DIR = Path(__file__).resolve().parent.parent

# DJANGO_ENV=production turns on everything `manage.py check --deploy` asks for (docs/deploy.md);
# the default, development, keeps the demo running with nothing set.
ENVIRONMENT = env_choice("DJANGO_ENV", "development", ["development", "production"])
PRODUCTION = ENVIRONMENT == "production"
DEBUG = env_bool("DJANGO_DEBUG", not PRODUCTION)
if PRODUCTION and DEBUG:
    raise ImproperlyConfigured("DJANGO_DEBUG=1 is refused when DJANGO_ENV=production")
# A dev-only key so the demo runs with nothing set; refused whenever DEBUG is off (so the
# bandit B105 "hardcoded password" finding on it is waived on its line).
_DEV_SECRET = "dev-only-insecure-secret-key-change-me-for-any-real-deployment"  # noqa: S105  # nosec B105
SECRET_KEY = env_str("DJANGO_SECRET_KEY", _DEV_SECRET)
# Old keys still accepted for signatures (sessions, reset links) while rotating to a new one.
SECRET_KEY_FALLBACKS = env_list("DJANGO_SECRET_KEY_FALLBACKS", [])
if not DEBUG:
    if SECRET_KEY == _DEV_SECRET:
        raise ImproperlyConfigured("DJANGO_SECRET_KEY must be set when DJANGO_DEBUG is off")
    for _name, _key in [("DJANGO_SECRET_KEY", SECRET_KEY)] + [
        (f"DJANGO_SECRET_KEY_FALLBACKS[{i}]", k) for i, k in enumerate(SECRET_KEY_FALLBACKS)
    ]:
        if len(_key) < 50 or len(set(_key)) < 5 or _key.startswith("django-insecure-"):
            raise ImproperlyConfigured(
                f"{_name} is too weak: use at least 50 random characters, e.g. "
                "python -c 'import secrets; print(secrets.token_urlsafe(50))'"
            )
ALLOWED_HOSTS = env_list("DJANGO_ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]", "testserver"])
if PRODUCTION and not env_list("DJANGO_ALLOWED_HOSTS", []):
    raise ImproperlyConfigured(
        "DJANGO_ALLOWED_HOSTS must be set when DJANGO_ENV=production: the comma-separated "
        "host names the site answers to, e.g. explorers.example.org"
    )

# Everything the platform writes: SQLite db, cutout stores, render cache, demo broker.
DATA_DIR = Path(env_str("LABELAPP_DATA_DIR", str(BASE_DIR / "var")))
# Cutout stores must be on storage every worker sees (a shared mount in production).
STORE_ROOT = Path(env_str("LABELAPP_STORE_ROOT", str(DATA_DIR / "stores")))
RENDER_CACHE_DIR = Path(env_str("LABELAPP_RENDER_CACHE", str(DATA_DIR / "render-cache")))
# Logs of the demo's processes (manage.py run_demo) and of in-silico campaign workers.
LOGS_DIR = DATA_DIR / "logs"
# float16 halves the store with rounding far below pixel noise (bench/bench_store.py).
STORE_DTYPE = env_str("LABELAPP_STORE_DTYPE", "float16")
INGEST_CHUNK = env_int("LABELAPP_INGEST_CHUNK", 2048)
# Write new stores with O_DIRECT where the file system allows it: no page-cache pages, the
# bulk of ingest's system time on the project's VMs (bench/bench_ingest_hetdex.py).
STORE_DIRECT_IO = env_bool("LABELAPP_STORE_DIRECT_IO", True)

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
    # First, so every response (redirects and errors too) carries X-Request-ID.
    "labelapp.middleware.RequestIdMiddleware",
    # Content-Security-Policy + Permissions-Policy on every response (static files too).
    "labelapp.middleware.SecurityHeadersMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    # The volunteer's language: the django_language cookie (set by i18n/setlang/), then
    # Accept-Language; no URL prefixes and no database query.
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Per-IP limits on sign-up, log-in and password-reset POSTs (settings AUTH_RATE_*).
    "labelapp.middleware.AuthRateLimitMiddleware",
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
                "labelapp.context_processors.console",
                "labelapp.context_processors.talk",
            ],
        },
    },
]

DATABASE_URL = env_str("DATABASE_URL", "")
if DATABASE_URL:
    DATABASES = {"default": dj_database_url.parse(DATABASE_URL, conn_max_age=60)}
    # Server-side binding lets psycopg prepare a statement once a connection has run it 5
    # times: the vote path's statements are then not re-planned on every request (planning
    # was ~3/4 of the next-candidate query's PostgreSQL time). Off behind a transaction-mode
    # pgbouncer older than 1.21, which cannot keep prepared statements.
    if DATABASES["default"]["ENGINE"].endswith("postgresql") and env_bool(
        "LABELAPP_DB_SERVER_SIDE_BINDING", True
    ):
        # Django leaves psycopg's prepare_threshold at None (never prepare) unless set.
        DATABASES["default"].setdefault("OPTIONS", {}).update(
            server_side_binding=True, prepare_threshold=5
        )
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
    CACHES = {"default": {"BACKEND": "labelapp.cache.RedisCache", "LOCATION": REDIS_URL}}
else:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.filebased.FileBasedCache",
            "LOCATION": str(DATA_DIR / "cache"),
        }
    }

# One log-in limiter for every log-in form (services.login_guard): the backend refuses a
# locked username, and counts every failed authenticate (volunteer log-in, admin, any other).
AUTHENTICATION_BACKENDS = ["labelapp.auth_backends.LockoutModelBackend"]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en"
# The volunteer pages are translated (locale/, docs/volunteers.md "Languages"); the console
# stays English. The names are shown in the switcher in their own language.
LANGUAGES = [("en", "English"), ("es", "Español"), ("de", "Deutsch")]
LOCALE_PATHS = [BASE_DIR / "locale"]
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = Path(env_str("DJANGO_STATIC_ROOT", str(DATA_DIR / "staticfiles")))
STATICFILES_DIRS = [BASE_DIR / "static"]
STATICFILES_FINDERS = [
    "django.contrib.staticfiles.finders.FileSystemFinder",
    "django.contrib.staticfiles.finders.AppDirectoriesFinder",
    # plotly.min.js comes from the pinned plotly package: served locally, never a CDN.
    "labelapp.staticfinders.PlotlyFinder",
]

# --- Production (DJANGO_ENV=production; docs/deploy.md) -------------------------------------
if PRODUCTION:
    # Hashed, compressed names from `manage.py collectstatic`, served by whitenoise with
    # far-future cache headers. Development keeps Django's default storage (no collectstatic).
    STORAGES = {
        "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
        "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
    }
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    # The proxy in front may do the redirect itself; then DJANGO_SECURE_SSL_REDIRECT=0 (and
    # check --deploy warns, rightly, that Django no longer enforces it).
    SECURE_SSL_REDIRECT = env_bool("DJANGO_SECURE_SSL_REDIRECT", True)
    # Load balancers probe /healthz over plain HTTP on the internal network.
    SECURE_REDIRECT_EXEMPT = [r"^healthz$"]
    # One year, as the HSTS preload list requires; start lower (e.g. 3600) on a new domain.
    SECURE_HSTS_SECONDS = env_int("DJANGO_HSTS_SECONDS", 31_536_000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("DJANGO_HSTS_INCLUDE_SUBDOMAINS", True)
    SECURE_HSTS_PRELOAD = env_bool("DJANGO_HSTS_PRELOAD", True)
# Behind a TLS-terminating proxy (nginx, a load balancer) that sets X-Forwarded-Proto and
# appends the client's address to X-Forwarded-For. Never set it without such a proxy: the
# headers would come from the client.
# Send the Content-Security-Policy as Report-Only (to try a change); enforced by default.
CSP_REPORT_ONLY = env_bool("DJANGO_CSP_REPORT_ONLY", False)
BEHIND_PROXY = env_bool("DJANGO_BEHIND_PROXY", False)
if BEHIND_PROXY:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
# Other origins allowed to POST forms (only needed when the site is served under another
# origin than its Host header), e.g. https://explorers.example.org
CSRF_TRUSTED_ORIGINS = env_list("DJANGO_CSRF_TRUSTED_ORIGINS", [])

# --- Celery ---------------------------------------------------------------------------
# The broker: CELERY_BROKER_URL (amqp:// for RabbitMQ, redis://), else REDIS_URL (Redis is
# then broker and cache), else the embedded filesystem broker. docs/deploy.md "Choosing the
# broker" says which to pick and what was measured.
CELERY_BROKER_URL = env_str("CELERY_BROKER_URL", "") or REDIS_URL
BROKER_KIND = CELERY_BROKER_URL.partition("://")[0] if CELERY_BROKER_URL else "filesystem"
if BROKER_KIND not in ("filesystem", "redis", "rediss", "amqp", "amqps"):
    raise ImproperlyConfigured(
        f"CELERY_BROKER_URL (or REDIS_URL) {BROKER_KIND}://... is not a broker this platform "
        "runs on: use amqp://user:password@host:5672/vhost (RabbitMQ) or redis://host:6379/0"
    )
# Queues: web (light, user-facing), cpu (scoring chunks, any number of workers), gpu
# (training). A worker serves the queues given by `celery worker -Q ...`.
TASK_QUEUE_NAMES = ("web", "cpu", "gpu")
if BROKER_KIND in ("redis", "rediss"):
    # Longer than the longest task (a nightly retrain), or Redis redelivers it mid-run.
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "visibility_timeout": env_int("LABELAPP_VISIBILITY_TIMEOUT_S", 6 * 3600)
    }
elif BROKER_KIND in ("amqp", "amqps"):
    from kombu import Exchange, Queue

    # Quorum queues (replicated, durable; what RabbitMQ and Celery recommend for acks_late
    # tasks): a message is acknowledged only when its task ends, and comes back at once when
    # the worker's connection drops (a SIGKILLed worker), not after a visibility timeout.
    # Topic exchanges: Celery's native delayed delivery (retry back-off, countdown) needs them
    # with quorum queues. x-consumer-timeout: RabbitMQ closes the channel of a consumer that
    # holds an unacknowledged message longer (default 30 min), so it must exceed the longest
    # task (a nightly retrain).
    _ACK_TIMEOUT_MS = env_int("LABELAPP_TASK_ACK_TIMEOUT_S", 6 * 3600) * 1000
    CELERY_TASK_QUEUES = [
        Queue(
            name,
            Exchange(name, type="topic"),
            routing_key=name,
            queue_arguments={"x-queue-type": "quorum", "x-consumer-timeout": _ACK_TIMEOUT_MS},
        )
        for name in TASK_QUEUE_NAMES
    ]
    CELERY_TASK_DEFAULT_QUEUE_TYPE = "quorum"
    CELERY_TASK_DEFAULT_EXCHANGE_TYPE = "topic"
    CELERY_WORKER_DETECT_QUORUM_QUEUES = True  # per-consumer QoS: quorum queues refuse global
    # A publish returns only when RabbitMQ has the message (a vote's follow-up task is not
    # lost if the broker restarts right then).
    CELERY_BROKER_TRANSPORT_OPTIONS = {"confirm_publish": True}
else:
    # Embedded broker: messages are files under var/broker, so a real worker and beat run
    # with no system service installed. Single machine only; production uses RabbitMQ or
    # Redis. The folders are created at start-up (labelapp/datadirs.py).
    _BROKER_DIR = DATA_DIR / "broker"
    CELERY_BROKER_URL = "filesystem://"
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_BROKER_DIR / "queue"),
        "data_folder_out": str(_BROKER_DIR / "queue"),
        "control_folder": str(_BROKER_DIR / "control"),
    }
CELERY_RESULT_BACKEND = None  # task state the console needs is kept in our own models
CELERY_TASK_ROUTES = {
    "labelapp.tasks.retrain_model": {"queue": "gpu"},
    "labelapp.tasks.pretrain_encoder": {"queue": "gpu"},
    "labelapp.tasks.score_catalogue": {"queue": "cpu"},
    "labelapp.tasks.score_chunk": {"queue": "cpu"},
    "labelapp.tasks.start_round": {"queue": "cpu"},
    "labelapp.tasks.build_batch_shift_reports": {"queue": "cpu"},
    "labelapp.tasks.build_night_shift_reports": {"queue": "cpu"},
    "labelapp.tasks.refresh_results_nz": {"queue": "cpu"},  # scans the catalogue
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
# A scoring run that no chunk advanced for this long is sent again (lost broker messages,
# a killed worker's chunk waiting out the visibility timeout); checked every interval.
SCORING_STALL_S = env_int("LABELAPP_SCORING_STALL_S", 1800)
CELERY_BEAT_SCHEDULE["resume-stalled-scoring"] = {
    "task": "labelapp.tasks.resume_stalled_scoring",
    "schedule": float(env_int("LABELAPP_SCORING_WATCH_INTERVAL_S", 600)),
}
# Shift reports built without a person (labelapp.services.learning.auto_shift): a scoring
# run stops building them after this many seconds (0: no limit); the batches left are
# scored as trained. About 3 s per batch report on one CPU thread (docs/shift.md).
SHIFT_AUTO_BUDGET_S = env_int("LABELAPP_SHIFT_AUTO_BUDGET_S", 600)
# Health: a worker counts as alive if it ran a heartbeat task this recently.
HEARTBEAT_MAX_AGE_S = env_int("LABELAPP_HEARTBEAT_MAX_AGE_S", 120)

# Every record carries the request id (web) or the task id with the round / model / chunk
# it works on (workers): labelapp/logging_context.py. Workers keep this root handler
# (CELERY_WORKER_HIJACK_ROOT_LOGGER below) so their records get the same format.
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"context": {"()": "labelapp.logging_context.ContextFilter"}},
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s [%(context)s] %(message)s"},
        "json": {"()": "labelapp.logging_context.JsonFormatter"},
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": env_choice("LABELAPP_LOG_FORMAT", "plain", ["plain", "json"]),
            "filters": ["context"],
        }
    },
    "root": {"handlers": ["console"], "level": env_str("LABELAPP_LOG_LEVEL", "INFO")},
}
CELERY_WORKER_HIJACK_ROOT_LOGGER = False

# --- Vote stall watch (labelapp/services/operations/vote_watch.py) -------------------------------
# Warn when volunteers asked for candidates (at least VOTE_WATCH_MIN_REQUESTS next-candidate
# requests in the last VOTE_WATCH_ACTIVE_S) but no vote was stored for VOTE_WATCH_STALL_S.
VOTE_WATCH_INTERVAL_S = env_int("LABELAPP_VOTE_WATCH_INTERVAL_S", 300)
VOTE_WATCH_ACTIVE_S = env_int("LABELAPP_VOTE_WATCH_ACTIVE_S", 600)
VOTE_WATCH_STALL_S = env_int("LABELAPP_VOTE_WATCH_STALL_S", 900)
VOTE_WATCH_MIN_REQUESTS = env_int("LABELAPP_VOTE_WATCH_MIN_REQUESTS", 5)
CELERY_BEAT_SCHEDULE["vote-watch"] = {
    "task": "labelapp.tasks.check_vote_flow",
    "schedule": float(VOTE_WATCH_INTERVAL_S),
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
# Accounts: COUNT/SECONDS per client IP (a classroom shares one), and per username for
# log-in. LOGIN_LOCKOUT: that many failed log-ins for one username within the window lock it
# (even the right password is refused) until the window has passed since the last failure.
AUTH_RATE_SIGNUP = env_rate("LABELAPP_SIGNUP_RATE", "30/3600")
AUTH_RATE_LOGIN_IP = env_rate("LABELAPP_LOGIN_RATE_IP", "60/600")
AUTH_RATE_LOGIN_USER = env_rate("LABELAPP_LOGIN_RATE_USER", "20/600")
AUTH_RATE_PASSWORD_RESET = env_rate("LABELAPP_PASSWORD_RESET_RATE", "10/3600")
AUTH_LOGIN_LOCKOUT = env_rate("LABELAPP_LOGIN_LOCKOUT", "5/900")
# Requests per science-API token (docs/api.md): a notebook paging the catalogue at 1,000
# rows a request reads 2.5 M rows in a few minutes within it.
SCIENCE_API_RATE = env_rate("LABELAPP_SCIENCE_API_RATE", "600/60")
# Crowd integrity (docs/security.md). A vote is accepted only for a candidate the server
# served to that session (a signed token, valid this many seconds).
VOTE_SERVED_TTL_S = env_int("LABELAPP_VOTE_SERVED_TTL_S", 6 * 3600)
# Per client address (DJANGO_BEHIND_PROXY honoured), COUNT/SECONDS: new anonymous volunteers
# (a classroom behind one NAT shares it; signing up is limited by AUTH_RATE_SIGNUP), and
# anonymous votes from all of the address's sessions together.
ANON_VOLUNTEER_RATE_IP = env_rate("LABELAPP_ANON_VOLUNTEER_RATE_IP", "30/3600")
VOTE_RATE_IP = env_rate("LABELAPP_VOTE_RATE_IP", "600/60")
# A volunteer is proven once this many yes/no gold answers were given with at least this
# accuracy (experts always are). Until then their votes on a candidate count together for
# at most UNPROVEN_MAX_LLR of log-odds in each direction, and cannot retire one without the
# agreement of proven evidence (see services/consensus.py, docs/security.md).
PROVEN_MIN_GOLD = env_int("LABELAPP_PROVEN_MIN_GOLD", 4)
PROVEN_MIN_ACCURACY = float(env_str("LABELAPP_PROVEN_MIN_ACCURACY", "0.7"))
# Levels by shown skill (services.crowd.levels, mlcore.aggregation.levels): promotion when
# the lower credible bound (LEVEL_CREDIBLE) of both sensitivity and specificity on gold in a
# regime reaches LEVEL_SKILL, over at least LEVEL_MIN_GOLD yes/no gold answers there. Levels
# are in force only while the site has LEVELS_SITE_MIN_GOLD active gold standards of each
# class (real, not real) in each S/N regime; until then every volunteer is served every
# regime (a new site serves work), and volunteers cannot be promoted anyway.
LEVELS_ENABLED = env_bool("LABELAPP_LEVELS_ENABLED", True)
LEVEL_SKILL = env_float("LABELAPP_LEVEL_SKILL", 0.7, low=0.5, high=0.99)
LEVEL_CREDIBLE = env_float("LABELAPP_LEVEL_CREDIBLE", 0.9, low=0.5, high=0.99)
LEVEL_MIN_GOLD = env_int("LABELAPP_LEVEL_MIN_GOLD", 10)
LEVELS_SITE_MIN_GOLD = env_int("LABELAPP_LEVELS_SITE_MIN_GOLD", 5)
# Seconds a process trusts its answer to "are levels in force?" (asked on every next and
# vote of a level-1 volunteer) before reading the gold table's signature again; gold saved
# or deleted in the process is seen at once, another process's change within this time.
LEVELS_IN_FORCE_TTL_S = env_float("LABELAPP_LEVELS_IN_FORCE_TTL_S", 5.0, low=0.0, high=3600.0)
UNPROVEN_MAX_LLR = float(env_str("LABELAPP_UNPROVEN_MAX_LLR", "2.0"))
# ... and a candidate retires only when its proven votes alone lean its way by more than this
# log-odds (more than one default-skill vote, log 3 = 1.1: one honest slip is not enough).
PROVEN_SUPPORT_LLR = float(env_str("LABELAPP_PROVEN_SUPPORT_LLR", "1.5"))
# How much of the unproven evidence on the side a candidate leans its retirement may count
# (0: none -- "delay, never cause", sybils can never hasten a label; up to UNPROVEN_MAX_LLR:
# all of it). A trade-off measured in docs/security.md: a crowd of many light volunteers
# retires faster, and a flood of sybils can tip more slight wrong leans into labels.
RETIRE_UNPROVEN_LEAN_LLR = env_float("LABELAPP_RETIRE_UNPROVEN_LEAN_LLR", 0.0, low=0.0, high=10.0)
# Share of each kind's new gold made exam gold (never told; only exam answers prove a
# volunteer: services.crowd.gold.mark_gold); the rest teaches.
EXAM_GOLD_SHARE = env_float("LABELAPP_EXAM_GOLD_SHARE", 0.5, low=0.0, high=1.0)
# A newcomer is served exam gold first, until they have the PROVEN_MIN_GOLD answers that can
# prove them (services.crowd.queue.exam_first): the same gold, asked before their unproven
# answers go to candidates. Measured in docs/security.md.
NEWCOMER_EXAM_FIRST = env_bool("LABELAPP_NEWCOMER_EXAM_FIRST", False)
# Probation: a volunteer passed by exam gold is proven only after this many comparisons with
# proven peers or the live model's trusted calls on non-gold candidates, at least half of
# them agreeing (once passed, kept: Volunteer.probation_passed) -- while the live model has a
# trusted direction (0: off). Measured in docs/security.md ("Probation").
PROOF_MIN_CHECKS = env_int("LABELAPP_PROOF_MIN_CHECKS", 3)
# ... and those checks must favour "honest" over "answering against the truth" by this
# log-likelihood ratio (mlcore.aggregation.evidence.probation_llr; log 19 = 2.94: in effect
# two agreements with the live model's trusted calls and no disagreement; 0: half of the
# checks is enough, the rule before the twenty-second session). Measured in
# docs/security.md ("Probation").
PROOF_MIN_LLR = env_float("LABELAPP_PROOF_MIN_LLR", 2.94, low=0.0)
# A proven volunteer stops being proven when, over at least PEER_MIN_COMPARISONS yes/no
# answers compared with other proven volunteers' on the same candidates, they agree less
# often than chance by more than PEER_Z standard errors (colluders who pass gold; see
# mlcore/aggregation/evidence.py peer_disagrees).
PEER_MIN_COMPARISONS = env_int("LABELAPP_PEER_MIN_COMPARISONS", 10)
PEER_Z = env_float("LABELAPP_PEER_Z", 2.33)
# The same test against the live model's confident calls (P >= MODEL_CONFIDENT or <= 1 - it):
# a group of colluders agrees with itself, never with an independent model.
MODEL_CONFIDENT = env_float("LABELAPP_MODEL_CONFIDENT", 0.8)
# A confident call is right far more often than a peer, so fewer comparisons decide: with
# PEER_Z = 2.33, 6 comparisons none agreeing is the first verdict (an honest volunteer right
# 80 % of the time gets there once in 15,000).
MODEL_MIN_COMPARISONS = env_int("LABELAPP_MODEL_MIN_COMPARISONS", 6)
# ... and only with the calls the model gets right: a direction of its confident calls
# ("real", "not real") is compared with only when, on the promotion gate's evaluation set,
# at least MODEL_CALL_MIN such calls were right MODEL_CALL_PRECISION of the time or more
# (ModelVersion.trust_real_calls / trust_false_calls; mlcore.aggregation.evidence).
MODEL_CALL_PRECISION = env_float("LABELAPP_MODEL_CALL_PRECISION", 0.85, low=0.5, high=1.0)
MODEL_CALL_MIN = env_int("LABELAPP_MODEL_CALL_MIN", 20)
# A failed CSRF check on /api/ answers JSON (the page shows its message), HTML elsewhere.
CSRF_FAILURE_VIEW = "labelapp.views.api.csrf_failure"

# --- Aggregation and retirement -----------------------------------------------------------
# Retire when the live posterior passes a threshold after RETIRE_MIN_VOTES yes/no votes;
# send to the expert queue when RETIRE_MAX_VOTES are reached and it is still uncertain.
RETIRE_P_HI = env_float("LABELAPP_RETIRE_P_HI", 0.95, low=0.5, high=1.0)
RETIRE_P_LO = env_float("LABELAPP_RETIRE_P_LO", 0.05, low=0.0, high=0.5)
RETIRE_MIN_VOTES = env_int("LABELAPP_RETIRE_MIN_VOTES", 2)
RETIRE_MAX_VOTES = env_int("LABELAPP_RETIRE_MAX_VOTES", 15)
# Skill assumed for a volunteer before any gold answer or batch run has measured them.
DEFAULT_SENSITIVITY = env_float("LABELAPP_DEFAULT_SENSITIVITY", 0.75, low=0.0, high=1.0)
DEFAULT_SPECIFICITY = env_float("LABELAPP_DEFAULT_SPECIFICITY", 0.75, low=0.0, high=1.0)
# Users in this group (and staff) are experts: their answer settles a candidate's label.
EXPERT_GROUP = env_str("LABELAPP_EXPERT_GROUP", "scientists")
# Talk (docs/volunteers.md): posts (comments, threads, flags) and reports per account,
# COUNT/SECONDS (moderators are not limited); members of this group (and the science team)
# moderate: hide comments, suspend accounts from Talk.
TALK_POST_RATE = env_rate("LABELAPP_TALK_POST_RATE", "10/300")
TALK_REPORT_RATE = env_rate("LABELAPP_TALK_REPORT_RATE", "20/3600")
TALK_MODERATOR_GROUP = env_str("LABELAPP_TALK_MODERATOR_GROUP", "talk-moderators")

# --- Models -------------------------------------------------------------------------------
# Weights and cards of every model version (shared storage, like the cutout stores).
MODELS_DIR = Path(env_str("LABELAPP_MODELS_DIR", str(DATA_DIR / "models")))
SCORE_MC_SAMPLES = env_int("LABELAPP_SCORE_MC_SAMPLES", 10)  # MC-dropout passes per candidate
# CPU scoring workers on AMX / AVX512-BF16 machines may run the CNN trunks in bfloat16
# (~1.4x faster, probabilities within ~1e-3); a CPU without native bfloat16 refuses it.
SCORE_PRECISION = env_choice("LABELAPP_SCORE_PRECISION", "float32", ["float32", "bfloat16"])
# Members of each retrained model (a deep ensemble on one split; 1 = a single CNN). Training
# costs this many times more; scoring runs every member's trunk.
ENSEMBLE_MEMBERS = env_int("LABELAPP_ENSEMBLE_MEMBERS", 1)
# Level-3 artefact-type answers (candidates with one) a retrain needs before the model gets
# an artefact-type head trained on them; below this the head would learn from a handful.
ARTEFACT_MIN_ANSWERS = env_int("LABELAPP_ARTEFACT_MIN_ANSWERS", 50)
# A new model may be this much worse (balanced accuracy, per S/N regime) than the live one
# on the gold + expert evaluation set and still be promoted (noise on a small set).
PROMOTION_TOLERANCE = env_float("LABELAPP_PROMOTION_TOLERANCE", 0.01, low=0.0, high=1.0)
RETRAIN_MIN_NEW_LABELS = env_int("LABELAPP_RETRAIN_MIN_NEW_LABELS", 500)
# Consensus labels a model trains on: at least RETIRE_MIN_VOTES yes/no votes and a posterior
# this far from undecided (max(P, 1 - P)); gold and expert labels always count.
TRAIN_MIN_CONFIDENCE = env_float("LABELAPP_TRAIN_MIN_CONFIDENCE", 0.9, low=0.5, high=1.0)

# --- Scientist console (labelapp/urls_console.py; README "The scientist console") -----------
# Largest external confirmation catalogue (FITS or CSV) the console accepts for validation.
EXTERNAL_UPLOAD_MAX_BYTES = env_int("LABELAPP_EXTERNAL_UPLOAD_MAX_BYTES", 50 * 1024 * 1024)
# Key of the volunteer pseudonyms in exports and on candidate pages (HMAC-SHA256 of the
# volunteer id). Default: SECRET_KEY. Set it to keep pseudonyms stable across key rotation.
EXPORT_PSEUDONYM_KEY = env_str("LABELAPP_EXPORT_PSEUDONYM_KEY", "")
# Where volunteers write to ask what is stored about them, or for its deletion (the privacy
# page, /privacy/). Empty: the page says the operator has not set one.
LABELAPP_CONTACT_EMAIL = env_str("LABELAPP_CONTACT_EMAIL", "")
