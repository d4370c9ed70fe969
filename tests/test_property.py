"""Property: no request headers, however malformed, make the session layer answer 5xx or write.

Arbitrary cookie bytes, and arbitrary header lists, are sent as raw ASGI headers to a read-only route
of an app whose store holds one live session. Whatever arrives, the handler sees either that session
(only when its exact cookie value was sent) or an anonymous one, the status is below 500, and the
store is never written to.
"""

# No `from __future__ import annotations`: FastAPI must resolve the local `Session` aliases.

from dataclasses import dataclass
from functools import cache
from typing import Any

import anyio
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from fastapi_sessions.signing import new_session_id
from fastapi_sessions.stores import MemoryStore
from fastapi_sessions.testing import FakeClock

from .test_bad_input import Env, call, make_env

SETTINGS = settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@dataclass
class World:
    env: Env
    cookie: bytes
    live: dict[str, Any]


@cache
def world() -> World:
    """One app for every example (built here, not in a fixture); its store holds one session."""
    clock = FakeClock()
    env = make_env(clock, MemoryStore(clock=clock))
    session_id = new_session_id()

    async def seed() -> None:
        await env.plant(session_id, {"user_id": b"99", "cart": b'["kept"]'})

    anyio.run(seed)
    live = {**env.anon, "user_id": 99, "cart": ["kept"]}
    return World(env, env.sign(session_id).encode(), live)


def check(headers: list[tuple[bytes, bytes]]) -> None:
    w = world()
    env = w.env
    env.store.reset()
    before = len(env.inner)
    reply = anyio.run(call, env.app, "GET", "/read", headers)
    assert reply.error is None, f"the app crashed: {reply.error!r}"
    assert 200 <= reply.status < 500, reply.status
    assert env.store.writes() == 0, f"a read-only request wrote: {env.store.keys}"
    assert len(env.inner) == before
    event(f"status {reply.status}, {env.store.calls['load']} store reads")
    if reply.status == 200:
        assert env.seen[-1] in (env.anon, w.live)
        event("handler saw the live session" if env.seen[-1] == w.live else "handler saw anonymous")
        if env.seen[-1] == w.live:
            assert any(w.cookie in value for _, value in headers), "a session without its cookie"


FRAGMENTS = st.sampled_from(
    [b"session=", b"session", b"=", b"; ", b";", b" ", b"\t", b'"', b"\x00", b".", b",", b"\\", b"\r\n"]
)


@st.composite
def cookie_bytes(draw: st.DrawFn) -> bytes:
    """Raw cookie-header bytes: pure noise, or noise around our name and the live cookie."""
    valid = world().cookie
    parts = draw(
        st.lists(
            st.one_of(
                st.binary(max_size=64),
                FRAGMENTS,
                st.just(valid),
                st.just(b"session=" + valid),
                st.integers(0, len(valid)).map(lambda n: valid[:n]),
            ),
            max_size=8,
        )
    )
    return b"".join(parts)


HEADER_NAMES = st.one_of(
    st.sampled_from(
        [b"cookie", b"x-session", b"authorization", b"accept", b"vary", b"cache-control", b"user-agent"]
    ),
    st.binary(min_size=1, max_size=24).map(bytes.lower),
)


@SETTINGS
@given(value=cookie_bytes(), more=st.lists(cookie_bytes(), max_size=2))
def test_arbitrary_cookie_bytes_never_5xx_and_never_write(value: bytes, more: list[bytes]) -> None:
    check([(b"cookie", value)] + [(b"cookie", extra) for extra in more])


@SETTINGS
@given(
    headers=st.lists(
        st.tuples(HEADER_NAMES, st.one_of(st.binary(max_size=128), cookie_bytes())), max_size=8
    )
)
def test_arbitrary_header_lists_never_5xx_and_never_write(headers: list[tuple[bytes, bytes]]) -> None:
    check(headers)
