"""Segmenta settings: one module, driven by environment variables (django-environ).

Without any variables the embedded default runs: a SQLite file in WAL mode and a
Celery broker that keeps its messages in files, so no server is needed.
`DATABASE_URL` (PostgreSQL) and `REDIS_URL` switch to the real database and broker.
"""

from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(environ.Env().str("SEGMENTA_VAR_DIR", default=str(BASE_DIR / "var")))

env = environ.Env()
environ.Env.read_env(BASE_DIR / ".env", overwrite=False)

# Which settings apply is chosen explicitly, never guessed from the running program:
# "development" (the default), "test" (set by the test runner's configuration,
# pyproject.toml [tool.pytest.ini_options] env) or "production".
DJANGO_ENVIRONMENTS = ("development", "test", "production")
DJANGO_ENV = env.str("DJANGO_ENV", default="development")
if DJANGO_ENV not in DJANGO_ENVIRONMENTS:
    # A typo ("prod") must not quietly run with the development defaults.
    raise ImproperlyConfigured(
        f"DJANGO_ENV must be one of {', '.join(DJANGO_ENVIRONMENTS)} (got {DJANGO_ENV!r})."
    )
PRODUCTION = DJANGO_ENV == "production"
TESTING = DJANGO_ENV == "test"

# --- Core -------------------------------------------------------------------
if PRODUCTION:
    # No defaults for secrets in production: refuse to start instead.
    if not env.str("SECRET_KEY", default=""):
        raise ImproperlyConfigured("SECRET_KEY must be set when DJANGO_ENV=production.")
    if not env.list("ALLOWED_HOSTS", default=[]):
        raise ImproperlyConfigured("ALLOWED_HOSTS must be set when DJANGO_ENV=production.")
    # Links in emails (confirmation, invitations, password resets) are built from it;
    # the development default would point people at 127.0.0.1.
    if not env.str("SITE_URL", default=""):
        raise ImproperlyConfigured(
            "SITE_URL must be set when DJANGO_ENV=production (e.g. https://segmenta.example.com)."
        )
    SECRET_KEY = env.str("SECRET_KEY")
    ALLOWED_HOSTS = env.list("ALLOWED_HOSTS")
    DEBUG = False
else:
    SECRET_KEY = env.str("SECRET_KEY", default="dev-only-insecure-key-change-me-" + "x" * 20)
    ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["127.0.0.1", "localhost", "testserver"])
    DEBUG = env.bool("DEBUG", default=not TESTING)

SITE_URL = env.str("SITE_URL", default="http://127.0.0.1:8000").rstrip("/")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    # runserver leaves /static/ to WhiteNoise, which sends compressed copies
    # (Django's own static handler would send plotly.js's 4.8 MB uncompressed).
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_htmx",
    "django_otp",
    "django_otp.plugins.otp_totp",
    "core",
    "accounts",
    "customers",
    "segmentation",
    "predictions",
    "recommendations",
    "stores",
    "audiences",
    "campaigns",
    "offers",
    "loyalty",
    "research",
    "webhooks",
    "backoffice",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    # API-Version on every /api/v1/ answer, also those other middleware give (413, 400)
    "core.api.version.ApiVersionMiddleware",
    "csp.middleware.CSPMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django_otp.middleware.OTPMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "accounts.middleware.TenantMiddleware",
    # A NUL in the query string is a 400 naming the parameter, not a database error.
    "core.web.NulCharacterMiddleware",
    # Before anything reads a body: refuses uploads over UPLOAD_MAX_BYTES unread.
    "core.uploads.UploadLimitMiddleware",
    # X-RateLimit-* on every API answer (the throttles leave the counts on the request)
    "accounts.api.throttling.RateLimitHeadersMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"
ASGI_APPLICATION = "config.asgi.application"

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
                "accounts.context_processors.tenant",
            ],
        },
    },
]

