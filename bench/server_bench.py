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

PostgreSQL comes from FATHOM_TEST_DATABASE_URL or DATABASE_URL (a fresh database is created in
it and dropped afterwards), else scripts/ci_postgres.sh starts a throwaway one.

    .venv/bin/python -m bench.server_bench [--clients 32] [--requests 40] [--backends sqlite,postgresql]
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
    out = subprocess.run(["bash", str(ROOT / "scripts" / "ci_postgres.sh")], capture_output=True, text=True,
                         timeout=600)
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
    def __init__(self, database_url: str, tmp: Path):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("FATHOM_SERVER_")}
        self.env.update({
            "DATABASE_URL": database_url,
            "FATHOM_SERVER_HOST": "127.0.0.1",
            "FATHOM_SERVER_PORT": str(self.port),
            "FATHOM_SERVER_DATA_DIR": str(tmp / "data"),
            "FATHOM_SERVER_WORKERS": "0",          # jobs stay queued: we measure the API, not inference
            "FATHOM_SERVER_RATE_PER_SECOND": "0",  # the benchmark is one key hammering on purpose
            "FATHOM_SERVER_LOG_LEVEL": "warning",
        })
        self.log = open(tmp / "server.log", "wb")
        self.proc = subprocess.Popen([sys.executable, "-m", "server"], cwd=ROOT, env=self.env,
                                     stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)
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
        out = subprocess.run([sys.executable, "-m", "server.admin", *args], cwd=ROOT, env=self.env,
                             capture_output=True, text=True, timeout=120)
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


def run_clients(url: str, clients: int, requests: int, make_request) -> dict:
    """``clients`` threads, each with its own keep-alive connection, send ``requests`` requests
    as fast as answers come back. Returns throughput and latency percentiles; raises on any
    unexpected status so a broken run reports nothing."""
    latencies, errors = [], []
    lock = threading.Lock()
    start_gate = threading.Barrier(clients + 1)

    def client_loop():
        mine = []
        with httpx.Client(base_url=url, timeout=60) as http:
            make_request(http)  # open the connection before the clock starts
            start_gate.wait()
            for _ in range(requests):
                t = time.perf_counter()
                try:
                    make_request(http)
                except Exception as exc:  # noqa: BLE001 - reported below, the run is void
                    with lock:
                        errors.append(repr(exc))
                    return
                mine.append(time.perf_counter() - t)
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=client_loop, daemon=True) for _ in range(clients)]
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
    return {"n": len(latencies), "per_s": len(latencies) / elapsed, "p50": percentile(latencies, 50),
            "p99": percentile(latencies, 99)}


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
            r = http.post("/v2/artworks/depth-map", content=body,
                          headers={**auth, "Content-Type": "application/json"})
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
            raise SystemExit(f"{charged} tokens charged, but the answers add up to "
                             f"{sum(cost for _, cost in accepted)}")
        return {"backend": kind, "noop": base, "submit": sub, "submissions": submissions,
                "tokens_per_submission": charged / submissions, "reconcile": reconcile}
    finally:
        if server is not None:
            server.stop()
        backend.drop()
        shutil.rmtree(tmp, ignore_errors=True)


def report(r: dict) -> None:
    b, s = r["noop"], r["submit"]
    print(f"\n[{r['backend']}] {s['n']} submissions by {r['clients']} concurrent clients "
          f"({r['tokens_per_submission']:g} token(s) each; {r['reconcile']})")
    print(f"  no-op GET /healthz : {b['per_s']:8.1f} req/s   p50 {b['p50'] * 1e3:7.2f} ms   p99 {b['p99'] * 1e3:7.2f} ms")
    print(f"  POST depth-map     : {s['per_s']:8.1f} req/s   p50 {s['p50'] * 1e3:7.2f} ms   p99 {s['p99'] * 1e3:7.2f} ms")
    print(f"  ratio submit/no-op : throughput x{s['per_s'] / b['per_s']:.3f}   "
          f"p50 x{s['p50'] / b['p50']:.2f}   p99 x{s['p99'] / b['p99']:.2f}")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--clients", type=int, default=32)
    ap.add_argument("--requests", type=int, default=40, help="requests per client per measurement")
    ap.add_argument("--backends", default="sqlite,postgresql")
    ap.add_argument("--json", help="also write the figures to this file")
    args = ap.parse_args(argv)
    image_uri = small_png_data_uri()
    results = []
    print(f"Fathom server benchmark: {args.clients} clients x {args.requests} requests, 127.0.0.1, "
          f"{os.cpu_count()} CPU(s); figures are ratios against GET /healthz on the same server.")
    for kind in [k.strip() for k in args.backends.split(",") if k.strip()]:
        if kind not in ("sqlite", "postgresql"):
            raise SystemExit(f"unknown backend {kind!r}: use sqlite and/or postgresql")
        r = bench_backend(kind, args.clients, args.requests, image_uri)
        r["clients"] = args.clients
        report(r)
        results.append(r)
    if len(results) == 2:
        sq, pg = (r["submit"] for r in results)
        print(f"\nPostgreSQL/SQLite submissions per second (each against its own no-op): "
              f"x{(pg['per_s'] / results[1]['noop']['per_s']) / (sq['per_s'] / results[0]['noop']['per_s']):.2f}")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
