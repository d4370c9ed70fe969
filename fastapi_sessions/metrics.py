"""OpenTelemetry metrics (the ``[otel]`` extra, ``SESSION_METRICS``): what the sessions and the store do.

The library uses only the OpenTelemetry API; the app sets up a ``MeterProvider`` (the SDK) and an
exporter. This is the only module that imports ``opentelemetry``, and only when metrics are on: with
the extra absent or ``SESSION_METRICS=off``, nothing is imported, recorded or wrapped.

A request pays an integer increment per count: counts are plain integers that observable counters
report when a reader collects. Only a store call's duration is recorded as it happens, since a
histogram cannot be observed. The meter comes from the global provider: set before the app is
built, its instruments are used directly; set later, OpenTelemetry's proxies start forwarding to it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Literal, cast

from .exceptions import SessionConflictError, SessionStoreError
from .stores.base import SessionStore
from .stores.metered import OPERATION, MeteredStore, ReportsDrops

if TYPE_CHECKING:
    from opentelemetry.metrics import CallbackOptions, Histogram, Meter, Observation

    Read = Callable[[], Iterable[Observation]]
    """What an observable counter reports when a reader collects."""

__all__ = ["INSTALL", "METER_NAME", "MetricsMode", "SessionMetrics", "session_metrics"]

MetricsMode = Literal["auto", "on", "off"]
"""``SESSION_METRICS``: ``auto`` records when OpenTelemetry is installed, ``on`` requires it."""
METER_NAME = "fastapi_sessions"
"""The meter (instrumentation scope) every instrument belongs to, and the prefix of their names."""
INSTALL = "pip install 'pselfastapise-async[otel]'"
ERROR_TYPE = "error.type"
"""OpenTelemetry's attribute for what failed: the exception's class, fully qualified."""
PHASE = "fastapi_sessions.phase"
"""Where a 503 came from: the ``load`` of the session, or its ``commit``."""
REASON = "fastapi_sessions.reason"
"""Why the store dropped sessions: ``capacity`` (evicted) or ``expired`` (reclaimed)."""
# Store calls take microseconds in memory and about a millisecond over a network; the default
# boundaries (0, 5, 10, 25... meant for milliseconds) would put every call in the first bucket.
DURATION_BOUNDARIES = (
    0.0001,
    0.00025,
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
)

_MAX_WRAPPERS = 8
"""How deep under wrappers a store that reports its drops is looked for."""
_ABSENT = object()

_shared: SessionMetrics | None = None


def session_metrics(mode: MetricsMode) -> SessionMetrics | None:
    """The process' metrics for ``SESSION_METRICS=mode``: None when off, or when ``auto`` finds no
    OpenTelemetry. The instruments are made once, by the first session door built with metrics on."""
    global _shared  # one set of instruments per process, as there is one global provider
    if mode == "off":
        return None
    if _shared is None:
        try:
            from opentelemetry import metrics as otel
        except ImportError as exc:
            if mode == "on":
                raise ImportError(
                    f"SESSION_METRICS=on needs the OpenTelemetry API: {INSTALL} (or set "
                    "SESSION_METRICS=auto to record only where it is installed)."
                ) from exc
            return None
        from . import __version__

        _shared = SessionMetrics(otel.get_meter(METER_NAME, __version__))
    return _shared


def _reporting_drops(store: object) -> ReportsDrops | None:
    """The store that reports the sessions it drops, found under the wrappers around it (an
    ``EncryptedStore``, a ``RecordingStore``: each names the store it wraps ``inner``), if any.

    Each object's own attributes only: a wrapper that forwards the rest (``__getattr__``) would
    otherwise seem to have ``on_dropped``, and take the callback in the store's place.
    """
    for _ in range(_MAX_WRAPPERS):
        if _own(store, "on_dropped") is not _ABSENT:
            return cast(ReportsDrops, store)
        store = _own(store, "inner")
        if store is _ABSENT:
            return None
    return None


def _own(target: object, name: str) -> object:
    """``target.name`` without its ``__getattr__`` (if any); ``_ABSENT`` when it has none."""
    try:
        return object.__getattribute__(target, name)
    except AttributeError:
        return _ABSENT


def error_type(exc: BaseException) -> str:
    """``error.type`` for ``exc``: its class's qualified name, with the module unless it is a builtin."""
    cls = type(exc)
    return cls.__qualname__ if cls.__module__ == "builtins" else f"{cls.__module__}.{cls.__qualname__}"


