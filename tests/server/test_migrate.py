"""Versioned migrations: `python -m server migrate`, the check every process makes at start, and a
database made before migrations existed being adopted as it is."""

import os
import subprocess
import sys

import pytest

from server import migrate
from server.db import open_database
from tests.server.conftest import BACKENDS, ROOT, drop_database, fresh_database_url


def run(tmp_path, *args, **env):
    full = {k: v for k, v in os.environ.items() if not k.startswith("FATHOM_SERVER_")}
    full.update(DATABASE_URL=f"sqlite:///{tmp_path / 'm.db'}", FATHOM_SERVER_DATA_DIR=str(tmp_path), **env)
    return subprocess.run([sys.executable, "-m", *args], cwd=ROOT, env=full, capture_output=True, text=True, timeout=60)


def test_migrate_check_and_refusals(tmp_path):
    done = run(tmp_path, "server", "migrate", "--check")
    assert done.returncode == 1 and "python -m server migrate" in done.stderr
    done = run(tmp_path, "server.worker")  # a worker never migrates: it says what to run
    assert done.returncode == 2 and "schema version 0" in done.stderr and "Traceback" not in done.stderr
    done = run(tmp_path, "server", "migrate")
    assert done.returncode == 0 and "0001_initial" in done.stdout and f"version {migrate.latest()}" in done.stdout
    assert run(tmp_path, "server", "migrate").stdout.startswith("Nothing to apply.")
    assert run(tmp_path, "server", "migrate", "--check").returncode == 0
    db = open_database(f"sqlite:///{tmp_path / 'm.db'}")
    with db.transaction() as tx:  # a database from a newer release
        tx.execute(
            "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, 'future', {ts})",
            (migrate.latest() + 1, 0),
        )
    with pytest.raises(migrate.SchemaError, match="newer than this server"):
        migrate.check(db)
    db.close()


@pytest.mark.parametrize("backend", BACKENDS)
def test_database_from_before_migrations_is_adopted(backend, tmp_path, request):
    from server import accounts

    url = fresh_database_url(backend, tmp_path)
    db = open_database(url)
    request.addfinalizer(lambda: drop_database(url))
    request.addfinalizer(db.close)
    _, _, initial = migrate.available(db.dialect.name)[0]
    with db.transaction() as tx:  # what the first release created and wrote, with nothing recorded
        for statement in initial:
            tx.execute(statement.format(pk=tx.dialect.pk, blob=tx.dialect.blob, real=tx.dialect.real))
        uid = tx.one(
            "INSERT INTO users (name, webhook_secret, created_at) VALUES ('kept', 'whsec_', 1500000000.25) RETURNING id"
        )["id"]
        tx.execute("INSERT INTO balances (user_id, tokens) VALUES (?, 7)", (uid,))
    assert migrate.current(db) == 0
    assert migrate.migrate(db) == [f"{v:04d}_{n}" for v, n, _ in migrate.available(db.dialect.name)]
    migrate.check(db)
    with db.transaction(readonly=True) as tx:
        assert accounts.balance(tx, accounts.user_id(tx, "kept")) == 7
        assert tx.one("SELECT created_at FROM users WHERE id = ?", (uid,))["created_at"] == 1500000000.25
    if backend == "postgresql":  # timestamps are a time type there now
        with db.transaction(readonly=True) as tx:
            kinds = {
                r["data_type"]
                for r in tx.all(
                    "SELECT data_type FROM information_schema.columns WHERE table_schema = 'public' "
                    "AND (column_name LIKE '%\\_at' OR column_name = 'lease_expires')"
                )
            }
        assert kinds == {"timestamp with time zone"}, kinds
