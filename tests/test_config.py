"""Behaviour of the typed configuration: sources, types, validation and the documented reference."""

import base64
from datetime import timedelta
from pathlib import Path

import pytest

from infra.config import (
    Config,
    ConfigError,
    StorageConfig,
    ValkeyConfig,
    load_config,
    reference_table,
)
from infra.urls import canonical_resource, is_loopback_host

KEY_BYTES = bytes(range(32))


def yaml_env(tmp_path: Path, text: str, **extra: str) -> dict[str, str]:
    """Given a YAML file with this text, the environ that names it."""
    path = tmp_path / "muster.yaml"
    path.write_text(text)
    return {"MUSTER_CONFIG": str(path), **extra}


def config_error(environ: dict[str, str]) -> ConfigError:
    with pytest.raises(ConfigError) as caught:
        load_config(environ)
    return caught.value


# --- sources ---


def test_with_no_sources_the_config_is_the_embedded_default() -> None:
    config = load_config({})

    assert config == Config()
    assert config.base_url == "http://127.0.0.1:8000"
    assert config.storage == StorageConfig(type="memory", valkey=ValkeyConfig(key_prefix="muster:", db=0))
    assert config.session_duration == timedelta(hours=720)
    assert config.scopes == ("mcp",)
    assert config.allow_public_client_registration is None
    assert config.encryption_key is None


def test_yaml_under_aggregator_oauth_server_sets_muster_keys(tmp_path: Path) -> None:
    environ = yaml_env(
        tmp_path,
        """
aggregator:
  oauthServer:
    baseUrl: https://muster.example.com
    dex:
      issuerUrl: https://dex.example.com
      allowPrivateIPOIDC: true
    storage:
      type: valkey
      valkey:
        url: redis://valkey:6379
        keyPrefix: ""
        db: 2
        tlsEnabled: yes
    allowPublicClientRegistration: false
    trustedPublicRegistrationSchemes: [cursor, vscode]
    trustedPublicRegistrationRedirectURIs: [https://claude.ai/api/mcp/auth_callback]
    enableCIMD: false
    allowLocalhostRedirectURIs: false
    sessionDuration: 1h30m
    allowedOrigins: [https://app.example.com]
    resourceIdentifier: https://muster.example.com/mcp
    databaseUrl: postgres://muster@db/muster
    scopes: [mcp, tools]
""",
    )

    config = load_config(environ)

    assert config.base_url == "https://muster.example.com"
    assert config.dex.issuer_url == "https://dex.example.com"
    assert config.dex.allow_private_ip_oidc is True
    assert config.storage == StorageConfig(
        type="valkey", valkey=ValkeyConfig(url="redis://valkey:6379", tls_enabled=True, key_prefix="", db=2)
    )
    assert config.allow_public_client_registration is False
    assert config.trusted_public_registration_schemes == ("cursor", "vscode")
    assert config.trusted_public_registration_redirect_uris == ("https://claude.ai/api/mcp/auth_callback",)
    assert config.enable_cimd is False
    assert config.allow_localhost_redirect_uris is False
    assert config.session_duration == timedelta(hours=1, minutes=30)
    assert config.allowed_origins == ("https://app.example.com",)
    assert config.database_url == "postgres://muster@db/muster"
    assert config.scopes == ("mcp", "tools")


def test_yaml_under_aggregator_oauth_server_nested_spelling_is_accepted(tmp_path: Path) -> None:
    environ = yaml_env(tmp_path, "aggregator:\n  oauth:\n    server:\n      baseUrl: https://m.example.com\n")

    assert load_config(environ).base_url == "https://m.example.com"


def test_both_yaml_blocks_present_is_an_error(tmp_path: Path) -> None:
    text = "aggregator:\n  oauthServer: {baseUrl: https://a.example}\n  oauth: {server: {provider: local}}\n"

    err = config_error(yaml_env(tmp_path, text))

    assert err.key == "aggregator.oauth.server"
    assert "both" in err.message


