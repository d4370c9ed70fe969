"""SessionSettings: env vars, keywords and .env; defaults; every unsafe set-up fails at start-up."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import pytest
from pydantic import BaseModel

from fastapi_sessions import SessionConfigError, SessionManager, SessionSettings
from fastapi_sessions.stores import MemoryStore

from .conftest import OLD_SECRET, SECRET, UserSession, make_settings

TUTORIAL_KEY = "09d25e094faa6ca2556c818166b7a9563b93f7099f6f0f4caa6cf63b88e8d3e7"
THIRD_SECRET = "th1rd-k3y-for-tests-only-9876543210-ZYXWVUTSRQ"


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """Each test starts with no SESSION_* variables and in an empty directory (so no stray .env)."""
    for name in list(os.environ):
        if name.upper().startswith("SESSION_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def config_error(values: dict[str, str]) -> SessionConfigError:
    """The error SessionSettings(**values) raises; also checks it is a ValueError."""
    with pytest.raises(SessionConfigError) as info:
        SessionSettings(**values)
    assert isinstance(info.value, ValueError)
    return info.value


# -- where settings come from --------------------------------------------------------------------


def test_every_field_has_the_documented_default() -> None:
    settings = SessionSettings(secret_key=SECRET)
    expected = {
        "secret_key": SECRET,
        "secret_key_fallbacks": [],
        "cookie_name": "session",
        "max_age": 14 * 24 * 3600,
        "idle_timeout": None,
        "cookie_secure": True,
        "cookie_httponly": True,
        "cookie_samesite": "lax",
        "cookie_domain": None,
        "cookie_path": "/",
        "cookie_partitioned": False,
        "store_url": "memory://",
        "store_prefix": "session:",
        "store_timeout": 1.0,
        "store_wait_replicas": 0,
        "on_store_error": "fail",
        "max_size": 64 * 1024,
        "concurrency": "last_write_wins",
        "rotate_interval": None,
        "rotate_grace": 30,
        "record_ip": False,
        "encryption_keys": [],
        "metrics": "auto",
    }
    assert set(expected) == set(SessionSettings.model_fields), "a field was added: give it a default check"
    actual = settings.model_dump()
    actual["secret_key"] = settings.secret_key.get_secret_value() if settings.secret_key else None
    assert actual == expected


def test_every_field_is_read_from_its_session_env_var(monkeypatch: pytest.MonkeyPatch) -> None:
    env = {
        "SESSION_SECRET_KEY": SECRET,
        "SESSION_SECRET_KEY_FALLBACKS": OLD_SECRET,
        "SESSION_COOKIE_NAME": "sid",
        "SESSION_MAX_AGE": "3600",
        "SESSION_IDLE_TIMEOUT": "600",
        "SESSION_COOKIE_SECURE": "false",
        "SESSION_COOKIE_HTTPONLY": "false",
        "SESSION_COOKIE_SAMESITE": "Strict",
        "SESSION_COOKIE_DOMAIN": "example.com",
        "SESSION_COOKIE_PATH": "/app",
        "SESSION_COOKIE_PARTITIONED": "false",
        "SESSION_STORE_URL": "memory://?max_entries=10",
        "SESSION_STORE_PREFIX": "app1:",
        "SESSION_STORE_TIMEOUT": "0.25",
        "SESSION_STORE_WAIT_REPLICAS": "2",
        "SESSION_ON_STORE_ERROR": "degrade",
        "SESSION_MAX_SIZE": "1000",
        "SESSION_CONCURRENCY": "version_check",
        "SESSION_ROTATE_INTERVAL": "900",
        "SESSION_ROTATE_GRACE": "20",
        "SESSION_RECORD_IP": "true",
        "SESSION_ENCRYPTION_KEYS": "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=",
        "SESSION_METRICS": "off",
    }
    assert {name.removeprefix("SESSION_").lower() for name in env} == set(SessionSettings.model_fields)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    settings = SessionSettings()
    assert settings.secret_key is not None
    assert settings.secret_key.get_secret_value() == SECRET
    assert [k.get_secret_value() for k in settings.secret_key_fallbacks] == [OLD_SECRET]
    assert settings.cookie_name == "sid"
    assert settings.max_age == 3600
    assert settings.idle_timeout == 600
    assert settings.cookie_secure is False
    assert settings.cookie_httponly is False
    assert settings.cookie_samesite == "strict"
    assert settings.cookie_domain == "example.com"
    assert settings.cookie_path == "/app"
    assert settings.cookie_partitioned is False
    assert settings.store_url == "memory://?max_entries=10"
    assert settings.store_prefix == "app1:"
    assert settings.store_timeout == 0.25
    assert settings.store_wait_replicas == 2
    assert settings.on_store_error == "degrade"
    assert settings.max_size == 1000
    assert settings.concurrency == "version_check"
    assert settings.rotate_interval == 900
    assert settings.rotate_grace == 20
    assert settings.record_ip is True
    assert settings.encryption_key_bytes() == [bytes(range(32))]
    assert settings.metrics == "off"


def test_keywords_are_used_and_win_over_env_vars(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SESSION_SECRET_KEY", OLD_SECRET)
    monkeypatch.setenv("SESSION_COOKIE_NAME", "from-env")
    settings = SessionSettings(secret_key=SECRET, cookie_name="from-kw", max_age=60)
    assert settings.secret_key is not None
    assert settings.secret_key.get_secret_value() == SECRET
    assert settings.cookie_name == "from-kw"
    assert settings.max_age == 60


def test_dotenv_file_in_the_working_directory_is_read(clean_env: Path) -> None:
    (clean_env / ".env").write_text(
        f"SESSION_SECRET_KEY={SECRET}\nSESSION_COOKIE_NAME=from-dotenv\nSESSION_MAX_AGE=120\n",
        encoding="utf-8",
    )
    settings = SessionSettings()
    assert settings.secret_key is not None
    assert settings.secret_key.get_secret_value() == SECRET
    assert settings.cookie_name == "from-dotenv"
    assert settings.max_age == 120


def test_env_vars_win_over_the_dotenv_file(clean_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (clean_env / ".env").write_text(
        f"SESSION_SECRET_KEY={SECRET}\nSESSION_COOKIE_NAME=from-dotenv\n", encoding="utf-8"
    )
    monkeypatch.setenv("SESSION_COOKIE_NAME", "from-env")
    assert SessionSettings().cookie_name == "from-env"


def test_manager_without_settings_reads_env_and_dotenv(clean_env: Path) -> None:
    (clean_env / ".env").write_text(f"SESSION_SECRET_KEY={SECRET}\nSESSION_COOKIE_NAME=sid\n")
    sessions = SessionManager(UserSession, store=MemoryStore())
    assert sessions.settings.cookie_name == "sid"


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param(f'["{OLD_SECRET}", "{THIRD_SECRET}"]', id="json-list"),
        pytest.param(f"{OLD_SECRET},{THIRD_SECRET}", id="comma-separated"),
        pytest.param(f" {OLD_SECRET} , {THIRD_SECRET} ,", id="comma-separated-with-spaces"),
    ],
)
def test_fallback_keys_from_env_as_json_or_comma_list(monkeypatch: pytest.MonkeyPatch, raw: str) -> None:
    monkeypatch.setenv("SESSION_SECRET_KEY", SECRET)
    monkeypatch.setenv("SESSION_SECRET_KEY_FALLBACKS", raw)
    settings = SessionSettings()
    # Oldest first, the current key (which signs) last.
    assert settings.signing_keys() == [OLD_SECRET, THIRD_SECRET, SECRET]


def test_fallback_keys_from_keywords_as_a_list() -> None:
    settings = SessionSettings(secret_key=SECRET, secret_key_fallbacks=[OLD_SECRET])
    assert settings.signing_keys() == [OLD_SECRET, SECRET]


def test_settings_are_frozen() -> None:
    settings = make_settings()
    with pytest.raises(ValueError, match="frozen"):
        settings.cookie_name = "other"  # type: ignore[misc]


# -- keys ------------------------------------------------------------------------------------------


def test_missing_key_fails_and_says_how_to_generate_one() -> None:
    error = config_error({})
    assert "SESSION_SECRET_KEY" in str(error)
    assert "secrets.token_urlsafe" in str(error)


def test_manager_with_no_key_anywhere_fails_at_construction() -> None:
    with pytest.raises(SessionConfigError, match=r"secrets\.token_urlsafe"):
        SessionManager(UserSession)


BAD_KEYS = [
    pytest.param("", "at least 32", id="empty"),
    pytest.param("a1b2c3d4e5f6g7h8i9j0", "at least 32", id="short-20"),
    pytest.param(SECRET[:31], "at least 32", id="short-31"),
    pytest.param("changeme".ljust(32, "-"), "well-known", id="changeme-dash-padded"),
    pytest.param("  CHANGE_ME  ".center(40), "well-known", id="changeme-space-padded-upper"),
    pytest.param(TUTORIAL_KEY, "well-known", id="fastapi-tutorial-key"),
    pytest.param(TUTORIAL_KEY.upper(), "well-known", id="fastapi-tutorial-key-upper"),
    pytest.param("ab" * 20, "distinct characters", id="two-characters"),
    pytest.param("0123456" * 6, "distinct characters", id="seven-characters"),
]


@pytest.mark.parametrize(("key", "fragment"), BAD_KEYS)
def test_bad_secret_key_is_rejected_by_settings(key: str, fragment: str) -> None:
    error = config_error({"secret_key": key})
    assert fragment in str(error)
    assert "secrets.token_urlsafe" in str(error)


@pytest.mark.parametrize(("key", "fragment"), BAD_KEYS)
def test_bad_secret_key_from_env_is_rejected_by_manager(
    monkeypatch: pytest.MonkeyPatch, key: str, fragment: str
) -> None:
    monkeypatch.setenv("SESSION_SECRET_KEY", key)
    if key == "":  # an empty variable reads as unset
        fragment = "SESSION_SECRET_KEY is not set"
    with pytest.raises(SessionConfigError, match=fragment):
        SessionManager(UserSession)


def test_changeme_padded_with_a_repeated_character_is_rejected() -> None:
    """Padding a tutorial value up to the length rule must not make it acceptable."""
    config_error({"secret_key": "changeme" + "0" * 24})


@pytest.mark.parametrize(
    "fallbacks",
    [
        pytest.param("short-fallback", id="short"),
        pytest.param(f"{OLD_SECRET},changeme", id="second-short"),
        pytest.param(f'["{TUTORIAL_KEY}"]', id="well-known-json"),
        pytest.param("xy" * 20, id="low-variety"),
    ],
)
def test_bad_fallback_key_is_rejected(monkeypatch: pytest.MonkeyPatch, fallbacks: str) -> None:
    monkeypatch.setenv("SESSION_SECRET_KEY", SECRET)
    monkeypatch.setenv("SESSION_SECRET_KEY_FALLBACKS", fallbacks)
    with pytest.raises(SessionConfigError, match=r"SESSION_SECRET_KEY_FALLBACKS\[\d\]") as info:
        SessionManager(UserSession)
    assert isinstance(info.value, ValueError)
    with pytest.raises(SessionConfigError, match=r"secrets\.token_urlsafe"):
        SessionSettings()


SHORT_REAL_KEY = "Zq8-real-prod-key-24chr"


@pytest.mark.parametrize(
    "values",
    [
        pytest.param(
            {"secret_key": SECRET, "cookie_samesite": "none", "cookie_secure": "false"}, id="samesite"
        ),
        pytest.param({"secret_key": SECRET, "secret_key_fallbacks": "short-fallback-key"}, id="fallback"),
        pytest.param({"secret_key": SHORT_REAL_KEY}, id="short-key"),
    ],
)
def test_config_errors_never_echo_secret_keys(values: dict[str, str]) -> None:
    """A start-up error lands in logs and CI output: it must not carry any part of a key."""
    message = str(config_error(values))
    for secret in (SECRET, "short-fallback-key", SHORT_REAL_KEY):
        assert secret[:6] not in message


# -- cookie attributes and limits ------------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    [
        pytest.param("sess;ion", id="semicolon"),
        pytest.param("sess=ion", id="equals"),
        pytest.param("sess ion", id="space"),
        pytest.param("session\r", id="cr"),
        pytest.param("session\n", id="lf"),
        pytest.param("session\r\nSet-Cookie: x", id="crlf-injection"),
        pytest.param("séssion", id="non-ascii"),
        pytest.param("", id="empty"),
        pytest.param('"session"', id="quoted"),
    ],
)
def test_invalid_cookie_name_is_rejected(monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    error = config_error({"secret_key": SECRET, "cookie_name": name})
    assert "cookie_name= (SESSION_COOKIE_NAME)" in str(error)
    if name == "":
        return  # an empty SESSION_COOKIE_NAME means "not set": see the empty-value tests
    monkeypatch.setenv("SESSION_SECRET_KEY", SECRET)
    monkeypatch.setenv("SESSION_COOKIE_NAME", name)
    with pytest.raises(SessionConfigError, match="SESSION_COOKIE_NAME"):
        SessionManager(UserSession)


def test_a_4kb_token_cookie_name_is_accepted() -> None:
    """The name rule is RFC 6265's token grammar, with no length limit of its own."""
    name = "s" * 4096
    assert SessionSettings(secret_key=SECRET, cookie_name=name).cookie_name == name


