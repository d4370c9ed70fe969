"""Pages and docstrings that say what the product is and does, in the form the API reference renders.

* The benchmarks page speaks of the product, not of the project's issue tracker, and is exactly what
  the stored results render to (so its machine and versions are the run's).
* No docstring in the package uses a Sphinx role (``:meth:`x```): mkdocstrings renders Google-style
  docstrings and would show the role as raw text in the API reference.
"""

from __future__ import annotations

import ast
import importlib.util
import json
import re
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parent.parent
BENCHMARKS = ROOT / "tests" / "benchmarks"
PAGE = ROOT / "docs" / "benchmarks.md"
PACKAGE = ROOT / "fastapi_sessions"
SPHINX_ROLE = re.compile(r":(?:py:)?(?:meth|class|func|data|attr|exc|mod|obj|ref|const|term):`")


def report_module(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    """tests/benchmarks/report.py, imported as the benchmark driver imports it (apps/ beside it)."""
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    spec = importlib.util.spec_from_file_location("benchmark_report", BENCHMARKS / "report.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    monkeypatch.delitem(sys.modules, "apps", raising=False)
    return module


def test_the_benchmarks_page_mentions_no_issue_of_the_tracker() -> None:
    text = PAGE.read_text(encoding="utf-8")
    found = re.findall(r"\bissues?\s*#?\d+|#\d+\b|\bthe issue\b", text, flags=re.IGNORECASE)
    assert not found, f"docs/benchmarks.md speaks of the tracker: {found}"


def test_the_benchmarks_page_is_what_the_stored_results_render_to(monkeypatch: pytest.MonkeyPatch) -> None:
    report = report_module(monkeypatch)
    results = json.loads((ROOT / "docs" / "benchmarks" / "results.json").read_text(encoding="utf-8"))
    text = PAGE.read_text(encoding="utf-8")
    start, end = text.index(report.START), text.index(report.END) + len(report.END)
    assert text[start:end] == report.generated(results), (
        "re-render the page: python tests/benchmarks/report.py (or regenerate it as run.py does)"
    )
    machine = text[start:end].split("### ", 1)[0]
    for what in ("**CPU:**", "**OS:**", "**Python**", "fastapi ", "starlette ", "pydantic ", "redis-py "):
        assert what in machine, f"the page must say {what!r} of the run"
    assert "redis server " in machine
    assert "starsessions " in machine


def _docstrings(tree: ast.Module) -> list[tuple[int, str]]:
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            body = node.body
        else:
            continue
        # A docstring, and the attribute docstrings (a string statement after an assignment).
        for statement in body:
            if (
                isinstance(statement, ast.Expr)
                and isinstance(statement.value, ast.Constant)
                and isinstance(statement.value.value, str)
            ):
                found.append((statement.lineno, statement.value.value))
    return found


def test_no_docstring_in_the_package_uses_a_sphinx_role() -> None:
    offenders = []
    for path in sorted(PACKAGE.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for line, text in _docstrings(tree):
            for match in SPHINX_ROLE.finditer(text):
                offenders.append(f"{path.relative_to(ROOT)}:{line}: {match.group()}")
    assert not offenders, "use `name` (backticks) instead of Sphinx roles:\n" + "\n".join(offenders)


def test_the_sphinx_role_check_sees_a_role() -> None:
    tree = ast.parse('"""See :meth:`SessionManager.install`."""\n\nclass A:\n    """:class:`B`."""\n')
    assert [SPHINX_ROLE.search(text) is not None for _, text in _docstrings(tree)] == [True, True]


@pytest.mark.anyio
async def test_the_custom_store_example_merges_with_applied_and_purges_expired_rows_in_batches() -> None:
    from fastapi_sessions.stores import SessionMeta, SessionRecord, WriteResult
    from fastapi_sessions.testing import FakeClock

    from .test_docs import RUNNABLE, run_block

    (block,) = [b for b in RUNNABLE if b.page.name == "custom-store.md" and "class SQLiteStore" in b.source]
    assert "record.applied(change)" in block.source
    assert "version + 1" not in block.source, "the example must not re-implement SessionRecord.applied"
    clock = FakeClock()
    store = run_block(block)["SQLiteStore"](clock=clock)
    now = clock.time()
    for n, lifetime in enumerate([10, 10, 10, 1000]):
        record = SessionRecord({"n": str(n).encode()}, SessionMeta(now, now + lifetime))
        assert await store.create(f"k{n}", record, ttl=lifetime) is WriteResult.OK
    clock.advance(20)
    assert await store.purge_expired(limit=2) == 2
    assert await store.purge_expired(limit=2) == 1
    assert await store.purge_expired(limit=2) == 0
    assert (await store.load("k3")) is not None, "a live record is never purged"
    await store.aclose()


def test_the_readme_says_which_redis_database_the_tests_use() -> None:
    from .redis_support import TEST_DB, unique_prefix

    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert f"database {TEST_DB}" in readme
    assert unique_prefix().split(":", 1)[0] + ":" in readme, "and under which key prefix"
