"""Workers in their own processes: a worker killed mid-job (SIGKILL) leaves a job that is retried
and then failed and refunded when its lease expires, never one stuck in "processing"; a full-size
model job; a cancel while processing; signed webhooks received by a real receiver; per-key rate limiting."""

import http.server
import io
import json
import threading
import time

import numpy as np
import pytest
from PIL import Image

from tests.server.conftest import BACKENDS
from tests.server.test_api import png_bytes, submit
from tests.server.test_billing import kinds, wait_status


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def test_worker_killed_mid_job_is_retried_then_refunded(start_server, standin_catalog, backend):
    # No worker threads in the API process: jobs run only in the worker processes started here.
    srv = start_server(backend, standin_catalog, workers="0", lease_seconds="2", max_attempts="2")
    client = srv.user(tokens=10)
    art = submit(client, png_bytes(80, 60), resolutionLowerLimit=256).json()
    assert srv.balance(client) == 9

    for attempt in (1, 2):
        worker = srv.worker(f"worker-{attempt}")
        wait_status(client, art["id"], ("processing",), timeout=60)
        worker.kill()  # mid-job: it holds the lease and stops renewing it
        expected = ("starting",) if attempt == 1 else ("failed",)
        final = wait_status(client, art["id"], expected, timeout=30)
    assert final["errorCode"] == "worker_lost" and "refunded" in final["error"]
    assert srv.balance(client) == 10 and kinds(srv, client) == ["charge", "grant", "refund"]

    # A healthy worker runs the full-size stand-in model on the next job.
    srv.worker("worker-3")
    done = submit(client, png_bytes(80, 60, seed=4), resolutionLowerLimit=256, wait=60).json()
    done = wait_status(client, done["id"], ("succeeded",), timeout=60)
    depth = np.asarray(Image.open(io.BytesIO(client.get(done["results"][0]).content)))
    assert depth.shape == (60, 80) and depth.dtype == np.uint16 and depth.max() == 65535
    assert srv.balance(client) == 9

    # Canceled while processing: canceled at once, the worker stops and keeps nothing; not refunded.
    busy = submit(client, png_bytes(400, 300, seed=5), resolutionLowerLimit=1024).json()
    wait_status(client, busy["id"], ("processing",), timeout=60)
    r = client.post(f"/v2/artworks/{busy['id']}/cancel")
    assert r.status_code == 200 and r.json()["status"] == "canceled"
    assert srv.balance(client) == 7 and kinds(srv, client).count("refund") == 1
    after = submit(client, png_bytes(40, 30, seed=6), resolutionLowerLimit=256, wait=60).json()
    assert wait_status(client, after["id"], ("succeeded",), timeout=60)["status"] == "succeeded"
    assert client.get(f"/v2/artworks/{busy['id']}").json()["status"] == "canceled"
    assert not (srv.tmp / "data" / "results" / busy["id"]).exists()  # one worker: it finished with busy first
    assert srv.admin("reconcile").returncode == 0


@pytest.mark.slow
@pytest.mark.parametrize("backend", BACKENDS)
def test_restarted_worker_releases_its_dead_predecessors_jobs_at_once(start_server, standin_catalog, backend):
    """A worker process killed mid-job and started again on the same machine hands the job back
    at its start, not after the 10-minute lease."""
    srv = start_server(backend, standin_catalog, workers="0", lease_seconds="600", max_attempts="3")
    client = srv.user(tokens=10)
    art = submit(client, png_bytes(400, 300), resolutionLowerLimit=512).json()
    worker = srv.worker("worker-1")
    wait_status(client, art["id"], ("processing",), timeout=60)
    deadline = time.monotonic() + 30
    while True:  # the worker takes the picture out of the queue's table right after claiming it
        with srv.db.transaction(readonly=True) as tx:
            if tx.one("SELECT COUNT(*) AS n FROM artwork_inputs")["n"] == 0:
                break
        assert time.monotonic() < deadline, "the picture stayed in the queue's table"
        time.sleep(0.02)
    assert client.get(f"/v2/artworks/{art['id']}").json()["status"] == "processing"
    worker.kill()
    srv.worker("worker-2")
    done = wait_status(client, art["id"], ("succeeded",), timeout=120)
    assert client.get(f"/v2/artworks/{art['id']}").json()["status"] == "succeeded"
    with srv.db.transaction(readonly=True) as tx:
        assert tx.one("SELECT attempts FROM artworks WHERE id = ?", (done["id"],))["attempts"] == 2


