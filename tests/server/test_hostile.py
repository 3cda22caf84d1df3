"""Hostile and unlucky input against the real server: every case here once gave a 500, bypassed a
limit or stalled other users. Nothing in them may be charged."""

import http.server
import socket
import threading
import time

import httpx
import pytest

from tests.server.conftest import BACKENDS
from tests.server.test_api import png_bytes, submit


class ImageHost:
    """A local image host: /img-<anything> answers a PNG, /hold waits until ``release()``,
    /trickle sends its whole answer a byte at a time."""

    def __init__(self):
        self.seen, self.gate, self.arrived = [], threading.Event(), threading.Semaphore(0)
        host = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_GET(self):
                host.seen.append(self.path)
                body = png_bytes(32, 32, seed=1)
                if self.path == "/hold":
                    host.arrived.release()
                    host.gate.wait(60)
                if self.path == "/trickle":
                    answer = (
                        b"HTTP/1.1 200 OK\r\nContent-Type: image/png\r\nContent-Length: %d\r\n"
                        b"X-Padding: %s\r\n\r\n" % (len(body), b"p" * 400)
                    ) + body
                    try:
                        for byte in answer:
                            self.wfile.write(bytes([byte]))
                            self.wfile.flush()
                            time.sleep(0.02)
                    except OSError:
                        pass
                    self.close_connection = True
                    return
                self.send_response(200)
                self.send_header("Content-Type", "image/png")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True).start()

    def close(self):
        self.gate.set()
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def image_host():
    host = ImageHost()
    yield host
    host.close()


def test_deeply_nested_json_is_a_400(server):
    client = server.user(tokens=5)
    r = client.post(
        "/v2/artworks/depth-map", content=b'{"imageUrl": ' + b"[" * 3000, headers={"Content-Type": "application/json"}
    )
    assert r.status_code == 400 and r.json()["code"] == "bad_json", r.text
    r = client.post(
        "/v2/artworks/depth-map",
        content=b'{"imageUrl": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
        headers={"Content-Type": "application/json"},
    )
    assert r.status_code in (400, 422) and r.json()["code"] in ("bad_json", "invalid_parameters"), r.text
    assert server.balance(client) == 5


@pytest.mark.parametrize("field", ["image", "file"])
def test_image_sent_as_text_field_is_a_422(server, field):
    client = server.user(tokens=5)
    r = client.post(
        "/v2/artworks/depth-map",
        headers={"Content-Type": "multipart/form-data; boundary=b"},
        content=f'--b\r\nContent-Disposition: form-data; name="{field}"\r\n\r\nhello\r\n--b--\r\n',
    )
    assert r.status_code == 422 and r.json()["code"] == "image_not_a_file", r.text
    assert "@picture.png" in r.json()["message"]
    assert server.balance(client) == 5


def test_non_ascii_image_url_is_fetched(server, image_host):
    client = server.user(tokens=5)
    r = client.post(
        "/v2/artworks/depth-map",
        json={"imageUrl": f"{image_host.url}/img-ü.png?q=é", "resolutionLowerLimit": 256},
        headers={"Prefer": "wait=30"},
    )
    assert r.status_code == 200 and r.json()["status"] == "succeeded", r.text
    assert image_host.seen == ["/img-%C3%BC.png?q=%C3%A9"]


@pytest.mark.parametrize("path", ["abc%00def", "abc%01", "x" * 3000, "%FF%FE", "%C3%BC"])
def test_odd_artwork_ids_are_404(server, path):
    client = server.user(tokens=1)
    for r in (
        client.get(f"/v2/artworks/{path}"),
        client.post(f"/v2/artworks/{path}/cancel"),
        client.get(f"/v2/artworks/{path}/results/depth.png"),
    ):
        assert r.status_code == 404 and r.json()["code"] == "artwork_not_found", r.text


def test_huge_listing_offset_is_a_422(server):
    r = server.user().get("/v2/artworks", params={"offset": 10**30})
    assert r.status_code == 422 and r.json()["code"] == "invalid_parameters", r.text


def test_chunked_upload_cannot_pass_the_size_limit(server):
    """A 64x64 PNG followed by zeros, sent chunked (no Content-Length): refused with 413 once past
    the limit, nothing charged, nothing stored."""
    client = server.user(tokens=5)
    boundary = "fathomboundary"
    head = (
        f"--{boundary}\r\nContent-Disposition: form-data; name=\"image\"; filename=\"a.png\"\r\n"
        f"Content-Type: image/png\r\n\r\n"
    ).encode() + png_bytes(64, 64)
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=30)
    request = (
        f"POST /v2/artworks/depth-map HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {client.key}\r\n"
        f"Content-Type: multipart/form-data; boundary={boundary}\r\nTransfer-Encoding: chunked\r\n\r\n"
    )
    sock.sendall(request.encode())
    zeros = b"\0" * (1024 * 1024)
    try:
        sock.sendall(b"%x\r\n%s\r\n" % (len(head), head))
        for _ in range(22):  # 22 MiB against the 20 MiB limit
            sock.sendall(b"%x\r\n%s\r\n" % (len(zeros), zeros))
    except OSError:  # the server answered and closed the connection: what we want
        pass
    answer = b""
    try:  # the status line and headers, then the announced body (the connection may stay open)
        while b"\r\n\r\n" not in answer:
            chunk = sock.recv(65536)
            if not chunk:
                break
            answer += chunk
        head, _, body = answer.partition(b"\r\n\r\n")
        length = int(
            next(
                (line.split(b":", 1)[1] for line in head.split(b"\r\n") if line.lower().startswith(b"content-length:")),
                b"0",
            )
        )
        while len(body) < length:
            chunk = sock.recv(65536)
            if not chunk:
                break
            body += chunk
        answer = head + b"\r\n\r\n" + body
    except OSError:
        pass
    sock.close()
    assert answer.startswith(b"HTTP/1.1 413"), answer[:300]
    assert b'"code":"too_large"' in answer
    assert server.balance(client) == 5 and client.get("/v2/artworks").json()["total"] == 0
    with server.db.transaction(readonly=True) as tx:
        assert tx.one("SELECT COUNT(*) AS n FROM artwork_inputs")["n"] == 0


