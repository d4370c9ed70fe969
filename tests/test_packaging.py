"""The version is written once and the package claims only what is tested.

The building and installing of the sdist and the wheel is checked by ``.ci/check_package.py`` (nox's
``package`` session, and .ci/run), not here: it takes two fresh venvs.
"""

import ast
import importlib.metadata
import re
import sys
from pathlib import Path
from typing import Any

import fastapi_sessions

if sys.version_info >= (3, 11):
    import tomllib
else:  # pytest itself depends on tomli before 3.11
    import tomli as tomllib

ROOT = Path(__file__).resolve().parent.parent
DISTRIBUTION = "pselfastapise-async"


def test_installed_metadata_version_is_the_package_version() -> None:
    """pyproject reads the version from ``fastapi_sessions.__version__``: the two never differ.

    After changing ``__version__``, reinstall (``pip install -e .``) for the metadata to follow."""
    assert importlib.metadata.version(DISTRIBUTION) == fastapi_sessions.__version__


def test_changelog_latest_release_is_the_package_version() -> None:
    """The first numbered heading of CHANGELOG.md (below "Unreleased") is the version being shipped."""
    releases = re.findall(r"^## (\d+\.\d+\.\d+\S*)", (ROOT / "CHANGELOG.md").read_text(), re.MULTILINE)
    assert releases, "CHANGELOG.md has no '## X.Y.Z' release heading"
    assert releases[0] == fastapi_sessions.__version__


def nox_pythons() -> list[str]:
    """The ``PYTHONS`` list of noxfile.py, read without importing nox."""
    tree = ast.parse((ROOT / "noxfile.py").read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(
            isinstance(target, ast.Name) and target.id == "PYTHONS" for target in node.targets
        ):
            value = ast.literal_eval(node.value)
            assert isinstance(value, list)
            return [str(version) for version in value]
    raise AssertionError("noxfile.py has no PYTHONS = [...]")


def project() -> dict[str, Any]:
    """pyproject.toml's [project] table (the source, not an installed copy that may be stale)."""
    table: dict[str, Any] = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return table


def test_classifiers_claim_exactly_the_pythons_that_are_tested() -> None:
    """The Python classifiers, nox's PYTHONS and the versions .ci/run tests are one list."""
    classifiers: list[str] = project()["classifiers"]
    claimed = sorted(
        classifier.rpartition(" :: ")[2]
        for classifier in classifiers
        if re.fullmatch(r"Programming Language :: Python :: 3\.\d+", classifier)
    )
    tested_by_nox = sorted(nox_pythons())
    run = (ROOT / ".ci" / "run").read_text()
    match = re.search(r"^PYTHONS=\(([^)]*)\)", run, re.MULTILINE)
    assert match, ".ci/run has no PYTHONS=(...) line"
    tested_by_ci = sorted(match.group(1).split())
    assert claimed == tested_by_nox == tested_by_ci
    assert project()["requires-python"] == f">={claimed[0]}", "requires-python starts at the oldest tested"
