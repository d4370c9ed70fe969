"""``check``: validate the ``SESSION_*`` settings as the app does at start-up, and reach the store."""

from __future__ import annotations

import argparse
from contextlib import suppress

from ..exceptions import CorruptRecordError
from ..signing import new_session_id, store_key
from .context import Context, Exit, note

__all__ = ["MEMORY_NOTE", "register"]

MEMORY_NOTE = (
    "SESSION_STORE_URL=memory:// keeps sessions inside each app process: this command has a store of "
    "its own, empty, and each worker of the app has its own too. Use Redis "
    "(SESSION_STORE_URL=redis://...) as soon as the app runs more than one process."
)


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser(
        "check",
        help="validate the SESSION_* settings and reach the store",
        description=(
            "Validate the SESSION_* settings (environment and .env) with the checks the app runs at "
            "start-up, then read a random key from the store SESSION_STORE_URL names. Exit codes: 0 "
            "fine, 3 a setting is wrong (the message names it), 4 the store cannot be reached."
        ),
    )
    parser.set_defaults(run=run)


async def run(args: argparse.Namespace, context: Context) -> Exit:
    settings = context.settings()
    async with context.engine(settings) as engine:
        print("ok: the SESSION_* settings are valid")
        key = store_key(new_session_id(), engine.namespace)
        # A random key that holds something is corrupt: the store answered all the same.
        with suppress(CorruptRecordError):
            await context.call(settings, "answer a read", engine.store.load(key))
        print(f"ok: the store answered a read ({context.where(settings)})")
    if context.is_memory(settings):
        note(MEMORY_NOTE)
    return Exit.OK
