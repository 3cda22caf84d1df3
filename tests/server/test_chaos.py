"""Chaos on PostgreSQL: 2 API processes and 3 worker processes, 300 jobs from 10 users (some
failing, some canceled at random moments, half with webhooks to a receiver that fails at random),
while random processes are SIGKILLed and started again. Afterwards every job is final exactly once,
the money adds up, the ledger reconciles, and every webhook event was delivered with a valid
Standard Webhooks signature (checked with the `standardwebhooks` package), none after its
recorded success."""

import concurrent.futures as cf
import http.server
import json
import random
import threading
import time
import uuid

import httpx
import pytest
from standardwebhooks.webhooks import Webhook

from server import accounts
from tests.server.conftest import Proc, free_port
from tests.server.test_api import png_bytes

JOBS, USERS = 300, 10
pytestmark = pytest.mark.postgres


class Receiver:
    """Webhook receiver: the first answer to each message is a 500 one time in four; every request
    is kept with the time it arrived."""

    def __init__(self):
        self.got, self.lock, rng = [], threading.Lock(), random.Random(7)
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                headers = {k.lower(): v for k, v in self.headers.items()}
                with receiver.lock:
                    first = not any(h["webhook-id"] == headers.get("webhook-id") for _, h, _ in receiver.got)
                    receiver.got.append((time.time(), headers, body))
                    status = 500 if first and rng.random() < 0.25 else 204
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/hook"
        threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


class Cluster:
    """The server's processes, each restartable; ``apis`` answer on fixed ports."""

    def __init__(self, srv):
        self.srv, self.lock = srv, threading.Lock()
        self.ports = [srv.port, free_port()]
        self.procs = {"api-0": srv.proc}
        self.procs["api-1"] = self._start("api-1")
        for i in range(3):
            self.procs[f"worker-{i}"] = self._start(f"worker-{i}")
        for port in self.ports:
            self.wait_up(port)

    def _start(self, name):
        env = dict(self.srv.env)
        if name.startswith("api"):
            env["FATHOM_SERVER_PORT"] = str(self.ports[int(name[-1])])
            args = ["-m", "server"]
        else:
            args = ["-m", "server.worker", "--threads", "2"]
        proc = Proc(args, env, self.srv.tmp / f"{name}.log")
        self.srv.procs.append(proc)
        return proc

    def wait_up(self, port, timeout=60):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        raise AssertionError(f"the API on port {port} did not come back")

    def kill_and_restart(self, name):
        with self.lock:
            self.procs[name].kill()
            self.procs[name] = self._start(name)

    def url(self, i):
        return f"http://127.0.0.1:{self.ports[i % 2]}"


def _call(cluster, client_key, method, path, i, **kwargs):
    """One API call that survives a killed API process: retried (on either API) until answered."""
    headers = {"Authorization": f"Bearer {client_key}", **kwargs.pop("headers", {})}
    for attempt in range(200):
        try:
            return httpx.request(method, cluster.url(i + attempt) + path, timeout=30, headers=headers, **kwargs)
        except httpx.TransportError:
            time.sleep(0.05)
    raise AssertionError(f"{method} {path}: no API answered")


