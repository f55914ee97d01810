"""Settings for osmos: one file, read from the environment (12-factor).

With no environment at all the product runs on its embedded default: a SQLite file under
``var/``, an in-process Dramatiq broker whose worker threads live in the web process, and a
secret key and encryption key generated once into git-ignored files under ``var/``.
Every knob is listed in the README's settings table.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

import environ
from cryptography.fernet import Fernet
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent
env = environ.Env()

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def env_bool(name: str, default: bool) -> bool:
    """A boolean from the environment; anything but a known spelling is an error, not False."""
    raw = env.str(name, default="")
    if raw == "":
        return default
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ImproperlyConfigured(f"{name}={raw!r} is not a boolean (use true/false, 1/0, yes/no)")


def env_int(name: str, default: int, *, minimum: int = 0) -> int:
    raw = env.str(name, default="")
    if raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name}={raw!r} is not an integer") from None
    if value < minimum:
        raise ImproperlyConfigured(f"{name} must be at least {minimum}")
    return value


def env_float(name: str, default: float) -> float:
    raw = env.str(name, default="")
    if raw == "":
        return default
    try:
        return float(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name}={raw!r} is not a number") from None


def _local_secret(filename: str, make: callable) -> str:
    """A value generated once and kept in ``var/<filename>`` (embedded mode only)."""
    path = VAR_DIR / filename
    if not path.exists():
        VAR_DIR.mkdir(parents=True, exist_ok=True)
        path.write_text(make())
        path.chmod(0o600)
    return path.read_text().strip()


VAR_DIR = Path(env.str("OSMOS_VAR_DIR", default=str(BASE_DIR / "var")))
DEBUG = env_bool("DEBUG", True)

SECRET_KEY = env.str("SECRET_KEY", default="")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured("SECRET_KEY must be set when DEBUG is off (production mode)")
    SECRET_KEY = _local_secret("secret_key", lambda: secrets.token_urlsafe(50))

# Fernet keys for secrets stored at rest (destination header values). The first key
# encrypts; all of them decrypt, so keys can be rotated by prepending a new one.
ENCRYPTION_KEYS = env.list("ENCRYPTION_KEYS", default=[])
if not ENCRYPTION_KEYS:
    if not DEBUG:
        raise ImproperlyConfigured("ENCRYPTION_KEYS must be set when DEBUG is off")
    ENCRYPTION_KEYS = [_local_secret("encryption_key", lambda: Fernet.generate_key().decode())]

ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["127.0.0.1", "localhost", "[::1]"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])
# Absolute base of links we hand out (ingest URLs); empty = derived from the request.
PUBLIC_BASE_URL = env.str("PUBLIC_BASE_URL", default="").rstrip("/")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    # WhiteNoise serves static files under runserver too: Django's own static handler answered
    # an encoded "..%2f" path with a 500 (SuspiciousFileOperation outside the error handling).
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "csp",
    "django_dramatiq",
    "osmos.tenancy",
    "osmos.notifications",
    "connectors",
    "ingest",
    "pipelines",
    "osmos.rls",
    "osmos.outbound",
    "osmos",  # project-wide management commands (run_embedded) and static files
]

MIDDLEWARE = [
    # Outermost: every response gets the Content-Security-Policy, errors of inner layers too.
    "csp.middleware.CSPMiddleware",
    "osmos.observability.middleware.RequestIdMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "osmos.error_pages.ApiPathMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "osmos.tenancy.middleware.OrganizationMiddleware",
    # Before any view or process_view (CSRF reads request.POST) touches the body.
    "osmos.limits.BodySizeLimitMiddleware",
    "osmos.rls.middleware.RowLevelSecurityMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "osmos.urls"
WSGI_APPLICATION = "osmos.wsgi.application"

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
                "osmos.tenancy.context_processors.organization",
                "osmos.notifications.context_processors.unread_notifications",
            ],
            # ``when``: every time shown with its zone (osmos/templatetags/times.py).
            "builtins": ["osmos.templatetags.times"],
        },
    },
]

DATABASES = {
    "default": env.db_url("DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'osmos.sqlite3'}"),
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # WAL + a busy timeout + IMMEDIATE transactions let the web threads, worker threads
    # and the scheduler of the embedded mode share one SQLite file without "locked" errors.
    DATABASES["default"]["OPTIONS"] = {
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        "transaction_mode": "IMMEDIATE",
        "timeout": 20,
    }
    DATABASES["default"]["TEST"] = {"NAME": str(VAR_DIR / "test.sqlite3")}
    VAR_DIR.mkdir(parents=True, exist_ok=True)
else:
    DATABASES["default"].setdefault("CONN_MAX_AGE", env_int("DATABASE_CONN_MAX_AGE", 60))
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
DATABASE_IS_POSTGRES = DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql"
# Row-level security (PostgreSQL, docs/reliability.md): tenant requests run as this
# unprivileged role, bound by per-organization policies; `migrate` creates it when allowed.
DATABASE_ROW_LEVEL_SECURITY = env_bool("DATABASE_ROW_LEVEL_SECURITY", True)
DATABASE_TENANT_ROLE = env.str("DATABASE_TENANT_ROLE", default="osmos_tenant")

# Shared cache (sign-in throttling). Use redis://… in production so web processes share counts.
CACHES = {"default": env.cache_url("CACHE_URL", default="locmemcache://")}

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "staticfiles"  # `collectstatic` target; WhiteNoise serves from it
STATIC_ROOT.mkdir(parents=True, exist_ok=True)
WHITENOISE_USE_FINDERS = True

# Production hardening; all on automatically when DEBUG is off.
SECURE_PROXY_SSL_HEADER = (
    ("HTTP_X_FORWARDED_PROTO", "https") if env_bool("BEHIND_TLS_PROXY", False) else None
)
SESSION_COOKIE_SECURE = env_bool("SESSION_COOKIE_SECURE", not DEBUG)
CSRF_COOKIE_SECURE = env_bool("CSRF_COOKIE_SECURE", not DEBUG)
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", not DEBUG)
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 0 if DEBUG else 31536000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = not DEBUG
SECURE_HSTS_PRELOAD = not DEBUG
SESSION_COOKIE_HTTPONLY = True
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "osmos.tenancy.authentication.ApiTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["osmos.tenancy.permissions.IsOrganizationMember"],
    # page_size 1-1000 on every list, 400 outside (osmos/api.py, SPEC §6).
    "DEFAULT_PAGINATION_CLASS": "osmos.pagination.PageNumberPagination",
    "PAGE_SIZE": 50,
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "osmos.api.exception_handler",
    # JSON only: the browsable API broke on token users (?format=api was a 500), ran inline
    # scripts (no CSP could allow it) and duplicated the documented docs page.
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
    "DEFAULT_PARSER_CLASSES": ["osmos.parsers.DepthLimitedJSONParser"],
}
SPECTACULAR_SETTINGS = {
    "TITLE": "osmos API",
    "DESCRIPTION": "Connectors, ingest, pipelines and runs of one organization. "
    "Authenticate with `Authorization: Bearer <token>` (an organization API token).",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "COMPONENT_SPLIT_REQUEST": True,
    "SCHEMA_PATH_PREFIX": r"/api/v1",
    # The docs page loads Swagger UI from our own static files: no CDN.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
}

# Dramatiq. Empty DRAMATIQ_BROKER_URL = the embedded in-process broker (worker threads run
# inside `manage.py run_embedded`). redis://… or amqp://… selects a real broker.
DRAMATIQ_BROKER_URL = env.str("DRAMATIQ_BROKER_URL", default="")
# The longest an idle worker waits between two looks at its queues, in ms (dramatiq's worker
# timeout; its default, 1,000, made a run created on a quiet system wait 0.1-0.7 s before a
# worker took it: measured by bench-deliver-batch). Dramatiq reads it from the environment of
# the process it starts in, which `manage.py rundramatiq` passes on. The cost: an idle worker
# asks the broker about each queue up to 1000 / DRAMATIQ_WORKER_POLL_MS times a second.
DRAMATIQ_WORKER_POLL_MS = env_int("DRAMATIQ_WORKER_POLL_MS", 100, minimum=10)
os.environ.setdefault("dramatiq_worker_timeout", str(DRAMATIQ_WORKER_POLL_MS))
DRAMATIQ_MIDDLEWARE = [
    "dramatiq.middleware.AgeLimit",
    "dramatiq.middleware.TimeLimit",
    "dramatiq.middleware.Callbacks",
    "dramatiq.middleware.Retries",
    "django_dramatiq.middleware.DbConnectionsMiddleware",
]
if DRAMATIQ_BROKER_URL.startswith(("redis://", "rediss://")):
    DRAMATIQ_BROKER = {
        "BROKER": "dramatiq.brokers.redis.RedisBroker",
        "OPTIONS": {"url": DRAMATIQ_BROKER_URL},
        "MIDDLEWARE": DRAMATIQ_MIDDLEWARE,
    }
elif DRAMATIQ_BROKER_URL.startswith(("amqp://", "amqps://")):
    DRAMATIQ_BROKER = {
        "BROKER": "dramatiq.brokers.rabbitmq.RabbitmqBroker",
        "OPTIONS": {"url": DRAMATIQ_BROKER_URL},
        "MIDDLEWARE": DRAMATIQ_MIDDLEWARE,
    }
elif DRAMATIQ_BROKER_URL == "":
    DRAMATIQ_BROKER = {
        "BROKER": "dramatiq.brokers.stub.StubBroker",
        "OPTIONS": {},
        "MIDDLEWARE": DRAMATIQ_MIDDLEWARE,
    }
else:
    raise ImproperlyConfigured("DRAMATIQ_BROKER_URL must start with redis:// or amqp://")
DRAMATIQ_BROKER_EMBEDDED = DRAMATIQ_BROKER_URL == ""
DRAMATIQ_AUTODISCOVER_MODULES = ["tasks"]
EMBEDDED_WORKER_THREADS = env_int("EMBEDDED_WORKER_THREADS", 4, minimum=1)

# Outbound calls to customer APIs.
# CIDRs that may be called although private/loopback (development and tests only).
# Cloud metadata addresses are refused even when listed.
OUTBOUND_ALLOWED_NETWORKS = env.list("OUTBOUND_ALLOWED_NETWORKS", default=[])
# The longest wait a destination may ask for (Retry-After, RateLimit reset): waits are durable
# (stored, no worker held), so a day, the length of the retry schedule, is honoured whole.
DELIVERY_RETRY_AFTER_CAP_SECONDS = env_float("DELIVERY_RETRY_AFTER_CAP_SECONDS", 86400.0)
RUN_HEARTBEAT_TIMEOUT_SECONDS = env_int("RUN_HEARTBEAT_TIMEOUT_SECONDS", 120, minimum=5)
SCHEDULER_INTERVAL_SECONDS = env_float("SCHEDULER_INTERVAL_SECONDS", 15.0)
# Single mode: records per chunk (the unit confirmed at once, so at most this many are sent
# again after a worker crash).
DELIVERY_SINGLE_CHUNK_RECORDS = env_int("DELIVERY_SINGLE_CHUNK_RECORDS", 1000, minimum=1)
# A worker stops starting new chunks of a run after this long and re-enqueues the run.
DELIVERY_RUN_SLICE_SECONDS = env_float("DELIVERY_RUN_SLICE_SECONDS", 300.0)
# A batch body (and a chunk's failures) stays in memory up to this size, then goes to disk.
DELIVERY_SPOOL_MEMORY_BYTES = env_int("DELIVERY_SPOOL_MEMORY_BYTES", 8 * 1024 * 1024)
# A queued run not handed to the broker after this long is enqueued by the sweep; one
# handed over but still queued after RUN_REQUEUE_AFTER_SECONDS is enqueued again.
RUN_ENQUEUE_GRACE_SECONDS = env_int("RUN_ENQUEUE_GRACE_SECONDS", 10, minimum=1)
RUN_REQUEUE_AFTER_SECONDS = env_int("RUN_REQUEUE_AFTER_SECONDS", 600, minimum=10)
# A run found without a live worker more often than this fails its unsent records instead
# of being resumed again (a record that crashes the worker every time must not loop forever).
RUN_MAX_RESUMES = env_int("RUN_MAX_RESUMES", 10, minimum=1)
# The destination test action (POST /api/v1/connectors/{id}/test/).
DESTINATION_TEST_TIMEOUT_SECONDS = env_float("DESTINATION_TEST_TIMEOUT_SECONDS", 10.0)
DESTINATION_TEST_SAMPLE_RECORDS = env_int("DESTINATION_TEST_SAMPLE_RECORDS", 3, minimum=1)

# Ingest limits.
INGEST_MAX_BODY_BYTES = env_int("INGEST_MAX_BODY_BYTES", 256 * 1024 * 1024, minimum=1024)
INGEST_MAX_RECORDS = env_int("INGEST_MAX_RECORDS", 250_000, minimum=1)
INGEST_SAMPLES_REQUIRED = 50
INGEST_IDEMPOTENCY_TTL_SECONDS = 24 * 3600
# Idempotency-Key on API POSTs (osmos/idempotency.py): answers replayed this long.
API_IDEMPOTENCY_TTL_SECONDS = 24 * 3600
# How long an ingest request waits for the connector's lock (held by a concurrent request to
# the same connector while it writes) before answering 503; PostgreSQL only.
INGEST_LOCK_TIMEOUT_SECONDS = env_float("INGEST_LOCK_TIMEOUT_SECONDS", 30.0)

# --- Operations: request ids, logs, metrics (docs/operations.md) ---
LOG_FORMAT = env.str("LOG_FORMAT", default="plain")
if LOG_FORMAT not in ("plain", "json"):
    raise ImproperlyConfigured(f"LOG_FORMAT must be plain or json, not {LOG_FORMAT!r}")
# Take X-Request-ID from the request (a trusted proxy sets it) instead of making one.
REQUEST_ID_TRUSTED = env_bool("REQUEST_ID_TRUSTED", env_bool("BEHIND_TLS_PROXY", False))
# Empty: GET /metrics answers 404. Else it requires "Authorization: Bearer <METRICS_TOKEN>".
METRICS_TOKEN = env.str("METRICS_TOKEN", default="")
# Retention (pipelines/retention.py): what is older goes, in batches, from the scheduler.
RETENTION_DAYS = env_int("RETENTION_DAYS", 30, minimum=1)
RETENTION_BATCH_ROWS = env_int("RETENTION_BATCH_ROWS", 2000, minimum=100)
RETENTION_TICK_SECONDS = env_float("RETENTION_TICK_SECONDS", 5.0)
# Refused ingest requests kept per source for the source debugger.
INGEST_REJECTIONS_KEPT = env_int("INGEST_REJECTIONS_KEPT", 1000, minimum=10)
# Record search (?match=): a bounded scan, newest first (ingest/search.py).
RECORD_SEARCH_SECONDS = env_float("RECORD_SEARCH_SECONDS", 2.0)
RECORD_SEARCH_STEP_ROWS = env_int("RECORD_SEARCH_STEP_ROWS", 50_000, minimum=100)

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"},
        "json": {"()": "osmos.observability.logs.JsonFormatter"},
    },
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": LOG_FORMAT}},
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
    # An ingest URL's path is its secret: request logs name paths (docs/reliability.md).
    "filters": {"redact_secrets": {"()": "osmos.redaction.RedactSecretsFilter"}},
    "loggers": {
        "django.db.backends": {"level": "WARNING"},
        "django.request": {"filters": ["redact_secrets"]},
        "django.server": {"filters": ["redact_secrets"]},
    },
}

# Callables ``f(*, stop: threading.Event)`` that `manage.py run_embedded` runs in threads
# beside the web server and worker (the scheduler and the stale-run sweep).
EMBEDDED_BACKGROUND_LOOPS: list[str] = ["pipelines.scheduler.scheduler_loop"]

# Accounts and access (docs/security.md "Accounts, roles and sign-in"): e-mail, invitations,
# sign-up links, sign-in throttling.
# consolemail:// prints mails on the console (the embedded mode: `make run` shows them);
# smtp+tls://user:password@host:587 in production.
vars().update(env.email_url("EMAIL_URL", default="consolemail://"))
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="osmos <noreply@localhost>")
SERVER_EMAIL = DEFAULT_FROM_EMAIL
INVITATION_VALID_DAYS = 7
ORGANIZATION_MAX_PENDING_INVITATIONS = env_int(
    "ORGANIZATION_MAX_PENDING_INVITATIONS", 100, minimum=1
)
SIGNUP_LINK_VALID_SECONDS = env_int("SIGNUP_LINK_VALID_SECONDS", 24 * 3600, minimum=300)
SIGNUP_MAILS_PER_ADDRESS_PER_HOUR = env_int("SIGNUP_MAILS_PER_ADDRESS_PER_HOUR", 3, minimum=1)
PASSWORD_RESET_MAILS_PER_ADDRESS_PER_HOUR = env_int(
    "PASSWORD_RESET_MAILS_PER_ADDRESS_PER_HOUR", 3, minimum=1
)
AUTHENTICATION_BACKENDS = ["osmos.tenancy.signin.ThrottledModelBackend"]
LOGIN_FAILURES_PER_USER = env_int("LOGIN_FAILURES_PER_USER", 5, minimum=1)
LOGIN_FAILURES_PER_ADDRESS = env_int("LOGIN_FAILURES_PER_ADDRESS", 50, minimum=1)
LOGIN_BACKOFF_MAX_SECONDS = env_int("LOGIN_BACKOFF_MAX_SECONDS", 900, minimum=1)
LOGIN_FAILURE_WINDOW_SECONDS = env_int("LOGIN_FAILURE_WINDOW_SECONDS", 3600, minimum=60)
# The client's address behind BEHIND_TLS_PROXY: the TRUSTED_PROXY_COUNT-th entry from the
# right of this header (each of our proxies appends the address it received from).
BEHIND_TLS_PROXY = env_bool("BEHIND_TLS_PROXY", False)
TRUSTED_PROXY_HEADER = env.str("TRUSTED_PROXY_HEADER", default="X-Forwarded-For")
TRUSTED_PROXY_COUNT = env_int("TRUSTED_PROXY_COUNT", 1, minimum=1)
MIDDLEWARE += ["osmos.tenancy.links.OtherOrganizationLinkMiddleware"]
SPECTACULAR_SETTINGS.setdefault("ENUM_NAME_OVERRIDES", {}).update(
    {
        "MemberRoleEnum": "osmos.tenancy.models.Role",
        "TokenRoleEnum": "osmos.tenancy.models.TokenRole",
    }
)
# --- Architecture: the API's error format ---
# Every documented API error is an RFC 9457 problem (application/problem+json).
SPECTACULAR_SETTINGS["POSTPROCESSING_HOOKS"] = [
    "drf_spectacular.hooks.postprocess_schema_enums",
    # The conventions' answers on every operation (401, 403, 404, 413, 415, Idempotency-Key).
    "osmos.openapi.document_conventions",
    # The ingest endpoint (a plain Django view) with its bodies, headers and answers.
    "ingest.openapi.document_ingest",
    "osmos.api.document_problems",
]
# --- Security and limits (issue 14: docs/security.md) -----------------------------------------
# Django's body cap for every request but ingest (which reads its body itself, under
# INGEST_MAX_BODY_BYTES): an anonymous 400 MB POST /login/ must not grow the process by 400 MB.
DATA_UPLOAD_MAX_MEMORY_SIZE = env_int("DATA_UPLOAD_MAX_MEMORY_SIZE", 2_621_440, minimum=1024)
# Form fields per request: the schema builder posts 4 per field (500 fields = 2,000).
DATA_UPLOAD_MAX_NUMBER_FIELDS = 10_000
# The widest schema a connector may have (a 100,000-field schema made its page take 76 s).
SCHEMA_MAX_FIELDS = env_int("SCHEMA_MAX_FIELDS", 500, minimum=1)
# Pages show at most this many columns of records, and this many characters of one value.
PREVIEW_MAX_COLUMNS = env_int("PREVIEW_MAX_COLUMNS", 50, minimum=1)
PREVIEW_MAX_CHARS = env_int("PREVIEW_MAX_CHARS", 200, minimum=16)
# Quotas (0 = no limit): records stored per organization, ingest requests per source per second.
ORG_MAX_STORED_RECORDS = env_int("ORG_MAX_STORED_RECORDS", 100_000_000)
ORG_STORED_RECORDS_CACHE_SECONDS = env_int("ORG_STORED_RECORDS_CACHE_SECONDS", 5, minimum=1)
INGEST_REQUESTS_PER_SECOND = env_int("INGEST_REQUESTS_PER_SECOND", 1000)
# Scheduled pipelines of one organization whose schedule fires every minute.
ORG_MAX_MINUTELY_PIPELINES = env_int("ORG_MAX_MINUTELY_PIPELINES", 5)
# Content-Security-Policy on every response (django-csp): scripts and style sheets from our own
# origin only, no inline script, no eval, nothing framed. Inline style *attributes* stay allowed
# (style-src-attr): they cannot run code, and the pages use a few.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'"],
        "style-src-elem": ["'self'"],
        "style-src-attr": ["'unsafe-inline'"],
        "img-src": ["'self'", "data:"],
        "font-src": ["'self'"],
        "connect-src": ["'self'"],
        "object-src": ["'none'"],
        "base-uri": ["'none'"],
        "form-action": ["'self'"],
        "frame-ancestors": ["'none'"],
    },
}
# Outbound requests: the destination gate (osmos/outbound/gate.py, docs/delivery.md).
# A process's concurrency slots come back this long after it dies (its lease is not renewed).
OUTBOUND_GATE_LEASE_SECONDS = env_float("OUTBOUND_GATE_LEASE_SECONDS", 30.0)
# How stale a process's view of a destination's pause, pace and AIMD concurrency may be.
OUTBOUND_GATE_SYNC_SECONDS = env_float("OUTBOUND_GATE_SYNC_SECONDS", 0.05)
# A permit never released (a bug) is taken back after this long: above the longest request.
OUTBOUND_GATE_PERMIT_MAX_SECONDS = env_float("OUTBOUND_GATE_PERMIT_MAX_SECONDS", 600.0)


# Delivery engine: durable retries, destination health, fairness (issue 11, SPEC §5.1, §5.2).
def _retry_schedule(name: str, default: str) -> tuple[float, ...]:
    raw = env.str(name, default=default)
    try:
        steps = tuple(float(step) for step in raw.split(",") if step.strip())
    except ValueError:
        raise ImproperlyConfigured(f"{name}={raw!r}: give seconds separated by commas") from None
    if not steps or any(step < 0 for step in steps):
        raise ImproperlyConfigured(f"{name}={raw!r}: give at least one step, none negative")
    return steps


# Seconds between the attempts of a chunk that fails transiently (about 24 hours in all);
# its records fail when the schedule is exhausted.
DELIVERY_RETRY_SCHEDULE = _retry_schedule(
    "DELIVERY_RETRY_SCHEDULE", "5,30,120,600,1800,3600,7200,14400,28800,28800"
)
# The request inspector (pipelines/request_log.py): a 2xx answer's body is kept in the request
# log only up to this many characters (other answers: their first 2 KB).
REQUEST_LOG_SUCCESS_BODY_CHARS = env_int("REQUEST_LOG_SUCCESS_BODY_CHARS", 256, minimum=0)
# The organization notification webhook (osmos/notifications/webhook.py): the whole-request
# timeout, and the seconds between attempts of a notification it did not accept.
NOTIFICATION_WEBHOOK_TIMEOUT_SECONDS = env_float("NOTIFICATION_WEBHOOK_TIMEOUT_SECONDS", 10.0)
NOTIFICATION_WEBHOOK_RETRY_SCHEDULE = _retry_schedule(
    "NOTIFICATION_WEBHOOK_RETRY_SCHEDULE", "10,60,300,1800,7200,21600"
)
# Single mode's sender: "curl" (libcurl's multi interface in the run's thread, the default:
# pipelines/single.py; 3-5x less worker CPU per record, see docs/benchmarks.md) or "threads"
# (urllib3 in a thread pool: pipelines/single_threads.py).
DELIVERY_SINGLE_CLIENT = env.str("DELIVERY_SINGLE_CLIENT", default="curl")
if DELIVERY_SINGLE_CLIENT not in ("threads", "curl"):
    raise ImproperlyConfigured(
        f"DELIVERY_SINGLE_CLIENT={DELIVERY_SINGLE_CLIENT!r} must be threads or curl"
    )
# One quick retry inside the worker before the chunk waits on the schedule (0: none).
DELIVERY_QUICK_RETRY_SECONDS = env_float("DELIVERY_QUICK_RETRY_SECONDS", 1.0)
DELIVERY_MAX_ACTIVE_RUNS_PER_ORGANIZATION = env_int(
    "DELIVERY_MAX_ACTIVE_RUNS_PER_ORGANIZATION", 4, minimum=1
)
# Single mode confirms a chunk's progress at least this often (what a crash re-sends).
DELIVERY_PROGRESS_SECONDS = env_float("DELIVERY_PROGRESS_SECONDS", 1.0)
DESTINATION_FAILING_AFTER_SECONDS = env_float("DESTINATION_FAILING_AFTER_SECONDS", 300.0)