def test_yaml_outside_the_block_is_ignored(tmp_path: Path) -> None:
    text = "mcpServers: [x]\naggregator:\n  port: 8090\n  oauth: {mcpClient: {enabled: true}}\n"

    assert load_config(yaml_env(tmp_path, text)) == Config()


def test_an_empty_yaml_key_leaves_the_default(tmp_path: Path) -> None:
    environ = yaml_env(tmp_path, "aggregator:\n  oauthServer:\n    baseUrl:\n    storage:\n")

    assert load_config(environ) == Config()


def test_a_missing_config_file_is_an_error(tmp_path: Path) -> None:
    err = config_error({"MUSTER_CONFIG": str(tmp_path / "absent.yaml")})

    assert err.key == "MUSTER_CONFIG"
    assert "cannot read" in err.message


def test_invalid_yaml_is_an_error_on_one_line(tmp_path: Path) -> None:
    err = config_error(yaml_env(tmp_path, "aggregator: [unclosed\n"))

    assert err.key == "MUSTER_CONFIG"
    assert "not valid YAML" in err.message
    assert "\n" not in str(err)


def test_environment_overrides_yaml(tmp_path: Path) -> None:
    environ = yaml_env(
        tmp_path,
        "aggregator:\n  oauthServer:\n    baseUrl: https://yaml.example\n    storage: {valkey: {db: 1}}\n",
        MUSTER_BASE_URL="https://env.example",
        MUSTER_STORAGE_VALKEY_DB="3",
    )

    config = load_config(environ)

    assert config.base_url == "https://env.example"
    assert config.storage.valkey.db == 3


def test_env_names_are_derived_from_the_keys() -> None:
    config = load_config(
        {
            "MUSTER_DEX_ALLOW_PRIVATE_IP_OIDC": "true",
            "MUSTER_TRUSTED_PUBLIC_REGISTRATION_REDIRECT_URIS": "https://a.example/cb",
            "MUSTER_ENABLE_CIMD": "0",
            "MUSTER_ALLOW_PUBLIC_CLIENT_REGISTRATION": "yes",
            "MUSTER_STORAGE_VALKEY_KEY_PREFIX": "",
        }
    )

    assert config.dex.allow_private_ip_oidc is True
    assert config.trusted_public_registration_redirect_uris == ("https://a.example/cb",)
    assert config.enable_cimd is False
    assert config.allow_public_client_registration is True
    assert config.storage.valkey.key_prefix == ""


# --- ${VAR} and *File ---


def test_var_references_in_yaml_expand_from_the_environment(tmp_path: Path) -> None:
    text = "aggregator:\n  oauthServer:\n    baseUrl: https://${HOST_NAME}\n    scopes: [mcp, '${EXTRA}']\n"

    config = load_config(yaml_env(tmp_path, text, HOST_NAME="m.example.com", EXTRA="tools"))

    assert config.base_url == "https://m.example.com"
    assert config.scopes == ("mcp", "tools")


def test_an_unset_var_reference_is_an_error_naming_key_and_variable(tmp_path: Path) -> None:
    text = "aggregator:\n  oauthServer:\n    dex: {clientSecret: '${DEX_SECRET}'}\n"

    err = config_error(yaml_env(tmp_path, text))

    assert err.key == "dex.clientSecret"
    assert "DEX_SECRET" in err.message


SECRETS = [
    ("MUSTER_DEX_CLIENT_SECRET", "dex-secret", lambda c: c.dex.client_secret),
    ("MUSTER_GOOGLE_CLIENT_SECRET", "google-secret", lambda c: c.google.client_secret),
    ("MUSTER_STORAGE_VALKEY_PASSWORD", "valkey-password", lambda c: c.storage.valkey.password),
    ("MUSTER_REGISTRATION_TOKEN", "registration-token", lambda c: c.registration_token),
    ("MUSTER_SECRET_KEY", "s" * 40, lambda c: c.secret_key),
]


