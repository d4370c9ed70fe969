"""The header rules every door applies: Cookie added to Vary once, and a Cache-Control that no cache
may store our Set-Cookie under."""

import pytest

from fastapi_sessions.headers import cache_control_with_cookie, vary_with_cookie


@pytest.mark.parametrize(
    ("vary", "merged"),
    [
        (b"Accept", b"Accept, Cookie"),
        (b"Accept-Encoding, Origin", b"Accept-Encoding, Origin, Cookie"),
        (b"Accept, cookie", None),
        (b" COOKIE ", None),
        (b"*", None),
        (b"Cookies", b"Cookies, Cookie"),
    ],
)
def test_cookie_is_added_to_vary_unless_it_is_covered_already(vary: bytes, merged: bytes | None) -> None:
    assert vary_with_cookie(vary) == merged


@pytest.mark.parametrize(
    ("cache_control", "safe"),
    [
        (b"public, max-age=600", b'public, max-age=600, no-cache="Set-Cookie"'),
        (b"max-age=60", b'max-age=60, no-cache="Set-Cookie"'),
        (b"no-store", None),
        (b"private, max-age=60", None),
        (b"No-Store", None),
    ],
)
def test_a_cache_control_that_lets_caches_store_the_response_gets_no_cache_set_cookie(
    cache_control: bytes, safe: bytes | None
) -> None:
    assert cache_control_with_cookie(cache_control) == safe
