"""Storage: one interface over SQLite (sqlite3, WAL, BEGIN IMMEDIATE) and PostgreSQL (psycopg 3,
a connection pool). Queries are written once, with ``?`` placeholders; the few places where the
dialects differ are named fragments of :class:`Dialect` (``{lock}``, ``{pk}``, ...).

    db = open_database("sqlite:///tmp/f.db")     # or "postgresql://user@host/db"
    with db.transaction() as tx:                  # writes: serialised on SQLite, row locks on PostgreSQL
        row = tx.one("SELECT tokens FROM balances WHERE user_id = ?", (uid,))
"""

import logging
import re
import sqlite3
import threading
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path


@dataclass(frozen=True)
class Dialect:
    name: str
    pk: str  # an auto-numbered primary key column
    blob: str
    real: str
    lock: str  # {lock}: appended to a SELECT that picks rows to claim (others skip them)
    for_update: str  # {for_update}: appended to a SELECT whose row is changed next (others wait)
    ts: str  # {ts}: a timestamp parameter, given as Unix seconds (a float)


# Timestamps: TIMESTAMPTZ on PostgreSQL; Unix seconds (REAL) on SQLite, which has no time type.
# The code always sees Unix seconds: {ts} converts parameters, Tx converts what comes back.
SQLITE = Dialect("sqlite", "INTEGER PRIMARY KEY AUTOINCREMENT", "BLOB", "REAL", "", "", "?")
POSTGRES = Dialect(
    "postgresql",
    "BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY",
    "BYTEA",
    "DOUBLE PRECISION",
    "FOR UPDATE SKIP LOCKED",
    "FOR UPDATE",
    "to_timestamp(?)",
)


def _row(row) -> dict:
    """A row as a dict, timestamps as Unix seconds whichever the dialect."""
    return {k: v.timestamp() if isinstance(v, datetime) else v for k, v in dict(row).items()}


class Tx:
    """One transaction: run queries, get rows as dicts."""

    def __init__(self, cursor, dialect):
        self._cur, self.dialect = cursor, dialect

    def _sql(self, sql):
        if "{" in sql:
            sql = sql.format(lock=self.dialect.lock, for_update=self.dialect.for_update, ts=self.dialect.ts)
        if self.dialect is POSTGRES:
            sql = sql.replace("%", "%%").replace("?", "%s")
        return sql

    def execute(self, sql, params=()) -> int:
        """Run a statement; the number of rows it changed."""
        self._cur.execute(self._sql(sql), tuple(params))
        return self._cur.rowcount

    def all(self, sql, params=()) -> list:
        self._cur.execute(self._sql(sql), tuple(params))
        return [_row(r) for r in self._cur.fetchall()]

    def notify(self, channel: str):
        """Wake the processes listening on ``channel`` when this transaction commits (PostgreSQL
        NOTIFY; on SQLite every process is on this machine and polls)."""
        if self.dialect is POSTGRES:
            self.execute("SELECT pg_notify(?, '')", (channel,))

    def one(self, sql, params=()):
        self._cur.execute(self._sql(sql), tuple(params))
        row = self._cur.fetchone()
        return None if row is None else _row(row)


log = logging.getLogger("fathom.server.db")

# Advisory lock numbers (PostgreSQL): one holder at a time across every process.
LOCKS = {"migrate": 4711, "reaper": 4712}


class Database:
    dialect: Dialect
    url: str

    def lock(self, tx, name: str):
        """Wait for the named lock until the transaction ends (SQLite: BEGIN IMMEDIATE already is one)."""

    def try_lock(self, tx, name: str) -> bool:
        """Take the named lock for the transaction if nobody holds it; False otherwise."""
        return True

    def listen(self, handlers: dict, stop: threading.Event):
        """Call ``handlers[channel]()`` whenever a transaction notifies ``channel``, until ``stop``
        (PostgreSQL LISTEN in a thread of its own; nothing on SQLite, where polling does)."""

    @contextmanager
    def transaction(self):
        raise NotImplementedError

    def close(self):
        pass


