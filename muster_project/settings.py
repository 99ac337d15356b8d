"""Django settings: fixed framework wiring here, everything configurable derived from the typed config."""

from pathlib import Path

from infra.config import Config, ConfigError, load_config
from muster_project.derived_settings import derived_settings

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = BASE_DIR / "var"

try:
    MUSTER_CONFIG = load_config()
    MUSTER_CONFIG_ERROR: str | None = None
except ConfigError as exc:
    # Reported by the system check framework (manage.py check, migrate) and by the ASGI entry point.
    MUSTER_CONFIG = Config()
    MUSTER_CONFIG_ERROR = str(exc)

globals().update(derived_settings(MUSTER_CONFIG, VAR_DIR))

DEBUG = False
ROOT_URLCONF = "muster_project.urls"
ASGI_APPLICATION = "muster_project.asgi.application"
APPEND_SLASH = False
USE_TZ = True
TIME_ZONE = "UTC"
LANGUAGE_CODE = "en"
LANGUAGES = [("en", "English")]  # every string people see is marked for translation; English is the one shipped
USE_I18N = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "oauth2_provider",
    "oauth_server",
    "mcp_gateway",
    "muster_project",  # its ready() makes the derived settings follow MUSTER_CONFIG
]

MIDDLEWARE = [
    "oauth_server.middleware.ResponseHeadersMiddleware",
    "oauth_server.server_errors.OutageMiddleware",
    "infra.request_metrics.RequestMetricsMiddleware",
    "infra.request_context.RequestContextMiddleware",
    "oauth_server.throttle.PerIpRateLimitMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "oauth_server.context_processors.server",
            ],
        },
    },
]

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
# Users keep Django's slow default; OAuth client secrets (long and random) use the fast salted hash.
PASSWORD_HASHERS = [
    "django.contrib.auth.hashers.PBKDF2PasswordHasher",
    "django.contrib.auth.hashers.PBKDF2SHA1PasswordHasher",
    "django.contrib.auth.hashers.Argon2PasswordHasher",
    "django.contrib.auth.hashers.BCryptSHA256PasswordHasher",
    "django.contrib.auth.hashers.ScryptPasswordHasher",
    "oauth_server.clients.secret_hasher.ClientSecretHasher",
]

# DOT's models, named explicitly so our migrations can refer to them (never swapped).
OAUTH2_PROVIDER_APPLICATION_MODEL = "oauth2_provider.Application"
OAUTH2_PROVIDER_GRANT_MODEL = "oauth2_provider.Grant"

LOGIN_URL = "/oauth/login"
# The upstream backend answers only the provider's callback (and only when provider is not local).
AUTHENTICATION_BACKENDS = [
    "oauth_server.upstream.backend.UpstreamBackend",
    "django.contrib.auth.backends.ModelBackend",
]
LOGIN_REDIRECT_URL = "/account"  # signing in with no authorization pending shows the user's connected apps
SESSION_ENGINE = "django.contrib.sessions.backends.cached_db"
SESSION_COOKIE_AGE = 8 * 3600
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
CSRF_COOKIE_HTTPONLY = True
CSRF_FAILURE_VIEW = "oauth_server.views.form_expired.csrf_failure"

# Request bodies: 1 MiB is refused before Django (muster_project.body_limit); this is the second line.
DATA_UPLOAD_MAX_MEMORY_SIZE = 1 << 20
MAX_REQUEST_BODY_BYTES = 1 << 20

SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"  # no-referrer makes Chromium send `Origin: null` on our own forms
X_FRAME_OPTIONS = "DENY"

STATIC_URL = "/static/"
WHITENOISE_USE_FINDERS = True

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"},
        "json_line": {"format": "%(message)s"},  # audit lines are JSON already
    },
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": "plain"},
        "audit": {"class": "logging.StreamHandler", "formatter": "json_line"},
    },
    "root": {"handlers": ["console"], "level": "INFO"},
    "loggers": {
        "django.request": {"level": "ERROR"},
        "oauth2_provider": {"level": "WARNING"},
        "muster.audit": {"handlers": ["audit"], "level": "INFO", "propagate": False},
        # One line per proxied call and per stateless MCP request otherwise.
        "httpx": {"level": "WARNING"},
        "mcp": {"level": "WARNING"},
    },
}