def test_valid_token_characters_in_cookie_name_are_accepted() -> None:
    name = "__Host-my.app_sid!#$%&'*+-^`|~9"
    assert SessionSettings(secret_key=SECRET, cookie_name=name).cookie_name == name


UNSAFE = [
    pytest.param(
        {"SESSION_COOKIE_NAME": "__Host-sid", "SESSION_COOKIE_DOMAIN": "example.com"},
        "__Host-",
        id="host-domain",
    ),
    pytest.param(
        {"SESSION_COOKIE_NAME": "__Host-sid", "SESSION_COOKIE_PATH": "/app"}, "__Host-", id="host-path"
    ),
    pytest.param(
        {"SESSION_COOKIE_NAME": "__Host-sid", "SESSION_COOKIE_SECURE": "false"},
        "__Host-",
        id="host-insecure",
    ),
    pytest.param(
        {"SESSION_COOKIE_NAME": "__Secure-sid", "SESSION_COOKIE_SECURE": "false"},
        "__Secure-",
        id="secure-prefix",
    ),
    pytest.param(
        {"SESSION_COOKIE_SAMESITE": "None", "SESSION_COOKIE_SECURE": "false"},
        "SameSite=None",
        id="samesite-none",
    ),
    pytest.param(
        {"SESSION_COOKIE_PARTITIONED": "true", "SESSION_COOKIE_SECURE": "false"},
        "SESSION_COOKIE_PARTITIONED=true requires SESSION_COOKIE_SECURE=true",
        id="partitioned-insecure",
    ),
    pytest.param(
        {"SESSION_IDLE_TIMEOUT": "7200", "SESSION_MAX_AGE": "3600"}, "SESSION_IDLE_TIMEOUT", id="idle>max"
    ),
    pytest.param({"SESSION_IDLE_TIMEOUT": "0"}, "SESSION_IDLE_TIMEOUT", id="idle-zero"),
    pytest.param({"SESSION_IDLE_TIMEOUT": "-60"}, "SESSION_IDLE_TIMEOUT", id="idle-negative"),
    pytest.param({"SESSION_MAX_AGE": "0"}, "SESSION_MAX_AGE", id="max-age-zero"),
    pytest.param({"SESSION_MAX_AGE": "-1"}, "SESSION_MAX_AGE", id="max-age-negative"),
    pytest.param({"SESSION_MAX_SIZE": "0"}, "SESSION_MAX_SIZE", id="max-size-zero"),
    pytest.param({"SESSION_MAX_SIZE": "-1"}, "SESSION_MAX_SIZE", id="max-size-negative"),
    pytest.param({"SESSION_CONCURRENCY": "optimistic"}, "SESSION_CONCURRENCY", id="concurrency"),
    pytest.param({"SESSION_COOKIE_SAMESITE": "sometimes"}, "SESSION_COOKIE_SAMESITE", id="samesite-value"),
    pytest.param({"SESSION_ON_STORE_ERROR": "ignore"}, "SESSION_ON_STORE_ERROR", id="on-store-error"),
    pytest.param({"SESSION_COOKIE_PATH": "app"}, "SESSION_COOKIE_PATH", id="path-relative"),
    pytest.param({"SESSION_COOKIE_PATH": "/a;b"}, "SESSION_COOKIE_PATH", id="path-semicolon"),
    pytest.param({"SESSION_COOKIE_DOMAIN": "exa mple.com"}, "SESSION_COOKIE_DOMAIN", id="domain-space"),
    pytest.param({"SESSION_STORE_TIMEOUT": "0"}, "SESSION_STORE_TIMEOUT", id="store-timeout"),
    pytest.param(
        {"SESSION_STORE_WAIT_REPLICAS": "-1"}, "SESSION_STORE_WAIT_REPLICAS", id="wait-replicas-negative"
    ),
]


