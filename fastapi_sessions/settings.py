"""All configuration, read from ``SESSION_*`` environment variables (and ``.env``) by pydantic-settings.

Every inconsistency that would make sessions unsafe or broken fails here, when the settings are built,
so an app never starts with a session set-up that cannot work.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from .encryption import decode_key
from .exceptions import SessionConfigError

__all__ = ["SessionSettings", "explain", "settings_from", "variable"]

#: How to make a good key; quoted by every key error.
KEY_HINT = (
    "Generate one with: fastapi-sessions secret (or python -c "
    '"import secrets; print(secrets.token_urlsafe(32))") and set it as SESSION_SECRET_KEY.'
)
MIN_KEY_LENGTH = 32
# A random key of 32+ characters has far more (token_hex: ~14, token_urlsafe: ~30).
_MIN_DISTINCT = 8
# Values copied from tutorials and templates; a key equal to one of them is public.
_WELL_KNOWN_KEYS = frozenset(
    {
        "changeme",
        "change-me",
        "changethis",
        "secret",
        "secret-key",
        "secret_key",
        "secretkey",
        "mysecret",
        "mysecretkey",
        "your-secret-key",
        "your_secret_key",
        "yoursecretkey",
        "your-secret-key-here",
        "your-super-secret-key",  # the article's placeholder
        "your-super-secret-key-here",
        "my-super-secret-key",
        "supersecret",
        "super-secret-key",
        "development",
        "default",
        "password",
        "insecure",
        "django-insecure",
        "please-change-me",
        "replace-me",
        "notsecret",
        "test",
        "dev",
        # FastAPI's OAuth2/JWT tutorial key, pasted into many apps:
        "09d25e094faa6ca2556c818166b7a9563b93f7099f6f0f4caa6cf63b88e8d3e7",
        "your-secret-key-change-this-in-production",
        "please-change-this-secret-key-in-production",
        "change-this-to-a-long-random-secret-key",
    }
)
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")  # RFC 6265 cookie-name (RFC 7230 token)
_DOMAIN = re.compile(r"\.?[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9-]{1,63})*")
_PATH = re.compile(r"/[\x21-\x3a\x3c-\x7e]*")  # RFC 6265 path-value: no CTLs, no ';', no spaces


# The words that switch SESSION_IDLE_TIMEOUT off explicitly (an empty value means "not set").
_OFF = frozenset({"none", "off"})
# Said after a field's error, where the fix is not obvious from pydantic's message.
_HINTS = {
    "idle_timeout": "Give a number of seconds, or none for no idle timeout.",
    "rotate_interval": "Give a number of seconds, or none for no automatic rotation.",
    "secret_key_fallbacks": 'Give a JSON list (["key1", "key2"]) or a comma-separated list.',
}


def variable(field: str) -> str:
    """The environment variable a setting is read from: ``SESSION_`` + the field name in upper case."""
    return f"SESSION_{field.upper()}"


def explain(exc: ValidationError, keywords: Mapping[str, str]) -> str:
    """``exc`` as a message that names each setting by its environment variable.

    ``keywords`` maps the fields given in code to the keyword they were given as (a value passed
    in code wins over the environment, so the error is about that keyword). Values are never
    quoted by pydantic here (``hide_input_in_errors``): a key must not reach a log.
    """
    lines = []
    for error in exc.errors():
        message = error["msg"].removeprefix("Value error, ")
        field = str(error["loc"][0]) if error["loc"] else None
        if field is None:  # a rule between several settings; its message names them
            lines.append(f"- {message}")
            continue
        where = variable(field)
        if field in keywords:
            where = f"{keywords[field]}= ({where})"
        hint = _HINTS.get(field)
        lines.append(f"- {where}: {message}{'. ' + hint if hint else ''}")
    return "Invalid session settings:\n" + "\n".join(lines)


def _normalise(key: str) -> str:
    return re.sub(r"[^a-z0-9]", "", key.lower())


_WELL_KNOWN = frozenset(_normalise(k) for k in _WELL_KNOWN_KEYS)


def _check_key(key: str, what: str) -> None:
    if len(key) < MIN_KEY_LENGTH:
        raise ValueError(
            f"{what} must be at least {MIN_KEY_LENGTH} characters (got {len(key)}). {KEY_HINT}"
        )
    # "changeme" padded to length ("changeme000...", "--changeme--...") is still "changeme".
    if _normalise(key) in _WELL_KNOWN or _normalise(re.sub(r"(.)\1{3,}", "", key)) in _WELL_KNOWN:
        raise ValueError(f"{what} is a well-known example value, not a secret. {KEY_HINT}")
    if len(set(key)) < _MIN_DISTINCT:
        raise ValueError(f"{what} has too few distinct characters to be random. {KEY_HINT}")


class SessionSettings(BaseSettings):
    """Session configuration. Each field is read from ``SESSION_<FIELD NAME IN UPPER CASE>``."""

    model_config = SettingsConfigDict(
        env_prefix="SESSION_",
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        frozen=True,
        hide_input_in_errors=True,  # errors must never print a key
        # SESSION_X= (empty, as a template renders an unset ${VAR}) means "not set": the default
        # applies, for every setting alike. Switching the idle timeout off takes the word "none".
        env_ignore_empty=True,
    )

    secret_key: SecretStr | None = Field(
        default=None,
        description="Signs session cookies. Required, at least 32 random characters.",
    )
    secret_key_fallbacks: Annotated[list[SecretStr], NoDecode] = Field(
        default_factory=list,
        description="Older keys still accepted (JSON list or comma-separated), for key rotation.",
    )
    cookie_name: str = Field(default="session", description="Cookie name (RFC 6265 token).")
    max_age: int = Field(
        default=14 * 24 * 3600, gt=0, description="Absolute lifetime of a session, in seconds."
    )
    idle_timeout: int | None = Field(
        default=None,
        gt=0,
        description="Sliding idle window in seconds; unset or 'none' means no idle timeout.",
    )
    cookie_secure: bool = Field(default=True, description="Send the cookie over HTTPS only.")
    cookie_httponly: bool = Field(default=True, description="Hide the cookie from JavaScript.")
    cookie_samesite: Literal["lax", "strict", "none"] = Field(
        default="lax", description="The SameSite attribute."
    )
    cookie_domain: str | None = Field(default=None, description="The Domain attribute.")
    cookie_path: str = Field(default="/", description="The Path attribute.")
    cookie_partitioned: bool = Field(
        default=False,
        description="Add the Partitioned attribute (CHIPS): a third-party cookie kept per top-level site.",
    )
    store_url: str = Field(default="memory://", description="Which store to create.")
    store_prefix: str = Field(
        default="session:",
        min_length=1,
        description=(
            "Prefix of every store key (Redis, PostgreSQL); apps sharing a server need different ones."
        ),
    )
    store_timeout: float = Field(
        default=1.0, gt=0, description="Deadline in seconds for each store operation (Redis, PostgreSQL)."
    )
    store_wait_replicas: int = Field(
        default=0,
        ge=0,
        description="Replicas that must confirm each session write before it is acknowledged (Redis).",
    )
    on_store_error: Literal["fail", "degrade"] = Field(
        default="fail",
        description="Store down: answer 503 ('fail'), or serve an empty read-only session ('degrade').",
    )
    max_size: int = Field(default=64 * 1024, gt=0, description="Largest serialized session, in bytes.")
    concurrency: Literal["last_write_wins", "version_check"] = Field(
        default="last_write_wins",
        description="Same-field conflicts: the last writer wins, or the later writer gets a 409.",
    )
    rotate_interval: int | None = Field(
        default=None,
        gt=0,
        description="Give a session in use a new ID every this many seconds; unset or 'none': never.",
    )
    rotate_grace: int = Field(
        default=30,
        gt=0,
        description="Seconds the previous ID still reaches the session after a rotation.",
    )
    record_ip: bool = Field(
        default=False,
        description="Record the client's IP address with each login (personal data: off by default).",
    )
    encryption_keys: Annotated[list[SecretStr], NoDecode] = Field(
        default_factory=list,
        description="Encrypt stored session values (AES-256-GCM) with these urlsafe-base64 keys, newest "
        "first: the newest encrypts, all decrypt. Needs the [crypto] extra.",
    )
    metrics: Literal["auto", "on", "off"] = Field(
        default="auto",
        description="OpenTelemetry metrics: 'auto' records where the [otel] extra is installed, 'on' "
        "requires it, 'off' never records.",
    )

    def __init__(self, **values: Any) -> None:
        try:
            super().__init__(**values)
        except ValidationError as exc:
            raise SessionConfigError(explain(exc, {name: name for name in values})) from exc

    @field_validator("idle_timeout", "rotate_interval", mode="before")
    @classmethod
    def _none_switches_off(cls, value: object) -> object:
        if isinstance(value, str) and value.strip().lower() in _OFF:
            return None
        return value

    @field_validator("cookie_samesite", mode="before")
    @classmethod
    def _lower_samesite(cls, value: object) -> object:
        return value.lower() if isinstance(value, str) else value

    @field_validator("secret_key_fallbacks", "encryption_keys", mode="before")
    @classmethod
    def _split_fallbacks(cls, value: object) -> object:
        if value is None:
            return []
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("["):
                return json.loads(text)
            return [part.strip() for part in text.split(",") if part.strip()]
        return value

    @field_validator("encryption_keys")
    @classmethod
    def _check_encryption_keys(cls, value: list[SecretStr]) -> list[SecretStr]:
        keys = [decode_key(key.get_secret_value(), f"key {index}") for index, key in enumerate(value)]
        if len(set(keys)) != len(keys):
            raise ValueError("lists one key twice; list each key once, newest first.")
        return value

    @field_validator("cookie_name")
    @classmethod
    def _check_name(cls, value: str) -> str:
        if not _TOKEN.fullmatch(value):
            raise ValueError(
                f"{value!r} is not a valid RFC 6265 cookie name: use letters, digits "
                "and !#$%&'*+-.^_`|~ only (no spaces, ';', '=' or control characters)."
            )
        return value

    @field_validator("cookie_domain")
    @classmethod
    def _check_domain(cls, value: str | None) -> str | None:
        if value is not None and not _DOMAIN.fullmatch(value):
            raise ValueError(f"{value!r} is not a valid host name.")
        return value

    @field_validator("cookie_path")
    @classmethod
    def _check_path(cls, value: str) -> str:
        if not _PATH.fullmatch(value):
            raise ValueError(
                f"{value!r} must start with '/' and hold no spaces, ';' or control characters."
            )
        return value

    @model_validator(mode="after")
    def _check_consistency(self) -> SessionSettings:
        if self.secret_key is None:
            raise ValueError(f"SESSION_SECRET_KEY is not set. {KEY_HINT}")
        _check_key(self.secret_key.get_secret_value(), "SESSION_SECRET_KEY")
        for index, key in enumerate(self.secret_key_fallbacks):
            _check_key(key.get_secret_value(), f"SESSION_SECRET_KEY_FALLBACKS[{index}]")
        if self.cookie_samesite == "none" and not self.cookie_secure:
            raise ValueError("SameSite=None requires SESSION_COOKIE_SECURE=true (browsers drop it).")
        if self.cookie_name.startswith("__Host-") and (
            self.cookie_domain is not None or self.cookie_path != "/" or not self.cookie_secure
        ):
            raise ValueError(
                "A __Host- cookie needs SESSION_COOKIE_SECURE=true, SESSION_COOKIE_PATH=/ "
                "and no SESSION_COOKIE_DOMAIN."
            )
        if self.cookie_partitioned and not self.cookie_secure:
            raise ValueError(
                "SESSION_COOKIE_PARTITIONED=true requires SESSION_COOKIE_SECURE=true (browsers drop a "
                "Partitioned cookie that is not Secure)."
            )
        if self.cookie_name.startswith("__Secure-") and not self.cookie_secure:
            raise ValueError("A __Secure- cookie needs SESSION_COOKIE_SECURE=true.")
        if self.idle_timeout is not None and self.idle_timeout > self.max_age:
            raise ValueError(
                f"SESSION_IDLE_TIMEOUT ({self.idle_timeout}s) is longer than SESSION_MAX_AGE "
                f"({self.max_age}s); the idle window must fit in the absolute lifetime."
            )
        if self.rotate_interval is not None and not self.rotate_grace < self.rotate_interval:
            raise ValueError(
                f"SESSION_ROTATE_GRACE ({self.rotate_grace}s) must be shorter than "
                f"SESSION_ROTATE_INTERVAL ({self.rotate_interval}s): the previous ID must stop "
                "working before the next rotation. Lower SESSION_ROTATE_GRACE or raise "
                "SESSION_ROTATE_INTERVAL."
            )
        return self

    def signing_keys(self) -> list[str]:
        """Every accepted key, oldest first: the fallbacks, then the current key (which signs)."""
        assert self.secret_key is not None  # noqa: S101 - guaranteed by _check_consistency
        return [k.get_secret_value() for k in self.secret_key_fallbacks] + [
            self.secret_key.get_secret_value()
        ]

    def encryption_key_bytes(self) -> list[bytes]:
        """The encryption keys' bytes, newest first; empty when encryption at rest is off."""
        keys = self.encryption_keys
        return [decode_key(key.get_secret_value(), "SESSION_ENCRYPTION_KEYS") for key in keys]


