"""The documentation cannot drift from the code: its Python blocks compile and run, and the settings page
lists every setting with its real default.

Convention for code blocks in docs/*.md and README.md:

* Every fenced block whose info string starts with ``python`` (or ``py``) is compiled.
* It is also executed, in a fresh namespace, with ``SESSION_SECRET_KEY`` set, no other ``SESSION_*``
  variable, and a temporary working directory (so no ``.env`` is read) -- unless the line before
  its opening fence is ``<!-- no-run -->``. Mark fragments that use names defined elsewhere on the page
  (``sessions``, ``UserSession``, ...), or that need a server, that way; the marker is an HTML
  comment, so readers never see it.
* A block that needs an optional extra (``sanic``, ``redis``) is skipped where the extra is not
  installed (``nox -s tests_without_redis``), as the extra's own tests are.
* A block with a file name, ``python title="main.py"`` (mkdocs-material shows it above the code), is
  that file. Where a page has a block titled ``test_*.py``, a test file, every titled block of the
  page is written to a temporary directory under its name, and each test file is run there by
  ``pytest`` in a subprocess, as a reader who copied the files would run it (``SESSION_SECRET_KEY``
  set, warnings as errors); it must pass. Test files are not executed as plain blocks.
"""

import os
import re
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from fastapi_sessions import SessionSettings
from fastapi_sessions.backends import as_store
from fastapi_sessions.stores import SessionStore
from fastapi_sessions.testing import CHECKS, FakeClock, StoreHarness, fake_wait

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
PAGES = [*sorted(DOCS.glob("*.md")), ROOT / "README.md"]
NO_RUN = "<!-- no-run -->"
EXTRAS = {"asyncpg", "cryptography", "redis", "sanic"}
"""The top-level modules of the optional extras."""
KEY = "docs-k3y-for-tests-only-0123456789-abcdefghij"
_FENCE = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>`{3,}|~{3,})(?P<info>.*)$")


@dataclass(frozen=True)
class Block:
    page: Path
    line: int
    """1-based line of the opening fence."""
    info: str
    source: str
    run: bool

    @property
    def id(self) -> str:
        return f"{self.page.relative_to(ROOT)}:{self.line}"

    @property
    def is_python(self) -> bool:
        return self.info.split(" ", 1)[0].lower() in {"python", "py"}

    @property
    def title(self) -> str | None:
        """The file name the block is shown under (``title="main.py"``), if any."""
        match = re.search(r'title="([^"]+)"', self.info)
        return None if match is None else match[1]

    @property
    def is_test_file(self) -> bool:
        title = self.title
        return title is not None and title.startswith("test_") and title.endswith(".py")


def blocks(page: Path) -> list[Block]:
    """Every fenced block of a Markdown page, in order."""
    lines = page.read_text(encoding="utf-8").splitlines()
    found: list[Block] = []
    index = 0
    while index < len(lines):
        opening = _FENCE.match(lines[index])
        if opening is None:
            index += 1
            continue
        fence, indent = opening["fence"], opening["indent"]
        previous = next((text.strip() for text in reversed(lines[:index]) if text.strip()), "")
        body: list[str] = []
        end = index + 1
        while end < len(lines) and not lines[end].strip().startswith(fence):
            body.append(lines[end])
            end += 1
        assert end < len(lines), f"{page}:{index + 1}: unclosed code fence"
        source = textwrap.dedent("\n".join(body)) if indent else "\n".join(body)
        found.append(Block(page, index + 1, opening["info"].strip(), source + "\n", previous != NO_RUN))
        index = end + 1
    return found


PYTHON_BLOCKS = [block for page in PAGES for block in blocks(page) if block.is_python]


def test_the_docs_have_python_blocks_to_check() -> None:
    assert len(PYTHON_BLOCKS) >= 10
    assert sum(block.run for block in PYTHON_BLOCKS) >= 5


@pytest.mark.parametrize("block", PYTHON_BLOCKS, ids=[block.id for block in PYTHON_BLOCKS])
def test_python_block_compiles(block: Block) -> None:
    compile(block.source, block.id, "exec")


@pytest.fixture
def docs_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """What a reader has after the quickstart: a key, and otherwise the default settings."""
    for name in list(os.environ):
        if name.upper().startswith("SESSION_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("SESSION_SECRET_KEY", KEY)
    monkeypatch.chdir(tmp_path)


def run_block(block: Block) -> dict[str, Any]:
    namespace: dict[str, Any] = {"__name__": "docs_example"}
    try:
        exec(compile(block.source, block.id, "exec"), namespace)  # noqa: S102 - our own docs
    except ImportError as exc:  # ours names the extra's install command, and chains the missing module
        missing = {getattr(error, "name", None) for error in (exc, exc.__cause__)} & EXTRAS
        if not missing:
            raise
        pytest.skip(f"needs the [{missing.pop()}] extra")
    return namespace


RUNNABLE = [block for block in PYTHON_BLOCKS if block.run and not block.is_test_file]


@pytest.mark.anyio
@pytest.mark.usefixtures("docs_environment")
@pytest.mark.parametrize("block", RUNNABLE, ids=[block.id for block in RUNNABLE])
async def test_python_block_runs(block: Block) -> None:
    namespace = run_block(block)
    app = namespace.get("app")
    if isinstance(app, FastAPI):  # its routes and response models make a valid OpenAPI schema
        transport = httpx.ASGITransport(app)
        async with httpx.AsyncClient(transport=transport, base_url="https://testserver") as client:
            assert (await client.get("/openapi.json")).status_code == 200


@pytest.mark.anyio
@pytest.mark.usefixtures("docs_environment")
async def test_the_custom_store_page_example_passes_the_conformance_suite() -> None:
    (block,) = [b for b in RUNNABLE if b.page.name == "custom-store.md" and "class SQLiteStore" in b.source]
    store_class = run_block(block)["SQLiteStore"]
    for check in CHECKS:
        clock = FakeClock()
        store = store_class(clock=clock)
        assert isinstance(store, SessionStore)
        try:
            await check(StoreHarness(store, clock.time, fake_wait(clock)))
        finally:
            await store.aclose()


@pytest.mark.anyio
@pytest.mark.usefixtures("docs_environment")
async def test_the_custom_store_page_backend_passes_the_conformance_suite() -> None:
    (block,) = [b for b in RUNNABLE if b.page.name == "custom-store.md" and "(Backend):" in b.source]
    backend_class = run_block(block)["DictBackend"]
    for check in CHECKS:
        clock = FakeClock()
        store = as_store(backend_class(), clock=clock)
        try:
            await check(StoreHarness(store, clock.time, fake_wait(clock)))
        finally:
            await store.aclose()


# -- test files, run by pytest ---------------------------------------------------------------------

TEST_FILES = [block for block in PYTHON_BLOCKS if block.is_test_file]
# Starlette 1.x warns, when its TestClient is imported, that it wants `httpx2`: not the reader's doing.
_STARLETTE_HTTPX = "ignore:Using `httpx` with `starlette.testclient`"


def test_the_testing_pages_have_test_files() -> None:
    pages = {block.page.name for block in TEST_FILES}
    assert {"quickstart.md", "testing.md"} <= pages


@pytest.mark.usefixtures("docs_environment")
@pytest.mark.parametrize("block", TEST_FILES, ids=[block.id for block in TEST_FILES])
def test_python_test_file_passes_under_pytest(block: Block, tmp_path: Path) -> None:
    for titled in blocks(block.page):
        if titled.title is not None and titled.is_python:
            path = tmp_path / titled.title
            assert not path.exists() or path.read_text(encoding="utf-8") == titled.source, (
                f"{titled.id}: two blocks of the page are titled {titled.title}"
            )
            path.write_text(titled.source, encoding="utf-8")
    command = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "-W", "error"]
    command += ["-W", _STARLETTE_HTTPX, block.title or ""]
    result = subprocess.run(  # our own interpreter on our own docs
        command, cwd=tmp_path, capture_output=True, text=True, check=False, env=dict(os.environ)
    )
    assert result.returncode == 0, f"{block.id} fails under pytest:\n{result.stdout}{result.stderr}"


# -- the settings reference ----------------------------------------------------------------------


def settings_rows() -> dict[str, list[str]]:
    """The reference table of docs/settings.md: env var name -> its cells."""
    rows: dict[str, list[str]] = {}
    for line in (DOCS / "settings.md").read_text(encoding="utf-8").splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split(" | ")]
        match = re.fullmatch(r"`(SESSION_[A-Z_]+)`", cells[0]) if line.startswith("|") else None
        if match:
            rows[match[1]] = cells
    return rows


def documented_default(value: Any) -> str:
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if isinstance(value, list):
        return f"`{value!r}`"
    return "unset" if value is None else f"`{value}`"


def test_every_setting_is_documented_with_its_env_var() -> None:
    text = (DOCS / "settings.md").read_text(encoding="utf-8")
    names = [f"SESSION_{name.upper()}" for name in SessionSettings.model_fields]
    missing = [name for name in names if name not in text]
    assert not missing, f"docs/settings.md does not mention {missing}"


def test_the_settings_table_has_one_row_per_field_with_the_real_default() -> None:
    rows = settings_rows()
    expected = {f"SESSION_{name.upper()}": field for name, field in SessionSettings.model_fields.items()}
    assert sorted(rows) == sorted(expected), "one table row per SessionSettings field, no others"
    for var, field in expected.items():
        default = field.get_default(call_default_factory=True)
        cell = rows[var][2]
        assert cell.startswith(documented_default(default)), f"{var}: default {default!r}, docs say {cell}"


def test_readme_links_to_docs_pages_that_exist() -> None:
    links = re.findall(r"\]\((docs/[^)#]+)", (ROOT / "README.md").read_text(encoding="utf-8"))
    assert links
    for link in links:
        assert (ROOT / link).is_file(), f"README links to a missing {link}"