class SessionMetrics:
    """The counts of one process, the instruments that report them, and the store call histogram.

    Counts are integers that the engine and the stores add to; they are exact in one event loop (an
    increment is never awaited in the middle). Attributes never hold a session ID, key or user.
    """

    def __init__(self, meter: Meter) -> None:
        self.loaded = 0
        """Stored sessions a request loaded (through its ID, or its previous ID after a rotation)."""
        self.created = 0
        """New sessions written to the store."""
        self.updated = 0
        """Stored sessions rewritten: a change, a new expiry, a regeneration or an ID rotation."""
        self.destroyed = 0
        """Sessions ended on purpose: ``destroy`` (logout), ``revoke``, ``revoke_all``."""
        self.evicted = 0
        """Sessions MemoryStore evicted because it was full."""
        self.expired = 0
        """Expired sessions MemoryStore reclaimed, or PostgresStore's purges removed."""
        self.unavailable_load = 0
        """Requests answered 503 because the store failed while loading the session."""
        self.unavailable_commit = 0
        """Requests answered 503 because the store failed while saving the session."""
        self.degraded = 0
        """Requests served the read-only stand-in for a session the store could not load."""
        self.conflicts = 0
        """Requests answered 409: the session changed or went away under them."""
        self.errors: dict[tuple[str, str], int] = {}
        """Store calls that raised, by (operation, error type)."""
        self.store_duration: Histogram = meter.create_histogram(
            f"{METER_NAME}.store.operation.duration",
            unit="s",
            description="Duration of session store calls, failed ones included (with error.type).",
            explicit_bucket_boundaries_advisory=DURATION_BOUNDARIES,
        )
        from opentelemetry.metrics import Observation

        def counter(name: str, unit: str, description: str, read: Read) -> None:
            def observe(options: CallbackOptions) -> Iterable[Observation]:
                return read()

            meter.create_observable_counter(f"{METER_NAME}.{name}", [observe], unit, description)

        def count(read: Callable[[], int]) -> Read:
            return lambda: [Observation(read())]

        counter("sessions.loaded", "{session}", "Stored sessions loaded.", count(lambda: self.loaded))
        counter("sessions.created", "{session}", "New sessions stored.", count(lambda: self.created))
        counter("sessions.updated", "{session}", "Stored sessions rewritten.", count(lambda: self.updated))
        counter(
            "sessions.destroyed",
            "{session}",
            "Sessions ended by destroy, revoke or revoke_all.",
            count(lambda: self.destroyed),
        )
        counter(
            "sessions.evicted",
            "{session}",
            "Sessions the store dropped on its own: evicted when full, or reclaimed once expired.",
            lambda: [
                Observation(self.evicted, {REASON: "capacity"}),
                Observation(self.expired, {REASON: "expired"}),
            ],
        )
        counter(
            "store.errors",
            "{error}",
            "Session store calls that raised, by operation and error type.",
            lambda: [
                Observation(n, {OPERATION: operation, ERROR_TYPE: kind})
                for (operation, kind), n in list(self.errors.items())
            ],
        )
        counter(
            "responses.unavailable",
            "{response}",
            "Requests answered 503 because the session store failed.",
            lambda: [
                Observation(self.unavailable_load, {PHASE: "load"}),
                Observation(self.unavailable_commit, {PHASE: "commit"}),
            ],
        )
        counter(
            "responses.degraded",
            "{response}",
            "Requests served a read-only empty session because the store failed "
            "(SESSION_ON_STORE_ERROR=degrade).",
            count(lambda: self.degraded),
        )
        counter(
            "responses.conflict",
            "{response}",
            "Requests answered 409: the session changed or went away under them.",
            count(lambda: self.conflicts),
        )

    def timed(self, store: SessionStore) -> SessionStore:
        """``store`` with its calls timed and its failures counted; a store that drops sessions on its
        own (MemoryStore, PostgresStore's purge) reports them."""
        dropping = _reporting_drops(store)
        if dropping is not None:
            dropping.on_dropped = self.dropped
        return MeteredStore(store, self.store_duration.record, self.failed, self.wrote)

    def failed(self, operation: str, exc: BaseException, seconds: float) -> None:
        """Count a store call that raised ``exc`` after ``seconds``."""
        kind = error_type(exc)
        self.store_duration.record(seconds, {OPERATION: operation, ERROR_TYPE: kind})
        key = (operation, kind)
        self.errors[key] = self.errors.get(key, 0) + 1

    def refused(self, exc: SessionConflictError | SessionStoreError) -> None:
        """Count a commit that a door answers 409 (a conflict) or 503 (the store failed)."""
        if isinstance(exc, SessionConflictError):
            self.conflicts += 1
        else:
            self.unavailable_commit += 1

    def wrote(self) -> None:
        """Count a stored session rewritten (an ``update`` or ``rename`` that answered ``OK``)."""
        self.updated += 1

    def dropped(self, reason: Literal["capacity", "expired"], count: int) -> None:
        """Count sessions the store evicted (``capacity``) or reclaimed once expired (``expired``)."""
        if reason == "capacity":
            self.evicted += count
        else:
            self.expired += count