# --- Database -----------------------------------------------------------------
VAR_DIR.mkdir(parents=True, exist_ok=True)
DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'segmenta.sqlite3'}")}
# Migrations run as the role that owns the tables; the site and the workers
# connect as the application role, which row-level security binds.
# Which role this process logs in as is chosen explicitly too: manage.py asks for
# the owner for the commands that change or inspect the schema (OWNER_COMMANDS
# there) by setting SEGMENTA_DB_ROLE=owner.
_OWNER_URL = env.str("DATABASE_OWNER_URL", default="")
DATABASE_ROLE = env.str("SEGMENTA_DB_ROLE", default="app")
if DATABASE_ROLE not in {"app", "owner"}:
    raise ImproperlyConfigured(f"SEGMENTA_DB_ROLE must be app or owner (got {DATABASE_ROLE!r}).")
if _OWNER_URL and DATABASE_ROLE == "owner":
    DATABASES["default"] = env.db_url_config(_OWNER_URL)
DB_VENDOR = "sqlite" if DATABASES["default"]["ENGINE"].endswith("sqlite3") else "postgresql"
if DB_VENDOR == "sqlite":
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {
            # The site and the worker write at the same time: WAL lets readers go on,
            # IMMEDIATE takes the write lock up front so a transaction never has to
            # upgrade (and fail) mid-way, and the timeout waits for the other writer.
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
            "transaction_mode": "IMMEDIATE",
            "timeout": 30,
        }
    )
    # A file, not memory, so a worker process in the tests can share it.
    DATABASES["default"]["TEST"] = {"NAME": str(VAR_DIR / "test.sqlite3")}
else:
    DATABASES["default"].setdefault("CONN_MAX_AGE", 60)
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
# Platform code that must see every organisation (the admin back office, work that
# crosses organisations: whatever runs inside `unscoped_context()`) connects as a
# third role, which the policies admit to every row. The application role has no
# setting of its own that lifts row-level security (accounts/rls.py). Without
# DATABASE_PLATFORM_URL the owner role plays the platform (it owns the tables
# anyway); with neither, unscoped work refuses to run on PostgreSQL
# (PLATFORM_DATABASE_ALIAS empty). SQLite has no row-level security: one connection.
PLATFORM_DATABASE_ALIAS = "default"
_PLATFORM_URL = env.str("DATABASE_PLATFORM_URL", default="") or _OWNER_URL
if DB_VENDOR == "postgresql":
    PLATFORM_DATABASE_ALIAS = ""
    if _PLATFORM_URL:
        DATABASES["platform"] = {
            **env.db_url_config(_PLATFORM_URL),
            "CONN_MAX_AGE": DATABASES["default"]["CONN_MAX_AGE"],
            "CONN_HEALTH_CHECKS": True,
            "TEST": {"MIRROR": "default"},
        }
        PLATFORM_DATABASE_ALIAS = "platform"
    if TESTING and _PLATFORM_URL and DATABASES["platform"]["USER"] != DATABASES["default"]["USER"]:
        # The test suite's own code (fixtures, assertions) plays the platform and
        # must see the rows of the test's open transaction, so the test process's
        # connection logs in as the platform role and steps down to the
        # application role (`SCOPED_ROLE`, through `set_config('role', …)`) for
        # every statement made in a scope: requests, jobs, `tenant_context()`,
        # `no_tenant_context()`. The policies are the production ones. The aliases
        # "app" and "platform" are real logins of each role to the same test
        # database, for the tests that prove the split.
        DATABASES["app"] = {**DATABASES["default"], "TEST": {"MIRROR": "default"}}
        DATABASES["default"] = {
            **DATABASES["platform"],
            "TEST": {},
            "SCOPED_ROLE": DATABASES["app"]["USER"],
        }
        PLATFORM_DATABASE_ALIAS = "default"
DATABASE_ROUTERS = ["accounts.rls.PlatformRouter"]
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
# Row-level security: name of the application role granted access to tenant tables.
DATABASE_APP_ROLE = env.str("DATABASE_APP_ROLE", default="")

