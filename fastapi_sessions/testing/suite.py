"""The store contract as a pytest class: subclass it and provide a ``store_harness`` fixture.

    class TestMyStore(StoreConformance):
        @pytest.fixture
        async def store_harness(self):
            clock = FakeClock()
            yield StoreHarness(MyStore(clock=clock), clock.time, fake_wait(clock))

Needs pytest and anyio's pytest plugin (installed with anyio); mark nothing, the class does it.
"""

from __future__ import annotations

import pytest

from .conformance import CHECKS, Check, StoreHarness
from .index_conformance import INDEX_CHECKS

__all__ = ["StoreConformance", "UserIndexConformance"]


class StoreConformance:
    """Every check of ``fastapi_sessions.testing.CHECKS``, one test each."""

    @pytest.mark.anyio
    @pytest.mark.parametrize("check", CHECKS, ids=[c.__name__.removeprefix("check_") for c in CHECKS])
    async def test_store_contract(self, store_harness: StoreHarness, check: Check) -> None:
        await check(store_harness)


class UserIndexConformance:
    """Every check of ``fastapi_sessions.testing.INDEX_CHECKS`` (the optional ``UserIndexStore``
    capability), one test each, on the same ``store_harness`` fixture as ``StoreConformance``."""

    @pytest.mark.anyio
    @pytest.mark.parametrize(
        "check", INDEX_CHECKS, ids=[c.__name__.removeprefix("check_") for c in INDEX_CHECKS]
    )
    async def test_user_index_contract(self, store_harness: StoreHarness, check: Check) -> None:
        await check(store_harness)