@pytest.mark.parametrize(("env", "content", "read"), SECRETS, ids=[s[0] for s in SECRETS])
def test_a_file_twin_wins_over_the_plain_value_and_is_trimmed(tmp_path: Path, env, content, read) -> None:
    secret_file = tmp_path / "secret"
    secret_file.write_text(content + " \n\n")

    config = load_config({env: "plain-value-" + "p" * 32, env + "_FILE": str(secret_file)})

    assert read(config) == content


def test_the_encryption_key_file_twin_is_decoded(tmp_path: Path) -> None:
    key_file = tmp_path / "key"
    key_file.write_text(base64.b64encode(KEY_BYTES).decode() + "\n")

    config = load_config({"MUSTER_ENCRYPTION_KEY": "00" * 32, "MUSTER_ENCRYPTION_KEY_FILE": str(key_file)})

    assert config.encryption_key == KEY_BYTES


OTHER_KEY_BYTES = bytes(range(32, 64))


def test_previous_encryption_keys_are_read_from_a_yaml_list(tmp_path: Path) -> None:
    keys = [KEY_BYTES.hex(), base64.b64encode(OTHER_KEY_BYTES).decode()]
    text = f"aggregator:\n  oauthServer:\n    previousEncryptionKeys: [{keys[0]}, '{keys[1]}']\n"

    assert load_config(yaml_env(tmp_path, text)).previous_encryption_keys == (KEY_BYTES, OTHER_KEY_BYTES)


def test_previous_encryption_keys_are_read_comma_separated_from_env() -> None:
    env = {"MUSTER_PREVIOUS_ENCRYPTION_KEYS": f"{KEY_BYTES.hex()}, {base64.b64encode(OTHER_KEY_BYTES).decode()}"}

    assert load_config(env).previous_encryption_keys == (KEY_BYTES, OTHER_KEY_BYTES)


def test_the_previous_encryption_keys_file_twin_holds_one_key_per_line(tmp_path: Path) -> None:
    key_file = tmp_path / "previous-keys"
    key_file.write_text(f"{KEY_BYTES.hex()}\n{base64.urlsafe_b64encode(OTHER_KEY_BYTES).decode()}\n")

    config = load_config({"MUSTER_PREVIOUS_ENCRYPTION_KEYS_FILE": str(key_file)})

    assert config.previous_encryption_keys == (KEY_BYTES, OTHER_KEY_BYTES)


def test_a_malformed_previous_encryption_key_is_an_error_naming_its_place_never_its_value() -> None:
    err = config_error({"MUSTER_PREVIOUS_ENCRYPTION_KEYS": f"{KEY_BYTES.hex()},hunter2-not-a-key"})

    assert err.key == "previousEncryptionKeys"
    assert err.message.startswith("key 2 must be 32 bytes")
    assert "hunter2" not in str(err)


def test_a_yaml_file_twin_wins_over_an_env_plain_value(tmp_path: Path) -> None:
    secret_file = tmp_path / "token"
    secret_file.write_text("from-file\n")
    text = f"aggregator:\n  oauthServer:\n    registrationTokenFile: {secret_file}\n"

    config = load_config(yaml_env(tmp_path, text, MUSTER_REGISTRATION_TOKEN="from-env"))

    assert config.registration_token == "from-file"


def test_an_unreadable_file_twin_is_an_error_naming_the_file_key(tmp_path: Path) -> None:
    err = config_error({"MUSTER_DEX_CLIENT_SECRET_FILE": str(tmp_path / "missing")})

    assert err.key == "dex.clientSecretFile"
    assert "cannot read" in err.message


# --- aliases ---


def test_database_url_alias_sets_database_url() -> None:
    assert load_config({"DATABASE_URL": "postgres://u@db/m"}).database_url == "postgres://u@db/m"


def test_muster_database_url_beats_the_alias() -> None:
    environ = {"DATABASE_URL": "postgres://alias@db/m", "MUSTER_DATABASE_URL": "postgres://muster@db/m"}

    assert load_config(environ).database_url == "postgres://muster@db/m"