# --- Auth -------------------------------------------------------------------
AUTH_USER_MODEL = "accounts.User"
PASSWORD_HASHERS = [
    "django.contrib.auth.hashers.Argon2PasswordHasher",
    "django.contrib.auth.hashers.PBKDF2PasswordHasher",
]
if TESTING:
    PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher", *PASSWORD_HASHERS]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {
        "NAME": "django.contrib.auth.password_validation.MinimumLengthValidator",
        "OPTIONS": {"min_length": 10},
    },
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "accounts:login"
LOGIN_REDIRECT_URL = "core:dashboard"
LOGOUT_REDIRECT_URL = "accounts:login"
INVITATION_TTL_DAYS = env.int("INVITATION_TTL_DAYS", default=7)
EMAIL_VERIFICATION_TTL_DAYS = 3
LOGIN_FAILURE_LIMIT = env.int("LOGIN_FAILURE_LIMIT", default=5)  # per email and IP per 15 min
# Proxies in front of the site that append to X-Forwarded-For (0: use REMOTE_ADDR);
# the sign-in throttle counts failures per client address.
TRUSTED_PROXY_COUNT = env.int("TRUSTED_PROXY_COUNT", default=0)

# --- Internationalisation ---------------------------------------------------
LANGUAGE_CODE = "en-gb"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

# --- Static and uploaded files ----------------------------------------------
STATIC_URL = "/static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STATIC_ROOT.mkdir(exist_ok=True)
STATICFILES_DIRS = [BASE_DIR / "static"]
STATICFILES_FINDERS = [
    "django.contrib.staticfiles.finders.FileSystemFinder",
    "django.contrib.staticfiles.finders.AppDirectoriesFinder",
    "core.staticfinders.PackageAssetFinder",
]
WHITENOISE_USE_FINDERS = True
MEDIA_ROOT = Path(env.str("MEDIA_ROOT", default=str(VAR_DIR / "media")))
UPLOAD_MAX_BYTES = env.int("UPLOAD_MAX_BYTES", default=200 * 1024 * 1024)
# What one import may hold, whatever its compressed size (read through
# customers.services.imports.file_limits.import_limits, per organisation).
IMPORT_MAX_DECOMPRESSED_BYTES = env.int("IMPORT_MAX_DECOMPRESSED_BYTES", default=1024**3)
IMPORT_MAX_LINE_BYTES = env.int("IMPORT_MAX_LINE_BYTES", default=1024**2)
IMPORT_MAX_FIELD_BYTES = env.int("IMPORT_MAX_FIELD_BYTES", default=128 * 1024)
IMPORT_MAX_ROWS = env.int("IMPORT_MAX_ROWS", default=2_000_000)
IMPORT_MAX_COLUMNS = env.int("IMPORT_MAX_COLUMNS", default=500)
IMPORT_MAX_ATTRIBUTES_BYTES = env.int("IMPORT_MAX_ATTRIBUTES_BYTES", default=64 * 1024)
# An organisation's default plan limits besides the above (accounts/limits.py; staff
# set an organisation's own in the back office).
ORG_MAX_CUSTOMERS = env.int("ORG_MAX_CUSTOMERS", default=2_000_000)
ORG_MAX_EMAILS_PER_DAY = env.int("ORG_MAX_EMAILS_PER_DAY", default=100_000)
ORG_MAX_HEAVY_JOBS = env.int("ORG_MAX_HEAVY_JOBS", default=2)
# Days between staff scheduling an organisation's deletion and the deletion.
ORG_DELETION_GRACE_DAYS = env.int("ORG_DELETION_GRACE_DAYS", default=30)
# Where members of a suspended organisation are told to write (default: support@ the
# domain of DEFAULT_FROM_EMAIL).
SUPPORT_EMAIL = env.str("SUPPORT_EMAIL", default="")
# Longest support access grant, in hours.
SUPPORT_GRANT_MAX_HOURS = env.int("SUPPORT_GRANT_MAX_HOURS", default=72)
DATA_UPLOAD_MAX_MEMORY_SIZE = 20 * 1024 * 1024  # bulk API bodies of 1,000 records
FILE_UPLOAD_MAX_MEMORY_SIZE = 5 * 1024 * 1024