def test_chaos(start_server, tiny_catalog):
    receiver = Receiver()
    srv = start_server(
        "postgresql",
        tiny_catalog,
        workers="0",
        lease_seconds="2",
        max_attempts="4",
        poll_seconds="0.1",
        url_allowlist=["127.0.0.1/32"],
        rate_per_second="0",
        webhook_backoff_seconds="0.2",
        webhook_attempts="30",
        webhook_workers="2",
        webhook_timeout_seconds="2",
    )
    cluster = Cluster(srv)
    users = []
    for _ in range(USERS):
        client = srv.user(tokens=10_000)
        client.secret = client.get("/v2/me").json()["webhookSecret"]
        users.append(client)
    rng = random.Random(2024)
    good, broken = png_bytes(48, 32, seed=1), png_bytes(48, 32, seed=2)[:80]  # header fine, pixels missing
    plans = [
        {
            "user": users[i % USERS],
            "key": str(uuid.uuid4()),
            "broken": rng.random() < 0.15,
            "webhook": rng.random() < 0.5,
            "cancel_after": rng.choice([None, None, 0, 0.05, 0.2, 0.5]),
        }
        for i in range(JOBS)
    ]

    def run(i):
        plan = plans[i]
        user = plan["user"]
        data = {"resolutionLowerLimit": "256"}
        if plan["webhook"]:
            data["webhook"] = receiver.url
        for attempt in range(200):  # a killed API mid-request: the same Idempotency-Key again
            r = _call(
                cluster,
                user.key,
                "POST",
                "/v2/artworks/depth-map",
                i + attempt,
                files={"image": ("a.png", broken if plan["broken"] else good, "image/png")},
                data=data,
                headers={"Idempotency-Key": plan["key"]},
            )
            if r.status_code < 500:
                break
        assert r.status_code == 202, r.text
        plan["id"] = r.json()["id"]
        if plan["cancel_after"] is not None:
            time.sleep(plan["cancel_after"])
            r = _call(cluster, user.key, "POST", f"/v2/artworks/{plan['id']}/cancel", i)
            assert r.status_code in (200, 409), r.text

    stop = threading.Event()

    def chaos():
        names = sorted(cluster.procs)
        while not stop.wait(rng.uniform(2.0, 4.0)):
            cluster.kill_and_restart(rng.choice(names))

    killer = threading.Thread(target=chaos)
    killer.start()
    try:
        with cf.ThreadPoolExecutor(12) as pool:
            list(pool.map(run, range(JOBS)))
    finally:
        stop.set()
        killer.join()
    for port in cluster.ports:
        cluster.wait_up(port)

    # Everything final, every event delivered (workers, reapers and deliverers still running).
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        with srv.db.transaction(readonly=True) as tx:
            open_jobs = tx.one(
                "SELECT COUNT(*) AS n FROM artworks WHERE status NOT IN ('succeeded', 'failed', 'canceled')"
            )["n"]
            open_events = tx.one("SELECT COUNT(*) AS n FROM webhook_events WHERE status <> 'delivered'")["n"]
        if open_jobs == 0 and open_events == 0:
            break
        time.sleep(0.5)
    assert (open_jobs, open_events) == (0, 0)

    with srv.db.transaction(readonly=True) as tx:
        arts = {r["id"]: r for r in tx.all("SELECT * FROM artworks")}
        ledger = tx.all("SELECT user_id, kind, artwork_id, delta FROM ledger")
        events = {e["id"]: e for e in tx.all("SELECT * FROM webhook_events")}
        bad = accounts.reconcile(tx)
    # One artwork per submission, whatever the kills and retries.
    assert len(arts) == JOBS and {p["id"] for p in plans} == set(arts)
    charges = [e for e in ledger if e["kind"] == "charge"]
    refunds = [e for e in ledger if e["kind"] == "refund"]
    assert sorted(e["artwork_id"] for e in charges) == sorted(arts)  # exactly one charge each
    refunded = [e["artwork_id"] for e in refunds]
    assert len(refunded) == len(set(refunded))  # at most one refund each
    for art in arts.values():
        if art["status"] == "failed":
            assert art["id"] in refunded and art["error_code"] in ("image_unreadable", "worker_lost")
        if art["status"] == "succeeded":
            assert art["id"] not in refunded and json.loads(art["results"]) == ["depth.png", "depth.exr"]
        if art["status"] == "canceled" and art["id"] not in refunded:
            assert art["started_at"] is not None  # only a job that had started keeps its charge
    for plan in plans:
        if plan["broken"]:
            assert arts[plan["id"]]["status"] in ("failed", "canceled")
    kept = sum(a["cost"] for a in arts.values() if a["id"] not in refunded)
    assert -sum(e["delta"] for e in charges) - sum(e["delta"] for e in refunds) == kept
    assert kept == sum(
        a["cost"]
        for a in arts.values()
        if a["status"] == "succeeded" or (a["status"] == "canceled" and a["id"] not in refunded)
    )
    assert bad == [] and srv.admin("reconcile").returncode == 0
    for user in users:
        spent = sum(a["cost"] for a in arts.values() if a["user_id"] == user.user_id and a["id"] not in refunded)
        assert srv.balance(user) == 10_000 - spent

    # Webhooks: one event per artwork with a webhook, delivered, signed, never again after success.
    hooked = {p["id"]: p for p in plans if p["webhook"]}
    assert set(events) == {f"msg_{a}" for a in hooked}
    secrets = {u.user_id: u.secret for u in users}
    seen = {}
    for arrived, headers, body in receiver.got:
        event = events[headers["webhook-id"]]
        payload = Webhook(secrets[event["user_id"]]).verify(body, headers)  # raises when not authentic
        assert payload["data"]["status"] == arts[event["artwork_id"]]["status"]
        seen.setdefault(event["id"], []).append(arrived)
    assert set(seen) == set(events)
    for event in events.values():
        assert event["status"] == "delivered"
        assert not [t for t in seen[event["id"]] if t > event["delivered_at"]]  # nothing after the success
    receiver.close()