def test_redis_url_alone_makes_storage_valkey() -> None:
    config = load_config({"REDIS_URL": "redis://cache:6379"})

    assert config.storage.type == "valkey"
    assert config.storage.valkey.url == "redis://cache:6379"


def test_muster_valkey_url_beats_redis_url() -> None:
    environ = {"REDIS_URL": "redis://alias:6379", "MUSTER_STORAGE_VALKEY_URL": "redis://muster:6379"}

    assert load_config(environ).storage.valkey.url == "redis://muster:6379"


def test_an_explicit_memory_storage_type_stays_memory_with_a_url() -> None:
    config = load_config({"REDIS_URL": "redis://cache:6379", "MUSTER_STORAGE_TYPE": "memory"})

    assert config.storage.type == "memory"


def test_valkey_url_schemes_are_rewritten_to_redis() -> None:
    assert load_config({"REDIS_URL": "valkey://v:6379"}).storage.valkey.url == "redis://v:6379"
    assert load_config({"REDIS_URL": "valkeys://v:6380/1"}).storage.valkey.url == "rediss://v:6380/1"


# --- types ---


def test_env_lists_are_comma_separated_with_blanks_trimmed_and_empties_dropped() -> None:
    config = load_config({"MUSTER_ALLOWED_ORIGINS": " https://a.example , ,https://b.example,"})

    assert config.allowed_origins == ("https://a.example", "https://b.example")


def test_a_yaml_list_key_also_accepts_a_comma_separated_string(tmp_path: Path) -> None:
    environ = yaml_env(tmp_path, "aggregator:\n  oauthServer:\n    scopes: 'mcp, tools'\n")

    assert load_config(environ).scopes == ("mcp", "tools")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("720h", timedelta(hours=720)),
        ("1h30m", timedelta(hours=1, minutes=30)),
        ("90m", timedelta(minutes=90)),
        ("45s", timedelta(seconds=45)),
        ("1.5h", timedelta(hours=1, minutes=30)),
        ("1500ms", timedelta(seconds=1.5)),
    ],
)
def test_session_duration_accepts_go_durations(text: str, expected: timedelta) -> None:
    assert load_config({"MUSTER_SESSION_DURATION": text}).session_duration == expected


@pytest.mark.parametrize(("text", "fragment"), [("30d", "Go duration"), ("0s", "greater than zero")])
def test_session_duration_refuses_days_and_zero(text: str, fragment: str) -> None:
    err = config_error({"MUSTER_SESSION_DURATION": text})

    assert err.key == "sessionDuration"
    assert fragment in err.message


@pytest.mark.parametrize(("text", "expected"), [("TRUE", True), ("yes", True), ("1", True), ("No", False)])
def test_bools_accept_true_false_1_0_yes_no(text: str, expected: bool) -> None:
    assert load_config({"MUSTER_ENABLE_CIMD": text}).enable_cimd is expected


@pytest.mark.parametrize(
    ("yaml_text", "key"),
    [
        ("baseUrl: [https://a.example]", "baseUrl"),
        ("enableCIMD: maybe", "enableCIMD"),
        ("sessionDuration: 90", "sessionDuration"),
        ("scopes: {mcp: true}", "scopes"),
        ("storage: memory", "storage"),
        ("storage: {valkey: {db: 1.5}}", "storage.valkey.db"),
    ],
)
def test_a_yaml_value_of_the_wrong_type_is_an_error(tmp_path: Path, yaml_text: str, key: str) -> None:
    err = config_error(yaml_env(tmp_path, f"aggregator:\n  oauthServer:\n    {yaml_text}\n"))

    assert err.key == key


@pytest.mark.parametrize(
    "encoded",
    [
        KEY_BYTES.hex(),
        base64.b64encode(KEY_BYTES).decode(),
        base64.b64encode(KEY_BYTES).decode().rstrip("="),
        base64.urlsafe_b64encode(KEY_BYTES).decode(),
        base64.urlsafe_b64encode(KEY_BYTES).decode().rstrip("="),
    ],
    ids=["hex", "base64", "base64-unpadded", "urlsafe", "urlsafe-unpadded"],
)
def test_the_encryption_key_decodes_to_its_32_bytes(encoded: str) -> None:
    assert load_config({"MUSTER_ENCRYPTION_KEY": encoded}).encryption_key == KEY_BYTES


