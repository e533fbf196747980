"""Tests for modelgates.settings (MODELGATES_* environment variables)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from modelgates.catalog import parse_config
from modelgates.settings import DEFAULT_DATABASE_URL, ENV_PREFIX, Settings, SettingsError


def test_constants() -> None:
    assert ENV_PREFIX == "MODELGATES_"
    assert DEFAULT_DATABASE_URL == "sqlite:///modelgates.db"
    assert issubclass(SettingsError, ValueError)


def test_defaults_with_empty_mapping() -> None:
    settings = Settings.from_env({})
    assert settings.database_url == "sqlite:///modelgates.db"
    assert settings.code_ttl_seconds == 600
    assert settings.pkce_policy == "compatible"
    assert settings.allow_loopback_callbacks is False
    assert settings.log_level == "info"
    assert settings.public_url is None
    assert settings.max_body_bytes == 65536
    assert settings.used_code_retention_seconds == 86_400
    assert settings == Settings()


def test_unrelated_variables_are_ignored() -> None:
    env = {
        "PATH": "/usr/bin",
        "MODELGATES_UNKNOWN": "whatever",
        "CODE_TTL_SECONDS": "5",
        "modelgates_code_ttl_seconds": "5",
    }
    assert Settings.from_env(env) == Settings()


def test_reads_os_environ_when_no_mapping(monkeypatch: pytest.MonkeyPatch) -> None:
    for field in dataclasses.fields(Settings):
        monkeypatch.delenv(ENV_PREFIX + field.name.upper(), raising=False)
    monkeypatch.setenv("MODELGATES_CODE_TTL_SECONDS", "123")
    assert Settings.from_env().code_ttl_seconds == 123


# --- each variable -----------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "sqlite:///relative.db",
        "sqlite:////var/lib/modelgates/db.sqlite",
        "postgresql://user:pw@db.example.com:5432/modelgates",
        "postgres://user@localhost/modelgates",
    ],
)
def test_database_url(url: str) -> None:
    assert Settings.from_env({"MODELGATES_DATABASE_URL": url}).database_url == url


@pytest.mark.parametrize(("raw", "value"), [("1", 1), ("60", 60), ("3600", 3600)])
def test_code_ttl_seconds(raw: str, value: int) -> None:
    settings = Settings.from_env({"MODELGATES_CODE_TTL_SECONDS": raw})
    assert settings.code_ttl_seconds == value
    assert isinstance(settings.code_ttl_seconds, int)


@pytest.mark.parametrize("policy", ["compatible", "s256"])
def test_pkce_policy(policy: str) -> None:
    assert Settings.from_env({"MODELGATES_PKCE_POLICY": policy}).pkce_policy == policy


@pytest.mark.parametrize(
    ("raw", "value"),
    [("true", True), ("false", False), ("True", True), ("FALSE", False), ("1", True), ("0", False)],
)
def test_allow_loopback_callbacks(raw: str, value: bool) -> None:
    settings = Settings.from_env({"MODELGATES_ALLOW_LOOPBACK_CALLBACKS": raw})
    assert settings.allow_loopback_callbacks is value


def test_allow_loopback_callbacks_true() -> None:
    settings = Settings.from_env({"MODELGATES_ALLOW_LOOPBACK_CALLBACKS": "true"})
    assert settings.allow_loopback_callbacks is True


@pytest.mark.parametrize(
    ("raw", "value"),
    [("debug", "debug"), ("info", "info"), ("warning", "warning"), ("error", "error")],
)
def test_log_level(raw: str, value: str) -> None:
    assert Settings.from_env({"MODELGATES_LOG_LEVEL": raw}).log_level == value


def test_log_level_is_case_insensitive() -> None:
    assert Settings.from_env({"MODELGATES_LOG_LEVEL": "DEBUG"}).log_level == "debug"
    assert Settings.from_env({"MODELGATES_LOG_LEVEL": "Warning"}).log_level == "warning"


def test_public_url() -> None:
    env = {"MODELGATES_PUBLIC_URL": "https://gw.example.com"}
    assert Settings.from_env(env).public_url == "https://gw.example.com"


def test_max_body_bytes() -> None:
    assert Settings.from_env({"MODELGATES_MAX_BODY_BYTES": "1024"}).max_body_bytes == 1024
    assert Settings.from_env({"MODELGATES_MAX_BODY_BYTES": "1048576"}).max_body_bytes == 1048576


def test_used_code_retention_seconds() -> None:
    env = {"MODELGATES_USED_CODE_RETENTION_SECONDS": "0"}
    assert Settings.from_env(env).used_code_retention_seconds == 0
    env = {"MODELGATES_USED_CODE_RETENTION_SECONDS": "3600"}
    assert Settings.from_env(env).used_code_retention_seconds == 3600


def test_all_variables_together() -> None:
    env = {
        "MODELGATES_DATABASE_URL": "postgresql://u@h/db",
        "MODELGATES_CODE_TTL_SECONDS": "120",
        "MODELGATES_PKCE_POLICY": "s256",
        "MODELGATES_ALLOW_LOOPBACK_CALLBACKS": "true",
        "MODELGATES_LOG_LEVEL": "warning",
        "MODELGATES_PUBLIC_URL": "https://gw.example.com",
        "MODELGATES_MAX_BODY_BYTES": "2048",
        "MODELGATES_USED_CODE_RETENTION_SECONDS": "60",
    }
    assert Settings.from_env(env) == Settings(
        database_url="postgresql://u@h/db",
        code_ttl_seconds=120,
        pkce_policy="s256",
        allow_loopback_callbacks=True,
        log_level="warning",
        public_url="https://gw.example.com",
        max_body_bytes=2048,
        used_code_retention_seconds=60,
    )


def test_every_field_has_an_environment_variable(tmp_path: Path) -> None:
    # a non-default value for each field must be picked up from MODELGATES_<NAME>
    config = tmp_path / "gateway.toml"
    config.write_text("")
    env = {
        "MODELGATES_DATABASE_URL": "sqlite:///other.db",
        "MODELGATES_CODE_TTL_SECONDS": "7",
        "MODELGATES_PKCE_POLICY": "s256",
        "MODELGATES_ALLOW_LOOPBACK_CALLBACKS": "true",
        "MODELGATES_LOG_LEVEL": "error",
        "MODELGATES_PUBLIC_URL": "https://x.example",
        "MODELGATES_MAX_BODY_BYTES": "4096",
        "MODELGATES_USED_CODE_RETENTION_SECONDS": "9",
        "MODELGATES_DATABASE_POOL_SIZE": "3",
        "MODELGATES_UPSTREAM_MAX_CONNECTIONS": "500",
        "MODELGATES_SESSION_TTL_SECONDS": "3600",
        "MODELGATES_CONFIG": str(config),
        "MODELGATES_REDIS_URL": "redis://127.0.0.1:6379/0",
        "MODELGATES_RATE_LIMIT_EXCHANGE_PER_ADDRESS": "1",
        "MODELGATES_RATE_LIMIT_EXCHANGE_FAILURES_PER_CODE": "2",
        "MODELGATES_RATE_LIMIT_CODES_PER_KEY": "3",
        "MODELGATES_RATE_LIMIT_LOGIN_PER_ACCOUNT": "0",
        "MODELGATES_RATE_LIMIT_LOGIN_PER_ADDRESS": "4",
        "MODELGATES_RATE_LIMIT_GATEWAY_PER_KEY": "5",
        "MODELGATES_LOG_FORMAT": "text",
        "MODELGATES_PURGE_INTERVAL_SECONDS": "60",
        "MODELGATES_GENERATION_RETENTION_DAYS": "7",
        "MODELGATES_RESPONSE_RETENTION_DAYS": "3",
        "MODELGATES_TRUSTED_PROXIES": "10.0.0.1",
        "MODELGATES_OIDC_ISSUER": "https://idp.example.com/realms/team",
        "MODELGATES_OIDC_CLIENT_ID": "modelgates",
        "MODELGATES_OIDC_CLIENT_SECRET": "client-secret",
        "MODELGATES_OIDC_ALLOWED_DOMAINS": "example.com",
        "MODELGATES_OIDC_DISPLAY_NAME": "Keycloak",
        "MODELGATES_OIDC_SCOPES": "openid email profile groups",
        "MODELGATES_OIDC_ADMIN_GROUPS": "gateway-admins",
        "MODELGATES_PASSWORD_LOGIN": "false",
        "MODELGATES_DEFAULT_USER_LIMIT": "50",
        "MODELGATES_DEFAULT_USER_LIMIT_RESET": "monthly",
        "MODELGATES_ALERT_THRESHOLDS": "75, 90",
        "MODELGATES_ALERT_WEBHOOK_URL": "https://hooks.example.com/all",
        "MODELGATES_ALERT_WEBHOOK_SECRET": "whsec_" + "QUJD" * 8,
        "MODELGATES_ALERT_WEBHOOK_TIMEOUT_SECONDS": "3",
        "MODELGATES_ALERT_MAX_ATTEMPTS": "4",
        "MODELGATES_ALERT_RETRY_BASE_SECONDS": "1.5",
        "MODELGATES_ALERT_POLL_INTERVAL_SECONDS": "0",
        "MODELGATES_ALERT_PRIVATE_WEBHOOKS": "true",
        "MODELGATES_SMTP_HOST": "smtp.example.com",
        "MODELGATES_SMTP_PORT": "2525",
        "MODELGATES_SMTP_FROM": "gateway@example.com",
        "MODELGATES_SMTP_STARTTLS": "false",
        "MODELGATES_SMTP_USERNAME": "gateway",
        "MODELGATES_SMTP_PASSWORD": "smtp-secret",
        "MODELGATES_UPSTREAM_COOLDOWN_FAILURES": "5",
        "MODELGATES_UPSTREAM_COOLDOWN_SECONDS": "10",
        "MODELGATES_UPSTREAM_COOLDOWN_MAX_SECONDS": "100",
        "MODELGATES_UPSTREAM_EXTRA_ATTEMPTS": "2",
        "MODELGATES_UPSTREAM_ATTEMPT_TIMEOUT_SECONDS": "5",
    }
    names = {ENV_PREFIX + f.name.upper() for f in dataclasses.fields(Settings)}
    assert names == set(env)
    settings = Settings.from_env(env)
    defaults = Settings()
    for field in dataclasses.fields(Settings):
        assert getattr(settings, field.name) != getattr(defaults, field.name), field.name


# --- bad values ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"MODELGATES_DEFAULT_USER_LIMIT": "-1"}, "MODELGATES_DEFAULT_USER_LIMIT"),
        ({"MODELGATES_DEFAULT_USER_LIMIT": "1e12"}, "MODELGATES_DEFAULT_USER_LIMIT"),
        ({"MODELGATES_DEFAULT_USER_LIMIT": "nan"}, "MODELGATES_DEFAULT_USER_LIMIT"),
        ({"MODELGATES_DEFAULT_USER_LIMIT_RESET": "daily"}, "MODELGATES_DEFAULT_USER_LIMIT"),
        ({"MODELGATES_DEFAULT_USER_LIMIT": "5", "MODELGATES_DEFAULT_USER_LIMIT_RESET": "hourly"},
         "MODELGATES_DEFAULT_USER_LIMIT_RESET"),
    ],
)  # fmt: skip
def test_a_bad_default_user_budget_names_the_variable(env: dict[str, str], named: str) -> None:
    with pytest.raises(SettingsError) as info:
        Settings.from_env(env)
    assert named in str(info.value)


def test_a_negative_upstream_connection_limit_is_refused() -> None:
    assert Settings().upstream_max_connections == 0  # no cap: streams never queue on the pool
    with pytest.raises(SettingsError) as info:
        Settings.from_env({"MODELGATES_UPSTREAM_MAX_CONNECTIONS": "-1"})
    assert "MODELGATES_UPSTREAM_MAX_CONNECTIONS" in str(info.value)


def test_non_integer_ttl_names_the_variable() -> None:
    with pytest.raises(SettingsError) as info:
        Settings.from_env({"MODELGATES_CODE_TTL_SECONDS": "abc"})
    message = str(info.value)
    assert "MODELGATES_CODE_TTL_SECONDS" in message
    assert "\n" not in message


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("MODELGATES_CODE_TTL_SECONDS", "abc"),
        ("MODELGATES_CODE_TTL_SECONDS", ""),
        ("MODELGATES_CODE_TTL_SECONDS", "60.5"),
        ("MODELGATES_MAX_BODY_BYTES", "lots"),
        ("MODELGATES_USED_CODE_RETENTION_SECONDS", "a day"),
        ("MODELGATES_ALLOW_LOOPBACK_CALLBACKS", "yes please"),
        ("MODELGATES_PKCE_POLICY", "bogus"),
        ("MODELGATES_LOG_LEVEL", "trace"),
    ],
)
def test_unparsable_value_names_the_variable(name: str, value: str) -> None:
    with pytest.raises(SettingsError, match=name):
        Settings.from_env({name: value})


@pytest.mark.parametrize("policy", ["bogus", "S256", "plain", "", "none"])
def test_bad_pkce_policy_rejected(policy: str) -> None:
    with pytest.raises(SettingsError, match="MODELGATES_PKCE_POLICY"):
        Settings.from_env({"MODELGATES_PKCE_POLICY": policy})


@pytest.mark.parametrize("ttl", ["0", "-1", "-600", "3601", "99999999999999999999999"])
def test_out_of_range_ttl_rejected(ttl: str) -> None:
    with pytest.raises(SettingsError, match="MODELGATES_CODE_TTL_SECONDS"):
        Settings.from_env({"MODELGATES_CODE_TTL_SECONDS": ttl})


def test_small_body_limit_rejected() -> None:
    with pytest.raises(SettingsError, match="MODELGATES_MAX_BODY_BYTES"):
        Settings.from_env({"MODELGATES_MAX_BODY_BYTES": "1023"})


def test_negative_retention_rejected() -> None:
    with pytest.raises(SettingsError, match="MODELGATES_USED_CODE_RETENTION_SECONDS"):
        Settings.from_env({"MODELGATES_USED_CODE_RETENTION_SECONDS": "-1"})


@pytest.mark.parametrize("days", ["0", "-1", "36501"])
def test_response_retention_out_of_range_rejected(days: str) -> None:
    with pytest.raises(SettingsError, match="MODELGATES_RESPONSE_RETENTION_DAYS"):
        Settings.from_env({"MODELGATES_RESPONSE_RETENTION_DAYS": days})


@pytest.mark.parametrize(
    "url",
    [
        "mysql://u@h/db",
        "http://example.com/db",
        "modelgates.db",
        "",
        "file:///tmp/x.db",
        "postgresql+asyncpg://u@h/db",
    ],
)
def test_unsupported_database_url_rejected(url: str) -> None:
    with pytest.raises(SettingsError, match="MODELGATES_DATABASE_URL"):
        Settings.from_env({"MODELGATES_DATABASE_URL": url})


def test_database_url_without_scheme_separator_rejected() -> None:
    with pytest.raises(SettingsError, match="MODELGATES_DATABASE_URL"):
        Settings.from_env({"MODELGATES_DATABASE_URL": "sqlite"})


# --- direct construction and overrides -------------------------------------------


def test_check_rejects_bad_direct_values() -> None:
    with pytest.raises(SettingsError, match="CODE_TTL_SECONDS"):
        Settings(code_ttl_seconds=0).check()
    Settings().check()  # defaults are valid


def test_with_overrides() -> None:
    base = Settings()
    changed = base.with_overrides(code_ttl_seconds=30, allow_loopback_callbacks=True)
    assert changed.code_ttl_seconds == 30
    assert changed.allow_loopback_callbacks is True
    assert base.code_ttl_seconds == 600  # original untouched


def test_with_overrides_checks() -> None:
    with pytest.raises(SettingsError, match="MODELGATES_DATABASE_URL"):
        Settings().with_overrides(database_url="mysql://x")
    with pytest.raises(SettingsError, match="MODELGATES_CODE_TTL_SECONDS"):
        Settings().with_overrides(code_ttl_seconds=-5)


def test_settings_are_frozen() -> None:
    settings = Settings()
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.code_ttl_seconds = 5  # type: ignore[misc]


@pytest.mark.parametrize("value", ["59", str(30 * 86_400 + 1)])
def test_session_ttl_out_of_range_is_refused(value: str) -> None:
    with pytest.raises(SettingsError, match="MODELGATES_SESSION_TTL_SECONDS"):
        Settings.from_env({"MODELGATES_SESSION_TTL_SECONDS": value})


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("MODELGATES_RATE_LIMIT_GATEWAY_PER_KEY", "-1"),
        ("MODELGATES_RATE_LIMIT_CODES_PER_KEY", "1000001"),
        ("MODELGATES_REDIS_URL", "http://127.0.0.1:6379"),
    ],
)
def test_rate_limit_settings_are_checked(name: str, value: str) -> None:
    with pytest.raises(SettingsError, match=name):
        Settings.from_env({name: value})


@pytest.mark.parametrize(
    ("name", "value"), [("LOG_FORMAT", "xml"), ("PURGE_INTERVAL_SECONDS", "-1")]
)
def test_bad_operations_settings_rejected(name: str, value: str) -> None:
    with pytest.raises(SettingsError, match=ENV_PREFIX + name):
        Settings.from_env({ENV_PREFIX + name: value})


def test_log_format_is_case_insensitive_and_defaults_to_json() -> None:
    assert Settings().log_format == "json"
    assert Settings.from_env({"MODELGATES_LOG_FORMAT": "TEXT"}).log_format == "text"


def test_trusted_proxies_are_addresses_or_networks() -> None:
    assert Settings().trusted_proxy_networks() == []
    parsed = Settings.from_env({"MODELGATES_TRUSTED_PROXIES": " 10.0.0.1, 192.168.0.0/16 ,::1"})
    assert parsed.trusted_proxy_networks() == ["10.0.0.1/32", "192.168.0.0/16", "::1/128"]
    for bad in ("*", "proxy.internal", "10.0.0.0/33"):
        with pytest.raises(SettingsError, match="MODELGATES_TRUSTED_PROXIES"):
            Settings.from_env({"MODELGATES_TRUSTED_PROXIES": bad})


# --- single sign-on -------------------------------------------------------------

SSO = {
    "MODELGATES_OIDC_ISSUER": "https://idp.example.com/realms/team",
    "MODELGATES_OIDC_CLIENT_ID": "modelgates",
    "MODELGATES_OIDC_CLIENT_SECRET": "client-secret",
    "MODELGATES_PUBLIC_URL": "https://gw.example.com",
}


def test_sso_defaults_and_secret_not_in_repr() -> None:
    settings = Settings.from_env(SSO)
    assert settings.oidc_enabled
    assert settings.oidc_display_name == "single sign-on"
    assert settings.oidc_scopes == "openid email profile"
    assert settings.password_login is True
    assert "client-secret" not in repr(settings)
    assert not Settings().oidc_enabled


@pytest.mark.parametrize(
    "issuer",
    [
        "https://idp.example.com",
        "http://127.0.0.1:8080/realms/dev",
        "http://localhost:9000",
        "http://[::1]:9000/",
    ],
)
def test_issuer_https_or_loopback_http(issuer: str) -> None:
    assert Settings.from_env({**SSO, "MODELGATES_OIDC_ISSUER": issuer}).oidc_issuer == issuer


@pytest.mark.parametrize(
    ("issuer", "message"),
    [
        ("http://idp.example.com", "must use https"),
        ("http://10.0.0.5:8080", "must use https"),
        ("ftp://idp.example.com", "absolute https URL"),
        ("idp.example.com", "absolute https URL"),
        ("https://idp.example.com/?realm=x", "no query"),
        ("https://user@idp.example.com", "user information"),
    ],
)
def test_bad_issuer_is_refused(issuer: str, message: str) -> None:
    with pytest.raises(SettingsError, match="MODELGATES_OIDC_ISSUER") as raised:
        Settings.from_env({**SSO, "MODELGATES_OIDC_ISSUER": issuer})
    assert message in str(raised.value)


def test_sso_without_public_url_is_refused_in_one_line() -> None:
    env = {k: v for k, v in SSO.items() if k != "MODELGATES_PUBLIC_URL"}
    with pytest.raises(SettingsError) as raised:
        Settings.from_env(env)
    message = str(raised.value)
    assert message.startswith("MODELGATES_PUBLIC_URL is required with MODELGATES_OIDC_ISSUER")
    assert "/auth/oidc/callback" in message
    assert "\n" not in message


@pytest.mark.parametrize("missing", ["MODELGATES_OIDC_CLIENT_ID", "MODELGATES_OIDC_CLIENT_SECRET"])
def test_sso_needs_its_client(missing: str) -> None:
    env = {k: v for k, v in SSO.items() if k != missing}
    with pytest.raises(SettingsError, match=f"{missing} is required"):
        Settings.from_env(env)


def test_password_login_off_needs_sso() -> None:
    with pytest.raises(SettingsError, match="PASSWORD_LOGIN=false needs MODELGATES_OIDC_ISSUER"):
        Settings.from_env({"MODELGATES_PASSWORD_LOGIN": "false"})
    assert not Settings.from_env({**SSO, "MODELGATES_PASSWORD_LOGIN": "false"}).password_login


def test_scopes_must_include_openid() -> None:
    with pytest.raises(SettingsError, match="MODELGATES_OIDC_SCOPES must include openid"):
        Settings.from_env({**SSO, "MODELGATES_OIDC_SCOPES": "email profile"})


# --- settings in the config file ---------------------------------------------------


def test_the_config_files_server_table_gives_settings_and_the_environment_wins(
    tmp_path: Path,
) -> None:
    path = tmp_path / "modelgates.toml"
    path.write_text(
        '[server]\npublic_url = "https://gw.example.com"\ncode_ttl_seconds = 120\n'
        "password_login = true\n\n[gateway]\nrequest_timeout_seconds = 5\n"
    )
    settings = Settings.from_env({"MODELGATES_CODE_TTL_SECONDS": "60"}, config_path=str(path))
    assert settings.public_url == "https://gw.example.com"
    assert settings.code_ttl_seconds == 60  # the environment wins
    assert settings.config == str(path)
    via_env = Settings.from_env({"MODELGATES_CONFIG": str(path)})
    assert via_env.code_ttl_seconds == 120
    assert parse_config(path.read_text()).request_timeout_seconds == 5  # the catalog ignores it


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ("surprise = 1", "[server] has no setting 'surprise'"),
        ('code_ttl_seconds = "120"', "[server] code_ttl_seconds: Expected `int`, got `str`"),
        ("config = 'x.toml'", "[server] has no setting 'config'"),
        ("code_ttl_seconds = 99999", "MODELGATES_CODE_TTL_SECONDS must be between 1 and 3600"),
    ],
)
def test_a_bad_server_table_names_the_file_and_key(
    tmp_path: Path, table: str, message: str
) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(f"[server]\n{table}\n")
    with pytest.raises(SettingsError) as raised:
        Settings.from_env({}, config_path=str(path))
    assert message in str(raised.value)


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"MODELGATES_ALERT_THRESHOLDS": "50,x"}, "ALERT_THRESHOLDS must be comma-separated"),
        ({"MODELGATES_ALERT_THRESHOLDS": "0,50"}, "percentages from 1 to 100"),
        (
            {"MODELGATES_ALERT_WEBHOOK_URL": "https://h.example/x"},
            "needs MODELGATES_ALERT_WEBHOOK_SECRET",
        ),
        ({"MODELGATES_ALERT_WEBHOOK_SECRET": "hunter2"}, "must be whsec_"),
        ({"MODELGATES_ALERT_WEBHOOK_SECRET": "whsec_QUJD"}, "at least 24 bytes"),
        ({"MODELGATES_ALERT_MAX_ATTEMPTS": "0"}, "between 1 and 50"),
        ({"MODELGATES_SMTP_HOST": "smtp.example.com"}, "needs MODELGATES_SMTP_FROM"),
        ({"MODELGATES_SMTP_PASSWORD": "p"}, "needs MODELGATES_SMTP_USERNAME"),
    ],
)
def test_bad_alert_settings_are_refused_without_echoing_secrets(
    env: dict[str, str], message: str
) -> None:
    with pytest.raises(SettingsError, match=message) as caught:
        Settings.from_env(env)
    assert "hunter2" not in str(caught.value)


def test_alert_secrets_stay_out_of_the_settings_repr() -> None:
    secret = "whsec_" + "QUJD" * 8
    settings = Settings(alert_webhook_secret=secret, smtp_username="u", smtp_password="pw-9")
    assert secret not in repr(settings) and "pw-9" not in repr(settings)
    assert Settings().alert_threshold_list() == (50, 80, 100)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("UPSTREAM_COOLDOWN_FAILURES", "-1"),
        ("UPSTREAM_COOLDOWN_SECONDS", "0"),
        ("UPSTREAM_COOLDOWN_SECONDS", "1000"),  # above the default maximum of 600
        ("UPSTREAM_EXTRA_ATTEMPTS", "11"),
        ("UPSTREAM_ATTEMPT_TIMEOUT_SECONDS", "0"),
    ],
)
def test_bad_upstream_routing_settings_name_the_variable(name: str, value: str) -> None:
    with pytest.raises(SettingsError, match=f"MODELGATES_{name}"):
        Settings.from_env({f"MODELGATES_{name}": value})
