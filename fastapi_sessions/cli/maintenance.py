"""``purge``, ``stats`` and ``create-table``: the store's optional operations (``stores.operations``)."""

from __future__ import annotations

import argparse

from ..stores.operations import PurgingStore, StatsStore, TableStore, innermost
from .check import MEMORY_NOTE
from .context import CliError, Context, Exit, note, print_json

__all__ = ["register"]

REDIS_EXPIRES = "Redis removes expired session keys by itself (each has its TTL): nothing to purge."


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    purge = commands.add_parser(
        "purge",
        help="remove expired sessions (for stores that keep them)",
        description=(
            "Remove the expired sessions a store keeps until something removes them (the rows of an "
            "SQL table), and print how many went; run it from cron. Redis expires keys by itself "
            "(0 purged). Exit 5 for a store that cannot purge."
        ),
    )
    purge.set_defaults(run=run_purge)
    stats = commands.add_parser(
        "stats",
        help="print the store's statistics",
        description="Print how many sessions the store holds, and what else it can tell cheaply.",
    )
    stats.add_argument("--json", action="store_true", help="print JSON")
    stats.set_defaults(run=run_stats)
    table = commands.add_parser(
        "create-table",
        help="create the store's table if it needs one",
        description=(
            "Create the table (and indexes) of a store that keeps sessions in one, if missing: safe "
            "to run on every deploy. A store without a table (memory, Redis) needs nothing: exit 0."
        ),
    )
    table.set_defaults(run=run_create_table)


def _lacking(store: object, method: str, capability: str, where: str) -> CliError:
    """The error for a store without the capability a command needs."""
    return CliError(
        f"{type(store).__name__} ({where}) has no {method}(): see "
        f"fastapi_sessions.stores.operations.{capability} to give a store one.",
        Exit.UNSUPPORTED,
    )


async def run_purge(args: argparse.Namespace, context: Context) -> Exit:
    settings = context.settings()
    async with context.engine(settings) as engine:
        store = innermost(engine.store)  # the storage itself, under encryption and metrics
        if not isinstance(store, PurgingStore):
            raise _lacking(store, "purge_expired", "PurgingStore", context.where(settings))
        purged = await context.call(settings, "purge expired sessions", store.purge_expired())
    print(f"{purged} expired {'session' if purged == 1 else 'sessions'} removed")
    scheme = settings.store_url.partition("://")[0].lower()
    if context.is_memory(settings):
        note(MEMORY_NOTE)
    elif context.store is None and scheme in {"redis", "rediss", "unix"}:
        note(REDIS_EXPIRES)
    return Exit.OK


async def run_stats(args: argparse.Namespace, context: Context) -> Exit:
    settings = context.settings()
    async with context.engine(settings) as engine:
        store = innermost(engine.store)  # the storage itself, under encryption and metrics
        if not isinstance(store, StatsStore):
            raise _lacking(store, "stats", "StatsStore", context.where(settings))
        figures = await context.call(settings, "read its statistics", store.stats())
    if args.json:
        print_json(figures)
    else:
        width = max(map(len, figures), default=0)
        print("\n".join(f"{name:<{width}}  {value}" for name, value in figures.items()))
    if context.is_memory(settings):
        note(MEMORY_NOTE)
    return Exit.OK


async def run_create_table(args: argparse.Namespace, context: Context) -> Exit:
    settings = context.settings()
    async with context.engine(settings) as engine:
        store = innermost(engine.store)  # the storage itself, under encryption and metrics
        if not isinstance(store, TableStore):
            print(f"nothing to create: {type(store).__name__} keeps no table")
            return Exit.OK
        await context.call(settings, "create its table", store.create_table())
    print(f"ok: the table of {type(store).__name__} is ready ({context.where(settings)})")
    return Exit.OK