# --- Email --------------------------------------------------------------------
vars().update(env.email_url("EMAIL_URL", default="consolemail://"))
if not PRODUCTION and not TESTING and not env.str("EMAIL_URL", default=""):
    # Development: mail goes to the outbox the site shows (campaigns/outbox_views.py).
    EMAIL_BACKEND = "campaigns.backends.OutboxEmailBackend"
# SMS: console:// (default), outbox:// or a provider, e.g. twilio://SID:TOKEN@+15550001111
SMS_URL = env.str("SMS_URL", default="console://")
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="Segmenta <no-reply@segmenta.local>")

# --- Cache ----------------------------------------------------------------------
REDIS_URL = env.str("REDIS_URL", default="")
if REDIS_URL:
    CACHES = {
        "default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL}
    }
else:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.db.DatabaseCache",
            "LOCATION": "cache_table",
        }
    }
if TESTING and not REDIS_URL:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

# --- Celery -------------------------------------------------------------------
from kombu import Queue as _KombuQueue  # noqa: E402

CELERY_DATA_DIR = VAR_DIR / "celery"
if REDIS_URL:
    CELERY_BROKER_URL = REDIS_URL
    # Above the hard time limit, so Redis never redelivers a job still running.
    CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 3 * 3600}
else:
    CELERY_BROKER_URL = "filesystem://"
    # kombu's filesystem transport with atomic message files; an unreadable file is
    # set aside instead of stopping the worker (core/broker.py).
    CELERY_BROKER_TRANSPORT = "core.broker:Transport"
    for _sub in ("queue", "processed", "control"):
        (CELERY_DATA_DIR / _sub).mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(CELERY_DATA_DIR / "queue"),
        "data_folder_out": str(CELERY_DATA_DIR / "queue"),
        "processed_folder": str(CELERY_DATA_DIR / "processed"),
        "control_folder": str(CELERY_DATA_DIR / "control"),
        "store_processed": False,
        "polling_interval": 0.1,
    }
CELERY_TASK_IGNORE_RESULT = True  # the Job table holds state and results
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_ACKS_LATE = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_SOFT_TIME_LIMIT = env.int("JOB_SOFT_TIME_LIMIT", default=3600)
CELERY_TASK_TIME_LIMIT = CELERY_TASK_SOFT_TIME_LIMIT + 120
CELERY_TASK_ALWAYS_EAGER = env.bool("CELERY_TASK_ALWAYS_EAGER", default=False)
CELERY_TASK_EAGER_PROPAGATES = False
CELERY_BEAT_SCHEDULE_FILENAME = str(CELERY_DATA_DIR / "beat-schedule")
# Fair scheduling (core/jobs.py `job_queue`): two queues. `interactive` (the default)
# carries imports of small files, previews, sends and the platform's periodic tasks;
# `heavy` the pipeline steps and exports of organisations with at least
# JOB_HEAVY_QUEUE_MIN_CUSTOMERS customers (default 0: every organisation's — the load
# test showed fifty small shops' pipelines at once holding imports and sends up for
# minutes when they shared the interactive queue) and imports of files of at least
# JOB_HEAVY_QUEUE_MIN_IMPORT_BYTES. A worker for everything runs
# `celery -A config worker -Q interactive,heavy`; production adds workers that consume
# `-Q interactive` only, so big organisations never hold up small shops' work.
JOB_QUEUE_INTERACTIVE = env.str("JOB_QUEUE_INTERACTIVE", default="interactive")
JOB_QUEUE_HEAVY = env.str("JOB_QUEUE_HEAVY", default="heavy")
JOB_HEAVY_QUEUE_MIN_CUSTOMERS = env.int("JOB_HEAVY_QUEUE_MIN_CUSTOMERS", default=0)
JOB_HEAVY_QUEUE_MIN_IMPORT_BYTES = env.int(
    "JOB_HEAVY_QUEUE_MIN_IMPORT_BYTES", default=5 * 1024 * 1024
)
# A worker consuming only the heavy queue lowers its CPU priority by this nice value
# (config/celery.py), so requests and interactive jobs on the same machine come first.
HEAVY_WORKER_NICE = env.int("HEAVY_WORKER_NICE", default=10)
CELERY_TASK_DEFAULT_QUEUE = JOB_QUEUE_INTERACTIVE
# Both declared: a worker started without -Q (`celery -A config worker --beat`)
# consumes both; `-Q interactive` or `-Q heavy` narrows it.
CELERY_TASK_QUEUES = tuple(
    _KombuQueue(name) for name in dict.fromkeys([JOB_QUEUE_INTERACTIVE, JOB_QUEUE_HEAVY])
)
# Tasks sent without a queue (beat's periodic tasks, webhook deliveries) go to the
# interactive queue; jobs are sent with theirs (core.jobs._send).
CELERY_TASK_ROUTES = ("core.jobs.route_task",)
CELERY_TIMEZONE = "UTC"
NIGHTLY_PIPELINE_HOUR = env.int("NIGHTLY_PIPELINE_HOUR", default=2)
# Organisation export archives are deleted this many days after they were made
# (customers.tasks.org_exports_expire, hourly).
ORG_EXPORT_EXPIRE_DAYS = env.int("ORG_EXPORT_EXPIRE_DAYS", default=7)
# A running job whose heartbeat is older than this is taken to have lost its worker.
JOB_STALE_AFTER_SECONDS = env.int("JOB_STALE_AFTER_SECONDS", default=600)
# Jobs queued longer than this while no worker reports make the jobs page say so.
JOB_QUEUED_WARNING_SECONDS = env.int("JOB_QUEUED_WARNING_SECONDS", default=120)
# A job whose worker died is queued again until it has been started this many times.
JOB_MAX_ATTEMPTS = env.int("JOB_MAX_ATTEMPTS", default=3)
# A job that must wait (a pipeline step while an import runs) tries again this often,
# for at most JOB_WAIT_MAX_SECONDS, then fails saying why.
JOB_WAIT_RETRY_SECONDS = env.int("JOB_WAIT_RETRY_SECONDS", default=30)
JOB_WAIT_MAX_SECONDS = env.int("JOB_WAIT_MAX_SECONDS", default=1800)

