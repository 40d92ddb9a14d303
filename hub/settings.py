"""Settings for the hub: one file, driven by the environment (django-environ).

Every value has a default that needs no server (SQLite file, SQLite-backed Celery broker), so a fresh
laptop runs everything. ``DATABASE_URL`` and ``CELERY_BROKER_URL`` switch to PostgreSQL and Redis.
With ``DEBUG`` off, a missing ``SECRET_KEY`` or ``ALLOWED_HOSTS`` stops the process at start.
"""

from pathlib import Path

import environ
from celery.schedules import crontab
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
env_file = BASE_DIR / ".env"
# The environment wins over .env; HUB_READ_DOT_ENV=false ignores the file (the tests of these very
# settings use it, and so can a deployment that must not pick up a stray file).
if env.bool("HUB_READ_DOT_ENV", default=True) and env_file.exists():
    environ.Env.read_env(str(env_file), overwrite=False)

VAR_DIR = Path(env.str("HUB_VAR_DIR", default=str(BASE_DIR / "var")))
VAR_DIR.mkdir(parents=True, exist_ok=True)

DEBUG = env.bool("DEBUG", default=False)

SECRET_KEY = env.str("SECRET_KEY", default="")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured(
            "SECRET_KEY is required when DEBUG is off: set it in the environment or in .env "
            "(make run writes a random one for local use)."
        )
    SECRET_KEY = "insecure-development-key-only-used-with-DEBUG-on"

ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["127.0.0.1", "localhost", "[::1]"] if DEBUG else [])
if not DEBUG and not ALLOWED_HOSTS:
    raise ImproperlyConfigured(
        "ALLOWED_HOSTS is required when DEBUG is off: a comma-separated list of the host names "
        "this hub is served under."
    )
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "rest_framework",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_celery_beat",
    "django_htmx",
    "hub",
    "invoicing",
    "sync",
    "analytics",
    "notifications",
]

MIDDLEWARE = [
    "hub.observability.RequestIdMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "hub.urls"
WSGI_APPLICATION = "hub.wsgi.application"

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
                "django.template.context_processors.i18n",
                "hub.ui_context.ui",
            ],
        },
    },
]

# --- Database -------------------------------------------------------------------------------------
DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'hub.sqlite3'}")}
DATABASES["default"]["CONN_MAX_AGE"] = env.int("CONN_MAX_AGE", default=60)
# A health check is a `SELECT 1` round trip at the start of every request that reuses a connection. Without
# it, a connection the database dropped (restart, failover) fails the one request that finds it, and
# Django then discards it; with CONN_MAX_AGE=60 every connection is renewed within a minute anyway.
DATABASES["default"]["CONN_HEALTH_CHECKS"] = env.bool("CONN_HEALTH_CHECKS", default=False)
if DATABASES["default"]["ENGINE"].startswith("django.db.backends.postgresql") and env.bool(
    "DB_PREPARED_STATEMENTS", default=True
):
    # Parameters travel apart from the SQL and a statement run twice on a connection is prepared:
    # PostgreSQL parses and plans the API's list queries once per connection instead of per request
    # (half of its CPU time per API page). Turn off behind PgBouncer in transaction mode before 1.21.
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {"server_side_binding": True, "prepare_threshold": 2}
    )
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Web, worker and beat share one file: wait for locks instead of failing, take the write lock
    # at BEGIN (no deadlock on upgrade) and let readers go on while one process writes.
    DATABASES["default"]["CONN_MAX_AGE"] = 0
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {
            "timeout": 30,
            "transaction_mode": "IMMEDIATE",
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        }
    )
    # A file, not memory, so a real Celery worker started by a test can open the test database.
    DATABASES["default"].setdefault("TEST", {})["NAME"] = str(VAR_DIR / "test-hub.sqlite3")
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# The manager UI lives under /app/; staff sign in there, the admin keeps its own login page.
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "ui-home"
LOGOUT_REDIRECT_URL = "login"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

# --- Locale ---------------------------------------------------------------------------------------
LANGUAGE_CODE = env.str("LANGUAGE_CODE", default="en")
LANGUAGES = [("en", "English"), ("ru", "Русский")]
TIME_ZONE = env.str("TIME_ZONE", default="Europe/Moscow")
USE_I18N = True
USE_TZ = True
LOCALE_PATHS = [BASE_DIR / "locale"]

# --- Static files ---------------------------------------------------------------------------------
STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = VAR_DIR / "staticfiles"
STATIC_ROOT.mkdir(parents=True, exist_ok=True)
MEDIA_ROOT = Path(env.str("MEDIA_ROOT", default=str(VAR_DIR / "media")))
MEDIA_URL = "media/"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"
        if not DEBUG and env.bool("STATIC_MANIFEST", default=True)
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}

# --- Security (effective when DEBUG is off and the hub is behind TLS) ---------------------------
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https") if env.bool("BEHIND_TLS_PROXY", False) else None
SESSION_COOKIE_SECURE = env.bool("SESSION_COOKIE_SECURE", default=False)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"

