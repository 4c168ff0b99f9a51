"""Settings shared by every environment. Environment variables are read in ``env.py``."""

from __future__ import annotations

from pathlib import Path

from pesarail.settings import env as _env

ENV = _env.read()
PACKAGE_DIR = Path(__file__).resolve().parent.parent
PESARAIL_HOME = ENV.home

DEBUG = False
SECRET_KEY = ENV.secret_key or ""
ALLOWED_HOSTS = ENV.allowed_hosts or ["127.0.0.1", "localhost", "[::1]"]
CSRF_TRUSTED_ORIGINS = ENV.csrf_trusted_origins
PESARAIL_BASE_URL = ENV.base_url
PESARAIL_ENCRYPTION_KEYS: list[str] = ENV.encryption_keys
PESARAIL_SANDBOX_ENABLED = bool(ENV.sandbox_enabled)
PESARAIL_SANDBOX_URL = ENV.sandbox_url

INSTALLED_APPS = [
    "unfold",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_tasks_db",
    "pesarail.common",
    "pesarail.api",
    "pesarail.tenants",
    "pesarail.ledger",
    "pesarail.wallets",
    "pesarail.providers",
    "pesarail.payments",
    "pesarail.checkout",
    "pesarail.sandbox_phone",
]

MIDDLEWARE = [
    "pesarail.common.middleware.RequestIdMiddleware",
    "pesarail.common.middleware.MetricsMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "django.middleware.csp.ContentSecurityPolicyMiddleware",
    "pesarail.common.csp.AdminCspMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "pesarail.urls"
WSGI_APPLICATION = "pesarail.wsgi.application"
AUTH_USER_MODEL = "tenants.User"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.template.context_processors.csp",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

DATABASES = {"default": _env.database_config(ENV, pool=True)}

CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.locmem.LocMemCache",
        "LOCATION": "pesarail-default",
    }
}

PASSWORD_HASHERS = [
    "django.contrib.auth.hashers.PBKDF2PasswordHasher",
    "django.contrib.auth.hashers.ScryptPasswordHasher",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "/static/"
STATIC_ROOT = str(PESARAIL_HOME / "static")
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
WHITENOISE_USE_FINDERS = True

# Content Security Policy (Django's built-in middleware). Strict by default: nothing
# inline, nothing third party. The admin (unfold) gets a relaxed policy under /admin/
# only, see pesarail.common.csp.
from django.utils.csp import CSP  # noqa: E402

SECURE_CSP = {
    "default-src": [CSP.SELF],
    "script-src": [CSP.SELF, CSP.NONCE],
    "style-src": [CSP.SELF, CSP.NONCE],
    "img-src": [CSP.SELF, "data:"],
    "connect-src": [CSP.SELF],
    "frame-ancestors": [CSP.NONE],
    "form-action": [CSP.SELF],
    "base-uri": [CSP.NONE],
    "object-src": [CSP.NONE],
}
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["pesarail.api.auth.ApiKeyAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["pesarail.api.permissions.IsMerchant"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"],
    "DEFAULT_PAGINATION_CLASS": "pesarail.api.pagination.CursorPagination",
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    "DEFAULT_THROTTLE_CLASSES": ["pesarail.api.throttling.PrincipalRateThrottle"],
    "DEFAULT_THROTTLE_RATES": {"principal": ENV.throttle_rate, "login": "20/min"},
    "EXCEPTION_HANDLER": "pesarail.api.errors.exception_handler",
    "DEFAULT_SCHEMA_CLASS": "pesarail.api.schema.AutoSchema",
    "UNAUTHENTICATED_USER": None,
    "PAGE_SIZE": 50,
}

SPECTACULAR_SETTINGS = {
    "TITLE": "pesarail API",
    "DESCRIPTION": (
        "Payments gateway for African mobile money and cards. Authenticate with "
        "`Authorization: Token <secret key>` (or `Bearer`). Every error has the shape "
        '`{"error": {"type", "code", "message", "fields", "request_id"}}`.'
    ),
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SCHEMA_PATH_PREFIX": "/api/v1",
    "COMPONENT_SPLIT_REQUEST": True,
    "APPEND_COMPONENTS": {
        "securitySchemes": {
            "ApiKey": {
                "type": "apiKey",
                "in": "header",
                "name": "Authorization",
                "description": "`Token sk_test_...` (merchant secret key) or `Token ct_...` "
                "(customer token); `Bearer` is accepted too.",
            }
        }
    },
    "SECURITY": [{"ApiKey": []}],
    "AUTHENTICATION_WHITELIST": [],
    "ENUM_NAME_OVERRIDES": {},
    "SWAGGER_UI_DIST": "SIDECAR",
    "DISABLE_ERRORS_AND_WARNINGS": True,
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "pesarail.api.schema.add_error_responses",
    ],
}

TASKS = {
    "default": {
        "BACKEND": "django_tasks_db.DatabaseBackend",
    }
}

UNFOLD = {
    "SITE_TITLE": "pesarail",
    "SITE_HEADER": "pesarail",
    "SITE_SYMBOL": "payments",
}

LOG_LEVEL = ENV.log_level
LOG_JSON = ENV.log_json
LOGGING_CONFIG = None  # configured by pesarail.common.logging in AppConfig.ready()

# API key and customer token lifetimes.
CUSTOMER_TOKEN_TTL_SECONDS = 30 * 24 * 3600
API_KEY_LAST_USED_RESOLUTION_SECONDS = 60
