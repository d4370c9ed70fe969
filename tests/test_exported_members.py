"""The public API: each package's ``__all__`` is sorted, complete and names only real members."""

from __future__ import annotations
import __future__

import collections.abc
import pkgutil
import types
import typing

import pytest

import fastapi_sessions
import fastapi_sessions.backends
import fastapi_sessions.cli
import fastapi_sessions.stores
import fastapi_sessions.testing

MODULES = [
    fastapi_sessions,
    fastapi_sessions.backends,
    fastapi_sessions.cli,
    fastapi_sessions.stores,
    fastapi_sessions.testing,
]
# backends' __all__ names RedisBackend, which imports redis when asked for: a run without the extra
# (-m "not redis") leaves that package out.
NEEDS_REDIS = {fastapi_sessions.backends}
PACKAGES = [
    pytest.param(module, id=module.__name__, marks=[pytest.mark.redis] if module in NEEDS_REDIS else [])
    for module in MODULES
]


def is_typing_helper(name: str, value: object) -> bool:
    """``value`` is ``typing.name`` or ``collections.abc.name``, imported for annotations only."""
    return any(getattr(source, name, None) is value for source in (typing, collections.abc))


def public_members(module: types.ModuleType) -> set[str]:
    """Names a user can import from ``module``: not private, not a submodule, not a __future__ flag,
    not a helper imported from ``typing`` or ``collections.abc`` (``Any``, ``TYPE_CHECKING``, ...)."""
    return {
        name
        for name, value in vars(module).items()
        if not name.startswith("_")
        and not isinstance(value, types.ModuleType)
        and not isinstance(value, __future__._Feature)  # `from __future__ import annotations`
        and not is_typing_helper(name, value)
    }


def test_every_public_package_is_checked() -> None:
    """A new public subpackage of fastapi_sessions gets the checks below too."""
    subpackages = {
        f"fastapi_sessions.{info.name}"
        for info in pkgutil.iter_modules(fastapi_sessions.__path__)
        if info.ispkg and not info.name.startswith("_")
    }
    assert subpackages | {"fastapi_sessions"} == {module.__name__ for module in MODULES}


@pytest.mark.parametrize("module", PACKAGES)
def test_all_is_sorted(module: types.ModuleType) -> None:
    """``__all__`` is kept in sorted order, so a new name has one obvious place."""
    assert module.__all__ == sorted(module.__all__)


@pytest.mark.parametrize("module", PACKAGES)
def test_all_has_no_duplicates(module: types.ModuleType) -> None:
    """No name is listed twice in ``__all__``."""
    assert len(set(module.__all__)) == len(module.__all__)


@pytest.mark.parametrize("module", PACKAGES)
def test_every_name_in_all_exists(module: types.ModuleType) -> None:
    """Every name in ``__all__`` can be imported (lazily loaded ones included)."""
    missing = [name for name in module.__all__ if not hasattr(module, name)]
    assert missing == []


@pytest.mark.parametrize("module", PACKAGES)
def test_every_public_member_is_in_all(module: types.ModuleType) -> None:
    """A public name defined or imported in the package is either in ``__all__`` or private."""
    assert public_members(module) - set(module.__all__) == set()


@pytest.mark.parametrize("module", PACKAGES)
def test_star_import_gives_exactly_all(module: types.ModuleType) -> None:
    """``from package import *`` gives exactly the names of ``__all__``."""
    namespace: dict[str, object] = {}
    exec(f"from {module.__name__} import *", namespace)  # noqa: S102 - a fixed, trusted module name
    assert set(namespace) - {"__builtins__"} == set(module.__all__)