@pytest.mark.parametrize(("env", "fragment"), UNSAFE)
def test_unsafe_setting_from_keywords_is_rejected(env: dict[str, str], fragment: str) -> None:
    values = {"secret_key": SECRET} | {name.removeprefix("SESSION_").lower(): v for name, v in env.items()}
    assert fragment in str(config_error(values))


@pytest.mark.parametrize(("env", "fragment"), UNSAFE)
def test_unsafe_setting_from_env_is_rejected_by_manager(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], fragment: str
) -> None:
    monkeypatch.setenv("SESSION_SECRET_KEY", SECRET)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(SessionConfigError, match=fragment) as info:
        SessionManager(UserSession)
    assert isinstance(info.value, ValueError)


def test_host_prefix_with_its_requirements_is_accepted() -> None:
    settings = SessionSettings(secret_key=SECRET, cookie_name="__Host-sid")
    assert settings.cookie_name == "__Host-sid"


def test_samesite_none_with_secure_is_accepted() -> None:
    assert SessionSettings(secret_key=SECRET, cookie_samesite="none").cookie_samesite == "none"


def test_idle_timeout_equal_to_max_age_is_accepted() -> None:
    assert SessionSettings(secret_key=SECRET, max_age=600, idle_timeout=600).idle_timeout == 600