# The raw API key shown once after creation in the admin travels in a signed cookie, never the DB.
MESSAGE_STORAGE = "django.contrib.messages.storage.cookie.CookieStorage"

# --- E-mail ---------------------------------------------------------------------------------------
EMAIL_CONFIG = env.email_url("EMAIL_URL", default="consolemail://")
vars().update(EMAIL_CONFIG)
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="hub@localhost")

# --- REST API -------------------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "hub.api_auth.ApiKeyAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["hub.api_auth.ScopedAccess"],
    "DEFAULT_PAGINATION_CLASS": "hub.api_common.HubCursorPagination",
    "PAGE_SIZE": 50,
    "DEFAULT_FILTER_BACKENDS": [
        "hub.api_common.QueryFilterBackend",
        "rest_framework.filters.SearchFilter",
        "rest_framework.filters.OrderingFilter",
    ],
    "DEFAULT_RENDERER_CLASSES": ["hub.renderers.FastJSONRenderer"]
    + (["rest_framework.renderers.BrowsableAPIRenderer"] if DEBUG else []),
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "hub.api_common.exception_handler",
    "COERCE_DECIMAL_TO_STRING": True,
    "UNAUTHENTICATED_USER": None,
    "TEST_REQUEST_DEFAULT_FORMAT": "json",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "CRM-accounting hub API",
    "DESCRIPTION": (
        "One canonical model of clients, deals, invoices and payments. Authenticate with "
        "`Authorization: Bearer <api key>` (create one with `manage.py apikey create NAME`). "
        "Lists use cursor pagination and accept `updated_since`, `ordering` and `search`. "
        "POST accepts an `Idempotency-Key` header: a replay returns the first response."
    ),
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    # Swagger UI served from our own static files: the docs work offline and behind firewalls.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    "SCHEMA_PATH_PREFIX": r"/api/v1",
    "ENUM_NAME_OVERRIDES": {
        "ClientKindEnum": "hub.models.ClientKind",
        "InvoiceKindEnum": "invoicing.models.InvoiceKind",
        "VatModeEnum": "hub.models.VatMode",
    },
}

# --- Celery ---------------------------------------------------------------------------------------
CELERY_BROKER_URL = env.str(
    "CELERY_BROKER_URL", default=f"sqla+sqlite:///{VAR_DIR / 'celery-broker.sqlite3'}"
)
CELERY_RESULT_BACKEND = None
CELERY_TASK_IGNORE_RESULT = True
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_SERIALIZER = "json"
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_TIME_LIMIT = env.int("CELERY_TASK_TIME_LIMIT", default=300)
CELERY_TASK_SOFT_TIME_LIMIT = env.int("CELERY_TASK_SOFT_TIME_LIMIT", default=240)
CELERY_TASK_ALWAYS_EAGER = env.bool("CELERY_TASK_ALWAYS_EAGER", default=False)
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_BROKER_TRANSPORT_OPTIONS: dict = {}
CELERY_TIMEZONE = TIME_ZONE
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
# Named queues so a slow PDF batch never delays a payment notification.
CELERY_TASK_DEFAULT_QUEUE = "default"
HUB_QUEUES = ("default", "sync", "documents", "notify")
CELERY_TASK_ROUTES = {
    "sync.*": {"queue": "sync"},
    "invoicing.render_*": {"queue": "documents"},
    "invoicing.send_*": {"queue": "documents"},
    "notifications.*": {"queue": "notify"},
}
CELERY_BEAT_SCHEDULE = {
    "hub.dispatch_pending_events": {"task": "hub.dispatch_pending_events", "schedule": 30.0},
    "hub.purge_idempotency_records": {"task": "hub.purge_idempotency_records", "schedule": 3600.0},
    "invoicing.find_overdue_invoices": {
        "task": "invoicing.find_overdue_invoices",
        "schedule": crontab(hour=6, minute=0),
    },
    "notifications.send_due": {"task": "notifications.send_due", "schedule": 60.0},
    # Safety net for the analytics rollups (events keep them current; this folds in anything missed).
    "analytics.refresh_rollups": {"task": "analytics.refresh_rollups", "schedule": 300.0},
    # Webhook events whose processing task was lost; connection runs are scheduled per connection in admin.
    "sync.process_pending_inbound": {"task": "sync.process_pending_inbound", "schedule": 120.0},
}

