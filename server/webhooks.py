"""Webhooks per Standard Webhooks 1.0 (https://www.standardwebhooks.com/): signing, verifying,
delivering with retries, and a background dispatcher.

Wire format, which any Standard Webhooks library can verify:
    webhook-id:        msg_<uuid>; the same for every retry of one event, so receivers can dedupe
    webhook-timestamp: integer seconds since the epoch of THIS attempt (re-signed on each retry)
    webhook-signature: "v1,<base64 HMAC-SHA256(key, f'{id}.{timestamp}.{body}')>", space-separated
                       when several secrets are valid (rotation)
    secret:            "whsec_<base64 key>" (the key is the decoded bytes)

Delivery rules: a JSON POST through ``server.security.pinned_request`` (the URL is checked against
the SSRF rules and the connection pinned on every attempt); 2xx is success; redirects are never
followed and count as a permanent failure (the receiver must give its final URL); 410 Gone and
other 4xx are permanent; 408, 429, 5xx, timeouts and connection errors are retried with
exponential backoff and jitter (a Retry-After on 429/503 is honoured up to ``max_backoff``).

Public API:
    generate_secret() -> str
    sign(secret, msg_id, timestamp, body) -> str                 the webhook-signature value
    signed_headers(secret, msg_id, timestamp, body) -> dict
    verify(secret, headers, body, *, tolerance=300, now=None) -> None   raises WebhookVerificationError
    deliver(url, secret, payload, *, allowlist=(), attempts=6, backoff=1.0, ...) -> DeliveryRecord
    WebhookDispatcher(allowlist=(), attempts=6, backoff=1.0, workers=1, on_result=None)
        .submit(url, secret, payload, msg_id=None) -> msg_id;  .shutdown(timeout=10) -> int (abandoned)
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import logging
import queue
import random
import secrets as _secrets
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping

from engine.retry_after import parse_retry_after

from .security import FetchError, UnsafeURLError, pinned_request

log = logging.getLogger("fathom.server.webhooks")

SECRET_PREFIX = "whsec_"
DEFAULT_TOLERANCE_S = 300       # the reference libraries' five minutes
RETRYABLE_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})


class WebhookVerificationError(ValueError):
    """A webhook request is not authentic or too old/new; the message says which check failed."""


# ---------------------------------------------------------------- signing

def generate_secret(nbytes: int = 32) -> str:
    """A new signing secret in the "whsec_<base64>" form (24 bytes is the standard's minimum)."""
    return SECRET_PREFIX + base64.b64encode(_secrets.token_bytes(max(24, nbytes))).decode("ascii")


def _key(secret: str | bytes) -> bytes:
    if isinstance(secret, bytes):
        return secret
    raw = secret[len(SECRET_PREFIX):] if secret.startswith(SECRET_PREFIX) else secret
    try:
        return base64.b64decode(raw, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("The webhook secret is not 'whsec_' followed by base64.") from None


def _body_bytes(body: bytes | str) -> bytes:
    return body.encode("utf-8") if isinstance(body, str) else body


def sign(secret: str | bytes, msg_id: str, timestamp: int, body: bytes | str) -> str:
    """The ``webhook-signature`` value for one message: "v1,<base64 HMAC-SHA256>"."""
    signed = f"{msg_id}.{int(timestamp)}.".encode("utf-8") + _body_bytes(body)
    digest = hmac.new(_key(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode("ascii")


def signed_headers(secret: str | bytes, msg_id: str, timestamp: int, body: bytes | str) -> dict[str, str]:
    return {"webhook-id": msg_id, "webhook-timestamp": str(int(timestamp)),
            "webhook-signature": sign(secret, msg_id, timestamp, body)}


def verify(secrets_: str | bytes | Iterable[str | bytes], headers: Mapping[str, str], body: bytes | str, *,
           tolerance: float = DEFAULT_TOLERANCE_S, now: float | None = None) -> None:
    """Check a received webhook. ``secrets_`` is one secret or several (rotation); ``headers`` any
    mapping (names compared case-insensitively). Raises ``WebhookVerificationError``."""
    lower = {k.lower(): v for k, v in headers.items()}
    msg_id, stamp, sigs = (lower.get(n) for n in ("webhook-id", "webhook-timestamp", "webhook-signature"))
    if not msg_id or not stamp or not sigs:
        raise WebhookVerificationError("Missing webhook-id, webhook-timestamp or webhook-signature header.")
    try:
        ts = int(stamp)
    except ValueError:
        raise WebhookVerificationError(f"webhook-timestamp {stamp!r} is not an integer.") from None
    now = time.time() if now is None else now
    if ts < now - tolerance:
        raise WebhookVerificationError(f"The webhook timestamp is {now - ts:.0f} s old (tolerance "
                                       f"{tolerance:g} s): a replay or a badly wrong clock.")
    if ts > now + tolerance:
        raise WebhookVerificationError(f"The webhook timestamp is {ts - now:.0f} s in the future.")
    candidates = [secrets_] if isinstance(secrets_, (str, bytes)) else list(secrets_)
    offered = [s.split(",", 1)[1] for s in sigs.split() if s.startswith("v1,")]
    for secret in candidates:
        expected = sign(secret, msg_id, ts, body).split(",", 1)[1]
        if any(hmac.compare_digest(expected.encode(), got.encode()) for got in offered):
            return
    raise WebhookVerificationError("No webhook-signature matches: wrong secret or altered body.")


# ---------------------------------------------------------------- delivery

@dataclass
class DeliveryRecord:
    """What happened to one webhook message. ``ok`` is True once a 2xx came back; ``status`` is
    the last HTTP status (None when no answer came); ``error`` the last failure in words."""
    msg_id: str
    url: str
    ok: bool = False
    attempts: int = 0
    status: int | None = None
    error: str | None = None
    permanent: bool = False          # gave up because retrying cannot help (4xx, 3xx, unsafe URL)
    history: list = field(default_factory=list)  # (status or None, error or None, seconds) per attempt


def backoff_delay(attempt: int, backoff: float, max_backoff: float) -> float:
    """Delay before retry number ``attempt`` (1-based): backoff * 2**(attempt-1), capped, with
    "equal jitter" (between half and all of it) so many failing receivers don't retry in step."""
    base = min(max_backoff, backoff * (2 ** (attempt - 1)))
    return base / 2 + random.uniform(0, base / 2)


def encode_payload(payload: Any) -> bytes:
    if isinstance(payload, (bytes, bytearray)):
        return bytes(payload)
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False, default=str).encode("utf-8")


def deliver(url: str, secret: str | bytes, payload: Any, *, allowlist: Iterable[str] = (), attempts: int = 6,
            backoff: float = 1.0, max_backoff: float = 300.0, timeout: float = 15.0, msg_id: str | None = None,
            stop: threading.Event | None = None) -> DeliveryRecord:
    """POST ``payload`` (JSON-encoded unless bytes) to ``url``, signed, retrying as the module
    docstring says, at most ``attempts`` times. Blocks while it waits between attempts; ``stop``
    (an Event) ends the waiting early. Never raises for delivery failures: read the record."""
    body = encode_payload(payload)
    msg_id = msg_id or f"msg_{uuid.uuid4().hex}"
    record = DeliveryRecord(msg_id=msg_id, url=url)
    allowlist = tuple(allowlist or ())
    for attempt in range(1, max(1, attempts) + 1):
        record.attempts = attempt
        started = time.monotonic()
        wait_hint = None
        headers = {"Content-Type": "application/json", **signed_headers(secret, msg_id, int(time.time()), body)}
        try:
            result = pinned_request("POST", url, allowlist=allowlist, body=body, headers=headers,
                                    timeout=timeout, max_response_bytes=16384, what="The webhook's answer")
        except UnsafeURLError as exc:
            record.status, record.error, record.permanent = None, str(exc), True
        except FetchError as exc:
            record.status, record.error = None, str(exc)  # timeouts, refused connections, DNS: retried
        else:
            record.status = result.status
            if 200 <= result.status < 300:
                record.ok, record.error = True, None
            elif 300 <= result.status < 400:
                record.error = (f"The webhook answered {result.status} (a redirect to "
                                f"{result.headers.get('location', '?')}); redirects are not followed, "
                                f"register the final URL.")
                record.permanent = True
            elif result.status in RETRYABLE_STATUS:
                record.error = f"The webhook answered HTTP {result.status}."
                wait_hint = parse_retry_after(result.headers.get("retry-after"))
            else:
                record.error = f"The webhook answered HTTP {result.status}; not retried."
                record.permanent = True
        record.history.append((record.status, record.error, round(time.monotonic() - started, 4)))
        if record.ok or record.permanent or attempt == attempts:
            break
        delay = backoff_delay(attempt, backoff, max_backoff)
        if wait_hint is not None:
            delay = min(max(delay, wait_hint), max_backoff)
        if stop is not None:
            if stop.wait(delay):
                record.error = (record.error or "") + " Delivery stopped by shutdown."
                break
        else:
            time.sleep(delay)
    if not record.ok:
        log.warning("webhook %s to %s failed after %d attempt(s): %s", msg_id, url, record.attempts, record.error)
    return record


class WebhookDispatcher:
    """Background delivery: ``submit`` queues a message and returns at once; ``workers`` daemon
    threads deliver with ``deliver``'s retries. ``on_result(record)`` is called after each message
    (from a worker thread; exceptions it raises are logged) so the server can record outcomes.
    ``shutdown(timeout)`` stops taking messages, interrupts retry waits, waits for in-flight
    attempts up to ``timeout`` seconds and returns how many queued messages were never tried.
    Undelivered messages are not persisted here: a server that must survive restarts keeps an
    outbox and re-submits."""

    def __init__(self, *, allowlist: Iterable[str] = (), attempts: int = 6, backoff: float = 1.0,
                 max_backoff: float = 300.0, timeout: float = 15.0, workers: int = 1,
                 on_result: Callable[[DeliveryRecord], None] | None = None):
        self._options = dict(allowlist=tuple(allowlist or ()), attempts=attempts, backoff=backoff,
                             max_backoff=max_backoff, timeout=timeout)
        self._on_result = on_result
        self._queue: queue.Queue = queue.Queue()
        self._stop = threading.Event()
        self._closed = False
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._run, name=f"fathom-webhooks-{i}", daemon=True)
                         for i in range(max(1, workers))]
        for thread in self._threads:
            thread.start()

    def submit(self, url: str, secret: str | bytes, payload: Any, msg_id: str | None = None) -> str:
        """Queue one message; returns its webhook-id. Raises RuntimeError after shutdown."""
        msg_id = msg_id or f"msg_{uuid.uuid4().hex}"
        with self._lock:
            if self._closed:
                raise RuntimeError("The webhook dispatcher is shut down.")
            self._queue.put((url, secret, payload, msg_id))
        return msg_id

    def pending(self) -> int:
        return self._queue.unfinished_tasks

    def join(self, timeout: float | None = None) -> bool:
        """Wait until every queued message is finished (True) or ``timeout`` passes (False)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while self._queue.unfinished_tasks:
            if deadline is not None and time.monotonic() >= deadline:
                return False
            time.sleep(0.01)
        return True

    def _run(self):
        while True:
            item = self._queue.get()
            try:
                if item is None:
                    return
                url, secret, payload, msg_id = item
                if self._stop.is_set():
                    continue
                record = deliver(url, secret, payload, msg_id=msg_id, stop=self._stop, **self._options)
                if self._on_result is not None:
                    try:
                        self._on_result(record)
                    except Exception:
                        log.exception("webhook on_result callback failed for %s", msg_id)
            except Exception:  # a delivery bug must not kill the thread
                log.exception("webhook delivery crashed")
            finally:
                self._queue.task_done()

    def shutdown(self, timeout: float = 10.0) -> int:
        with self._lock:
            if self._closed:
                return 0
            self._closed = True
        abandoned = 0
        self._stop.set()
        while True:  # drop what was never tried, then wake every worker
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            abandoned += item is not None
            self._queue.task_done()
        for _ in self._threads:
            self._queue.put(None)
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        if abandoned:
            log.warning("webhook dispatcher shut down with %d undelivered message(s)", abandoned)
        return abandoned