# -- the store URL and the model -------------------------------------------------------------------


def test_unknown_store_url_scheme_fails_at_manager_construction() -> None:
    settings = make_settings(store_url="mysql://admin:hunter2pw@db.internal/1")
    with pytest.raises(SessionConfigError, match="mysql") as info:
        SessionManager(UserSession, settings=settings)
    assert isinstance(info.value, ValueError)
    assert "hunter2pw" not in str(info.value)


def test_unknown_store_url_scheme_from_env_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SESSION_SECRET_KEY", SECRET)
    monkeypatch.setenv("SESSION_STORE_URL", "mongodb://localhost")
    with pytest.raises(SessionConfigError, match="mongodb"):
        SessionManager(UserSession)


def test_malformed_memory_store_url_fails() -> None:
    with pytest.raises(SessionConfigError, match="max_entries"):
        SessionManager(UserSession, settings=make_settings(store_url="memory://?max_entries=lots"))


def test_model_with_a_required_field_is_rejected_naming_the_field() -> None:
    class Strict(BaseModel):
        user_id: int
        cart: list[str] = []

    with pytest.raises(SessionConfigError, match="user_id") as info:
        SessionManager(Strict, settings=make_settings(), store=MemoryStore())
    assert isinstance(info.value, ValueError)
    assert "cart" not in str(info.value)


