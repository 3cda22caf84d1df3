"""Server benchmark: `make bench-server`. Submissions per second and p50/p99 submit latency for
32 concurrent clients, on SQLite and on PostgreSQL, each as a ratio against the server's no-op
endpoint (GET /healthz) measured by the same clients against the same server in the same run,
because these machines are noisy; absolute figures are printed for context only.

For each backend it starts the real server (`python -m server`) on 127.0.0.1 with a fresh
database and no in-process workers (so inference does not compete with the API for the CPU:
this measures accepting and charging a job), creates a user with many tokens and an API key
through the admin CLI (`python -m server.admin`), then runs:
  1. the baseline: every client sends GET /healthz, ``--requests`` times;
  2. the submissions: every client POSTs /v2/artworks/depth-map with a small PNG as a data URI.
Every answer must be 200 / 202; afterwards every submission must be in the ledger exactly once
and `server.admin reconcile` must pass, so a fast-but-wrong run cannot report a number.

Then, on PostgreSQL, the same submissions from 32 clients spread over 32 users (one balance row
each, so no single row serialises them) against one API process and against 4 API processes
sharing the database (clients spread over them), reported as the 4-process/1-process ratio of
submissions per second (``--api-processes``). On a machine with fewer cores than processes the
ratio says more about the CPU than about the server; the core count is printed with it.

PostgreSQL comes from FATHOM_TEST_DATABASE_URL or DATABASE_URL (a fresh database is created in
it and dropped afterwards), else scripts/ci_postgres.sh starts a throwaway one.

    .venv/bin/python -m bench.server_bench [--clients 32] [--requests 40] [--backends sqlite,postgresql]
                                           [--api-processes 4]
"""

import argparse
import base64
import io
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from urllib.parse import urlsplit

import httpx

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def small_png_data_uri(size=64) -> str:
    import numpy as np
    from PIL import Image

    y, x = np.mgrid[0:size, 0:size]
    rgb = np.stack([x * 4, y * 4, (x + y) * 2], axis=2).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def postgres_base_url() -> str:
    """A PostgreSQL URL whose user may create databases: from the environment, or a throwaway
    cluster from scripts/ci_postgres.sh."""
    url = os.environ.get("FATHOM_TEST_DATABASE_URL") or os.environ.get("DATABASE_URL", "")
    if url.startswith("postgres"):
        return url
    print("starting a throwaway PostgreSQL with scripts/ci_postgres.sh ...", flush=True)
    out = subprocess.run(
        ["bash", str(ROOT / "scripts" / "ci_postgres.sh")], capture_output=True, text=True, timeout=600
    )
    if out.returncode != 0:
        raise SystemExit(f"scripts/ci_postgres.sh failed:\n{out.stderr[-2000:]}")
    line = out.stdout.strip().splitlines()[-1]
    return line.split("=", 1)[1]