# --- The hub --------------------------------------------------------------------------------------
HUB_DEFAULT_PHONE_REGION = env.str("HUB_DEFAULT_PHONE_REGION", default="RU")
# The company currency: analytics converts every document into it at the stored daily rates.
HUB_DEFAULT_CURRENCY = env.str("HUB_DEFAULT_CURRENCY", default="RUB")
# Events ask for one rollup refresh this many seconds later; a burst of events shares it.
ANALYTICS_REFRESH_DELAY_SECONDS = env.float("ANALYTICS_REFRESH_DELAY_SECONDS", default=2.0)
HUB_EVENT_MAX_ATTEMPTS = env.int("HUB_EVENT_MAX_ATTEMPTS", default=8)
HUB_IDEMPOTENCY_TTL_HOURS = env.int("HUB_IDEMPOTENCY_TTL_HOURS", default=24)
# Payment matching: a decision at or above this confidence is applied without a person.
HUB_MATCH_AUTO_THRESHOLD = env.float("HUB_MATCH_AUTO_THRESHOLD", default=0.75)
HUB_GATEWAY_TIMEOUT = env.float("HUB_GATEWAY_TIMEOUT", default=10.0)
# YooKassa: notifications are verified by re-reading the payment from this API with Basic shopId:secretKey.
YOOKASSA_API_BASE = env.str("YOOKASSA_API_BASE", default="https://api.yookassa.ru")
YOOKASSA_SHOP_ID = env.str("YOOKASSA_SHOP_ID", default="")
YOOKASSA_SECRET_KEY = env.str("YOOKASSA_SECRET_KEY", default="")
# Stripe: the endpoint's signing secret (and the previous one while rotating).
STRIPE_WEBHOOK_SECRET = env.str("STRIPE_WEBHOOK_SECRET", default="")
STRIPE_WEBHOOK_SECRET_PREVIOUS = env.str("STRIPE_WEBHOOK_SECRET_PREVIOUS", default="")
# Stripe API (Checkout Sessions for "pay online"): the secret key and a base URL tests can point elsewhere.
STRIPE_SECRET_KEY = env.str("STRIPE_SECRET_KEY", default="")
STRIPE_API_BASE = env.str("STRIPE_API_BASE", default="https://api.stripe.com")
# Pay online: "" (off), "yookassa" or "stripe". Issuing an invoice then creates a payment at that gateway
# and keeps its link on the invoice (API, PDF, e-mail). The payer comes back to HUB_PUBLIC_URL.
HUB_PAY_ONLINE_GATEWAY = env.str("HUB_PAY_ONLINE_GATEWAY", default="")
HUB_PUBLIC_URL = env.str("HUB_PUBLIC_URL", default="")

# --- Notifications --------------------------------------------------------------------------------
TELEGRAM_API_BASE = env.str("TELEGRAM_API_BASE", default="https://api.telegram.org")
TELEGRAM_BOT_TOKEN = env.str("TELEGRAM_BOT_TOKEN", default="")
NOTIFY_MAX_ATTEMPTS = env.int("NOTIFY_MAX_ATTEMPTS", default=6)
NOTIFY_RETRY_BASE_SECONDS = env.float("NOTIFY_RETRY_BASE_SECONDS", default=10.0)
NOTIFY_HTTP_TIMEOUT = env.float("NOTIFY_HTTP_TIMEOUT", default=10.0)

# --- Sync ----------------------------------------------------------------------------------------
# Fernet key(s) for connection credentials at rest (comma-separated to rotate; empty: derived from SECRET_KEY).
SYNC_CREDENTIALS_KEY = env.str("SYNC_CREDENTIALS_KEY", default="")
# Records written per transaction; the cursor is stored with each page.
SYNC_PAGE_SIZE = env.int("SYNC_PAGE_SIZE", default=500)
# While a page reader thread runs (csv), the interpreter switches threads this often (seconds).
SYNC_READ_AHEAD_SWITCH = env.float("SYNC_READ_AHEAD_SWITCH", default=0.0002)
# After a pull that wrote at least this many clients, VACUUM (ANALYZE) the clients and refs (0: never).
SYNC_VACUUM_AFTER = env.int("SYNC_VACUUM_AFTER", default=10_000)
# One run per connection at a time; a crashed run's lease expires after this long.
SYNC_RUN_LEASE_MINUTES = env.int("SYNC_RUN_LEASE_MINUTES", default=30)
SYNC_WEBHOOK_MAX_BYTES = env.int("SYNC_WEBHOOK_MAX_BYTES", default=1_048_576)
SYNC_HTTP_TIMEOUT = env.float("SYNC_HTTP_TIMEOUT", default=30.0)
SYNC_HTTP_MAX_ATTEMPTS = env.int("SYNC_HTTP_MAX_ATTEMPTS", default=5)

# --- Logging: one JSON object per line, with the request id ----------------------------------------
LOG_LEVEL = env.str("LOG_LEVEL", default="INFO")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"request_id": {"()": "hub.observability.RequestIdFilter"}},
    "formatters": {
        "json": {"()": "hub.observability.JsonFormatter"},
        "plain": {"format": "%(asctime)s %(levelname)s [%(request_id)s] %(name)s: %(message)s"},
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "filters": ["request_id"],
            "formatter": env.str("LOG_FORMAT", default="json"),
        }
    },
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        "django.db.backends": {"level": "WARNING"},
        "celery": {"level": LOG_LEVEL},
        # WeasyPrint narrates every layout step at INFO; at one line per step it costs PDF time.
        "weasyprint": {"level": "WARNING"},
        "fontTools": {"level": "WARNING"},
        # httpx logs every request URL unredacted at INFO (OAuth refresh query strings, the Bitrix24
        # webhook secret in the path); sync.http logs the same requests with secrets redacted.
        "httpx": {"level": "WARNING"},
        "httpcore": {"level": "WARNING"},
    },
}