@pytest.mark.slow
@pytest.mark.parametrize("backend", BACKENDS)
def test_job_over_the_time_limit_fails_and_is_refunded(start_server, standin_catalog, backend):
    """A job still processing after max_job_seconds (a hung engine keeps heartbeating) fails with
    code "timeout" and is refunded; the worker stops and takes the next job."""
    srv = start_server(backend, standin_catalog, lease_seconds="3", max_job_seconds="1")
    client = srv.user(tokens=10)
    art = submit(client, png_bytes(600, 400), resolutionLowerLimit=2048).json()
    final = wait_status(client, art["id"], ("failed",), timeout=60)
    assert final["errorCode"] == "timeout" and "refunded" in final["error"]
    assert srv.balance(client) == 10 and kinds(srv, client) == ["charge", "grant", "refund"]


@pytest.mark.postgres
def test_workers_wake_on_notify_not_on_polling(start_server, tiny_catalog):
    """With a 60 s poll, only PostgreSQL's NOTIFY can get the job to a worker process in time."""
    srv = start_server("postgresql", tiny_catalog, workers="0", poll_seconds="60")
    client = srv.user(tokens=5)
    srv.worker()
    first = submit(client, png_bytes(40, 30), resolutionLowerLimit=256).json()
    wait_status(client, first["id"], ("succeeded",), timeout=60)  # the worker is up and has looked
    time.sleep(1.0)  # ... and now sleeps for its 60 s poll
    art = submit(client, png_bytes(40, 30, seed=1), resolutionLowerLimit=256, wait=20).json()
    assert art["status"] == "succeeded", art


def test_no_worker_running_is_said(start_server, tiny_catalog):
    srv = start_server("sqlite", tiny_catalog, workers="0")
    art = submit(srv.user(tokens=5), resolutionLowerLimit=256).json()
    assert art["status"] == "starting" and "No worker is running" in art["notice"]


class Receiver:
    """A webhook receiver on 127.0.0.1 that records what it gets."""

    def __init__(self):
        self.received = []
        self.event = threading.Event()
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.received.append(({k.lower(): v for k, v in self.headers.items()}, body))
                self.send_response(204)
                self.end_headers()
                receiver.event.set()

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/hook"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()


def test_signed_webhook_on_completion(server):
    from server.webhooks import verify

    receiver = Receiver()
    try:
        client = server.user(tokens=5)
        secret = client.get("/v2/me").json()["webhookSecret"]
        art = submit(client, resolutionLowerLimit=256, webhook=receiver.url).json()
        assert art["parameters"]["webhook"] == receiver.url
        assert receiver.event.wait(30), "no webhook arrived"
        headers, body = receiver.received[0]
        verify(secret, headers, body)  # raises when the signature does not match
        payload = json.loads(body)
        assert payload["type"] == "artwork.succeeded"
        assert payload["data"]["id"] == art["id"] and payload["data"]["status"] == "succeeded"
        assert len(payload["data"]["results"]) == 2
        with pytest.raises(Exception):
            verify(secret, headers, body + b" ")  # a tampered body fails verification
    finally:
        receiver.close()


def test_rate_limit_per_key(start_server, tiny_catalog):
    srv = start_server("sqlite", tiny_catalog, workers="0", rate_per_second="0.5", rate_burst="2")
    alice, bob = srv.user(tokens=20), srv.user(tokens=20)
    codes = [submit(alice, resolutionLowerLimit=256).status_code for _ in range(3)]
    assert codes == [202, 202, 429]
    r = submit(alice, resolutionLowerLimit=256)
    assert r.status_code == 429 and int(r.headers["retry-after"]) >= 1 and "retry in" in r.json()["message"]
    assert submit(bob, resolutionLowerLimit=256).status_code == 202  # another key has its own bucket
    assert srv.balance(alice) == 18