# --- validation ---

SCHEMES_ENV, SCHEMES = "MUSTER_TRUSTED_PUBLIC_REGISTRATION_SCHEMES", "trustedPublicRegistrationSchemes"
URIS_ENV, URIS = "MUSTER_TRUSTED_PUBLIC_REGISTRATION_REDIRECT_URIS", "trustedPublicRegistrationRedirectURIs"
INVALID = [
    ("MUSTER_ENABLED", "false", "enabled", "cannot run with OAuth disabled"),
    ("MUSTER_BASE_URL", "ftp://m.example", "baseUrl", "absolute http(s) URL"),
    ("MUSTER_BASE_URL", "m.example.com", "baseUrl", "absolute http(s) URL"),
    ("MUSTER_BASE_URL", "http://m.example.com", "baseUrl", "must be https unless its host is loopback"),
    ("MUSTER_BASE_URL", "https://u:p@m.example.com", "baseUrl", "userinfo"),
    ("MUSTER_BASE_URL", "https://m.example.com/?a=1", "baseUrl", "query"),
    ("MUSTER_BASE_URL", "https://m.example.com/#top", "baseUrl", "fragment"),
    ("MUSTER_BASE_URL", "https://m.example.com/oauth", "baseUrl", "path"),
    ("MUSTER_BASE_URL", "https://m.example.com:99999", "baseUrl", "not a valid URL"),
    ("MUSTER_PROVIDER", "saml", "provider", "must be one of"),
    ("MUSTER_PROVIDER", "dex", "dex.issuerUrl", "is required when provider is dex"),
    ("MUSTER_PROVIDER", "google", "google.clientId", "is required when provider is google"),
    ("MUSTER_PROVIDER", "oidc", "oidc.issuerUrl", "is required when provider is oidc"),
    ("MUSTER_OIDC_ISSUER_URL", "http://idp.example", "oidc.issuerUrl", "must be https unless its host is loopback"),
    ("MUSTER_OIDC_ISSUER_URL", "https://idp.example/?x=1", "oidc.issuerUrl", "must not contain userinfo or a query"),
    ("MUSTER_DEX_REQUIRED_AUDIENCES", "ok,not ok", "dex.requiredAudiences", "letters, digits"),
    ("MUSTER_DEX_REQUIRED_AUDIENCES", ",".join(f"a{i}" for i in range(51)), "dex.requiredAudiences", "at most 50"),
    ("MUSTER_STORAGE_TYPE", "disk", "storage.type", "memory or valkey"),
    ("MUSTER_STORAGE_TYPE", "valkey", "storage.valkey.url", "required"),
    ("MUSTER_STORAGE_VALKEY_URL", "http://cache:6379", "storage.valkey.url", "redis://"),
    ("MUSTER_STORAGE_VALKEY_DB", "-1", "storage.valkey.db", "0 or more"),
    ("MUSTER_STORAGE_VALKEY_DB", "two", "storage.valkey.db", "integer"),
    ("MUSTER_ENCRYPTION_KEY", "not-a-key", "encryptionKey", "32 bytes"),
    ("MUSTER_ENCRYPTION_KEY", "ab" * 31, "encryptionKey", "32 bytes"),
    ("MUSTER_ENCRYPTION_KEY", base64.b64encode(bytes(16)).decode(), "encryptionKey", "32 bytes"),
    (SCHEMES_ENV, "https", SCHEMES, "cannot be"),
    (SCHEMES_ENV, "http", SCHEMES, "cannot be"),
    (SCHEMES_ENV, "JavaScript", SCHEMES, "cannot"),
    (SCHEMES_ENV, "ms-appx-web", SCHEMES, "cannot"),
    (SCHEMES_ENV, "1app", SCHEMES, "not a valid"),
    (SCHEMES_ENV, "my_app", SCHEMES, "not a valid"),
    (URIS_ENV, "http://a.example/cb", URIS, "https"),
    (URIS_ENV, "/cb", URIS, "https"),
    (URIS_ENV, "https://a.example/cb#x", URIS, "fragment"),
    (URIS_ENV, "https://u@a.example/cb", URIS, "userinfo"),
    (URIS_ENV, "https://127.0.0.1/cb", URIS, "loopback"),
    (URIS_ENV, "https://[::1]/cb", URIS, "loopback"),
    (URIS_ENV, "https://10.1.2.3/cb", URIS, "private"),
    (URIS_ENV, "https://169.254.169.254/cb", URIS, "link-local"),
    ("MUSTER_ALLOWED_ORIGINS", "*", "allowedOrigins", "'*' is refused"),
    ("MUSTER_ALLOWED_ORIGINS", "https://app.example.com/", "allowedOrigins", "without a path"),
    ("MUSTER_ALLOWED_ORIGINS", "https://app.example.com/login", "allowedOrigins", "without a path"),
    ("MUSTER_ALLOWED_ORIGINS", "app.example.com", "allowedOrigins", "origin"),
    ("MUSTER_RESOURCE_IDENTIFIER", "mcp", "resourceIdentifier", "absolute http(s) URL"),
    ("MUSTER_RESOURCE_IDENTIFIER", "http://m.example.com/mcp", "resourceIdentifier", "https unless"),
    ("MUSTER_RESOURCE_IDENTIFIER", "https://m.example.com/mcp#x", "resourceIdentifier", "fragment"),
    ("MUSTER_DATABASE_URL", "mysql://u@db/m", "databaseUrl", "postgres://"),
    ("DATABASE_URL", "db.sqlite3", "databaseUrl", "sqlite://"),
    ("MUSTER_SCOPES", "", "scopes", "at least one scope"),
    ("MUSTER_SCOPES", "mcp,offline_access", "scopes", "offline_access"),
    ("MUSTER_SCOPES", "mcp tools", "scopes", "not a valid scope token"),
    ("MUSTER_SCOPES", 'say"hi"', "scopes", "not a valid scope token"),
    ("MUSTER_SECRET_KEY", "too-short", "secretKey", "at least 32 characters"),
    ("MUSTER_SESSION_DURATION", "720", "sessionDuration", "Go duration"),
    ("MUSTER_ENABLE_CIMD", "maybe", "enableCIMD", "boolean"),
]