class Backend:
    """A fresh database on one backend; ``url`` for the server, ``drop()`` when done."""

    def __init__(self, kind: str, tmp: Path):
        self.kind, self._admin_url, self._name = kind, None, None
        if kind == "sqlite":
            self.url = f"sqlite:///{tmp / 'bench.db'}"
            return
        import psycopg

        base = postgres_base_url()
        self._name = f"fathom_bench_{uuid.uuid4().hex[:10]}"
        self._admin_url = base
        with psycopg.connect(base, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{self._name}"')
        self.url = urlsplit(base)._replace(path="/" + self._name).geturl()

    def drop(self):
        if self._name:
            import psycopg

            with psycopg.connect(self._admin_url, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{self._name}" WITH (FORCE)')


class ServerProcess:
    def __init__(self, database_url: str, tmp: Path, name: str = "server"):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("FATHOM_SERVER_")}
        self.env.update(
            {
                "DATABASE_URL": database_url,
                "FATHOM_SERVER_HOST": "127.0.0.1",
                "FATHOM_SERVER_PORT": str(self.port),
                "FATHOM_SERVER_DATA_DIR": str(tmp / "data"),
                "FATHOM_SERVER_WORKERS": "0",  # jobs stay queued: we measure the API, not inference
                "FATHOM_SERVER_RATE_PER_SECOND": "0",  # the benchmark is one key hammering on purpose
                "FATHOM_SERVER_LOG_LEVEL": "warning",
            }
        )
        self.log = open(tmp / f"{name}.log", "wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "server"],
            cwd=ROOT,
            env=self.env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + 60
        while True:
            if self.proc.poll() is not None:
                raise SystemExit("the server exited:\n" + Path(self.log.name).read_text(errors="replace")[-3000:])
            try:
                if httpx.get(self.url + "/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise SystemExit("the server did not answer /healthz within 60 s")
            time.sleep(0.1)

    def admin(self, *args) -> str:
        out = subprocess.run(
            [sys.executable, "-m", "server.admin", *args],
            cwd=ROOT,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        if out.returncode != 0:
            raise SystemExit(f"server.admin {' '.join(args)} failed:\n{out.stdout}{out.stderr}")
        return out.stdout

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.log.close()


def run_clients(url, clients: int, requests: int, make_request) -> dict:
    """``clients`` threads, each with its own keep-alive connection, send ``requests`` requests
    as fast as answers come back. ``url`` is one base URL or a list (client i uses url[i % n]);
    ``make_request(http)`` or, when it takes two arguments, ``make_request(http, i)``. Returns
    throughput and latency percentiles; raises on any unexpected status so a broken run reports
    nothing."""
    urls = [url] if isinstance(url, str) else list(url)
    if make_request.__code__.co_argcount == 1:
        one = make_request
        make_request = lambda http, i: one(http)  # noqa: E731 - the same request for every client
    latencies, errors = [], []
    lock = threading.Lock()
    start_gate = threading.Barrier(clients + 1)

    def client_loop(i):
        mine = []
        with httpx.Client(base_url=urls[i % len(urls)], timeout=60) as http:
            make_request(http, i)  # open the connection before the clock starts
            start_gate.wait()
            for _ in range(requests):
                t = time.perf_counter()
                try:
                    make_request(http, i)
                except Exception as exc:  # noqa: BLE001 - reported below, the run is void
                    with lock:
                        errors.append(repr(exc))
                    return
                mine.append(time.perf_counter() - t)
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=client_loop, args=(i,), daemon=True) for i in range(clients)]
    for t in threads:
        t.start()
    start_gate.wait()
    began = time.perf_counter()
    for t in threads:
        t.join(600)
    elapsed = time.perf_counter() - began
    if errors:
        raise SystemExit(f"{len(errors)} client(s) failed, e.g. {errors[0]}")
    if len(latencies) != clients * requests:
        raise SystemExit(f"only {len(latencies)} of {clients * requests} requests finished")
    latencies.sort()
    return {
        "n": len(latencies),
        "per_s": len(latencies) / elapsed,
        "p50": percentile(latencies, 50),
        "p99": percentile(latencies, 99),
    }


def percentile(sorted_values, p):
    k = (len(sorted_values) - 1) * p / 100
    lo = int(k)
    hi = min(lo + 1, len(sorted_values) - 1)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (k - lo)


def bench_backend(kind: str, clients: int, requests: int, image_uri: str) -> dict:
    tmp = Path(tempfile.mkdtemp(prefix=f"fathom-bench-{kind}-"))
    backend = Backend(kind, tmp)
    server = None
    try:
        server = ServerProcess(backend.url, tmp)
        # Every submission (and each client's warm-up one) costs the top resolution tier at most.
        submissions = clients * (requests + 1)
        tokens = submissions * 100
        server.admin("create-user", "bench", "--tokens", str(tokens))
        key = server.admin("create-key", "bench").strip().splitlines()[0]
        auth = {"Authorization": f"Bearer {key}"}
        body = json.dumps({"imageUrl": image_uri, "resolutionLowerLimit": 512}).encode()

        accepted = []  # (artwork id, cost) of every 202; list.append is atomic

        def noop(http):
            r = http.get("/healthz", headers=auth)
            if r.status_code != 200:
                raise RuntimeError(f"/healthz answered {r.status_code}")

        def submit(http):
            r = http.post("/v2/artworks/depth-map", content=body, headers={**auth, "Content-Type": "application/json"})
            if r.status_code != 202:
                raise RuntimeError(f"submit answered {r.status_code}: {r.text[:300]}")
            answer = r.json()
            accepted.append((answer["id"], answer["cost"]))

        base = run_clients(server.url, clients, requests, noop)
        sub = run_clients(server.url, clients, requests, submit)

        # Correctness after the load: one charge per accepted submission, ledger reconciles.
        with httpx.Client(base_url=server.url, headers=auth, timeout=60) as http:
            me = http.get("/v2/me").json()
        charged = tokens - int(me["balance"])
        reconcile = server.admin("reconcile").strip()  # exits non-zero (and we stop) on a mismatch
        ids = {artwork_id for artwork_id, _ in accepted}
        if len(accepted) != submissions or len(ids) != submissions:
            raise SystemExit(f"{len(accepted)} answers with {len(ids)} distinct ids for {submissions} submissions")
        if charged != sum(cost for _, cost in accepted):
            raise SystemExit(f"{charged} tokens charged, but the answers add up to {sum(cost for _, cost in accepted)}")
        return {
            "backend": kind,
            "noop": base,
            "submit": sub,
            "submissions": submissions,
            "tokens_per_submission": charged / submissions,
            "reconcile": reconcile,
        }
    finally:
        if server is not None:
            server.stop()
        backend.drop()
        shutil.rmtree(tmp, ignore_errors=True)


def bench_scaling(processes: int, clients: int, requests: int, image_uri: str) -> dict:
    """Submissions per second with 1 and with ``processes`` API processes on one PostgreSQL,
    ``clients`` clients each with a user of its own."""
    sys.path.insert(0, str(ROOT))
    from server import accounts, migrate
    from server.db import open_database

    tmp = Path(tempfile.mkdtemp(prefix="fathom-bench-scaling-"))
    backend = Backend("postgresql", tmp)
    servers = []
    db = None
    try:
        servers.append(ServerProcess(backend.url, tmp, "api-0"))  # migrates the fresh database
        db = open_database(backend.url)
        migrate.check(db)
        tokens = (requests + 1) * 2 * 100
        keys = []
        with db.transaction() as tx:
            for i in range(clients):
                keys.append(accounts.create_key(tx, accounts.create_user(tx, f"bench-{i}", tokens)))
        body = json.dumps({"imageUrl": image_uri, "resolutionLowerLimit": 512}).encode()
        accepted = []

        def submit(http, i):
            r = http.post(
                "/v2/artworks/depth-map",
                content=body,
                headers={"Authorization": f"Bearer {keys[i]}", "Content-Type": "application/json"},
            )
            if r.status_code != 202:
                raise RuntimeError(f"submit answered {r.status_code}: {r.text[:300]}")
            accepted.append(r.json()["id"])

        one = run_clients(servers[0].url, clients, requests, submit)
        servers += [ServerProcess(backend.url, tmp, f"api-{n}") for n in range(1, processes)]
        many = run_clients([s.url for s in servers], clients, requests, submit)
        with db.transaction(readonly=True) as tx:
            charges = tx.one("SELECT COUNT(*) AS n FROM ledger WHERE kind = 'charge'")["n"]
            bad = accounts.reconcile(tx)
        if bad or charges != len(accepted) or len(set(accepted)) != len(accepted):
            raise SystemExit(f"{charges} charges for {len(accepted)} answers; reconcile: {bad or 'ok'}")
        return {"processes": processes, "one": one, "many": many, "submissions": len(accepted)}
    finally:
        for server in servers:
            server.stop()
        if db is not None:
            db.close()
        backend.drop()
        shutil.rmtree(tmp, ignore_errors=True)


def report(r: dict) -> None:
    b, s = r["noop"], r["submit"]
    print(
        f"\n[{r['backend']}] {s['n']} submissions by {r['clients']} concurrent clients "
        f"({r['tokens_per_submission']:g} token(s) each; {r['reconcile']})"
    )
    for label, m in (("no-op GET /healthz", b), ("POST depth-map    ", s)):
        print(f"  {label} : {m['per_s']:8.1f} req/s   p50 {m['p50'] * 1e3:7.2f} ms   p99 {m['p99'] * 1e3:7.2f} ms")
    print(
        f"  ratio submit/no-op : throughput x{s['per_s'] / b['per_s']:.3f}   "
        f"p50 x{s['p50'] / b['p50']:.2f}   p99 x{s['p99'] / b['p99']:.2f}"
    )


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--clients", type=int, default=32)
    ap.add_argument("--requests", type=int, default=40, help="requests per client per measurement")
    ap.add_argument("--backends", default="sqlite,postgresql")
    ap.add_argument(
        "--api-processes", type=int, default=4, help="API processes of the PostgreSQL scaling run (0: skip it)"
    )
    ap.add_argument("--json", help="also write the figures to this file")
    args = ap.parse_args(argv)
    image_uri = small_png_data_uri()
    results = []
    print(
        f"Fathom server benchmark: {args.clients} clients x {args.requests} requests, 127.0.0.1, "
        f"{os.cpu_count()} CPU(s); figures are ratios against GET /healthz on the same server."
    )
    for kind in [k.strip() for k in args.backends.split(",") if k.strip()]:
        if kind not in ("sqlite", "postgresql"):
            raise SystemExit(f"unknown backend {kind!r}: use sqlite and/or postgresql")
        r = bench_backend(kind, args.clients, args.requests, image_uri)
        r["clients"] = args.clients
        report(r)
        results.append(r)
    if len(results) == 2:
        sq, pg = (r["submit"] for r in results)
        print(
            f"\nPostgreSQL/SQLite submissions per second (each against its own no-op): "
            f"x{(pg['per_s'] / results[1]['noop']['per_s']) / (sq['per_s'] / results[0]['noop']['per_s']):.2f}"
        )
    if args.api_processes and "postgresql" in args.backends:
        s = bench_scaling(args.api_processes, args.clients, args.requests, image_uri)
        print(
            f"\n[postgresql, {args.clients} clients over {args.clients} users] {s['submissions']} submissions, "
            f"ledger reconciled"
        )
        for label, r in ((" 1 API process ", s["one"]), (f"{s['processes']:>2} API processes", s["many"])):
            print(
                f"  {label}: {r['per_s']:8.1f} submissions/s   p50 {r['p50'] * 1e3:7.2f} ms   "
                f"p99 {r['p99'] * 1e3:7.2f} ms"
            )
        print(
            f"  ratio {s['processes']} processes / 1 process: x{s['many']['per_s'] / s['one']['per_s']:.2f} "
            f"(on {os.cpu_count()} CPU core(s))"
        )
        results.append({"backend": "postgresql-scaling", **s})
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