# --- Webhooks -------------------------------------------------------------------
# Outbound deliveries (webhooks/): attempts per event and the first back-off
# (multiplied by 4 each time). Private and loopback addresses are refused in
# production (SSRF); development and tests may point at a local receiver.
WEBHOOKS_MAX_ATTEMPTS = env.int("WEBHOOKS_MAX_ATTEMPTS", default=6)
WEBHOOKS_RETRY_BASE_SECONDS = env.int("WEBHOOKS_RETRY_BASE_SECONDS", default=30)
WEBHOOKS_ALLOW_PRIVATE_URLS = env.bool("WEBHOOKS_ALLOW_PRIVATE_URLS", default=not PRODUCTION)
# Campaign sends: messages one organisation may hand over per minute, every campaign
# and automation together (0: no limit; campaigns/sending.py)
CAMPAIGN_SEND_RATE_PER_MINUTE = env.int("CAMPAIGN_SEND_RATE_PER_MINUTE", default=20_000)
# Audience previews (the builder's live preview, POST audiences/preview/) of an
# organisation with more customers than this are estimated from a random sample of
# 20,000 of them, so they answer within the request; a saved audience counts everyone.
# Counted exactly, a preview costs 0.1-0.3 s per 10,000 customers (1.0-3.3 s at
# 100,000, 10-12 s at 1,000,000: bench/audiences_preview.py), so above 20,000 the
# sample is both faster and within a point or so of the exact shares.
AUDIENCE_PREVIEW_SAMPLE_ABOVE = env.int("AUDIENCE_PREVIEW_SAMPLE_ABOVE", default=20_000)
# Figures pages keep (the dashboard's, a segment's best channel: core/kept.py) of an
# organisation with more customers than this are never worked out in a page request
# once they exist: out of date, the page shows them as they were ("Figures as of
# 10:42 — updating") while a task on the interactive queue works them out again. At
# or below it they are worked out in the request, exact: the dashboard's take about
# 7 ms per 1,000 customers (7 s at 1,000,000, 0.14 s at 20,000), well inside the
# pages' 300 ms target at this size.
KEPT_FIGURES_BACKGROUND_ABOVE = env.int("KEPT_FIGURES_BACKGROUND_ABOVE", default=20_000)
# `POST audiences/preview/` for a kind that fits a model waits this long for its job
# unless asked `Prefer: respond-async` (deprecated waiting, until 2027-06-01).
AUDIENCE_PREVIEW_API_WAIT_SECONDS = env.float("AUDIENCE_PREVIEW_API_WAIT_SECONDS", default=30.0)