@pytest.mark.parametrize(("env", "value", "key", "fragment"), INVALID, ids=[f"{i[0]}={i[1]}" for i in INVALID])
def test_an_invalid_value_is_an_error_naming_its_key(env: str, value: str, key: str, fragment: str) -> None:
    err = config_error({env: value})

    assert err.key == key
    assert fragment in err.message
    assert str(err) == f"{key}: {err.message}"


@pytest.mark.parametrize(
    ("env", "value"),
    [("MUSTER_ENCRYPTION_KEY", "hunter2-not-a-key"), ("MUSTER_SECRET_KEY", "hunter2-short")],
)
def test_an_error_never_echoes_a_secret_value(env: str, value: str) -> None:
    assert "hunter2" not in str(config_error({env: value}))


def test_an_error_never_echoes_a_url_that_may_hold_a_password() -> None:
    assert "hunter2" not in str(config_error({"REDIS_URL": "http://:hunter2@cache:6379"}))


def test_an_unknown_key_is_an_error_naming_it_with_a_suggestion(tmp_path: Path) -> None:
    err = config_error(yaml_env(tmp_path, "aggregator:\n  oauthServer:\n    baseURL: https://m.example\n"))

    assert err.key == "baseURL"
    assert "unknown key" in err.message
    assert "baseUrl" in err.message


