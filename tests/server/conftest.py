"""The real server in a subprocess on 127.0.0.1, over SQLite always and PostgreSQL when
FATHOM_TEST_DATABASE_URL names one (.ci/run starts it with scripts/ci_postgres.sh).

Each server gets a fresh database (a temporary SQLite file, or a new PostgreSQL database) and a
model catalogue override pointing "da2-small" at the tiny test model.
"""

import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[2]
PG_ENV = "FATHOM_TEST_DATABASE_URL"
BACKENDS = ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def fresh_database_url(backend: str, tmp: Path) -> str:
    if backend == "sqlite":
        return f"sqlite:///{tmp / 'fathom.db'}"
    base = os.environ.get(PG_ENV)
    if not base:
        pytest.skip(f"PostgreSQL tests need {PG_ENV} (postgresql://user@127.0.0.1:port/db)")
    import psycopg

    name = f"fathom_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(base, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return urlsplit(base)._replace(path="/" + name).geturl()


class Proc:
    """A server or worker subprocess; its output goes to a log file shown when a test fails."""

    def __init__(self, args, env, log: Path):
        self.log = log
        self._fh = open(log, "ab")
        self.p = subprocess.Popen(
            [sys.executable, *args],
            cwd=ROOT,
            env=env,
            stdout=self._fh,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def kill(self):
        """SIGKILL: no cleanup, no lease release — a crashed machine."""
        self.p.send_signal(signal.SIGKILL)
        self.p.wait(10)

    def stop(self):
        if self.p.poll() is None:
            self.p.send_signal(signal.SIGTERM)
            try:
                self.p.wait(15)
            except subprocess.TimeoutExpired:
                self.kill()
        self._fh.close()

    def output(self) -> str:
        return self.log.read_text(errors="replace")[-4000:]


class Server:
    """One running server: its URL, its database (for setting up users) and helpers."""

    def __init__(self, tmp: Path, database_url: str, catalog: Path, **settings):
        self.tmp, self.database_url = tmp, database_url
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {k: v for k, v in os.environ.items() if not k.startswith("FATHOM_SERVER_")}
        env.update(
            {
                "DATABASE_URL": database_url,
                "FATHOM_CATALOG": str(catalog),
                "FATHOM_MODELS_DIR": str(tmp / "models"),
                "FATHOM_SERVER_DATA_DIR": str(tmp / "data"),
                "FATHOM_SERVER_PORT": str(self.port),
                "FATHOM_SERVER_LOG_LEVEL": "warning",
                "FATHOM_SERVER_THREADS": "1",
                "FATHOM_SERVER_POLL_SECONDS": "0.1",
                "OMP_NUM_THREADS": "1",
            }
        )
        for key, value in settings.items():
            env["FATHOM_SERVER_" + key.upper()] = value if isinstance(value, str) else json.dumps(value)
        self.env = env
        self.procs = []
        self.proc = self.spawn(["-m", "server"], "server.log")
        self._wait_up()
        from server.db import open_database

        self.db = open_database(database_url)

    def spawn(self, args, log):
        proc = Proc(args, self.env, self.tmp / log)
        self.procs.append(proc)
        return proc

    def worker(self, name="worker"):
        return self.spawn(["-m", "server.worker"], f"{name}.log")

    def _wait_up(self):
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.p.poll() is not None:
                raise RuntimeError("the server exited:\n" + self.proc.output())
            try:
                if httpx.get(self.url + "/healthz", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        raise RuntimeError("the server did not start in 60 s:\n" + self.proc.output())

    def user(self, tokens=0, name=None):
        """A new user with an API key; returns an httpx.Client authenticated as them."""
        from server import accounts

        name = name or f"user-{uuid.uuid4().hex[:8]}"
        with self.db.transaction() as tx:
            uid = accounts.create_user(tx, name, tokens)
            key = accounts.create_key(tx, uid)
        client = httpx.Client(base_url=self.url, headers={"Authorization": f"Bearer {key}"}, timeout=60)
        client.name, client.key, client.user_id = name, key, uid
        return client

    def balance(self, client) -> int:
        from server import accounts

        with self.db.transaction(readonly=True) as tx:
            return accounts.balance(tx, client.user_id)

    def ledger(self, client) -> list:
        from server import accounts

        with self.db.transaction(readonly=True) as tx:
            return accounts.ledger(tx, client.user_id, 1000)

    def admin(self, *args):
        return subprocess.run(
            [sys.executable, "-m", "server.admin", *args],
            cwd=ROOT,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=60,
        )

    def close(self):
        for proc in reversed(self.procs):
            proc.stop()
        self.db.close()
        drop_database(self.database_url)


@pytest.fixture(scope="session")
def tiny_catalog(tiny_model, tmp_path_factory):
    path = tmp_path_factory.mktemp("catalog") / "catalog.json"
    path.write_text(json.dumps({"models": {"da2-small": {"path": str(tiny_model)}}}))
    return path


@pytest.fixture(scope="session")
def standin_catalog(standin_model, tmp_path_factory):
    path = tmp_path_factory.mktemp("catalog") / "standin.json"
    path.write_text(json.dumps({"models": {"da2-small": {"path": str(standin_model)}}}))
    return path


@pytest.fixture
def start_server(tmp_path_factory, request):
    """start_server(backend, catalog, **settings) -> Server; stopped after the test."""
    started = []

    def start(backend, catalog, **settings):
        tmp = tmp_path_factory.mktemp(f"server-{backend}")
        server = Server(tmp, fresh_database_url(backend, tmp), catalog, **settings)
        started.append(server)
        return server

    yield start
    failed = getattr(request.node, "rep_call", None) is not None and request.node.rep_call.failed
    for server in started:
        if failed:
            for proc in server.procs:
                print(f"--- {proc.log.name}\n{proc.output()}")
        server.close()


@pytest.fixture(scope="module", params=BACKENDS)
def server(request, tiny_catalog, tmp_path_factory):
    """A shared server with one in-process worker and the tiny model, per backend."""
    tmp = tmp_path_factory.mktemp(f"server-{request.param}")
    srv = Server(
        tmp, fresh_database_url(request.param, tmp), tiny_catalog, url_allowlist=["127.0.0.1/32"], rate_per_second="0"
    )
    yield srv
    srv.close()


@pytest.fixture(params=BACKENDS)
def database(request, tmp_path):
    """A fresh database at the current schema, per backend, for tests of the storage functions."""
    from server import migrate
    from server.db import open_database

    url = fresh_database_url(request.param, tmp_path)
    db = open_database(url)
    migrate.migrate(db)
    yield db
    db.close()
    drop_database(url)


def drop_database(url: str):
    """Drop a database made by fresh_database_url (SQLite files go with the test's folder)."""
    if url.startswith("postgresql"):
        import psycopg

        with psycopg.connect(os.environ[PG_ENV], autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{urlsplit(url).path[1:]}" WITH (FORCE)')


@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    setattr(item, "rep_" + rep.when, rep)
