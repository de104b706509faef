"""Tradewatch settings, read from the environment (twelve-factor).

Every variable has a development default so `make run` works on a fresh machine;
production values are listed in the README. Mistakes in them fail loudly here or
surface as system checks (`monitoring_site.checks`), never as silent fallbacks.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

import django_stubs_ext
import environ
from django.core.exceptions import ImproperlyConfigured

from monitoring_site.databases import database_routers, databases_from_environment
from monitoring_site.logging_settings import logging_settings

# Django's generic classes (ModelAdmin, ModelForm, inlines...) take their model as a
# type argument at run time too, as the type checker reads them: ModelAdmin[Alert].
django_stubs_ext.monkeypatch()

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = BASE_DIR / "var"

env = environ.Env()

DEBUG: bool = env.bool("DEBUG", default=True)

# A development-only key: refused whenever DEBUG is off, so it can never reach production.
_DEVELOPMENT_SECRET_KEY = "development-only-secret-key-do-not-use-in-production-0123456789"  # noqa: S105
SECRET_KEY: str = env.str("SECRET_KEY", default=_DEVELOPMENT_SECRET_KEY)
if not DEBUG and SECRET_KEY == _DEVELOPMENT_SECRET_KEY:
    raise ImproperlyConfigured("SECRET_KEY must be set in the environment when DEBUG is off.")

ALLOWED_HOSTS: list[str] = env.list("ALLOWED_HOSTS", default=["127.0.0.1", "localhost", "[::1]"])
# Container healthchecks and local scrapers call the loopback address whatever the domain.
ALLOWED_HOSTS += [host for host in ("127.0.0.1", "localhost") if host not in ALLOWED_HOSTS]
CSRF_TRUSTED_ORIGINS: list[str] = env.list("CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    # The admin with Tradewatch's own site (its index is the operator's dashboard).
    "monitoring_site.admin_app.TradewatchAdminConfig",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "rest_framework_api_key",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_celery_beat",
    "pgtrigger",
    "pghistory",
    "pghistory.admin",
    "axes",
    # The bottom layer every app may import (no models; listed for its templates).
    "core",
    "monitoring_site",
    "metrics",
    "alerts",
    "chat",
    "health",
    "audit",
    "configuration",
]

MIDDLEWARE = [
    # First: every later middleware's and view's log lines carry the request id.
    "monitoring_site.logcontext.RequestIdMiddleware",
    # Next: every error answer under /api/ below it is JSON, never an HTML or debug page.
    "monitoring_site.api_errors.JSONAPIErrorsMiddleware",
    # Oversized API requests are refused in the API's JSON error shape, before any work.
    "metrics.api.limits.RequestLimitsMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    # Operators' page and API reads to the replica, when there is one.
    "monitoring_site.database_routing.ReplicaReadsMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Who changed configuration, for the audit history's triggers.
    "audit.middleware.AuditContextMiddleware",
    # Last, as django-axes asks: it turns a lockout into the lockout answer.
    "axes.middleware.AxesMiddleware",
]

AUTHENTICATION_BACKENDS = [
    # First: refuses a locked-out username/address pair before the password is checked.
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]

ROOT_URLCONF = "monitoring_site.urls"
WSGI_APPLICATION = "monitoring_site.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "monitoring_site" / "templates"],
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

# --- Database -------------------------------------------------------------------------
# The primary (DATABASE_URL) and, if DATABASE_REPLICA_URL names one, a streaming replica
# that serves operators' reads (`monitoring_site.database_routing` says which).
DATABASES = databases_from_environment(env)
DATABASE_ROUTERS = database_routers(DATABASES)

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

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
STATIC_ROOT = Path(env.str("STATIC_ROOT", default=str(VAR_DIR / "static")))
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}
if DEBUG:
    # Without collectstatic (tests, runserver) serve straight from the apps.
    STORAGES["staticfiles"] = {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"}
    WHITENOISE_USE_FINDERS = True

# --- Security (production values when DEBUG is off) ---------------------------------
# TLS terminates at the proxy in front of the web server; it says so with X-Forwarded-Proto.
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_SSL_REDIRECT: bool = env.bool("SECURE_SSL_REDIRECT", default=not DEBUG)
# Probes and scrapers speak plain HTTP inside the private network.
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$", r"^metrics$"]
SECURE_HSTS_SECONDS: int = env.int("SECURE_HSTS_SECONDS", default=0 if DEBUG else 31_536_000)
SECURE_HSTS_INCLUDE_SUBDOMAINS: bool = env.bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", default=not DEBUG)
SECURE_HSTS_PRELOAD: bool = env.bool("SECURE_HSTS_PRELOAD", default=not DEBUG)
SESSION_COOKIE_SECURE: bool = env.bool("SESSION_COOKIE_SECURE", default=not DEBUG)
CSRF_COOKIE_SECURE: bool = env.bool("CSRF_COOKIE_SECURE", default=not DEBUG)
SESSION_COOKIE_HTTPONLY = True
X_FRAME_OPTIONS = "DENY"
# Admin sessions end with the browser and after 12 hours at most; a cross-site request
# never carries them.
SESSION_COOKIE_AGE: int = env.int("SESSION_COOKIE_AGE", default=12 * 3600)
SESSION_EXPIRE_AT_BROWSER_CLOSE: bool = env.bool(
    "SESSION_EXPIRE_AT_BROWSER_CLOSE", default=not DEBUG
)
# Lax, not Strict: an operator opening an alert's link from Slack or email arrives signed in.
SESSION_COOKIE_SAMESITE = "Lax"
CSRF_COOKIE_SAMESITE = "Lax"
# The dashboard's scripts read the CSRF token from the page's form, not the cookie.
CSRF_COOKIE_HTTPONLY: bool = env.bool("CSRF_COOKIE_HTTPONLY", default=not DEBUG)
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"

# --- Login protection (django-axes) ---------------------------------------------------
# Five wrong passwords for one username from one address lock that pair out for 15
# minutes; a success resets the count.
AXES_FAILURE_LIMIT: int = env.int("AXES_FAILURE_LIMIT", default=5)
AXES_COOLOFF_TIME: float = env.float("AXES_COOLOFF_HOURS", default=0.25)
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
# The client's address is the connection's, unless TRUSTED_PROXY_COUNT proxies stand in
# front and append to X-Forwarded-For: trusting that header without them would let a
# guesser pick a new address for every try.
_TRUSTED_PROXY_COUNT: int = env.int("TRUSTED_PROXY_COUNT", default=0)
if _TRUSTED_PROXY_COUNT:
    AXES_IPWARE_PROXY_COUNT = _TRUSTED_PROXY_COUNT
    AXES_IPWARE_META_PRECEDENCE_ORDER = ["HTTP_X_FORWARDED_FOR", "REMOTE_ADDR"]
else:
    AXES_IPWARE_META_PRECEDENCE_ORDER = ["REMOTE_ADDR"]

# --- Audit history (django-pghistory) ---------------------------------------------------
# The admin's list of every change shows who made it (taken from the request context).
PGHISTORY_ADMIN_MODEL = "pghistory.MiddlewareEvents"
PGHISTORY_ADMIN_LIST_DISPLAY = [
    "pgh_created_at", "user", "pgh_label", "pgh_obj_model", "pgh_obj_id", "pgh_diff",
]  # fmt: skip

# --- REST API -----------------------------------------------------------------------
REST_FRAMEWORK = {
    # People (operators) use a token or their admin session; sources use their API key,
    # which only the ingestion views accept.
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    # Adds every error answer a view can give (auth, limits, throttling, outages).
    "DEFAULT_SCHEMA_CLASS": "metrics.schema.TradewatchAutoSchema",
    "UNAUTHENTICATED_USER": None,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Tradewatch API",
    "DESCRIPTION": "Monitoring and alerting for automated trading systems.",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    # Swagger UI's files come from the project itself, never from a CDN.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    # Several objects of the configuration API have a `kind`, each its own choices;
    # alerts and trading controls each have a state.
    "ENUM_NAME_OVERRIDES": {
        "SourceKindEnum": "configuration.fields.SOURCE_KINDS",
        "ChannelKindEnum": "configuration.fields.CHANNEL_KINDS_ORDINARY",
        "RuleKindEnum": "configuration.fields.RULE_KINDS",
        "HealthCheckKindEnum": "configuration.fields.HEALTH_CHECK_KINDS",
        # Alerts have a state too: the trading state's enum gets its own name.
        "TradingStateEnum": "metrics.models.TradingControl.State",
        "ThresholdActionEnum": "configuration.fields.THRESHOLD_ACTIONS",
        "ScheduleKindEnum": "configuration.fields.SCHEDULE_KINDS",
        "ExpectationSignalEnum": "configuration.fields.EXPECTATION_SIGNALS",
    },
}

# --- Celery -------------------------------------------------------------------------
CELERY_BROKER_URL: str = env.str("CELERY_BROKER_URL", default="redis://127.0.0.1:6379/0")
_default_result_backend = (
    CELERY_BROKER_URL
    if CELERY_BROKER_URL.startswith(("redis://", "rediss://"))
    else f"file://{VAR_DIR / 'celery-results'}"
)
CELERY_RESULT_BACKEND: str = env.str("CELERY_RESULT_BACKEND", default=_default_result_backend)
if CELERY_RESULT_BACKEND.startswith("file://"):
    Path(CELERY_RESULT_BACKEND.removeprefix("file://")).mkdir(parents=True, exist_ok=True)
if CELERY_BROKER_URL.startswith("filesystem://"):
    # The embedded broker: messages are files in one folder shared by all processes.
    _broker_folder = Path(env.str("CELERY_BROKER_FOLDER", default=str(VAR_DIR / "broker")))
    # Every process (web, worker, beat) needs the folder before its first message.
    _broker_folder.mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_TRANSPORT_OPTIONS: dict[str, object] = {
        "data_folder_in": str(_broker_folder),
        "data_folder_out": str(_broker_folder),
        # Exchange bindings; kombu's default is a folder in the working directory.
        "control_folder": str(_broker_folder / "control"),
        "store_processed": False,
    }
else:
    # A task unacknowledged this long is handed to another worker (Redis); longer than
    # any task's hard time limit so a slow task is never run twice while it still runs.
    CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 3600}
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_TIMEZONE = "UTC"
# Acknowledge after the task ran, and give the message back if the worker dies in it:
# a worker killed mid-delivery must not lose the notification it held.
# Celery's Django fixup closes the database connection after every task unless told to
# reuse it: a new connection costs ~9 ms, more than a whole source evaluation.
CELERY_DB_REUSE_MAX = 1000
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_IGNORE_RESULT = True
CELERY_RESULT_EXPIRES = 3600
CELERY_TASK_TIME_LIMIT = 300
CELERY_TASK_SOFT_TIME_LIMIT = 240
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_BROKER_CONNECTION_TIMEOUT = 5
CELERY_TASK_DEFAULT_QUEUE = "default"
# Separate queues so a flood of one kind of work never starves another: evaluation after
# ingestion, notification delivery, health checks; housekeeping goes to "default".
CELERY_TASK_ROUTES = {
    "alerts.tasks.evaluate_*": {"queue": "ingest"},
    "alerts.tasks.deliver*": {"queue": "delivery"},
    "alerts.tasks.sweep_outbox": {"queue": "delivery"},
    "alerts.tasks.escalate": {"queue": "delivery"},
    "health.tasks.run_*": {"queue": "health"},
}
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
# django-celery-beat's schedule in the database, sent only by the beat holding the beat
# lock: a second beat started by mistake stands by instead of doubling the work.
CELERY_BEAT_SCHEDULER = "monitoring_site.beat:LockedDatabaseScheduler"

# --- Cache (shared by every process: throttling and coalescing flags live here) -----
if CELERY_BROKER_URL.startswith(("redis://", "rediss://")):
    # The next Redis database after the broker's: clearing the cache (which flushes its
    # database) must never take queued tasks with it.
    _broker = urlsplit(CELERY_BROKER_URL)
    _cache_db = (int(_broker.path.strip("/") or 0) + 1) % 16
    _default_cache_url = _broker._replace(
        scheme=_broker.scheme.replace("redis", "rediscache", 1), path=f"/{_cache_db}"
    ).geturl()
else:
    _default_cache_url = f"filecache://{VAR_DIR / 'cache'}"
CACHES = {"default": env.cache_url("CACHE_URL", default=_default_cache_url)}
CACHES["default"].setdefault("KEY_PREFIX", "tradewatch")

# --- Ingestion ----------------------------------------------------------------------
TRADEWATCH_MAX_BATCH_ITEMS: int = env.int("TRADEWATCH_MAX_BATCH_ITEMS", default=10_000)
# Requests per source per minute before 429; generous: a bot flushing every 100 ms
# sends 600.
TRADEWATCH_INGEST_RATE_PER_MINUTE: int = env.int("TRADEWATCH_INGEST_RATE_PER_MINUTE", default=3000)
TRADEWATCH_METRIC_RETENTION_DAYS: int = env.int("TRADEWATCH_METRIC_RETENTION_DAYS", default=30)
TRADEWATCH_IDEMPOTENCY_HOURS: int = env.int("TRADEWATCH_IDEMPOTENCY_HOURS", default=24)
# A body larger than this is refused with 413 before it is parsed.
DATA_UPLOAD_MAX_MEMORY_SIZE: int = env.int("TRADEWATCH_MAX_BODY_BYTES", default=16 * 1024 * 1024)
# An API URL (path and query) longer than this is refused with 414; below the web
# server's own request-line limit, so the answer is the API's JSON error.
TRADEWATCH_MAX_URL_BYTES: int = env.int("TRADEWATCH_MAX_URL_BYTES", default=2048)
# The whole request body must arrive within this many seconds (else 408): the web front
# reads it before any Django thread is given the request (monitoring_site/front.py).
TRADEWATCH_BODY_TIMEOUT_SECONDS: float = env.float("TRADEWATCH_BODY_TIMEOUT_SECONDS", default=30.0)

# --- Alerts -----------------------------------------------------------------------
# Who hears that a source's data was stored (metrics.changes.SourceChange): the alerts
# app's trigger evaluates the source (one evaluation in flight per source, see
# alerts/trigger.py). Declared here so that metrics imports no upper app.
TRADEWATCH_SOURCE_CHANGED_HANDLERS: list[str] = ["alerts.trigger.source_changed"]
# The first batch after a quiet spell is evaluated in the request that brought it (a
# breach becomes an alert before the answer), not by a worker; off: always by a worker.
TRADEWATCH_EVALUATE_ON_ARRIVAL: bool = env.bool("TRADEWATCH_EVALUATE_ON_ARRIVAL", default=True)
# At most this share of each web process's time goes to evaluations on arrival; beyond
# it (many sources each sending now and then, under load) workers evaluate, merging.
TRADEWATCH_EVALUATE_ON_ARRIVAL_SHARE: float = env.float(
    "TRADEWATCH_EVALUATE_ON_ARRIVAL_SHARE", default=0.25
)
# How long a firing, unacknowledged alert waits before it is announced again.
TRADEWATCH_REPEAT_SECONDS: dict[str, int] = {
    "EMERGENCY": env.int("TRADEWATCH_REPEAT_EMERGENCY_SECONDS", default=10),
    "CRITICAL": env.int("TRADEWATCH_REPEAT_CRITICAL_SECONDS", default=60),
    "ERROR": env.int("TRADEWATCH_REPEAT_ERROR_SECONDS", default=120),
    "WARNING": env.int("TRADEWATCH_REPEAT_WARNING_SECONDS", default=300),
    "INFO": env.int("TRADEWATCH_REPEAT_INFO_SECONDS", default=600),
    "DEBUG": env.int("TRADEWATCH_REPEAT_DEBUG_SECONDS", default=600),
}

# Limits the built-in trading rule pack starts with (edit the rules in the admin later).
TRADEWATCH_DAILY_LOSS_LIMIT: float = env.float("TRADEWATCH_DAILY_LOSS_LIMIT", default=1000.0)
TRADEWATCH_MAX_OPEN_POSITIONS: int = env.int("TRADEWATCH_MAX_OPEN_POSITIONS", default=10)

# --- Delivery -------------------------------------------------------------------------
# Keys that encrypt channel secrets at rest (Fernet, comma-separated: the first encrypts,
# all decrypt, so a key can be rotated). Unset, it is derived from SECRET_KEY, which
# `check --deploy` refuses (tradewatch.E003): rotating SECRET_KEY would lose the secrets.
TRADEWATCH_ENCRYPTION_KEYS: list[str] = env.list("TRADEWATCH_ENCRYPTION_KEY", default=[])
# Channels (HTTP, Apprise, SMTP) refuse loopback, private, link-local and metadata
# addresses; networks listed here (CIDR, e.g. 10.0.0.0/8 for an internal receiver or
# 127.0.0.1/32 for a local mail relay) are let through, metadata never.
TRADEWATCH_DELIVERY_ALLOWED_NETWORKS: list[str] = env.list(
    "TRADEWATCH_DELIVERY_ALLOWED_NETWORKS", default=[]
)
# Apprise schemes whose deliveries the destination check cannot see (desktop, local
# syslog, custom plugins), allowed anyway; e.g. "syslog".
TRADEWATCH_APPRISE_UNCHECKED_SCHEMES: list[str] = env.list(
    "TRADEWATCH_APPRISE_UNCHECKED_SCHEMES", default=[]
)
# Seconds one HTTP delivery may take, connect and answer together (at most 15).
TRADEWATCH_DELIVERY_TIMEOUT_SECONDS: float = min(
    env.float("TRADEWATCH_DELIVERY_TIMEOUT_SECONDS", default=10.0), 15.0
)
# Retries: exponential backoff with jitter from BACKOFF up to BACKOFF_MAX seconds, at most
# MAX_ATTEMPTS tries (the defaults span about 13 minutes, so a channel down for 10
# minutes loses nothing); then the notification fails and the policy's fallback is used.
TRADEWATCH_DELIVERY_MAX_ATTEMPTS: int = env.int("TRADEWATCH_DELIVERY_MAX_ATTEMPTS", default=10)
TRADEWATCH_DELIVERY_BACKOFF_SECONDS: float = env.float(
    "TRADEWATCH_DELIVERY_BACKOFF_SECONDS", default=2.0
)
TRADEWATCH_DELIVERY_BACKOFF_MAX_SECONDS: float = env.float(
    "TRADEWATCH_DELIVERY_BACKOFF_MAX_SECONDS", default=300.0
)
# Waits up to this long ride on a broker countdown; longer ones wait in the database
# (`next_attempt_at`) for the sweeper, so a broker restart loses no retry.
TRADEWATCH_DELIVERY_COUNTDOWN_MAX_SECONDS: float = env.float(
    "TRADEWATCH_DELIVERY_COUNTDOWN_MAX_SECONDS", default=10.0
)
# How long a worker owns a notification it is sending: past this (the worker died),
# the sweeper queues it again. Longer than the delivery timeout.
TRADEWATCH_DELIVERY_LEASE_SECONDS: float = env.float(
    "TRADEWATCH_DELIVERY_LEASE_SECONDS", default=60.0
)
# A queued notification not started within this long is queued again (a lost message).
TRADEWATCH_DELIVERY_REQUEUE_SECONDS: float = env.float(
    "TRADEWATCH_DELIVERY_REQUEUE_SECONDS", default=30.0
)
# Where the chat services live; tests point them at local receivers.
TRADEWATCH_SLACK_BASE_URL: str = env.str(
    "TRADEWATCH_SLACK_BASE_URL", default="https://hooks.slack.com"
)
TRADEWATCH_DISCORD_BASE_URL: str = env.str(
    "TRADEWATCH_DISCORD_BASE_URL", default="https://discord.com"
)
TRADEWATCH_TELEGRAM_BASE_URL: str = env.str(
    "TRADEWATCH_TELEGRAM_BASE_URL", default="https://api.telegram.org"
)
# Address of this Tradewatch as operators reach it: links in notifications.
TRADEWATCH_PUBLIC_URL: str = env.str("TRADEWATCH_PUBLIC_URL", default="http://127.0.0.1:8000")

# --- Live event stream (GET /api/v1/stream, core.events, monitoring_site.event_stream) --
# Events kept for clients that reconnect with Last-Event-ID (about this many: Redis trims
# whole nodes); a client away for longer is sent a `reset` event instead.
TRADEWATCH_STREAM_REPLAY_EVENTS: int = env.int("TRADEWATCH_STREAM_REPLAY_EVENTS", default=10_000)
# Open streams per web process; one more is answered 503 with Retry-After. Below the
# server's connections per process (TRADEWATCH_WEB_MAX_CONNECTIONS), so API calls and
# ingestion always find a connection.
TRADEWATCH_STREAM_MAX_CLIENTS: int = env.int("TRADEWATCH_STREAM_MAX_CLIENTS", default=500)
# A comment line this often on an idle stream, so proxies keep the connection open.
TRADEWATCH_STREAM_KEEPALIVE_SECONDS: float = env.float(
    "TRADEWATCH_STREAM_KEEPALIVE_SECONDS", default=15.0
)
# How often latest values are read for the streams that asked for them (?metrics=).
TRADEWATCH_STREAM_METRICS_SECONDS: float = env.float(
    "TRADEWATCH_STREAM_METRICS_SECONDS", default=1.0
)
# How often an open stream's credentials are checked again (a revoked token, a person
# who lost the permission: the stream ends).
TRADEWATCH_STREAM_RECHECK_SECONDS: float = env.float(
    "TRADEWATCH_STREAM_RECHECK_SECONDS", default=300.0
)

# --- Health ---------------------------------------------------------------------------
# Probes run at once on this many threads (each within its own timeout).
TRADEWATCH_HEALTH_WORKERS: int = env.int("TRADEWATCH_HEALTH_WORKERS", default=16)
TRADEWATCH_HEALTH_RETENTION_DAYS: int = env.int("TRADEWATCH_HEALTH_RETENTION_DAYS", default=30)

# --- Self-monitoring (health.selfmonitoring) -------------------------------------------
# Every worker reports itself alive this often; one of them runs the self-check (beat,
# workers, queues, watchdog) every TRADEWATCH_SELF_CHECK_SECONDS (0: never).
TRADEWATCH_WORKER_HEARTBEAT_SECONDS: float = env.float(
    "TRADEWATCH_WORKER_HEARTBEAT_SECONDS", default=15.0
)
TRADEWATCH_SELF_CHECK_SECONDS: float = env.float("TRADEWATCH_SELF_CHECK_SECONDS", default=30.0)
# A worker silent this long counts as absent.
TRADEWATCH_WORKER_STALE_SECONDS: float = env.float("TRADEWATCH_WORKER_STALE_SECONDS", default=60.0)

# --- Retention (alerts and notifications; metrics and health reports above) -----------
# Resolved alerts (with their timeline and notifications) and finished notifications
# older than this are deleted on beat, in chunks.
TRADEWATCH_ALERT_RETENTION_DAYS: int = env.int("TRADEWATCH_ALERT_RETENTION_DAYS", default=90)

# --- Admin bootstrap ------------------------------------------------------------------
TRADEWATCH_ADMIN_USERNAME: str = env.str("TRADEWATCH_ADMIN_USERNAME", default="admin")
TRADEWATCH_ADMIN_EMAIL: str = env.str("TRADEWATCH_ADMIN_EMAIL", default="admin@localhost")
TRADEWATCH_ADMIN_PASSWORD: str = env.str("TRADEWATCH_ADMIN_PASSWORD", default="")

# --- Logging ----------------------------------------------------------------------
LOG_LEVEL: str = env.str("LOG_LEVEL", default="INFO")
# "json": one JSON object per line (production: log shippers read fields, not prose);
# "plain": readable lines for a terminal. Either way every record carries the request
# id, task id and task name (`monitoring_site.logcontext`).
LOG_FORMAT: str = env.str("LOG_FORMAT", default="plain" if DEBUG else "json")
if LOG_FORMAT not in ("json", "plain"):
    raise ImproperlyConfigured(f"LOG_FORMAT must be json or plain, not {LOG_FORMAT!r}.")
# Every handler Django sets up, its own defaults included, redacts hook keys.
LOGGING_CONFIG = "monitoring_site.log_redaction.configure"
LOGGING = logging_settings(LOG_FORMAT, LOG_LEVEL)
# Error reports (the admins' e-mail, the debug page) show the request's path and META.
DEFAULT_EXCEPTION_REPORTER = "monitoring_site.error_reports.RedactingExceptionReporter"
