"""Build the sdist and the wheel, install each into a fresh venv, and serve the quickstart from it.

Usage:
    python .ci/check_package.py      # needs `build` and `httpx` (pip install build httpx)

Run by nox's ``package`` session and by .ci/run. For each artifact: a new venv gets the artifact and
uvicorn (no editable install, no repository on ``sys.path``: the demo runs with ``python -I`` from a
temporary directory), serves ``examples/quickstart.py`` on a free port, and answers a login, a cart
and a read over real HTTP; its ``fastapi-sessions`` console script answers ``--help`` and ``secret``.
The wheel's demo file is the repository's; the sdist's is the one inside the sdist, which also proves
the sdist carries the examples.

What each artifact must hold: the wheel, the package with ``py.typed`` and the LICENSE, and nothing
else (no tests, no examples); the sdist, what it takes to rebuild and test the package: the package,
tests, docs, examples, pyproject.toml, README.md, CHANGELOG.md and LICENSE.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import tarfile
import tempfile
import threading
import venv
import zipfile
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
DIST_NAME = "pselfastapise_async"
SDIST_MUST_HOLD = [
    "LICENSE",
    "README.md",
    "CHANGELOG.md",
    "pyproject.toml",
    "fastapi_sessions/__init__.py",
    "fastapi_sessions/py.typed",
    "tests/conftest.py",
    "docs/index.md",
    "examples/quickstart.py",
]
# A hang guard only (a server that neither starts nor exits): readiness is its own log line.
HANG_GUARD_SECONDS = 120


class PackageCheckError(Exception):
    """An artifact is missing something, does not install, or does not serve the demo."""


def run(command: list[str], cwd: Path | None = None) -> str:
    """Run ``command``; its output, or a PackageCheckError that quotes it."""
    result = subprocess.run(command, cwd=cwd, capture_output=True, text=True, check=False)  # noqa: S603
    if result.returncode != 0:
        raise PackageCheckError(
            f"{' '.join(command)} exited {result.returncode}:\n{result.stdout}{result.stderr}"
        )
    return result.stdout


def build(out: Path) -> tuple[Path, Path]:
    """``python -m build`` (the sdist, then the wheel from it); the two files."""
    run([sys.executable, "-m", "build", "--outdir", str(out), str(ROOT)])
    (sdist,) = out.glob(f"{DIST_NAME}-*.tar.gz")
    (wheel,) = out.glob(f"{DIST_NAME}-*.whl")
    return sdist, wheel


def check_wheel_contents(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    if "fastapi_sessions/py.typed" not in names:
        raise PackageCheckError(
            f"{wheel.name} has no fastapi_sessions/py.typed: type checkers would ignore it"
        )
    if not any(name.endswith(".dist-info/licenses/LICENSE") for name in names):
        raise PackageCheckError(f"{wheel.name} does not carry the LICENSE")
    strays = sorted({name.split("/")[0] for name in names} - {"fastapi_sessions"})
    strays = [name for name in strays if not name.endswith(".dist-info")]
    if strays:
        raise PackageCheckError(f"{wheel.name} installs more than fastapi_sessions: {strays}")


def unpack_sdist(sdist: Path, into: Path) -> Path:
    """Unpack the sdist after checking it holds SDIST_MUST_HOLD; its top directory."""
    with tarfile.open(sdist) as archive:
        names = archive.getnames()
        top = names[0].split("/")[0]
        missing = [name for name in SDIST_MUST_HOLD if f"{top}/{name}" not in names]
        if missing:
            raise PackageCheckError(f"{sdist.name} lacks {missing}")
        archive.extractall(into, filter="data")
    return into / top


def fresh_venv(path: Path, artifact: Path) -> Path:
    """A new venv with ``artifact`` and uvicorn installed (nothing from the repository); its python."""
    venv.create(path, with_pip=True)
    python = path / "bin" / "python"
    run([str(python), "-m", "pip", "install", "--quiet", str(artifact), "uvicorn"])
    return python


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def check_cli(python: Path, workdir: Path) -> None:
    """The installed console script answers ``--help`` and prints a key the settings accept."""
    script = python.parent / "fastapi-sessions"
    if not script.exists():
        raise PackageCheckError(f"the package installs no fastapi-sessions console script ({script})")
    shown = run([str(script), "--help"], workdir)
    if not shown.startswith("usage: fastapi-sessions"):
        raise PackageCheckError(f"fastapi-sessions --help printed:\n{shown}")
    key = run([str(script), "secret"], workdir).strip()
    accepts = f"from fastapi_sessions import SessionSettings; SessionSettings(secret_key={key!r})"
    run([str(python), "-I", "-c", accepts], workdir)


def serve_and_drive(python: Path, demo: Path, workdir: Path) -> None:
    """Serve ``demo`` with ``python -I`` from ``workdir``; log in, add to the cart, read it back."""
    located = run(
        [str(python), "-I", "-c", "import fastapi_sessions; print(fastapi_sessions.__file__)"], workdir
    )
    if not Path(located.strip()).is_relative_to(python.parent.parent):
        raise PackageCheckError(f"fastapi_sessions was imported from {located.strip()}, not from the venv")
    script = workdir / "quickstart.py"
    script.write_bytes(demo.read_bytes())  # python -I: not even the demo's own directory is on sys.path
    port = free_port()
    server = subprocess.Popen(  # noqa: S603
        [str(python), "-I", str(script)],
        cwd=workdir,
        env={"PORT": str(port), "PATH": "/usr/bin:/bin"},  # no SESSION_*: the demo's no-set-up path
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    guard = threading.Timer(HANG_GUARD_SECONDS, server.kill)
    guard.start()
    output: list[str] = []
    try:
        if server.stdout is None:  # for the type checker: stdout=PIPE always makes one
            raise PackageCheckError("the demo's output pipe is missing")
        for line in server.stdout:  # ends when the server exits
            output.append(line)
            if "Uvicorn running on" in line:
                break
        else:
            raise PackageCheckError(
                f"the demo exited with {server.wait()} before serving:\n{''.join(output)}"
            )
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
            login = client.post("/login?user=alice")
            cookie = login.cookies.get("session")
            if login.status_code != 303 or not cookie:
                raise PackageCheckError(f"login answered {login.status_code} {login.headers}")
            # httpx keeps a Secure cookie out of plain-http requests: carry it by hand.
            client.cookies.clear()
            headers = {"cookie": f"session={cookie}"}
            cart = client.post("/cart/apple", headers=headers).json()
            shown = client.get("/", headers=headers).json()
        if cart != {"cart": ["apple"]} or shown != {"user": "alice", "cart": ["apple"]}:
            raise PackageCheckError(f"the demo answered cart={json.dumps(cart)} and /={json.dumps(shown)}")
    finally:
        guard.cancel()
        server.terminate()
        server.wait()


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="check-package-") as temp:
        tmp = Path(temp)
        sdist, wheel = build(tmp / "dist")
        check_wheel_contents(wheel)
        unpacked = unpack_sdist(sdist, tmp / "unpacked")
        for kind, artifact, demo in [
            ("wheel", wheel, ROOT / "examples" / "quickstart.py"),
            ("sdist", sdist, unpacked / "examples" / "quickstart.py"),
        ]:
            workdir = tmp / f"run-{kind}"
            workdir.mkdir()
            python = fresh_venv(tmp / f"venv-{kind}", artifact)
            serve_and_drive(python, demo, workdir)
            check_cli(python, workdir)
            print(f"ok: {artifact.name} installs in a fresh venv, serves the quickstart, runs the CLI")


if __name__ == "__main__":
    try:
        main()
    except PackageCheckError as error:
        sys.exit(f"package check failed: {error}")
