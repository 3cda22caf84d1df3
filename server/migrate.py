"""Versioned schema migrations: numbered SQL files in server/migrations/, applied in order, each in
its own transaction, recorded in ``schema_migrations``.

    python -m server migrate            # apply what is missing (any process may run it; they queue)
    python -m server migrate --check    # exit 1 when the database is behind or ahead of this code

Why not Alembic: it needs SQLAlchemy, which nothing else here uses, and the SQL is written by hand
for both SQLite and PostgreSQL anyway. A migration is plain SQL with the dialect's fragments
({pk}, {blob}, {real}); statements end with ``;`` at the end of a line. A version may instead
have one file per dialect (``NNNN_name.postgresql.sql`` and ``NNNN_name.sqlite.sql``).
"""

import re
import time
from pathlib import Path

FOLDER = Path(__file__).with_name("migrations")
_NAME = re.compile(r"(\d{4})_([a-z0-9_]+?)(?:\.(sqlite|postgresql))?\.sql")


class SchemaError(RuntimeError):
    """The database's schema is not the one this code expects; the message says what to run."""


def available(dialect: str = "sqlite") -> list:
    """[(version, name, statements)] in order, for ``dialect`` (a version's file for both, or its
    file for this dialect)."""
    found = {}
    for path in sorted(FOLDER.glob("*.sql")):
        match = _NAME.fullmatch(path.name)
        if not match:
            raise SchemaError(f"{path.name}: migrations are named NNNN_what_it_does[.sqlite|.postgresql].sql")
        version, name, only = int(match.group(1)), match.group(2), match.group(3)
        if only is not None and only != dialect:
            continue
        text = "\n".join(line for line in path.read_text().splitlines() if not line.lstrip().startswith("--"))
        statements = [s.strip() for s in re.split(r";\s*$", text, flags=re.M) if s.strip()]
        found[version] = (version, name, statements)
    found = [found[v] for v in sorted(found)]
    versions = [v for v, _, _ in found]
    if versions != list(range(1, len(found) + 1)):
        raise SchemaError(f"migrations must be numbered 1, 2, 3... without gaps; found {versions}")
    return found


def latest() -> int:
    return len(available())


def current(db) -> int:
    with db.transaction() as tx:
        _ensure_table(tx)
        return tx.one("SELECT COALESCE(MAX(version), 0) AS v FROM schema_migrations")["v"]


def _ensure_table(tx):
    when = "TIMESTAMPTZ" if tx.dialect.name == "postgresql" else "REAL"  # as 0004 makes every other timestamp
    tx.execute(
        f"CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, "
        f"applied_at {when} NOT NULL)"
    )


def migrate(db) -> list:
    """Apply every missing migration; the names of those applied. Concurrent callers queue on a
    lock (PostgreSQL advisory lock; SQLite's BEGIN IMMEDIATE) and the later ones find nothing to do."""
    applied = []
    for version, name, statements in available(db.dialect.name):
        with db.transaction() as tx:
            db.lock(tx, "migrate")
            _ensure_table(tx)
            if tx.one("SELECT 1 AS x FROM schema_migrations WHERE version = ?", (version,)):
                continue
            for statement in statements:
                tx.execute(statement.format(pk=tx.dialect.pk, blob=tx.dialect.blob, real=tx.dialect.real))
            tx.execute(
                "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, {ts})",
                (version, name, time.time()),
            )
            applied.append(f"{version:04d}_{name}")
    return applied


def check(db):
    """Raise SchemaError unless the database is at exactly this code's version."""
    have, want = current(db), latest()
    if have < want:
        raise SchemaError(
            f"The database is at schema version {have}; this server needs {want}. Run "
            "`python -m server migrate` (with the same DATABASE_URL) first."
        )
    if have > want:
        raise SchemaError(
            f"The database is at schema version {have}, newer than this server's {want}: upgrade this server's code."
        )
