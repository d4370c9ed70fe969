"""The SQL of the PostgreSQL store: the table, and one statement per store operation.

A session is one row. ``fields`` is a JSONB object with one member per top-level session field,
whose value is that field's JSON text as a JSON string (``{"cart": "[\\"a\\"]"}``): JSONB would
otherwise reformat the value (spaces, key order, ``\\u00e9`` escapes, no ``\\u0000``), and a store
hands back each value byte for byte. Merges stay field-level (``||`` and ``-``), and a field is
still queryable as ``(fields->>'user_id')::jsonb``.

``deadline`` is when the row dies (its TTL's end, never past ``expires_at``); every statement that
reads or writes a live row says ``deadline > $now``, with ``now`` from the store's clock, never the
server's. Writes are single statements: under READ COMMITTED an ``UPDATE``/``DELETE`` that meets a
row changed meanwhile waits for that change and re-checks its ``WHERE`` on the new row, and
``INSERT ... ON CONFLICT`` decides on the latest row; so each operation is atomic on its own.
"""

# S608: every statement names the table, an identifier checked by ``quoted_table``; values are
# always parameters.
# ruff: noqa: S608

from __future__ import annotations

import re
from typing import NamedTuple

from ..exceptions import SessionConfigError

__all__ = ["Statements", "statements"]

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,39}")
# At most 40 characters: the names of the user index table and of the indexes add up to 23 more,
# and PostgreSQL cuts identifiers at 63 (two long table names could then share an index name).

COLUMNS = "fields, created_at, expires_at, persistent, version"
"""What a load returns, in the order ``PostgresStore`` reads it."""


def _names(table: str) -> tuple[str, ...]:
    """The table, its deadline index, its user index table and that one's index, quoted."""
    parts = table.split(".")
    if len(parts) > 2 or not all(_IDENTIFIER.fullmatch(part) for part in parts):
        raise SessionConfigError(
            f"Not a table name the PostgreSQL session store accepts: {table!r}. Use a plain "
            "identifier (letters, digits, underscores; at most 40) or schema.table, e.g. "
            "'fastapi_sessions' or 'app.sessions'."
        )
    schema = "".join(f'"{part}".' for part in parts[:-1])
    last = parts[-1]
    return (
        f'{schema}"{last}"',
        f'"{last}_deadline_idx"',
        f'{schema}"{last}_users"',
        f'"{last}_users_until_idx"',
    )


class Statements(NamedTuple):
    """Every statement of the store, for one table."""

    create_table: str
    load: str
    load_touch: str
    create: str
    update: str
    update_expecting: str
    state: str
    rename: str
    lock: str
    delete: str
    purge: str
    purge_index: str
    stats: str
    index_add: str
    index_remove: str
    index_list: str


