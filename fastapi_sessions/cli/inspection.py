"""``inspect``: the session a cookie value opens, as stored; values hidden unless asked for.

The cookie is verified and turned into a store key by the library's own signer (every configured
key, the cookie name's namespace), and the record is read without touching its idle timer: looking
at a session never extends it.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import dataclass
from typing import Any

from pydantic_core import from_json

from ..engine import SessionEngine
from ..exceptions import CorruptRecordError
from ..indexing import LOGIN
from ..settings import SessionSettings
from ..signing import SessionSigner, could_be_ours
from ..state import STATE_PREFIX, stored_entry
from ..stores.base import SessionRecord
from .check import MEMORY_NOTE
from .context import CliError, Context, Exit, print_json

__all__ = ["register"]

_JSON_TYPES = {dict: "object", list: "array", str: "string", int: "number", float: "number"}
_JSON_TYPES.update({bool: "boolean", type(None): "null"})
# A signature age no cookie reaches: verifying with it tells "too old" apart from "not ours".
_ANY_AGE = 1 << 62


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser(
        "inspect",
        help="show the session a cookie value opens (values hidden)",
        description=(
            "Verify a session cookie's value with SESSION_SECRET_KEY and its fallbacks, and show the "
            "session it opens: metadata, each field's name, JSON type and size, and the library's own "
            "entries (whether a user is logged in). Values are hidden unless --show-values. Exit 0 "
            "when the cookie opens a live session, 1 when it opens none (the reason is printed)."
        ),
    )
    parser.add_argument(
        "cookie", metavar="COOKIE_VALUE", help="the cookie's value (what follows 'session=')"
    )
    parser.add_argument("--show-values", action="store_true", help="print the stored values too")
    parser.add_argument("--json", action="store_true", help="print JSON")
    parser.set_defaults(run=run)


@dataclass
class Found:
    """A stored session a cookie leads to."""

    key: str
    record: SessionRecord
    stale_key: bool
    forwarded_from: str | None


async def run(args: argparse.Namespace, context: Context) -> Exit:
    settings = context.settings()
    value = _cookie_value(args.cookie, settings.cookie_name)
    async with context.engine(settings) as engine:
        found = await _find(engine, context, settings, value)
        problem = engine._problem(found.record)  # the engine's own verdict on a loaded record
    report = _report(found, problem, args.show_values)
    if args.json:
        print_json(report)
    else:
        _print(report)
    return Exit.NOT_FOUND if problem else Exit.OK


def _cookie_value(given: str, cookie_name: str) -> str:
    """The value alone, from what an operator may paste: ``name=value``, quoted, with spaces."""
    value = given.strip().removeprefix(f"{cookie_name}=").strip()
    return value[1:-1] if len(value) > 1 and value[0] == value[-1] == '"' else value


async def _find(
    engine: SessionEngine[Any], context: Context, settings: SessionSettings, value: str
) -> Found:
    verified = engine.signer.verify(value)
    if verified is None:
        raise CliError(_unverified(value, settings, context), Exit.NOT_FOUND)
    key = verified.key
    try:
        record = await context.call(settings, "load the session", engine.store.load(key))
        forwarded_from = None
        if record is None and engine.rotation is not None:  # an ID rotated within its grace window?
            target = await context.call(settings, "follow a rotation", engine.rotation.target(key))
            if target is not None:
                moved = await context.call(settings, "load the session", engine.store.load(target[0]))
                if moved is not None and moved.meta.created_at == target[1]:
                    record, forwarded_from, key = moved, key, target[0]
    except CorruptRecordError as exc:
        raise CliError(
            f"The record stored for this cookie is corrupt ({exc}); the app discards it and starts a "
            "fresh session.",
            Exit.NOT_FOUND,
        ) from exc
    if record is None:
        memory = f"\n{MEMORY_NOTE}" if context.is_memory(settings) else ""
        raise CliError(
            "The cookie's signature is valid, but no session is stored for it: it expired, or was "
            "logged out, revoked or regenerated; or the app uses another store than this one "
            f"({context.where(settings)}, SESSION_STORE_PREFIX={settings.store_prefix!r}).{memory}",
            Exit.NOT_FOUND,
        )
    return Found(key, record, verified.stale_key, forwarded_from)


def _unverified(value: str, settings: SessionSettings, context: Context) -> str:
    """Why a cookie value opens nothing, before any store is asked."""
    if not could_be_ours(value):
        return (
            "This is not a session cookie value issued by fastapi_sessions (it has another shape). "
            f"Pass the value alone: what follows '{settings.cookie_name}=' in the Cookie header."
        )
    namespace = settings.cookie_name
    ageless = SessionSigner(
        settings.signing_keys(), max_age=_ANY_AGE, clock=context.clock, namespace=namespace
    )
    if ageless.verify(value) is not None:
        return (
            f"The cookie is signed with a configured key but is older than SESSION_MAX_AGE "
            f"({settings.max_age} s): its session has expired."
        )
    return (
        "The cookie's signature does not verify with SESSION_SECRET_KEY or any of "
        f"SESSION_SECRET_KEY_FALLBACKS for the cookie name {namespace!r} (SESSION_COOKIE_NAME): it was "
        "signed with another key or for another cookie name, or it was altered. Run this with the "
        "app's settings."
    )


def _json_type(stored: bytes) -> tuple[str, Any]:
    """A stored value's JSON type and the value; ``invalid`` (and the raw text) if it is not JSON."""
    try:
        parsed = from_json(stored)
    except ValueError:
        return "invalid", stored.decode("utf-8", "replace")
    return _JSON_TYPES.get(type(parsed), "unknown"), parsed