# Keywords the classic doors accept besides the field names: the article's and Starlette's
# SessionMiddleware's, so code written for either runs with its keywords as they are.
OPTION_ALIASES = {
    "cookie_https_only": "cookie_secure",
    "https_only": "cookie_secure",
    "session_cookie": "cookie_name",
    "same_site": "cookie_samesite",
    "path": "cookie_path",
    "domain": "cookie_domain",
}


def settings_from(
    settings: SessionSettings | None, options: Mapping[str, Any], where: str
) -> SessionSettings:
    """The settings a classic door was given: ``settings``, or keyword options over ``SESSION_*``.

    ``options`` are ``SessionSettings`` field names or the aliases above; anything else is refused by
    name, since a misspelt option silently ignored would leave a default (say, a Secure cookie) in
    place without a word.
    """
    if settings is not None:
        if options:
            raise SessionConfigError(
                f"{where} got settings= and keyword options ({', '.join(sorted(options))}); pass one "
                "or the other (SessionSettings(...) takes every option by its name)."
            )
        return settings
    values: dict[str, Any] = {}
    keywords: dict[str, str] = {}
    for name, value in options.items():
        field = OPTION_ALIASES.get(name, name)
        if field not in SessionSettings.model_fields:
            known = sorted({*SessionSettings.model_fields, *OPTION_ALIASES})
            raise SessionConfigError(
                f"{where} got an unknown option {name!r}; the options are: {', '.join(known)}."
            )
        if field in values:
            raise SessionConfigError(f"{where} got {field} twice (as {name!r} and under another name).")
        values[field] = value
        keywords[field] = name
    try:
        return SessionSettings(**values)
    except SessionConfigError as exc:
        # Named by the keyword the door was given (https_only=), not the field it stands for.
        if isinstance(exc.__cause__, ValidationError):
            raise SessionConfigError(explain(exc.__cause__, keywords)) from exc.__cause__
        raise