@dataclasses.dataclass
class NotAModel:
    user_id: int | None = None


@pytest.mark.parametrize("model", [NotAModel, dict, UserSession()], ids=["dataclass", "dict", "instance"])
def test_a_model_that_is_not_a_basemodel_class_is_rejected(model: object) -> None:
    with pytest.raises(SessionConfigError, match="BaseModel"):
        SessionManager(model, settings=make_settings(), store=MemoryStore())  # type: ignore[arg-type]


# -- a store passed in, and the SESSION_STORE_* settings that configure a store the manager builds --


def _doors() -> list[str]:
    return ["typed", "classic", "sanic"]


def _build(door: str, settings: SessionSettings, store: object) -> None:
    """Set up ``door`` with ``settings`` and a store passed in, as a user's app does."""
    if door == "typed":
        SessionManager(UserSession, settings=settings, store=store)  # type: ignore[arg-type]
    elif door == "classic":
        from fastapi_sessions import SessionMiddleware

        SessionMiddleware(lambda *_: None, settings=settings, backend=store)  # type: ignore[arg-type]
    else:
        pytest.importorskip("sanic")
        from fastapi_sessions.sanic import install

        from .sanic_support import new_app

        install(new_app(), settings=settings, backend=store)  # type: ignore[arg-type]