def test_401_names_the_bearer_scheme(server):
    r = httpx.get(server.url + "/v2/me")
    assert r.status_code == 401 and r.headers["www-authenticate"].startswith("Bearer")
    assert r.json()["code"] == "missing_api_key"
    r = httpx.get(server.url + "/v2/me", headers={"Authorization": "Bearer fth_nope"})
    assert r.status_code == 401 and r.headers["www-authenticate"].startswith("Bearer")
    assert r.json()["code"] == "invalid_api_key"


def test_every_error_has_a_code_and_the_request_id(server):
    r = httpx.get(server.url + "/v2/nowhere", headers={"X-Request-Id": "trace-123"})
    assert r.status_code == 404 and r.headers["x-request-id"] == "trace-123"
    body = r.json()
    assert set(body) >= {"statusCode", "error", "message", "code", "requestId"} and body["requestId"] == "trace-123"
    r = httpx.get(server.url + "/v2/me", headers={"X-Request-Id": "bad id with spaces"})
    assert r.json()["requestId"] != "bad id with spaces" and len(r.json()["requestId"]) == 32


@pytest.mark.parametrize("backend", BACKENDS)
def test_retry_after_is_rounded_up(start_server, tiny_catalog, backend):
    """A client that waits exactly Retry-After seconds gets through (a refill of 2.5 s was
    announced as 2 when rounded to the nearest second)."""
    srv = start_server(backend, tiny_catalog, workers="0", rate_per_second="0.4", rate_burst="1")
    client = srv.user(tokens=10)
    assert submit(client, resolutionLowerLimit=256).status_code == 202
    r = submit(client, resolutionLowerLimit=256)
    assert r.status_code == 429 and r.json()["code"] == "rate_limited"
    wait = int(r.headers["retry-after"])
    assert r.json()["retryAfter"] == wait
    time.sleep(wait)
    assert submit(client, resolutionLowerLimit=256).status_code == 202


@pytest.mark.parametrize("backend", BACKENDS)
def test_slow_image_hosts_hold_only_their_own_bounded_pool(start_server, tiny_catalog, image_host, backend):
    srv = start_server(
        backend,
        tiny_catalog,
        workers="0",
        rate_per_second="0",
        url_allowlist=["127.0.0.1/32"],
        fetch_per_key="1",
        fetch_concurrency="2",
        fetch_timeout_seconds="5",
    )
    alice, bob, carol, dave = (srv.user(tokens=10) for _ in range(4))
    # The whole fetch has a deadline, however slowly the host sends its headers.
    r = alice.post("/v2/artworks/depth-map", json={"imageUrl": image_host.url + "/trickle"})
    assert r.status_code == 422 and r.json()["code"] == "timeout", r.text
    assert len(image_host.seen) == 1  # refused, not fetched again: the host trickles ~9 s, the deadline is 5 s
    results = {}

    def held(name, client):
        results[name] = client.post("/v2/artworks/depth-map", json={"imageUrl": image_host.url + "/hold"}, timeout=60)

    threads = [threading.Thread(target=held, args=("alice", alice))]
    threads[0].start()
    assert image_host.arrived.acquire(timeout=30)
    r = alice.post("/v2/artworks/depth-map", json={"imageUrl": image_host.url + "/img.png"})
    assert r.status_code == 429 and r.json()["code"] == "too_many_downloads" and int(r.headers["retry-after"]) >= 1
    threads.append(threading.Thread(target=held, args=("bob", bob)))
    threads[1].start()
    assert image_host.arrived.acquire(timeout=30)
    r = carol.post("/v2/artworks/depth-map", json={"imageUrl": image_host.url + "/img.png"})
    assert r.status_code == 503 and r.json()["code"] == "downloads_busy" and "retry-after" in r.headers
    # Everyone else is served while the pool is full of stalled downloads.
    assert dave.get("/v2/me").status_code == 200
    assert (
        dave.post(
            "/v2/artworks/depth-map",
            files={"image": ("a.png", png_bytes(), "image/png")},
            data={"resolutionLowerLimit": "256"},
        ).status_code
        == 202
    )
    image_host.gate.set()  # (or the 5 s deadline ends them, and nothing is charged)
    for t in threads:
        t.join(60)
    for name, client in (("alice", alice), ("bob", bob)):
        r = results[name]
        assert (r.status_code, srv.balance(client)) in ((202, 8), (422, 10)), r.text
    assert srv.balance(carol) == 10
