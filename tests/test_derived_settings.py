"""Settings derived from the typed configuration follow it when a test (or override_settings) changes it."""

import dataclasses
from datetime import timedelta

from django.conf import settings as django_settings
from django.core.cache import caches
from django.test import override_settings
from oauth2_provider.settings import oauth2_settings

from infra.config import StorageConfig, ValkeyConfig
from muster_project.derived_settings import POOL_RECONNECT_SECONDS, POOL_TIMEOUT_SECONDS, derived_settings

VALKEY = StorageConfig(type="valkey", valkey=ValkeyConfig(url="redis://127.0.0.1:1/0", key_prefix="derived-test:"))


def changed(**fields):
    return dataclasses.replace(django_settings.MUSTER_CONFIG, **fields)


def test_changing_one_config_field_changes_the_dot_setting_derived_from_it(settings):
    settings.MUSTER_CONFIG = changed(access_token_lifetime=timedelta(minutes=5), enable_cimd=False)

    assert settings.OAUTH2_PROVIDER["ACCESS_TOKEN_EXPIRE_SECONDS"] == 300
    assert oauth2_settings.ACCESS_TOKEN_EXPIRE_SECONDS == 300  # DOT reloaded its settings
    assert oauth2_settings.CIMD_ENABLED is False


def test_the_derived_settings_are_restored_when_the_override_ends():
    before = django_settings.OAUTH2_PROVIDER
    lifetime = oauth2_settings.ACCESS_TOKEN_EXPIRE_SECONDS

    with override_settings(MUSTER_CONFIG=changed(access_token_lifetime=timedelta(minutes=5))):
        assert oauth2_settings.ACCESS_TOKEN_EXPIRE_SECONDS == 300

    assert before == django_settings.OAUTH2_PROVIDER
    assert lifetime == oauth2_settings.ACCESS_TOKEN_EXPIRE_SECONDS


def test_nested_overrides_restore_each_level():
    with override_settings(MUSTER_CONFIG=changed(access_token_lifetime=timedelta(minutes=5))):
        with override_settings(MUSTER_CONFIG=changed(access_token_lifetime=timedelta(minutes=7))):
            assert oauth2_settings.ACCESS_TOKEN_EXPIRE_SECONDS == 420
        assert oauth2_settings.ACCESS_TOKEN_EXPIRE_SECONDS == 300
        assert django_settings.OAUTH2_PROVIDER["ACCESS_TOKEN_EXPIRE_SECONDS"] == 300


def test_the_storage_config_moves_the_cache_and_back():
    with override_settings(MUSTER_CONFIG=changed(storage=StorageConfig())):
        memory = caches["default"]
        assert memory.__class__.__name__ == "LocMemCache"

        with override_settings(MUSTER_CONFIG=changed(storage=VALKEY)):
            assert django_settings.CACHES["default"]["LOCATION"] == "redis://127.0.0.1:1/0"
            assert django_settings.CACHES["default"]["KEY_PREFIX"] == "derived-test:"
            assert caches["default"].__class__.__name__ == "RedisCache"  # built, never connected

        config = django_settings.MUSTER_CONFIG
        assert derived_settings(config, django_settings.VAR_DIR)["CACHES"] == django_settings.CACHES
        assert caches["default"].__class__.__name__ == "LocMemCache"


def test_the_base_url_carries_the_cookie_and_csrf_settings(settings):
    settings.MUSTER_CONFIG = changed(base_url="https://mcp.example.com")

    assert settings.SESSION_COOKIE_SECURE is True
    assert settings.CSRF_COOKIE_SECURE is True
    assert settings.CSRF_TRUSTED_ORIGINS == ["https://mcp.example.com"]


def test_a_derived_setting_the_test_set_itself_is_left_alone(settings):
    own = {**settings.OAUTH2_PROVIDER, "CIMD_FAILURE_BACKOFF_SECONDS": 1}
    settings.OAUTH2_PROVIDER = own

    settings.MUSTER_CONFIG = changed(access_token_lifetime=timedelta(minutes=5))

    assert own == settings.OAUTH2_PROVIDER
    assert oauth2_settings.CIMD_FAILURE_BACKOFF_SECONDS == 1


def test_the_database_is_not_moved_in_a_running_process(settings):
    databases = settings.DATABASES

    settings.MUSTER_CONFIG = changed(database_url="postgres://elsewhere.example/other")

    assert settings.DATABASES is databases


def test_the_secret_key_follows_the_config(settings):
    settings.MUSTER_CONFIG = changed(secret_key="s" * 40)

    assert settings.SECRET_KEY == "s" * 40


def test_postgresql_requests_wait_a_bounded_time_for_a_checked_connection(settings):
    config = dataclasses.replace(settings.MUSTER_CONFIG, database_url="postgres://db.example/muster")

    database = derived_settings(config, settings.VAR_DIR)["DATABASES"]["default"]

    assert database["OPTIONS"]["pool"] == {"timeout": POOL_TIMEOUT_SECONDS, "reconnect_timeout": POOL_RECONNECT_SECONDS}
    assert POOL_TIMEOUT_SECONDS <= 5  # not psycopg's 30 s: a request answers 503 while clients still wait
    assert POOL_RECONNECT_SECONDS <= 10  # not 5 min of ever longer waits between reconnection attempts
    assert database["CONN_HEALTH_CHECKS"] is True  # connections a restart broke are replaced, not handed out


def test_sqlite_has_no_pool(settings, tmp_path):
    config = dataclasses.replace(settings.MUSTER_CONFIG, database_url=f"sqlite:///{tmp_path / 'db.sqlite3'}")

    database = derived_settings(config, settings.VAR_DIR)["DATABASES"]["default"]

    assert "pool" not in database["OPTIONS"]