def _report(found: Found, problem: str, show_values: bool) -> dict[str, Any]:
    """What ``inspect`` shows, as JSON-ready data; values only with ``show_values``."""
    meta = found.record.meta
    fields: dict[str, Any] = {}
    state: dict[str, Any] = {}
    for name, stored in sorted(found.record.fields.items()):
        kind, parsed = _json_type(stored)
        entry: dict[str, Any] = {"type": kind, "bytes": len(stored)}
        if show_values:
            entry["value"] = parsed
        if name.startswith(STATE_PREFIX):
            state[name.removeprefix(STATE_PREFIX)] = entry
        else:
            fields[name] = entry
    login = stored_entry(found.record.fields, LOGIN)
    logged_in: dict[str, Any] | None = None
    if type(login) is dict and type(login.get("user")) is str:
        logged_in = {"at": login.get("at")}
        if show_values:
            logged_in["user"] = login["user"]
            for shown, kept in (("user_agent", "ua"), ("ip", "ip")):
                text = login.get(kept)
                logged_in[shown] = text if type(text) is str else None
    return {
        "status": f"unusable: {problem}" if problem else "live",
        "store_key": found.key,
        "reached_through_rotated_id": found.forwarded_from is not None,
        "signed_with_fallback_key": found.stale_key,
        "created_at": meta.created_at,
        "expires_at": meta.expires_at,
        "persistent": meta.persistent,
        "version": meta.version,
        "size": found.record.size,
        "logged_in": logged_in,
        "fields": fields,
        "state": state,
        "values_shown": show_values,
    }


def _when(value: object) -> str:
    if type(value) is not float and type(value) is not int:
        return "unknown"
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(value))


def _print(report: dict[str, Any]) -> None:
    lines = [
        f"status      {report['status']}",
        f"store key   {report['store_key']}",
        f"created     {_when(report['created_at'])}",
        f"expires     {_when(report['expires_at'])} at the latest",
        f"persistent  {'yes (remember me)' if report['persistent'] else 'no (browser session)'}",
        f"version     {report['version']}",
        f"size        {report['size']} bytes",
    ]
    if report["reached_through_rotated_id"]:
        lines.append("note        the cookie's ID was rotated; this is the session it now has")
    if report["signed_with_fallback_key"]:
        lines.append("note        signed with a fallback key; the app re-signs it on its next request")
    login = report["logged_in"]
    if login is None:
        lines.append("logged in   no")
    else:
        who = f" as {_safe(login['user'])}" if "user" in login else ""
        lines.append(f"logged in   yes{who}, at {_when(login['at'])}")
        if login.get("user_agent"):
            lines.append(f"user agent  {_safe(login['user_agent'])}")
        if login.get("ip"):
            lines.append(f"ip          {_safe(login['ip'])}")
    for title, entries in (("fields", report["fields"]), ("library state", report["state"])):
        lines.append(f"{title}:" if entries else f"{title}: none")
        names = {name: _safe(name) for name in entries}
        width = max(map(len, names.values()), default=0)
        for name, entry in entries.items():
            shown = f"  {names[name]:<{width}}  {entry['type']:<7}  {entry['bytes']:>6} bytes"
            if "value" in entry:
                shown += f"  {_shown(entry['value'])}"
            lines.append(shown)
    if not report["values_shown"]:
        lines.append("(values hidden: --show-values prints them)")
    print("\n".join(lines))


def _safe(text: str) -> str:
    """Stored text fit for a terminal: a name or user agent with control characters is escaped."""
    return text if text.isprintable() else ascii(text)


def _shown(value: Any) -> str:
    """A stored value on one line, as JSON; escaped, so no control character reaches the terminal."""
    return json.dumps(value)