@pytest.mark.parametrize("door", _doors())
@pytest.mark.parametrize(
    ("field", "value", "variable"),
    [("store_prefix", "shop:", "SESSION_STORE_PREFIX"), ("store_timeout", 2.5, "SESSION_STORE_TIMEOUT")],
)
def test_a_store_setting_that_a_store_passed_in_would_ignore_fails_at_start_up(
    door: str, field: str, value: object, variable: str
) -> None:
    """Two apps sharing a Redis must not share sessions because one's SESSION_STORE_PREFIX went unheard."""
    with pytest.raises(SessionConfigError, match=variable) as caught:
        _build(door, make_settings(**{field: value}), MemoryStore())
    assert "MemoryStore" in str(caught.value)


@pytest.mark.parametrize("door", _doors())
def test_a_store_passed_in_runs_with_settings_that_leave_the_store_alone_or_agree_with_it(
    door: str,
) -> None:
    _build(
        door, make_settings(store_url="memory://?max_entries=5"), MemoryStore()
    )  # URL: documented as ignored
    pytest.importorskip("redis")
    from fastapi_sessions.stores.redis import RedisStore

    store = RedisStore.from_url("redis://127.0.0.1:1/0", prefix="shop:", timeout=2.5)
    _build(door, make_settings(store_prefix="shop:", store_timeout=2.5), store)
    with pytest.raises(SessionConfigError, match=r"SESSION_STORE_PREFIX.*'shop:'"):
        _build(door, make_settings(store_prefix="other:"), store)


# -- empty values and error messages that name the variable ----------------------------------------

FIELDS = sorted(SessionSettings.model_fields)


@pytest.mark.parametrize("where", ["environment", "dotenv"])
@pytest.mark.parametrize("field", FIELDS)
def test_an_empty_value_means_not_set_for_every_setting(
    monkeypatch: pytest.MonkeyPatch, clean_env: Path, field: str, where: str
) -> None:
    """A template that renders an unset ${VAR} as SESSION_X= gets the default, never "off" or an error."""
    name = f"SESSION_{field.upper()}"
    if where == "environment":
        monkeypatch.setenv(name, "")
    else:
        (clean_env / ".env").write_text(f"{name}=\n", encoding="utf-8")
    if field == "secret_key":  # the one setting without a default: empty is "not set", an error
        with pytest.raises(SessionConfigError, match="SESSION_SECRET_KEY is not set"):
            SessionSettings()
        return
    monkeypatch.setenv("SESSION_SECRET_KEY", SECRET)
    assert SessionSettings() == SessionSettings(secret_key=SECRET)