def statements(table: str) -> Statements:
    """The statements for ``table`` (``name`` or ``schema.name``); ``SessionConfigError`` if that is
    not an identifier."""
    name, index, users, users_index = _names(table)
    live = f"{name}.deadline > $2::float8"
    new_fields = f"({name}.fields - $4::text[]) || $3::jsonb"
    expires = f"coalesce($5::float8, {name}.expires_at)"
    update_set = (
        f"UPDATE {name} SET fields = {new_fields}, expires_at = {expires}, "
        f"persistent = coalesce($6::bool, {name}.persistent), version = {name}.version + 1, "
        f"deadline = least($2::float8 + $7::float8, {expires})"
    )
    # The expected fields ($8: those that must hold these texts, $9: those that must be absent), in
    # operators on the row alone: a subquery here would be planned as a join, and the re-check of a
    # row changed meanwhile would then not see the change.
    meets = "({0}.fields @> $8::jsonb AND NOT {0}.fields ?| $9::text[])"
    return Statements(
        create_table=(
            f"CREATE TABLE IF NOT EXISTS {name} (\n"
            "    key text PRIMARY KEY,\n"
            "    fields jsonb NOT NULL,\n"
            "    created_at double precision NOT NULL,\n"
            "    expires_at double precision NOT NULL,\n"
            "    persistent boolean NOT NULL,\n"
            "    version bigint NOT NULL,\n"
            "    deadline double precision NOT NULL\n"
            ");\n"
            f"CREATE INDEX IF NOT EXISTS {index} ON {name} (deadline);\n"
            f"CREATE TABLE IF NOT EXISTS {users} (\n"
            "    user_id text NOT NULL,\n"
            "    key text NOT NULL,\n"
            "    until double precision NOT NULL,\n"
            "    PRIMARY KEY (user_id, key)\n"
            ");\n"
            f"CREATE INDEX IF NOT EXISTS {users_index} ON {users} (until);"
        ),
        load=f"SELECT {COLUMNS} FROM {name} WHERE key = $1 AND {live}",
        # The row is rewritten only when the touch moves its deadline by more than $4 seconds (a
        # small share of the idle timeout): a rewrite is a new row version, index entries and a
        # commit flush, which a user who clicks every second must not pay on every read. The
        # UPDATE re-checks that the row is live on its latest version, so a touch never resurrects.
        load_touch=(
            f"WITH found AS (SELECT key, {COLUMNS} FROM {name} WHERE key = $1 AND {live}), "
            f"touched AS (UPDATE {name} SET deadline = least($2::float8 + $3::float8, {name}.expires_at) "
            f"FROM found WHERE {name}.key = found.key AND {live} AND "
            f"abs(least($2::float8 + $3::float8, {name}.expires_at) - {name}.deadline) > $4::float8) "
            f"SELECT {COLUMNS} FROM found"
        ),
        # Only over a dead row: ON CONFLICT decides on the latest version of a row another create
        # is inserting, so of concurrent creates exactly one inserts.
        create=(
            f"INSERT INTO {name} AS s (key, {COLUMNS}, deadline) "
            "VALUES ($1, $3::jsonb, $4::float8, $5::float8, $6, $7, least($2::float8 + $8::float8, $5)) "
            "ON CONFLICT (key) DO UPDATE SET fields = EXCLUDED.fields, "
            "created_at = EXCLUDED.created_at, expires_at = EXCLUDED.expires_at, "
            "persistent = EXCLUDED.persistent, version = EXCLUDED.version, "
            "deadline = EXCLUDED.deadline WHERE s.deadline <= $2::float8 RETURNING true"
        ),
        update=f"{update_set} WHERE key = $1 AND {live} RETURNING true",
        update_expecting=(
            f"{update_set} WHERE key = $1 AND {live} AND {meets.format(name)} RETURNING true"
        ),
        # Why a version-checked update wrote nothing: the row is live (CONFLICT) or not (MISSING).
        state=f"SELECT true FROM {name} WHERE key = $1 AND {live}",
        # One statement: lock the old row (its latest version), insert the new one unless a live
        # row holds that key, then delete the old one only if the insert happened. The sub-statements
        # share one snapshot; the DELETE finds the row the SELECT locked and re-checks it.
        rename=(
            f"WITH old AS (SELECT {name}.*, {meets.format(name)} AS meets FROM {name} "
            f"WHERE key = $1 AND {live} FOR UPDATE), "
            f"moved AS (INSERT INTO {name} AS s (key, {COLUMNS}, deadline) "
            f"SELECT $10, {new_fields.replace(name + '.', 'old.')}, old.created_at, "
            f"coalesce($5::float8, old.expires_at), coalesce($6::bool, old.persistent), "
            f"old.version + 1, least($2::float8 + $7::float8, coalesce($5::float8, old.expires_at)) "
            "FROM old WHERE old.meets "
            "ON CONFLICT (key) DO UPDATE SET fields = EXCLUDED.fields, "
            "created_at = EXCLUDED.created_at, expires_at = EXCLUDED.expires_at, "
            "persistent = EXCLUDED.persistent, version = EXCLUDED.version, "
            "deadline = EXCLUDED.deadline WHERE s.deadline <= $2::float8 RETURNING true), "
            f"gone AS (DELETE FROM {name} WHERE key = $1 AND EXISTS (SELECT 1 FROM moved) RETURNING true) "
            "SELECT (SELECT count(*) FROM old) AS found, (SELECT bool_and(meets) FROM old) AS meets, "
            "(SELECT count(*) FROM moved) AS moved, (SELECT count(*) FROM gone) AS gone"
        ),
        # Waits for a statement still holding the row (a rename whose answer was lost) to end.
        lock=f"SELECT 1 FROM {name} WHERE key = $1 FOR UPDATE",
        delete=f"DELETE FROM {name} WHERE key = $1",
        # A batch of the rows dead longest, through the deadline index; rows another purge holds are
        # skipped, so purges on several workers share the work instead of waiting on each other.
        # ``= ANY(ARRAY(...))``: the keys found are deleted through the primary key (an ``IN``
        # could be planned as a join with a scan of the whole table).
        purge=(
            f"DELETE FROM {name} WHERE key = ANY(ARRAY(SELECT key FROM {name} "
            "WHERE deadline <= $1::float8 ORDER BY deadline LIMIT $2 FOR UPDATE SKIP LOCKED)) "
            "AND deadline <= $1::float8"
        ),
        # Entries past their bound, of users who never came back: the ctids of rows this statement
        # locked, so they cannot move before the delete.
        purge_index=(
            f"DELETE FROM {users} WHERE ctid = ANY(ARRAY(SELECT ctid FROM {users} "
            "WHERE until <= $1::float8 LIMIT $2 FOR UPDATE SKIP LOCKED))"
        ),
        stats=(
            f"SELECT (SELECT count(*) FROM {name} WHERE deadline > $1::float8) AS sessions, "
            f"(SELECT count(*) FROM {name} WHERE deadline <= $1::float8) AS expired, "
            f"pg_total_relation_size('{name}') AS bytes"
        ),
        # The user index ($1: prefix + user). Each write first drops the user's entries past the
        # index's now ($4 / $2): expired logins leave without a scan.
        index_add=(
            f"WITH pruned AS (DELETE FROM {users} WHERE user_id = $1 AND until <= $4::float8) "
            f"INSERT INTO {users} (user_id, key, until) VALUES ($1, $2, $3::float8) "
            "ON CONFLICT (user_id, key) DO UPDATE SET until = EXCLUDED.until"
        ),
        index_remove=f"DELETE FROM {users} WHERE user_id = $1 AND key = $2",
        # The sessions listed: entries within their bound whose row is live on the store's clock ($3).
        index_list=(
            f"WITH pruned AS (DELETE FROM {users} WHERE user_id = $1 AND until <= $2::float8) "
            f"SELECT u.key, s.fields, s.created_at, s.expires_at, s.persistent, s.version, s.deadline "
            f"FROM {users} AS u JOIN {name} AS s ON s.key = u.key "
            "WHERE u.user_id = $1 AND u.until > $2::float8 AND s.deadline > $3::float8"
        ),
    )
