"""The quickstart in a real browser: headless Chromium logs in through the HTML form, fills the cart and
logs out, and the tests look at the session cookie as the browser stores and sends it.

The app is ``examples/quickstart.py`` served by a uvicorn subprocess on ``http://localhost``, with
default (production) cookie settings: Chromium treats http://localhost as a secure origin and keeps the
``Secure`` cookie there. The cross-site page is served on ``http://127.0.0.1``, another site.

Needs Playwright (in the ``[test]`` extra; its wheel carries the driver, not a browser) and a Chromium:
``/usr/bin/chromium`` from Debian (``apt-get install chromium``) or the one ``CHROMIUM_PATH`` names.
Without them the tests skip and say so; with ``REQUIRE_BROWSER=1`` (set by ``.ci/run``) they fail
instead. On a failure every open page is screenshotted into ``BROWSER_ARTIFACTS`` (else the test's
``tmp_path``) and the failure report names the files.

Nothing here waits on the clock: the server's socket is listening before uvicorn starts, so the browser's
first request simply queues until the app answers, and Playwright waits on events. Its timeouts are
generous hang guards only.
"""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, NoReturn

import pytest

from .conftest import PHASE_REPORTS

try:
    from playwright.sync_api import Browser, Cookie, Page, sync_playwright
    from playwright.sync_api import Error as PlaywrightError
except ImportError:  # the [test] extra is not installed
    sync_playwright = None  # type: ignore[assignment]

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[1]
# Hang guards for a loaded CI machine, not expectations of speed.
TIMEOUT_MS = 60_000
CHROMIUM_ARGS = [
    "--no-sandbox",  # the tests may run as root (in CI they do)
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    # No calls home: on a closed network they are refused, many at a time, at every start.
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ANONYMOUS: dict[str, Any] = {"user": None, "cart": []}


def unavailable(reason: str) -> NoReturn:
    """Skip for want of a browser, or fail where one is required (``REQUIRE_BROWSER=1``, as in CI)."""
    if os.environ.get("REQUIRE_BROWSER") == "1":
        pytest.fail(f"REQUIRE_BROWSER=1, but {reason}")
    pytest.skip(reason)


def chromium_path() -> str:
    """``CHROMIUM_PATH``, else ``chromium`` on the PATH; skip (or fail) saying how to install one."""
    configured = os.environ.get("CHROMIUM_PATH")
    if configured:
        if not os.access(configured, os.X_OK):
            unavailable(f"CHROMIUM_PATH={configured} is not an executable file")
        return configured
    found = shutil.which("chromium")
    if found is None:
        unavailable(
            "no Chromium found for the browser tests: install one with `apt-get install chromium` "
            "(Debian/Ubuntu) or set CHROMIUM_PATH to a Chromium or Chrome executable"
        )
    return found


# -- servers -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def quickstart_log(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where the quickstart's uvicorn writes its output (shown in the report when a test fails)."""
    return tmp_path_factory.mktemp("quickstart") / "uvicorn.log"


@pytest.fixture(scope="module")
def quickstart_url(quickstart_log: Path) -> Iterator[str]:
    """``uvicorn quickstart:app`` in a subprocess; its base URL on http://localhost.

    The test binds and listens on the socket and hands it to uvicorn (``--fd``): connections made
    before the app is ready wait in the socket's backlog, so there is nothing to poll. If uvicorn
    dies, the last copy of the socket closes and the browser's request fails at once.
    """
    log = quickstart_log
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    port = listener.getsockname()[1]
    env = {name: value for name, value in os.environ.items() if not name.startswith("SESSION_")}
    env["SESSION_SECRET_KEY"] = secrets.token_urlsafe(32)  # otherwise the defaults, as documented
    command = [sys.executable, "-m", "uvicorn", "--app-dir", str(ROOT / "examples"), "quickstart:app"]
    command += ["--fd", str(listener.fileno()), "--no-access-log"]
    with log.open("wb") as out:
        server = subprocess.Popen(
            command,
            cwd=log.parent,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            pass_fds=[listener.fileno()],
        )
    listener.close()
    try:
        yield f"http://localhost:{port}"
    finally:
        server.terminate()
        try:
            server.wait(30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
    output = log.read_text(errors="replace")
    assert "Traceback" not in output, f"the quickstart logged an error:\n{output}"


@pytest.fixture(scope="module")
def other_site_url(quickstart_url: str) -> Iterator[str]:
    """A page on another site (``127.0.0.1``, not ``localhost``) with a form that POSTs to the cart."""
    page = (
        "<!doctype html><title>Another site</title>"
        f'<form method="post" action="{quickstart_url}/cart/evil"><button>Win a prize</button></form>'
    ).encode()

    class OtherSite(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("content-type", "text/html; charset=utf-8")
            self.send_header("content-length", str(len(page)))
            self.end_headers()
            self.wfile.write(page)

        def log_message(self, format: str, *args: Any) -> None:  # quiet
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), OtherSite)  # listening once constructed
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


# -- browser -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Headless Chromium (a fresh temporary profile per launch), no network beyond this machine."""
    if sync_playwright is None:
        unavailable("Playwright is not installed: pip install -e '.[test]' (or pip install playwright)")
    executable = chromium_path()
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=executable, headless=True, args=CHROMIUM_ARGS, timeout=TIMEOUT_MS
        )
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture
def page(
    browser: Browser, request: pytest.FixtureRequest, tmp_path: Path, quickstart_log: Path
) -> Iterator[Page]:
    """A page in a fresh context (no cookies). When the test fails, every page of the context is
    screenshotted and the failure report gets a section naming the files, and one with the server's
    output."""
    context = browser.new_context()
    context.set_default_timeout(TIMEOUT_MS)
    context.set_default_navigation_timeout(TIMEOUT_MS)
    try:
        yield context.new_page()
        report = request.node.stash.get(PHASE_REPORTS, {}).get("call")
        if report is not None and report.failed:
            artifacts = os.environ.get("BROWSER_ARTIFACTS")
            folder = Path(artifacts) / request.node.name if artifacts else tmp_path / "screenshots"
            folder.mkdir(parents=True, exist_ok=True)
            saved = []
            for number, open_page in enumerate(context.pages, 1):
                path = folder / f"page-{number}.png"
                try:
                    open_page.screenshot(path=path, full_page=True)
                except PlaywrightError as exc:  # a crashed page must not hide the test's failure
                    saved.append(f"page {number} ({open_page.url}): no screenshot: {exc}")
                else:
                    saved.append(f"{path}  ({open_page.url})")
            report.sections.append(("browser screenshots", "\n".join(saved) or "no page was open"))
            if quickstart_log.exists():
                report.sections.append(
                    ("quickstart's uvicorn output", quickstart_log.read_text(errors="replace"))
                )
    finally:
        context.close()


