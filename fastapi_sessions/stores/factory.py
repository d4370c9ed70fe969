"""Building the store ``SESSION_STORE_URL`` names; checking the settings against a store passed in."""

from __future__ import annotations

from ..clock import Clock
from ..exceptions import SessionConfigError
from ..settings import SessionSettings
from .base import SessionStore
from .memory import MemoryStore

__all__ = ["check_store_settings", "store_from_settings"]

#: What SESSION_STORE_URL may look like; every scheme the settings can build a store from.
URL_EXAMPLES = (
    "memory://, memory://?max_entries=100000, redis://localhost:6379/0, "
    "rediss://user:password@host:6380/0, unix:///run/redis.sock?db=0 or postgresql://user@host/db"
)

# The settings that configure a store the manager builds, and the store attribute each one sets.
_STORE_SETTINGS = (("store_prefix", "prefix"), ("store_timeout", "timeout"))


def store_from_settings(settings: SessionSettings, *, clock: Clock | None = None) -> SessionStore:
    """The store ``SESSION_STORE_URL`` names: ``memory://`` or ``redis://``/``rediss://``/``unix://``."""
    url = settings.store_url
    scheme = url.partition("://")[0].lower()
    if scheme == "memory":
        if settings.store_wait_replicas:
            raise SessionConfigError(
                f"SESSION_STORE_WAIT_REPLICAS={settings.store_wait_replicas} needs a Redis master with "
                "replicas, and SESSION_STORE_URL names the in-memory store, which has none: set "
                "SESSION_STORE_URL to your Redis master, or SESSION_STORE_WAIT_REPLICAS to 0."
            )
        try:
            return MemoryStore.from_url(url, clock=clock)
        except SessionConfigError as exc:
            raise SessionConfigError(f"SESSION_STORE_URL: {exc}") from exc
    if scheme in {"redis", "rediss", "unix"}:
        from .redis import RedisStore  # imported here: the core never imports redis

        try:
            return RedisStore.from_url(
                url,
                prefix=settings.store_prefix,
                timeout=settings.store_timeout,
                wait_replicas=settings.store_wait_replicas,
                built_from_settings=True,
            )
        except SessionConfigError as exc:
            if "SESSION_" in str(exc):  # names its setting already
                raise
            raise SessionConfigError(f"SESSION_STORE_URL: {exc}") from exc
    if scheme in {"postgresql", "postgres"}:
        return _postgres_store(settings, clock)
    where = f"{scheme}://...@{url.rsplit('@', 1)[1]}" if "@" in url else url  # never a password
    what = f"no scheme in {where!r}" if "://" not in url else f"unknown scheme {scheme!r} in {where!r}"
    raise SessionConfigError(
        f"SESSION_STORE_URL must be a URL such as {URL_EXAMPLES}; got {what}. redis://, rediss:// "
        "and unix:// need pip install 'pselfastapise-async[redis]', postgresql:// needs "
        "pip install 'pselfastapise-async[postgres]'; for Sentinel, Cluster or a "
        "custom store, build the store and pass store=... to SessionManager."
    )


def _postgres_store(settings: SessionSettings, clock: Clock | None) -> SessionStore:
    """The PostgreSQL store of ``postgresql://``/``postgres://``, on the manager's clock."""
    if settings.store_wait_replicas:
        raise SessionConfigError(
            f"SESSION_STORE_WAIT_REPLICAS={settings.store_wait_replicas} is for Redis replicas, and "
            "SESSION_STORE_URL names PostgreSQL: set SESSION_STORE_WAIT_REPLICAS to 0 and use "
            "PostgreSQL's own synchronous replication (synchronous_standby_names) instead."
        )
    from .postgres import PostgresStore  # imported here: the core never imports asyncpg

    try:
        return PostgresStore.from_url(
            settings.store_url,
            prefix=settings.store_prefix,
            timeout=settings.store_timeout,
            clock=clock,
            built_from_settings=True,
        )
    except SessionConfigError as exc:
        raise SessionConfigError(f"SESSION_STORE_URL: {exc}") from exc


def check_store_settings(settings: SessionSettings, store: object) -> None:
    """Refuse a ``SESSION_STORE_PREFIX`` or ``SESSION_STORE_TIMEOUT`` that ``store``, passed in by the
    app, would silently ignore.

    A store passed in is configured where it is built (``RedisStore(client, prefix=..., timeout=...)``);
    the manager cannot change it. A prefix that went unheard would let two apps on one Redis share
    their sessions, so a setting made explicitly (in the environment, ``.env`` or ``SessionSettings``)
    must agree with the store's own value, or start-up fails. ``SESSION_STORE_URL`` stays ignored,
    as documented: ``store=`` is the choice of store.
    """
    for field, attribute in _STORE_SETTINGS:
        if field not in settings.model_fields_set:
            continue
        wanted, own = getattr(settings, field), getattr(store, attribute, None)
        if wanted == own:
            continue
        variable, kind = f"SESSION_{field.upper()}", type(store).__name__
        has = f"keeps its own {attribute}, {own!r}" if own is not None else f"has no {attribute} to set"
        raise SessionConfigError(
            f"{variable}={wanted!r} is set, but the store passed in ({kind}) {has}, so the setting "
            f"would be ignored. Set the {attribute} where the store is built (e.g. "
            f"RedisStore(client, {attribute}=...)) and unset {variable}, or pass no store and let "
            "SESSION_STORE_URL build one."
        )
