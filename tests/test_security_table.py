"""The guarantee table of docs/security.md names tests that exist, and names every security test.

The table is read from the Markdown; the tests are found by parsing the test files (no import, no
collection), so a test renamed, moved or deleted without updating the table fails here.
"""

from __future__ import annotations

import ast
import functools
import pathlib
import re
from dataclasses import dataclass

ROOT = pathlib.Path(__file__).resolve().parent.parent
SECURITY_MD = ROOT / "docs" / "security.md"
SECTION = "## What is guaranteed, and the test that proves it"
MUST_BE_LISTED = ("tests/test_security.py", "tests/test_concurrency.py")
"""Files whose every test proves a row of the table."""
NOT_A_GUARANTEE = {
    # A check of the harness the other tests of the file rely on, not of the library.
    "tests/test_security.py::test_counting_proxy_sees_every_store_call",
}
LIMITS = ("Not guaranteed", "Not applicable")
"""How a row with no test starts: it states a limit instead of a promise."""

NODE_ID = re.compile(r"`(tests/[\w/]+\.py::[^`]+)`")
PARAMETRIZED = re.compile(r"^(?P<name>[^\[]+)\[(?P<id>[^\]]+)\]$")


@dataclass(frozen=True)
class Row:
    """One guarantee of the table: its code, its statement and the tests that prove it."""

    code: str
    guarantee: str
    proved_by: str
    tests: tuple[str, ...]


def guarantee_rows(markdown: str) -> list[Row]:
    """The rows of every table under ``SECTION``, up to the next second-level heading."""
    _, found, section = markdown.partition(SECTION + "\n")
    assert found, f"docs/security.md has no section {SECTION!r}"
    section = section.split("\n## ", 1)[0]
    rows = []
    for line in section.splitlines():
        if not line.startswith("|") or line.startswith(("| Code |", "|---")):
            continue
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        assert len(cells) == 4, f"a row needs code, guarantee, source and tests: {line}"
        code, guarantee, _, proved_by = cells
        rows.append(Row(code, guarantee, proved_by, tuple(NODE_ID.findall(proved_by))))
    return rows


@functools.cache
def module_of(path: str) -> ast.Module:
    return ast.parse((ROOT / path).read_text(), path)


def defined_tests(path: str) -> set[str]:
    """Node ids of the tests defined in ``path``: test functions, test classes and their methods."""
    found = set()
    for node in module_of(path).body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name.startswith("test"):
            found.add(f"{path}::{node.name}")
        elif isinstance(node, ast.ClassDef) and node.name.startswith("Test"):
            found.add(f"{path}::{node.name}")
            for item in node.body:
                if isinstance(item, ast.FunctionDef | ast.AsyncFunctionDef) and item.name.startswith(
                    "test"
                ):
                    found.add(f"{path}::{node.name}::{item.name}")
    return found


def string_constants(path: str) -> set[str]:
    return {
        node.value
        for node in ast.walk(module_of(path))
        if isinstance(node, ast.Constant) and isinstance(node.value, str)
    }


def unknown_tests(rows: list[Row]) -> list[str]:
    """Node ids in ``rows`` that name no test: a missing file or function, or an unknown parameter id."""
    unknown = []
    for row in rows:
        for node_id in row.tests:
            path, _, rest = node_id.partition("::")
            if not (ROOT / path).is_file():
                unknown.append(f"{row.code}: {node_id} (no file {path})")
                continue
            parametrized = PARAMETRIZED.match(rest)
            name = parametrized["name"] if parametrized else rest
            if f"{path}::{name}" not in defined_tests(path):
                unknown.append(f"{row.code}: {node_id} (no test {name} in {path})")
            elif parametrized and parametrized["id"] not in string_constants(path):
                unknown.append(f"{row.code}: {node_id} (no parameter {parametrized['id']!r} in {path})")
    return unknown


def rows() -> list[Row]:
    return guarantee_rows(SECURITY_MD.read_text())


def test_every_test_the_table_names_exists() -> None:
    """A test renamed, moved or deleted must be renamed in docs/security.md too."""
    assert unknown_tests(rows()) == []


def test_every_security_and_race_test_is_named_in_the_table() -> None:
    """A new test in test_security.py or test_concurrency.py gets a row, or a place in a row."""
    named = {node_id.split("[")[0] for row in rows() for node_id in row.tests}
    for path in MUST_BE_LISTED:
        unlisted = sorted(defined_tests(path) - named - NOT_A_GUARANTEE)
        assert unlisted == [], f"tests of {path} missing from the table in docs/security.md"


def test_each_row_names_a_test_or_states_a_limit() -> None:
    """A guarantee without a test is not one: such a row says "Not guaranteed" or "Not applicable"."""
    untested = [row for row in rows() if not row.tests]
    for row in untested:
        assert row.guarantee.startswith(LIMITS), f"{row.code} names no test: {row.guarantee}"
        assert row.proved_by == "none", f"{row.code}: {row.proved_by!r} names no test as tests/x.py::name"
    assert len(untested) < len(rows()) / 4


def test_codes_are_unique() -> None:
    """Each checklist code (A1, C5, DT4, ...) is one row, so a reader finds it in one place."""
    codes = [code.strip() for row in rows() for code in row.code.split(",")]
    assert all(re.fullmatch(r"(A|B|C|DT)\d+", code) for code in codes), codes
    assert len(codes) == len(set(codes))


def test_the_check_catches_a_renamed_test() -> None:
    """Renaming one test the table names, in the table's view, is reported by name."""
    markdown = SECURITY_MD.read_text()
    renamed = markdown.replace(
        "tests/test_security.py::test_signatures_are_never_compared_with_equality",
        "tests/test_security.py::test_signatures_are_compared_with_care",
    )
    assert renamed != markdown
    assert unknown_tests(guarantee_rows(renamed)) == [
        "A20: tests/test_security.py::test_signatures_are_compared_with_care "
        "(no test test_signatures_are_compared_with_care in tests/test_security.py)"
    ]
    moved = markdown.replace("test_bad_store_contents[pickle]`", "test_bad_store_contents[marshal]`")
    assert moved != markdown
    assert any("no parameter 'marshal'" in problem for problem in unknown_tests(guarantee_rows(moved)))