def session_cookie(page: Page) -> Cookie:
    """The ``session`` cookie in the browser's store (the test fails if there is none)."""
    found = [cookie for cookie in page.context.cookies() if cookie["name"] == "session"]
    assert len(found) == 1, f"expected one session cookie, the browser has {page.context.cookies()}"
    return found[0]


def put_back(page: Page, cookie: Cookie) -> None:
    """Store ``cookie`` in the browser again, attributes and all, as someone who kept a copy would."""
    page.context.add_cookies(
        [
            {
                "name": cookie["name"],
                "value": cookie["value"],
                "domain": cookie["domain"],
                "path": cookie["path"],
                "httpOnly": cookie["httpOnly"],
                "secure": cookie["secure"],
                "sameSite": cookie["sameSite"],
            }
        ]
    )


def show(page: Page, url: str) -> Any:
    """Navigate to ``url`` (the quickstart's ``GET /``) and return the JSON it answers."""
    response = page.goto(url)
    assert response is not None
    assert response.status == 200
    return response.json()


def post(page: Page, path: str) -> Any:
    """POST from the page's own origin with fetch(), as the app's own scripts would; the JSON answer."""
    return page.evaluate("async (path) => (await fetch(path, {method: 'POST'})).json()", path)


def log_in(page: Page, base: str, user: str) -> None:
    """Fill and submit the quickstart's login form; check the 303 and the page it leads to."""
    page.goto(f"{base}/login")
    page.get_by_label("Name").fill(user)
    with page.expect_response(f"{base}/") as landing:
        page.get_by_role("button", name="Log in").click()
    redirect = landing.value.request.redirected_from
    assert redirect is not None, "the login form's POST answers with a redirect"
    assert redirect.method == "POST"
    posted = redirect.response()
    assert posted is not None
    assert posted.status == 303
    assert posted.headers["location"] == "/"
    assert landing.value.json()["user"] == user
    page.wait_for_url(f"{base}/")