def test_an_empty_idle_timeout_under_a_max_age_keeps_the_default_not_a_switched_off_timeout(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SESSION_SECRET_KEY", SECRET)
    monkeypatch.setenv("SESSION_IDLE_TIMEOUT", "")
    monkeypatch.setenv("SESSION_MAX_AGE", "")
    settings = SessionSettings()
    assert settings.max_age == 14 * 24 * 3600
    assert settings.idle_timeout is None  # the default: no idle timeout, as when the variable is unset


@pytest.mark.parametrize("word", ["none", "None", "NONE", "off", " off "])
def test_the_idle_timeout_is_switched_off_by_an_explicit_word(
    monkeypatch: pytest.MonkeyPatch, word: str
) -> None:
    monkeypatch.setenv("SESSION_SECRET_KEY", SECRET)
    monkeypatch.setenv("SESSION_IDLE_TIMEOUT", word)
    assert SessionSettings().idle_timeout is None
    assert SessionSettings(idle_timeout=word).idle_timeout is None


# A value each setting refuses from the environment; None where no value read from the environment
# can be wrong (an empty prefix is "not set", and any other string is a prefix).
BAD_FROM_ENV: dict[str, str | None] = {
    "secret_key": "too-short",
    "secret_key_fallbacks": '["unterminated',
    "cookie_name": "sess ion",
    "max_age": "two weeks",
    "idle_timeout": "0",
    "cookie_secure": "maybe",
    "cookie_httponly": "sometimes",
    "cookie_samesite": "loose",
    "cookie_domain": "exa mple.com",
    "cookie_path": "app",
    "cookie_partitioned": "sometimes",
    "store_url": "127.0.0.1:6379",
    "store_prefix": None,
    "store_timeout": "-1",
    "store_wait_replicas": "-1",
    "on_store_error": "ignore",
    "max_size": "64k",
    "concurrency": "optimistic",
    "rotate_interval": "0",
    "rotate_grace": "-5",
    "record_ip": "perhaps",
    "encryption_keys": "not-a-key",
    "metrics": "sometimes",
}


def test_every_setting_has_a_bad_value_in_the_error_message_test() -> None:
    assert set(BAD_FROM_ENV) == set(SessionSettings.model_fields), "a setting was added: give it one"


@pytest.mark.parametrize("field", [f for f in FIELDS if BAD_FROM_ENV[f] is not None])
def test_an_error_about_a_setting_from_the_environment_names_its_variable(
    monkeypatch: pytest.MonkeyPatch, field: str
) -> None:
    value = BAD_FROM_ENV[field]
    assert value is not None
    monkeypatch.setenv("SESSION_SECRET_KEY", SECRET)
    monkeypatch.setenv(f"SESSION_{field.upper()}", value)
    with pytest.raises(SessionConfigError) as caught:
        SessionManager(UserSession)
    message = str(caught.value)
    assert f"SESSION_{field.upper()}" in message
    assert f"{field}=" not in message, "a value from the environment is named by its variable"
    assert f"\n- {field}" not in message


def test_an_error_about_a_value_passed_in_code_names_the_keyword_and_the_variable() -> None:
    message = str(config_error({"secret_key": SECRET, "max_age": "0"}))
    assert "max_age= (SESSION_MAX_AGE): Input should be greater than 0" in message


def test_an_error_about_a_middleware_keyword_names_that_keyword_and_the_variable() -> None:
    from fastapi import FastAPI

    from fastapi_sessions import SessionMiddleware

    with pytest.raises(SessionConfigError, match=r"https_only= \(SESSION_COOKIE_SECURE\)"):
        SessionMiddleware(FastAPI(), secret_key=SECRET, https_only="maybe")


@pytest.mark.parametrize(
    "url", ["127.0.0.1:6379", "localhost", "mongodb://localhost", "mysql://admin:hunter2pw@db/1"]
)
def test_a_store_url_that_is_no_store_url_says_what_one_looks_like(url: str) -> None:
    with pytest.raises(SessionConfigError) as caught:
        SessionManager(UserSession, settings=make_settings(store_url=url))
    message = str(caught.value)
    assert "SESSION_STORE_URL must be a URL such as" in message
    for example in ("memory://", "redis://localhost:6379/0", "rediss://", "unix://"):
        assert example in message
    assert "hunter2pw" not in message


def test_a_malformed_memory_url_names_the_variable() -> None:
    with pytest.raises(SessionConfigError, match=r"^SESSION_STORE_URL: .*max_entries"):
        SessionManager(UserSession, settings=make_settings(store_url="memory://?max_entries=lots"))


def test_a_rotation_grace_not_shorter_than_the_interval_is_refused_naming_both_variables() -> None:
    with pytest.raises(SessionConfigError) as caught:
        SessionSettings(secret_key=SECRET, rotate_interval=60, rotate_grace=60)
    assert "SESSION_ROTATE_GRACE (60s) must be shorter than SESSION_ROTATE_INTERVAL (60s)" in str(
        caught.value
    )


@pytest.mark.parametrize("word", ["none", "OFF", " None "])
def test_rotation_is_switched_off_by_an_explicit_word(monkeypatch: pytest.MonkeyPatch, word: str) -> None:
    monkeypatch.setenv("SESSION_SECRET_KEY", SECRET)
    monkeypatch.setenv("SESSION_ROTATE_INTERVAL", word)
    assert SessionSettings().rotate_interval is None


def test_an_empty_rotation_interval_means_not_set(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SESSION_SECRET_KEY", SECRET)
    monkeypatch.setenv("SESSION_ROTATE_INTERVAL", "")
    assert SessionSettings().rotate_interval is None
