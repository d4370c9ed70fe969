"""``revoke``: end every session of a user, through the store's per-user index (``revoke_all``)."""

from __future__ import annotations

import argparse

from ..dictsession import SessionDict
from ..exceptions import SessionStoreUnavailable
from ..stores.metered import unwrapped
from ..users import SessionUsers
from .check import MEMORY_NOTE
from .context import CliError, Context, Exit, note

__all__ = ["register"]


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser(
        "revoke",
        help="end every session of a user ('log out everywhere')",
        description=(
            "End every session USER is logged in to (logins made with sessions.users.login or "
            "session_users(request).login), through the store's per-user index, exactly as "
            "revoke_all does in the app; print how many ended. Needs a store with the index: "
            "MemoryStore, RedisStore or PostgresStore. Exit 5 for a store without it."
        ),
    )
    parser.add_argument(
        "user", metavar="USER", help="the user's identifier, as the app passed it to login()"
    )
    parser.add_argument(
        "--dry-run", action="store_true", help="only count the user's live sessions; end none"
    )
    parser.set_defaults(run=run)


async def run(args: argparse.Namespace, context: Context) -> Exit:
    settings = context.settings()
    async with context.engine(settings) as engine:
        if engine.users is None:
            raise CliError(
                f"Revoking a user's sessions needs a store with the per-user index (UserIndexStore, "
                f"in fastapi_sessions.stores.index); {type(unwrapped(engine.store)).__name__} "
                f"({context.where(settings)}) has none. MemoryStore, RedisStore and PostgresStore have it "
                "(SESSION_STORE_URL=redis://... or postgresql://...).",
                Exit.UNSUPPORTED,
            )
        users = SessionUsers(engine, SessionDict.live)
        try:
            if args.dry_run:
                count = len(await users.list_sessions(args.user))
            else:
                count = await users.revoke_all(args.user)
        except SessionStoreUnavailable as exc:
            raise CliError(f"{exc} ({context.where(settings)})", Exit.STORE) from exc
    plural = "session" if count == 1 else "sessions"
    print(f"{count} {plural} {'live' if args.dry_run else 'ended'}")
    if context.is_memory(settings):
        note(MEMORY_NOTE)
    return Exit.OK