# -- tests ---------------------------------------------------------------------------------------


def test_login_form_cart_and_logout_with_an_http_only_lax_cookie(page: Page, quickstart_url: str) -> None:
    """Login through the form regenerates the ID and keeps the cart; the browser stores the cookie
    HttpOnly, Secure, SameSite=Lax, host-only, for the browser session; logout removes it, and the old
    value put back opens no session."""
    base = quickstart_url
    page.goto(f"{base}/login")
    assert page.context.cookies() == [], "a page that does not touch the session sets no cookie"

    assert post(page, "/cart/apple") == {"cart": ["apple"]}
    anonymous_id = session_cookie(page)["value"]

    log_in(page, base, "alice")
    cookie = session_cookie(page)
    assert cookie["value"] != anonymous_id, "login regenerates the session ID"
    assert cookie["httpOnly"] is True
    assert cookie["secure"] is True
    assert cookie["sameSite"] == "Lax"
    assert cookie["path"] == "/"
    assert cookie["domain"] == "localhost", "host-only: no Domain attribute"
    assert cookie["expires"] == -1, "a browser-session cookie: gone when the browser closes"

    # HttpOnly: the page's scripts cannot read it, though they can read a cookie of their own.
    assert page.evaluate("document.cookie") == ""
    assert page.evaluate("document.cookie = 'probe=1'; document.cookie") == "probe=1"

    assert post(page, "/cart/pear") == {"cart": ["apple", "pear"]}
    assert show(page, f"{base}/") == {"user": "alice", "cart": ["apple", "pear"]}
    assert session_cookie(page)["value"] == cookie["value"], "the same session all along"

    logout = page.evaluate(
        "async () => { const r = await fetch('/logout', {method: 'POST'});"
        " return {redirected: r.redirected, url: r.url, body: await r.json()}; }"
    )
    assert logout == {"redirected": True, "url": f"{base}/", "body": ANONYMOUS}
    assert [c["name"] for c in page.context.cookies()] == ["probe"], "logout removed the session cookie"

    # The old value, put back as it was stored, opens no session.
    put_back(page, cookie)
    assert show(page, f"{base}/") == ANONYMOUS


def test_a_cross_site_form_post_arrives_without_the_session_cookie(
    page: Page, quickstart_url: str, other_site_url: str
) -> None:
    """SameSite=Lax: a form on another site (127.0.0.1) that POSTs to the app (localhost) reaches it
    as an anonymous visitor, and the logged-in user's session is left as it was."""
    base = quickstart_url
    log_in(page, base, "bob")
    assert post(page, "/cart/apple") == {"cart": ["apple"]}
    bobs_cookie = session_cookie(page)

    page.goto(other_site_url)
    with page.expect_response(f"{base}/cart/evil") as attack:
        page.get_by_role("button", name="Win a prize").click()
    headers = attack.value.request.all_headers()
    assert headers["sec-fetch-site"] == "cross-site"
    assert "cookie" not in headers, "the browser did not send the session cookie"
    assert attack.value.json() == {"cart": ["evil"]}, "the app saw a new, anonymous session"

    # That answer's Set-Cookie (the new anonymous session) does replace bob's cookie in this browser:
    # SameSite decides which requests carry a cookie, not which top-level navigations may set one.
    # Put bob's cookie back to show that his session itself was not touched.
    put_back(page, bobs_cookie)
    assert show(page, f"{base}/") == {"user": "bob", "cart": ["apple"]}


def test_without_a_browser_the_tests_skip_saying_how_to_get_one_and_fail_where_one_is_required(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The README's test command skips with the install command; CI (REQUIRE_BROWSER=1) fails."""
    monkeypatch.delenv("REQUIRE_BROWSER", raising=False)
    monkeypatch.setenv("CHROMIUM_PATH", str(tmp_path / "chromium"))
    with pytest.raises(pytest.skip.Exception, match=r"CHROMIUM_PATH=.*chromium is not an executable"):
        chromium_path()
    monkeypatch.delenv("CHROMIUM_PATH")
    monkeypatch.setenv("PATH", str(tmp_path))  # no chromium here
    with pytest.raises(pytest.skip.Exception, match="apt-get install chromium"):
        chromium_path()
    monkeypatch.setenv("REQUIRE_BROWSER", "1")
    with pytest.raises(pytest.fail.Exception, match="REQUIRE_BROWSER=1, but no Chromium found"):
        chromium_path()
