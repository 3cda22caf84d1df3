"""server.webhooks: Standard Webhooks signatures and delivery to a real receiver on 127.0.0.1."""

import base64
import hashlib
import hmac
import http.server
import io
import socket
import threading
import time

import pytest
from standardwebhooks.webhooks import Webhook as StandardWebhook

from server import accounts, admin, jobs, migrate, outbox
from server.config import Settings
from server.db import open_database
from server.webhooks import (
    WebhookVerificationError,
    attempt,
    backoff_delay,
    generate_secret,
    sign,
    signed_headers,
    verify,
)

LOCAL = ("127.0.0.1",)
SECRET = generate_secret()


def independent_signature(secret, msg_id, timestamp, body):
    """The receiver's own check, written from the specification, not with server.webhooks."""
    key = base64.b64decode(secret.removeprefix("whsec_"))
    mac = hmac.new(key, f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(mac).decode()


class Receiver(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    log = []  # (path, headers dict, body, signature valid) of every request
    counters = {}  # path -> number of requests so far

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
            SECRET, headers.get("webhook-id"), headers.get("webhook-timestamp"), body
        )
        self.log.append((self.path, headers, body, valid))
        n = self.counters[self.path] = self.counters.get(self.path, 0) + 1
        route = self.path.split("?")[0]
        if route in ("/ok", "/ok-%C3%BC"):
            return self._answer(204 if valid else 401)
        if route == "/flaky":  # two 500s, then success
            return self._answer(500 if n <= 2 else 200)
        if route == "/throttled":  # 429 with Retry-After, then success
            return self._answer(429, [("Retry-After", "0")]) if n == 1 else self._answer(200)
        if route == "/broken":
            return self._answer(503)
        if route == "/moved":
            return self._answer(301, [("Location", "/ok")])
        if route == "/gone":
            return self._answer(410)
        if route == "/slow":  # longer than the client's timeout on the first try
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
    verify(
        secret, {"Webhook-Id": msg_id, "Webhook-Timestamp": str(ts), "Webhook-Signature": expected}, body, now=ts + 10
    )


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
    for number in range(1, 8):
        base = min(60.0, 2.0 * 2 ** (number - 1))
        delays = [backoff_delay(number, 2.0, 60.0) for _ in range(50)]
        assert all(base / 2 <= d <= base for d in delays)
        assert len(set(delays)) > 1  # jittered


# ---------------------------------------------------------------- one attempt


@pytest.mark.parametrize(
    "path, ok, status, permanent",
    [
        ("/ok", True, 204, False),
        ("/ok-%C3%BC", True, 204, False),
        ("/broken", False, 503, False),  # retried later
        ("/moved", False, 301, True),  # redirects are not followed
        ("/gone", False, 410, True),
        ("/nowhere", False, 404, True),
    ],
)
def test_one_attempt_is_classified(receiver, path, ok, status, permanent):
    body = b'{"type":"artwork.succeeded"}'
    result = attempt(f"{receiver}{path}", SECRET, body, "msg_1", allowlist=LOCAL)
    assert (result.ok, result.status, result.permanent) == (ok, status, permanent), result
    ((seen, headers, got, valid),) = Receiver.log
    assert valid and got == body and headers["webhook-id"] == "msg_1" and seen == path


def test_non_ascii_webhook_url_is_delivered(receiver):
    result = attempt(f"{receiver}/ok-ü", SECRET, b"{}", "msg_2", allowlist=LOCAL)
    assert result.ok and Receiver.log[0][0] == "/ok-%C3%BC"


def test_throttled_attempt_passes_retry_after_on(receiver):
    result = attempt(f"{receiver}/throttled", SECRET, b"{}", "m", allowlist=LOCAL)
    assert (result.ok, result.status, result.permanent, result.retry_after) == (False, 429, False, 0)


def test_timeouts_and_refused_connections_are_worth_retrying(receiver):
    result = attempt(f"{receiver}/slow", SECRET, b"{}", "m", allowlist=LOCAL, timeout=0.5)
    assert not result.ok and not result.permanent and result.status is None and "did not answer" in result.error
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        result = attempt(f"http://127.0.0.1:{s.getsockname()[1]}/", SECRET, b"{}", "m", allowlist=LOCAL)
    assert not result.ok and not result.permanent and result.status is None


def test_unsafe_webhook_url_is_refused_without_a_request(receiver):
    result = attempt(f"{receiver}/ok", SECRET, b"{}", "m")  # no allowlist
    assert not result.ok and result.permanent and "loopback" in result.error
    result = attempt("http://169.254.169.254/latest", SECRET, b"{}", "m")
    assert not result.ok and result.permanent and "metadata" in result.error
    assert Receiver.log == []


# ---------------------------------------------------------------- the outbox


class Outbox:
    """A real SQLite database at the current schema with one user whose artworks get canceled,
    which writes their webhook events exactly as the server does."""

    def __init__(self, tmp_path, **settings):
        self.db = open_database(f"sqlite:///{tmp_path / 'outbox.db'}")
        migrate.migrate(self.db)
        self.settings = Settings(
            data_dir=str(tmp_path),
            url_allowlist=list(LOCAL),
            webhook_backoff_seconds=0.01,
            webhook_attempts=3,
            webhook_timeout_seconds=0.5,
            **settings,
        )
        with self.db.transaction() as tx:
            uid = accounts.create_user(tx, "hooks", tokens=100)
            tx.execute("UPDATE users SET webhook_secret = ? WHERE id = ?", (SECRET, uid))  # the receiver's
            self.caller = accounts.caller_for_key(tx, accounts.create_key(tx, uid))

    def event(self, url, fail_after_cancel=False):
        """Submit and cancel an artwork with ``url`` as its webhook; the event's id."""
        with self.db.transaction() as tx:
            row, _ = jobs.submit(tx, self.caller, {"model": "small", "webhook": url}, "da2-small", 1, b"png")
        with self.db.transaction() as tx:
            jobs.cancel(tx, self.caller.user_id, row["id"], on_final=outbox.event_writer(self.settings))
            if fail_after_cancel:
                raise RuntimeError("the transaction fails after the state change")
        return f"msg_{row['id']}"

    def deliver_all(self, worker="w1"):
        while outbox.deliver_one(self.db, self.settings, worker):
            pass

    def row(self, event_id):
        with self.db.transaction(readonly=True) as tx:
            event = tx.one("SELECT * FROM webhook_events WHERE id = ?", (event_id,))
            attempts = tx.all("SELECT * FROM webhook_attempts WHERE event_id = ? ORDER BY id", (event_id,))
        return event, attempts


@pytest.fixture
def box(tmp_path):
    box = Outbox(tmp_path)
    yield box
    box.db.close()


def _wait_due(box, event_id):
    event, _ = box.row(event_id)
    time.sleep(max(0.0, event["next_attempt_at"] - time.time()) + 0.01)


def test_event_is_written_with_the_state_change_or_not_at_all(box, receiver):
    with pytest.raises(RuntimeError):
        box.event(f"{receiver}/ok", fail_after_cancel=True)
    with box.db.transaction(readonly=True) as tx:
        assert tx.one("SELECT COUNT(*) AS n FROM webhook_events")["n"] == 0
        assert tx.one("SELECT status FROM artworks")["status"] == "starting"  # rolled back together


def test_delivered_once_signed_per_the_standard_and_never_again(box, receiver):
    event_id = box.event(f"{receiver}/ok")
    box.deliver_all()
    box.deliver_all("w2")
    event, attempts = box.row(event_id)
    assert event["status"] == "delivered" and event["attempts"] == 1 and len(attempts) == 1
    ((path, headers, body, valid),) = Receiver.log
    payload = StandardWebhook(SECRET).verify(body, headers)  # the reference library agrees
    assert payload["type"] == "artwork.canceled" and payload["data"]["id"] == event_id[4:] and valid


def test_retries_are_scheduled_in_the_database_and_survive_a_restart(box, receiver):
    event_id = box.event(f"{receiver}/flaky")  # two 500s, then 200
    box.deliver_all()
    event, attempts = box.row(event_id)
    assert event["status"] == "pending" and event["attempts"] == 1 and event["last_status"] == 500
    assert event["next_attempt_at"] > attempts[0]["started_at"]
    # A new process (another worker name, nothing in memory) picks the schedule up from the table.
    for worker in ("after-restart-1", "after-restart-2"):
        _wait_due(box, event_id)
        box.deliver_all(worker)
    event, attempts = box.row(event_id)
    assert event["status"] == "delivered" and [a["http_status"] for a in attempts] == [500, 500, 200]
    assert [a["worker"] for a in attempts] == ["w1", "after-restart-1", "after-restart-2"]
    assert len({h["webhook-id"] for _, h, _, _ in Receiver.log}) == 1 and all(v for *_, v in Receiver.log)


def test_a_claim_whose_process_died_is_delivered_after_its_lease(box, receiver):
    event_id = box.event(f"{receiver}/ok")
    with box.db.transaction() as tx:
        assert outbox.claim(tx, "killed", 0.2)["id"] == event_id  # claimed, then the process died
    box.deliver_all("survivor")
    assert Receiver.log == []  # not before the lease ends
    _wait_due(box, event_id)
    box.deliver_all("survivor")
    event, attempts = box.row(event_id)
    assert event["status"] == "delivered" and event["attempts"] == 2 and len(Receiver.log) == 1


def test_budget_spent_then_failed_then_redelivered_by_the_admin(box, receiver, tmp_path):
    event_id = box.event(f"{receiver}/broken")
    for _ in range(3):
        _wait_due(box, event_id)
        box.deliver_all()
    event, attempts = box.row(event_id)
    assert event["status"] == "failed" and event["attempts"] == 3 and len(attempts) == 3
    permanent = box.event(f"{receiver}/gone")
    box.deliver_all()
    assert box.row(permanent)[0]["status"] == "failed" and box.row(permanent)[0]["attempts"] == 1

    out = io.StringIO()
    assert admin.run(admin._parser().parse_args(["webhooks", "--status", "failed"]), box.db, out=out) == 0
    assert event_id in out.getvalue() and permanent in out.getvalue()
    assert admin.run(admin._parser().parse_args(["redeliver", event_id]), box.db, out=out) == 0
    assert box.row(event_id)[0]["status"] == "pending" and box.row(event_id)[0]["attempts"] == 0
    box.deliver_all()  # the receiver still answers 503: a fresh budget, one more attempt now
    event, attempts = box.row(event_id)
    assert event["attempts"] == 1 and len(attempts) == 4  # the history is kept
    assert admin.run(admin._parser().parse_args(["redeliver", "--failed"]), box.db, out=out) == 0
    assert box.row(permanent)[0]["status"] == "pending"