def test_an_unknown_nested_key_is_an_error_naming_its_path(tmp_path: Path) -> None:
    err = config_error(yaml_env(tmp_path, "aggregator:\n  oauthServer:\n    storage: {valkey: {prefix: x}}\n"))

    assert err.key == "storage.valkey.prefix"


def test_local_http_base_urls_are_allowed_on_loopback() -> None:
    for url in ("http://localhost:8000", "http://127.0.0.2:8000", "http://[::1]:8000"):
        assert load_config({"MUSTER_BASE_URL": url}).issuer == url


def test_a_trailing_slash_on_base_url_is_removed_from_the_issuer() -> None:
    config = load_config({"MUSTER_BASE_URL": "https://m.example.com/"})

    assert config.base_url == "https://m.example.com"
    assert config.issuer == "https://m.example.com"


def test_trusted_schemes_are_lowercased() -> None:
    config = load_config({"MUSTER_TRUSTED_PUBLIC_REGISTRATION_SCHEMES": "Cursor,vscode-insiders"})

    assert config.trusted_public_registration_schemes == ("cursor", "vscode-insiders")


# --- resources ---


def test_the_mcp_resource_defaults_to_base_url_plus_mcp() -> None:
    assert load_config({"MUSTER_BASE_URL": "https://m.example.com/"}).mcp_resource == "https://m.example.com/mcp"


def test_the_mcp_resource_is_the_canonical_resource_identifier() -> None:
    config = load_config({"MUSTER_RESOURCE_IDENTIFIER": "HTTPS://MCP.Example.com:443/Tools/"})

    assert config.mcp_resource == "https://mcp.example.com/Tools"


@pytest.mark.parametrize(
    ("uri", "canonical"),
    [
        ("https://H.example/mcp/", "https://h.example/mcp"),
        ("https://h.example/", "https://h.example"),
        ("https://h.example", "https://h.example"),
        ("https://h.example//", "https://h.example/"),
        ("HTTPS://h.example:443/MCP", "https://h.example/MCP"),
        ("http://h.example:80/mcp", "http://h.example/mcp"),
        ("https://h.example:8443/mcp", "https://h.example:8443/mcp"),
        ("http://h.example:443/mcp", "http://h.example:443/mcp"),
        ("https://h.example/mcp?Tenant=A", "https://h.example/mcp?Tenant=A"),
        ("http://[::1]:80/mcp/", "http://[::1]/mcp"),
    ],
)
def test_canonical_resource(uri: str, canonical: str) -> None:
    assert canonical_resource(uri) == canonical


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("localhost", True),
        ("LocalHost", True),
        ("127.0.0.1", True),
        ("127.255.0.9", True),
        ("::1", True),
        ("[::1]", True),
        ("0.0.0.0", False),
        ("10.0.0.1", False),
        ("localhost.example.com", False),
        ("example.com", False),
    ],
)
def test_is_loopback_host(host: str, loopback: bool) -> None:
    assert is_loopback_host(host) is loopback


def test_a_server_timeout_of_zero_seconds_is_refused() -> None:
    with pytest.raises(ConfigError, match="readHeaderTimeout"):
        load_config({"MUSTER_SERVER_READ_HEADER_TIMEOUT": "0s"})


def test_a_server_connection_cap_below_one_is_refused() -> None:
    with pytest.raises(ConfigError, match="maxConnections"):
        load_config({"MUSTER_SERVER_MAX_CONNECTIONS": "0"})


# --- documentation ---


def test_the_documentation_shows_the_reference_table_of_the_declaration() -> None:
    docs = (Path(__file__).resolve().parents[1] / "docs" / "configuration.md").read_text()

    assert reference_table() in docs, "regenerate with: .venv/bin/python -m infra.config"


def test_the_documented_embedded_default_loads_as_the_default(tmp_path: Path) -> None:
    docs = (Path(__file__).resolve().parents[1] / "docs" / "configuration.md").read_text()
    block = docs.split("## The embedded default", 1)[1].split("```yaml\n", 1)[1].split("```", 1)[0]

    assert load_config(yaml_env(tmp_path, block)) == Config()