# --- REST framework -----------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "accounts.api.authentication.ApiKeyAuthentication",
        "accounts.api.authentication.TenantSessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["accounts.api.permissions.IsOrganizationMember"],
    "DEFAULT_PAGINATION_CLASS": "core.api.pagination.Pagination",
    "PAGE_SIZE": 50,
    "DEFAULT_SCHEMA_CLASS": "core.api.schema.AutoSchema",
    "EXCEPTION_HANDLER": "core.api.exceptions.exception_handler",
    # One budget per API key (a read key's burst never slows the write key) and per
    # signed-in member; X-RateLimit-* headers on every answer (accounts/api/throttling.py).
    "DEFAULT_THROTTLE_CLASSES": [
        "accounts.api.throttling.AnonRateThrottle",
        "accounts.api.throttling.KeyRateThrottle",
    ],
    "DEFAULT_THROTTLE_RATES": {
        "anon": env.str("API_THROTTLE_ANON", default="60/min"),
        "key": env.str("API_THROTTLE_KEY", default=env.str("API_THROTTLE_ORG", default="1200/min")),
    },
    # Bodies are JSON (one request type per operation in the schema, so generated
    # clients work); the file upload (imports/) declares multipart itself.
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "TEST_REQUEST_DEFAULT_FORMAT": "json",
}
if DEBUG:
    REST_FRAMEWORK["DEFAULT_RENDERER_CLASSES"].append(
        "rest_framework.renderers.BrowsableAPIRenderer"
    )
SPECTACULAR_SETTINGS = {
    "TITLE": "Segmenta API",
    # The introduction and the resources' descriptions: core.api.schema.postprocess_docs
    "DESCRIPTION": "Customer data, segments, personas and predictions for one organisation.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    # Several models have a `kind` with different choices; name each enum, or the
    # schema gets hashed names and `check --deploy` warns (accounts/tests/test_security.py).
    "ENUM_NAME_OVERRIDES": {
        "ImportKindEnum": "customers.models.ImportKind",
        "SegmentKindEnum": "segmentation.models.SegmentKind",
        # audiences and offers: building, ready, failed
        "BuildStatusEnum": "audiences.models.AudienceStatus",
    },
    "APPEND_COMPONENTS": {
        "securitySchemes": {
            "ApiKeyAuth": {"type": "apiKey", "in": "header", "name": "Authorization"}
        }
    },
    "SECURITY": [{"ApiKeyAuth": []}],
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "core.api.schema.postprocess_docs",
    ],
}

# --- Security -------------------------------------------------------------------
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
CSRF_COOKIE_SAMESITE = "Lax"
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
if PRODUCTION:
    SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=True)
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=31536000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True
    CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[SITE_URL])

# Content-Security-Policy (django-csp) on every response: scripts only from this
# site's own files, none inline and no eval, so injected markup cannot run. Page
# scripts live in static/js/; Swagger UI loads its setup as a file
# (SpectacularSwaggerSplitView). Styles may be inline: plotly and htmx set them.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'", "'unsafe-inline'"],
        "img-src": ["'self'", "data:"],
        "font-src": ["'self'", "data:"],
        "connect-src": ["'self'"],
        "object-src": ["'none'"],
        "base-uri": ["'self'"],
        "form-action": ["'self'"],
        "frame-ancestors": ["'none'"],
    }
}

# --- Logging ----------------------------------------------------------------------
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"stderr": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["stderr"], "level": env.str("LOG_LEVEL", default="INFO")},
    "loggers": {"django.db.backends": {"level": "WARNING"}},
}
