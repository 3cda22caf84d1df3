"""Webhooks per Standard Webhooks 1.0 (https://www.standardwebhooks.com/): signing, verifying and
one delivery attempt. Retries, their schedule and their record live in server.outbox.

Wire format, which any Standard Webhooks library can verify:
    webhook-id:        msg_<artwork id>; the same for every retry of one event, so receivers can dedupe
    webhook-timestamp: integer seconds since the epoch of THIS attempt (re-signed on each retry)
    webhook-signature: "v1,<base64 HMAC-SHA256(key, f'{id}.{timestamp}.{body}')>", space-separated
                       when several secrets are valid (rotation)
    secret:            "whsec_<base64 key>" (the key is the decoded bytes)

Delivery rules: a JSON POST through ``server.security.pinned_request`` (the URL is checked against
the SSRF rules and the connection pinned on every attempt); 2xx is success; redirects are never
followed and count as a permanent failure (the receiver must give its final URL); 410 Gone and
other 4xx are permanent; 408, 429, 5xx, timeouts and connection errors are worth retrying (a
Retry-After on 429/503 is passed on to the scheduler).

Public API:
    generate_secret() -> str
    sign(secret, msg_id, timestamp, body) -> str                 the webhook-signature value
    signed_headers(secret, msg_id, timestamp, body) -> dict
    verify(secret, headers, body, *, tolerance=300, now=None) -> None   raises WebhookVerificationError
    attempt(url, secret, body, msg_id, *, allowlist=(), timeout=15) -> Attempt
    backoff_delay(attempt, backoff, max_backoff) -> float
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import logging
import random
import secrets as _secrets
import time
from dataclasses import dataclass
from typing import Any, Iterable, Mapping

from engine.retry_after import parse_retry_after

from .security import FetchError, UnsafeURLError, pinned_request

log = logging.getLogger("fathom.server.webhooks")

SECRET_PREFIX = "whsec_"
DEFAULT_TOLERANCE_S = 300  # the reference libraries' five minutes
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
    raw = secret[len(SECRET_PREFIX) :] if secret.startswith(SECRET_PREFIX) else secret
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
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(timestamp)),
        "webhook-signature": sign(secret, msg_id, timestamp, body),
    }


def verify(
    secrets_: str | bytes | Iterable[str | bytes],
    headers: Mapping[str, str],
    body: bytes | str,
    *,
    tolerance: float = DEFAULT_TOLERANCE_S,
    now: float | None = None,
) -> None:
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
        raise WebhookVerificationError(
            f"The webhook timestamp is {now - ts:.0f} s old (tolerance "
            f"{tolerance:g} s): a replay or a badly wrong clock."
        )
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
class Attempt:
    """What one POST achieved: ``ok`` once a 2xx came back; ``status`` the HTTP status (None when no
    answer came); ``error`` the failure in words; ``permanent`` when retrying cannot help (4xx,
    3xx, an unsafe URL); ``retry_after`` the receiver's own hint, in seconds."""

    ok: bool = False
    status: int | None = None
    error: str | None = None
    permanent: bool = False
    retry_after: float | None = None
    seconds: float = 0.0


def backoff_delay(attempt: int, backoff: float, max_backoff: float) -> float:
    """Delay before retry number ``attempt`` (1-based): backoff * 2**(attempt-1), capped, with
    "equal jitter" (between half and all of it) so many failing receivers don't retry in step."""
    base = min(max_backoff, backoff * (2 ** (attempt - 1)))
    return base / 2 + random.uniform(0, base / 2)


def encode_payload(payload: Any) -> bytes:
    if isinstance(payload, (bytes, bytearray)):
        return bytes(payload)
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False, default=str).encode("utf-8")


def attempt(
    url: str, secret: str | bytes, body: bytes, msg_id: str, *, allowlist: Iterable[str] = (), timeout: float = 15.0
) -> Attempt:
    """POST ``body`` to ``url`` once, signed with a fresh timestamp. Never raises for delivery
    failures: read the result."""
    started = time.monotonic()
    result = Attempt()
    headers = {"Content-Type": "application/json", **signed_headers(secret, msg_id, int(time.time()), body)}
    try:
        answer = pinned_request(
            "POST",
            url,
            allowlist=tuple(allowlist or ()),
            body=body,
            headers=headers,
            timeout=timeout,
            max_response_bytes=16384,
            what="The webhook's answer",
        )
    except UnsafeURLError as exc:
        result.error, result.permanent = str(exc), True
    except FetchError as exc:
        result.error = str(exc)  # timeouts, refused connections, DNS: retried
    else:
        result.status = answer.status
        if 200 <= answer.status < 300:
            result.ok = True
        elif 300 <= answer.status < 400:
            result.error = (
                f"The webhook answered {answer.status} (a redirect to "
                f"{answer.headers.get('location', '?')}); redirects are not followed, "
                f"register the final URL."
            )
            result.permanent = True
        elif answer.status in RETRYABLE_STATUS:
            result.error = f"The webhook answered HTTP {answer.status}."
            result.retry_after = parse_retry_after(answer.headers.get("retry-after"))
        else:
            result.error = f"The webhook answered HTTP {answer.status}; not retried."
            result.permanent = True
    result.seconds = round(time.monotonic() - started, 4)
    return result
