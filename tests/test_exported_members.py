"""The public API: each package's ``__all__`` is sorted, complete and names only real members."""

from __future__ import annotations
import __future__

import types

import pytest

import fastapi_sessions
import fastapi_sessions.backends
import fastapi_sessions.stores

PACKAGES = [
    fastapi_sessions,
    fastapi_sessions.stores,
    # Its __all__ names RedisBackend, which imports redis when asked for: a run without the extra
    # (-m "not redis") leaves it out.
    pytest.param(fastapi_sessions.backends, marks=pytest.mark.redis),
]


def public_members(module: types.ModuleType) -> set[str]:
    """Names a user can import from ``module``: not private, not a submodule, not a __future__ flag."""
    return {
        name
        for name, value in vars(module).items()
        if not name.startswith("_")
        and not isinstance(value, types.ModuleType)
        and not isinstance(value, __future__._Feature)  # `from __future__ import annotations`
    }


@pytest.mark.parametrize("module", PACKAGES, ids=lambda m: m.__name__)
def test_all_is_sorted(module: types.ModuleType) -> None:
    assert module.__all__ == sorted(module.__all__)


@pytest.mark.parametrize("module", PACKAGES, ids=lambda m: m.__name__)
def test_all_has_no_duplicates(module: types.ModuleType) -> None:
    assert len(set(module.__all__)) == len(module.__all__)


@pytest.mark.parametrize("module", PACKAGES, ids=lambda m: m.__name__)
def test_every_name_in_all_exists(module: types.ModuleType) -> None:
    missing = [name for name in module.__all__ if not hasattr(module, name)]
    assert missing == []


@pytest.mark.parametrize("module", PACKAGES, ids=lambda m: m.__name__)
def test_every_public_member_is_in_all(module: types.ModuleType) -> None:
    assert public_members(module) - set(module.__all__) == set()


@pytest.mark.parametrize("module", PACKAGES, ids=lambda m: m.__name__)
def test_star_import_gives_exactly_all(module: types.ModuleType) -> None:
    namespace: dict[str, object] = {}
    exec(f"from {module.__name__} import *", namespace)  # noqa: S102 - a fixed, trusted module name
    assert set(namespace) - {"__builtins__"} == set(module.__all__)
