"""Noticing that an app whose sessions live in one process runs in several worker processes.

With ``uvicorn --workers 2``, gunicorn or hypercorn, every worker process imports the app and has its
own ``MemoryStore``: a session created in one worker is unknown to the others, users are logged out at
random, and the only log lines are security warnings about unknown sessions. ``check()`` tells, once
per process and never on a request's read path, whether other live processes of the same app run
beside this one, and then logs one WARNING that names the fix.

Workers of one server share a parent (the server's supervisor) and a command line: spawned workers
(uvicorn) get their parent's ``sys.argv``, forked ones (gunicorn) keep it. So each process that stores
a session takes a shared ``flock`` on a file named after its parent PID, working directory and command
line, in a private directory under the system's temporary directory, and holds it until it exits. If
another process holds it too, this app runs in several workers. The kernel drops the locks of a
process that ended, so a worker that replaces another (``--reload``, a crash) is not counted twice,
and PIDs used again do not matter. The process that warns holds a second lock, so the warning comes
once for the whole group of workers. Not detected: workers on other hosts or in other containers
(nothing is shared with them), systems without ``flock`` (Windows), and pytest-xdist workers, which
look exactly like server workers but share nothing.
"""

from __future__ import annotations

import hashlib
import os
import stat
import sys
import tempfile
from pathlib import Path

from ..logs import log

try:
    import fcntl
except ImportError:  # pragma: no cover (Windows)
    fcntl = None  # type: ignore[assignment]

__all__ = ["check", "checked"]

checked = False
"""Whether this process has checked already (reset in a forked child, which is a process of its own)."""

_held: list[int] = []  # descriptors whose locks stand for this process until it exits


def check(store: str = "MemoryStore") -> None:
    """Log a WARNING, once per group of workers, if other live workers of this app use ``store`` too."""
    global checked
    checked = True
    if fcntl is None or os.environ.get("PYTEST_XDIST_WORKER"):
        return
    try:
        warn = _join()
    except OSError as exc:
        log.debug("Could not check for other worker processes: %s", exc)
        return
    if warn:
        log.warning(
            "%s keeps sessions in this process only, but this app runs in several worker processes "
            "(pid %d and at least one other started by pid %d): a session created in one worker is "
            "unknown to the others, so users are logged out at random and their cookies are logged "
            "as unknown sessions. Set SESSION_STORE_URL=redis://... to share the sessions between "
            "the workers (see the Redis page of the docs), or run a single worker process.",
            store,
            os.getpid(),
            os.getppid(),
        )


def _join() -> bool:
    """Join this process's group; True if other members are alive and none of them has warned yet."""
    directory = _directory()
    group = _group()
    mutex = os.open(directory, os.O_RDONLY | os.O_CLOEXEC)
    try:
        fcntl.flock(mutex, fcntl.LOCK_EX)  # one process at a time in here: no lock changes unseen
        _sweep(directory, group)
        members = _open(directory / f"{group}.members")
        _held.append(members)
        fcntl.flock(members, fcntl.LOCK_SH)
        if _try_lock(members):  # nobody else holds it: alone
            fcntl.flock(members, fcntl.LOCK_SH)
            return False
        warned = _open(directory / f"{group}.warned")
        if not _try_lock(warned):  # held by a live member that warned
            os.close(warned)
            return False
        _held.append(warned)
        return True
    finally:
        os.close(mutex)


def _group() -> str:
    """The name shared by the workers of one server: parent PID, working directory, command line."""
    return hashlib.sha256(repr((os.getppid(), os.getcwd(), sys.argv)).encode()).hexdigest()[:32]


def _directory() -> Path:
    """This user's private directory for the lock files (raises OSError if it is not private)."""
    directory = Path(tempfile.gettempdir()) / f"fastapi_sessions-{os.getuid()}"
    directory.mkdir(mode=0o700, exist_ok=True)
    info = os.lstat(directory)
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid() or info.st_mode & 0o077:
        raise OSError(f"{directory} is not a directory that only this user can write to")
    return directory


def _open(path: Path) -> int:
    return os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)


def _try_lock(descriptor: int) -> bool:
    """Take an exclusive lock if nobody else holds one on the file."""
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def _sweep(directory: Path, group: str) -> None:
    """Remove the files of other groups that no live process holds (their servers ended)."""
    for name in os.listdir(directory):
        if name.startswith(group):
            continue
        try:
            descriptor = os.open(directory / name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except OSError:
            continue
        try:
            if _try_lock(descriptor):
                os.unlink(directory / name)
        finally:
            os.close(descriptor)


def _forget() -> None:
    """In a forked child: it is a process of its own, to be checked when it stores a session."""
    global checked
    checked = False
    while _held:
        os.close(_held.pop())  # the parent's locks stay: it still has these files open


if hasattr(os, "register_at_fork"):  # pragma: no branch (POSIX)
    os.register_at_fork(after_in_child=_forget)
