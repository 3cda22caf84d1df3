"""server.webhooks: Standard Webhooks signatures and delivery to a real receiver on 127.0.0.1."""
import base64
import hashlib
import hmac
import http.server
import json
import threading
import time

import pytest

from server.webhooks import (DeliveryRecord, WebhookDispatcher, WebhookVerificationError, backoff_delay,
                             deliver, generate_secret, sign, signed_headers, verify)

LOCAL = ("127.0.0.1",)
SECRET = generate_secret()


def independent_signature(secret, msg_id, timestamp, body):
    """The receiver's own check, written from the specification, not with server.webhooks."""
    key = base64.b64decode(secret.removeprefix("whsec_"))
    mac = hmac.new(key, f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(mac).decode()


class Receiver(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    log = []        # (path, headers dict, body, signature valid) of every request
    counters = {}   # path -> number of requests so far

    def log_message(self, *args):
        pass

    def _answer(self, status, extra=()):
        self.send_response(status)
        for name, value in extra:
            self.send_header(name, value)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        headers = {k.lower(): v for k, v in self.headers.items()}
        valid = headers.get("webhook-signature") == independent_signature(
            SECRET, headers.get("webhook-id"), headers.get("webhook-timestamp"), body)
        self.log.append((self.path, headers, body, valid))
        n = self.counters[self.path] = self.counters.get(self.path, 0) + 1
        route = self.path.split("?")[0]
        if route == "/ok":
            return self._answer(204 if valid else 401)
        if route == "/flaky":       # two 500s, then success
            return self._answer(500 if n <= 2 else 200)
        if route == "/throttled":   # 429 with Retry-After, then success
            return self._answer(429, [("Retry-After", "0")]) if n == 1 else self._answer(200)
        if route == "/broken":
            return self._answer(503)
        if route == "/moved":
            return self._answer(301, [("Location", "/ok")])
        if route == "/gone":
            return self._answer(410)
        if route == "/slow":        # longer than the client's timeout on the first try
            if n == 1:
                time.sleep(1.5)
            return self._answer(200)
        self._answer(404)


@pytest.fixture
def receiver():
    Receiver.log.clear()
    Receiver.counters.clear()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


# ---------------------------------------------------------------- signatures

def test_standard_webhooks_reference_vector():
    secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    msg_id, ts, body = "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, b'{"test": 2432232314}'
    expected = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
    assert sign(secret, msg_id, ts, body) == expected
    verify(secret, {"Webhook-Id": msg_id, "Webhook-Timestamp": str(ts), "Webhook-Signature": expected},
           body, now=ts + 10)


def test_verify_rejects_wrong_secret_altered_body_and_old_or_future_timestamps():
    now = int(time.time())
    body = b'{"id":"a"}'
    headers = signed_headers(SECRET, "msg_1", now, body)
    verify(SECRET, headers, body)
    with pytest.raises(WebhookVerificationError, match="wrong secret or altered body"):
        verify(generate_secret(), headers, body)
    with pytest.raises(WebhookVerificationError, match="wrong secret or altered body"):
        verify(SECRET, headers, b'{"id":"b"}')
    old = signed_headers(SECRET, "msg_1", now - 600, body)
    with pytest.raises(WebhookVerificationError, match=r"60[01] s old"):
        verify(SECRET, old, body)
    verify(SECRET, old, body, tolerance=900)
    with pytest.raises(WebhookVerificationError, match="future"):
        verify(SECRET, signed_headers(SECRET, "msg_1", now + 600, body), body)
    with pytest.raises(WebhookVerificationError, match="Missing"):
        verify(SECRET, {"webhook-id": "msg_1"}, body)
    with pytest.raises(WebhookVerificationError, match="not an integer"):
        verify(SECRET, {**headers, "webhook-timestamp": "soon"}, body)


def test_rotation_several_signatures_and_several_secrets():
    now, body, new = int(time.time()), b"{}", generate_secret()
    both = {**signed_headers(SECRET, "m", now, body)}
    both["webhook-signature"] += " " + sign(new, "m", now, body)
    verify(new, both, body)
    verify([generate_secret(), SECRET], signed_headers(SECRET, "m", now, body), body)
    assert generate_secret().startswith("whsec_") and len(base64.b64decode(generate_secret()[6:])) == 32


def test_backoff_grows_exponentially_with_jitter_and_a_cap():
    for attempt in range(1, 8):
        base = min(60.0, 2.0 * 2 ** (attempt - 1))
        delays = [backoff_delay(attempt, 2.0, 60.0) for _ in range(50)]
        assert all(base / 2 <= d <= base for d in delays)
        assert len(set(delays)) > 1  # jittered


# ---------------------------------------------------------------- delivery

def test_delivery_is_signed_and_verified_by_the_receiver(receiver):
    payload = {"type": "artwork.succeeded", "data": {"id": "42", "status": "succeeded", "név": "ü"}}
    record = deliver(f"{receiver}/ok", SECRET, payload, allowlist=LOCAL, attempts=3, backoff=0.01)
    assert isinstance(record, DeliveryRecord)
    assert (record.ok, record.attempts, record.status) == (True, 1, 204)
    (path, headers, body, valid), = Receiver.log
    assert valid and headers["content-type"] == "application/json"
    assert headers["webhook-id"] == record.msg_id and record.msg_id.startswith("msg_")
    assert abs(int(headers["webhook-timestamp"]) - time.time()) < 5
    assert json.loads(body) == payload
    verify(SECRET, headers, body)  # and the module's own verify agrees


def test_wrong_secret_is_refused_by_the_receiver(receiver):
    record = deliver(f"{receiver}/ok", generate_secret(), {"x": 1}, allowlist=LOCAL, attempts=3, backoff=0.01)
    assert not record.ok and record.status == 401 and record.permanent and record.attempts == 1
    assert Receiver.log[0][3] is False


def test_retries_after_500s_with_the_same_id(receiver):
    record = deliver(f"{receiver}/flaky", SECRET, {"n": 1}, allowlist=LOCAL, attempts=5, backoff=0.05)
    assert (record.ok, record.attempts, record.status) == (True, 3, 200)
    assert [h[0] for h in record.history] == [500, 500, 200]
    ids = {headers["webhook-id"] for _, headers, _, _ in Receiver.log}
    assert len(Receiver.log) == 3 and len(ids) == 1
    assert all(valid for *_, valid in Receiver.log)  # every attempt freshly and correctly signed


def test_gives_up_after_the_attempt_budget(receiver):
    start = time.monotonic()
    record = deliver(f"{receiver}/broken", SECRET, {}, allowlist=LOCAL, attempts=3, backoff=0.1)
    elapsed = time.monotonic() - start
    assert (record.ok, record.attempts, record.status, record.permanent) == (False, 3, 503, False)
    assert Receiver.counters["/broken"] == 3
    assert 0.1 <= elapsed < 2.0  # waited 0.05..0.1 then 0.1..0.2 s between tries


def test_429_is_retried(receiver):
    record = deliver(f"{receiver}/throttled", SECRET, {}, allowlist=LOCAL, attempts=3, backoff=0.01)
    assert record.ok and [h[0] for h in record.history] == [429, 200]


def test_redirect_is_not_followed(receiver):
    record = deliver(f"{receiver}/moved", SECRET, {}, allowlist=LOCAL, attempts=4, backoff=0.01)
    assert not record.ok and record.status == 301 and record.permanent and record.attempts == 1
    assert "redirect" in record.error
    assert [entry[0] for entry in Receiver.log] == ["/moved"]  # /ok never reached


def test_410_gone_is_permanent(receiver):
    record = deliver(f"{receiver}/gone", SECRET, {}, allowlist=LOCAL, attempts=4, backoff=0.01)
    assert (record.ok, record.status, record.attempts, record.permanent) == (False, 410, 1, True)


def test_timeout_is_retried(receiver):
    record = deliver(f"{receiver}/slow", SECRET, {}, allowlist=LOCAL, attempts=3, backoff=0.01, timeout=0.5)
    assert record.ok and record.attempts == 2
    assert record.history[0][0] is None and "did not answer" in record.history[0][1]


def test_unsafe_webhook_url_is_refused_without_a_request(receiver):
    record = deliver(f"{receiver}/ok", SECRET, {}, attempts=3, backoff=0.01)  # no allowlist
    assert not record.ok and record.permanent and record.attempts == 1 and "loopback" in record.error
    record = deliver("http://169.254.169.254/latest", SECRET, {}, attempts=3, backoff=0.01)
    assert not record.ok and "metadata" in record.error
    assert Receiver.log == []


def test_connection_refused_is_retried():
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        record = deliver(f"http://127.0.0.1:{port}/", SECRET, {}, allowlist=LOCAL, attempts=2, backoff=0.01)
    assert not record.ok and record.attempts == 2 and record.status is None and not record.permanent


# ---------------------------------------------------------------- dispatcher

def test_dispatcher_delivers_in_background_and_reports(receiver):
    results = []
    dispatcher = WebhookDispatcher(allowlist=LOCAL, attempts=4, backoff=0.02, workers=2, on_result=results.append)
    try:
        ids = [dispatcher.submit(f"{receiver}/ok", SECRET, {"i": i}) for i in range(5)]
        ids.append(dispatcher.submit(f"{receiver}/flaky", SECRET, {"i": "flaky"}, msg_id="msg_custom"))
        assert dispatcher.join(timeout=10)
    finally:
        assert dispatcher.shutdown(timeout=5) == 0
    assert sorted(r.msg_id for r in results) == sorted(ids) and "msg_custom" in ids
    assert all(r.ok for r in results)
    assert sum(1 for *_, valid in Receiver.log if valid) == len(Receiver.log) == 5 + 3
    with pytest.raises(RuntimeError, match="shut down"):
        dispatcher.submit(f"{receiver}/ok", SECRET, {})


def test_dispatcher_shutdown_interrupts_retry_waits(receiver):
    results = []
    dispatcher = WebhookDispatcher(allowlist=LOCAL, attempts=5, backoff=30.0, workers=1, on_result=results.append)
    dispatcher.submit(f"{receiver}/broken", SECRET, {})
    dispatcher.submit(f"{receiver}/ok", SECRET, {})  # queued behind the one waiting to retry
    deadline = time.monotonic() + 5
    while not Receiver.counters.get("/broken") and time.monotonic() < deadline:
        time.sleep(0.01)
    start = time.monotonic()
    abandoned = dispatcher.shutdown(timeout=5)
    assert time.monotonic() - start < 2.0
    assert abandoned == 1
    assert len(results) == 1 and not results[0].ok and results[0].attempts == 1
    assert "shutdown" in results[0].error
    assert "/ok" not in Receiver.counters
