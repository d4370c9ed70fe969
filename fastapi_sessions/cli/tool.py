"""The parser and the entry points: ``main`` (the console script) and ``amain`` (the same, awaited)."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence
from pathlib import Path

from .. import __version__
from ..clock import Clock, SystemClock
from ..signing import could_be_ours
from ..stores.base import SessionStore
from . import check, inspection, keys, maintenance, revoke
from .context import CliError, Context, Exit

__all__ = ["amain", "build_parser", "main"]

PROG = "fastapi-sessions"


def build_parser() -> argparse.ArgumentParser:
    """Every command, with its own ``--help``."""
    parser = argparse.ArgumentParser(
        prog=PROG,
        description=(
            "Manage fastapi_sessions sessions: keys, a configuration check, inspecting and revoking "
            "sessions, purging and statistics. Settings come from SESSION_* variables and ./.env, "
            "exactly as the app reads them."
        ),
        epilog=(
            "Exit codes: 0 ok, 1 no such session (inspect), 2 bad command line, 3 invalid settings, "
            "4 store unreachable, 5 the store lacks what the command needs."
        ),
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument(
        "--env-file",
        type=Path,
        metavar="PATH",
        help="read this .env file instead of ./.env (the environment still wins over it)",
    )
    commands = parser.add_subparsers(title="commands", metavar="COMMAND", required=True)
    for module in (keys, check, inspection, revoke, maintenance):
        module.register(commands)
    return parser


async def amain(
    argv: Sequence[str] | None = None, *, store: SessionStore | None = None, clock: Clock | None = None
) -> int:
    """Run one command; its exit code. ``store``: a store to use instead of the one
    ``SESSION_STORE_URL`` names (one it cannot name: Sentinel, Cluster, your own), left open."""
    args = build_parser().parse_args(_cookie_values_last(sys.argv[1:] if argv is None else argv))
    context = Context(args.env_file, clock or SystemClock(), store)
    try:
        code: Exit = await args.run(args, context)
    except CliError as exc:
        print(f"{PROG}: error: {exc.message}", file=sys.stderr)
        return exc.code
    return code


def _cookie_values_last(argv: Sequence[str]) -> list[str]:
    """``argv`` with any session cookie value that starts with ``-`` moved to the end, after ``--``.

    A cookie's ID is base64url, so one value in 64 starts with ``-``, which argparse would take for
    an option; no option has a cookie value's exact shape.
    """
    if "--" in argv:
        return list(argv)
    dashed = [arg for arg in argv if arg.startswith("-") and could_be_ours(arg)]
    if not dashed:
        return list(argv)
    return [arg for arg in argv if arg not in dashed] + ["--", *dashed]


def main(
    argv: Sequence[str] | None = None, *, store: SessionStore | None = None, clock: Clock | None = None
) -> int:
    """The ``fastapi-sessions`` console script: ``amain`` on a new event loop."""
    try:
        return asyncio.run(amain(argv, store=store, clock=clock))
    except KeyboardInterrupt:
        return 130