class SQLiteDatabase(Database):
    dialect = SQLITE

    def __init__(self, path: str):
        self.url = "sqlite:///" + path
        self.path = path
        if path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        self._all = []
        self._lock = threading.Lock()

    def _connection(self):
        conn = getattr(self._local, "conn", None)
        if conn is None:
            # isolation_level=None: we issue BEGIN ourselves; a deferred transaction that later
            # writes can fail with SQLITE_BUSY regardless of busy_timeout, so writes BEGIN IMMEDIATE.
            conn = sqlite3.connect(self.path, timeout=30, isolation_level=None, check_same_thread=False)
            conn.row_factory = sqlite3.Row
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("PRAGMA foreign_keys=ON")
            self._local.conn = conn
            with self._lock:
                self._all.append(conn)
        return conn

    @contextmanager
    def transaction(self, readonly=False):
        conn = self._connection()
        cur = conn.cursor()
        cur.execute("BEGIN" if readonly else "BEGIN IMMEDIATE")
        try:
            yield Tx(cur, SQLITE)
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        else:
            conn.execute("COMMIT")
        finally:
            cur.close()

    def close(self):
        with self._lock:
            for conn in self._all:
                try:
                    conn.close()
                except sqlite3.ProgrammingError:  # made in another thread that is gone
                    pass
            self._all.clear()
        self._local = threading.local()


class PostgresDatabase(Database):
    dialect = POSTGRES

    def __init__(self, url: str, max_connections: int = 20):
        from psycopg.rows import dict_row
        from psycopg_pool import ConnectionPool

        self.url = url
        self._pool = ConnectionPool(
            url, min_size=1, max_size=max_connections, open=True, kwargs={"row_factory": dict_row}, timeout=60
        )
        self._pool.wait(timeout=30)

    def lock(self, tx, name: str):
        tx.execute("SELECT pg_advisory_xact_lock(?)", (LOCKS[name],))

    def try_lock(self, tx, name: str) -> bool:
        return tx.one("SELECT pg_try_advisory_xact_lock(?) AS ok", (LOCKS[name],))["ok"]

    def listen(self, handlers: dict, stop: threading.Event):
        thread = threading.Thread(target=self._listen, args=(handlers, stop), daemon=True, name="fathom-listen")
        thread.start()
        return thread

    def _listen(self, handlers, stop):
        import psycopg

        while not stop.is_set():
            try:
                with psycopg.connect(self.url, autocommit=True) as conn:
                    for channel in handlers:
                        conn.execute(f"LISTEN {channel}")
                    for handler in handlers.values():  # whatever was notified while we were not listening
                        handler()
                    while not stop.is_set():
                        for note in conn.notifies(timeout=1.0):
                            handlers[note.channel]()
            except Exception:  # the database restarted or the network dropped: polling covers the gap
                log.warning("LISTEN connection lost; reconnecting", exc_info=True)
                stop.wait(1.0)

    @contextmanager
    def transaction(self, readonly=False):
        with self._pool.connection() as conn:
            with conn.transaction():
                with conn.cursor() as cur:
                    yield Tx(cur, POSTGRES)

    def close(self):
        self._pool.close()


def open_database(url: str, *, max_connections: int = 20) -> Database:
    """A Database for ``sqlite:///path`` (or a bare path) or ``postgresql://...``; its schema is
    server.migrate's business."""
    if url.startswith(("postgresql://", "postgres://")):
        db = PostgresDatabase(url, max_connections=max_connections)
    else:
        # sqlite:///relative/path, sqlite:////absolute/path (SQLAlchemy's convention), or a bare path
        path = re.sub(r"^sqlite:///", "", url) if url.startswith("sqlite:") else url
        db = SQLiteDatabase(path)
    return db
