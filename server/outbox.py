"""The webhook outbox: an artwork's final state and its webhook event are written in the same
transaction, so no event is lost to a crash; delivery threads in any API or worker process claim
due events (SKIP LOCKED on PostgreSQL), make one attempt each, record it, and schedule the next
with exponential backoff in the database, so retries survive restarts.

    pending --2xx--> delivered
       |----retryable failure----> pending (next_attempt_at = now + backoff)
       '----permanent failure, or the attempt budget spent----> failed  (admin: redeliver)

A claim moves ``next_attempt_at`` a lease ahead: a process killed during an attempt leaves the
event due again when that lease ends. A success is recorded as delivered whatever happened to the
claim since, and a delivered event is never claimed again.
"""

import logging
import threading
import time
from datetime import datetime, timezone

from . import jobs, webhooks

log = logging.getLogger("fathom.server.outbox")
CLAIM_MARGIN_SECONDS = 5.0  # a claim lasts one attempt's timeout plus this
CHANNEL = "fathom_webhooks"  # NOTIFY channel: an event is due


def base_url(settings) -> str:
    return (settings.public_url or f"http://{settings.host}:{settings.port}").rstrip("/")


def event_writer(settings):
    """The ``on_final`` hook for server.jobs: queue the artwork's webhook event in its transaction."""

    def write(tx, row):
        if not row.get("webhook"):
            return
        now = time.time()
        payload = {
            "type": f"artwork.{row['status']}",
            "timestamp": datetime.fromtimestamp(now, timezone.utc).isoformat().replace("+00:00", "Z"),
            "data": jobs.to_api(row, base_url(settings)),
        }
        tx.execute(
            "INSERT INTO webhook_events (id, artwork_id, user_id, event_type, url, payload, status, "
            "attempts, next_attempt_at, created_at) VALUES (?, ?, ?, ?, ?, ?, 'pending', 0, {ts}, {ts}) "
            "ON CONFLICT (id) DO NOTHING",
            (
                f"msg_{row['id']}",
                row["id"],
                row["user_id"],
                payload["type"],
                row["webhook"],
                webhooks.encode_payload(payload).decode("utf-8"),
                now,
                now,
            ),
        )
        tx.notify(CHANNEL)

    return write


def claim(tx, worker: str, lease: float):
    """The next due event, leased to ``worker`` for ``lease`` seconds (its attempt counted now), or None."""
    now = time.time()
    return tx.one(
        "UPDATE webhook_events SET attempts = attempts + 1, next_attempt_at = {ts}, claimed_by = ? "
        "WHERE id = (SELECT id FROM webhook_events WHERE status = 'pending' AND next_attempt_at <= {ts} "
        "ORDER BY next_attempt_at LIMIT 1 {lock}) AND status = 'pending' "
        "RETURNING id, url, payload, attempts, user_id",
        (now + lease, worker, now),
    )


def record(tx, event, worker: str, result: webhooks.Attempt, settings):
    """Write the attempt and the event's next state."""
    now = time.time()
    tx.execute(
        "INSERT INTO webhook_attempts (event_id, attempt, worker, started_at, seconds, http_status, error) "
        "VALUES (?, ?, ?, {ts}, ?, ?, ?)",
        (event["id"], event["attempts"], worker, now - result.seconds, result.seconds, result.status, result.error),
    )
    if result.ok:
        tx.execute(
            "UPDATE webhook_events SET status = 'delivered', delivered_at = {ts}, last_status = ?, "
            "last_error = NULL WHERE id = ? AND status = 'pending'",
            (now, result.status, event["id"]),
        )
        return "delivered"
    mine = "id = ? AND status = 'pending' AND claimed_by = ? AND attempts = ?"
    if result.permanent or event["attempts"] >= settings.webhook_attempts:
        tx.execute(
            f"UPDATE webhook_events SET status = 'failed', last_status = ?, last_error = ? WHERE {mine}",
            (result.status, result.error, event["id"], worker, event["attempts"]),
        )
        return "failed"
    delay = webhooks.backoff_delay(event["attempts"], settings.webhook_backoff_seconds, 300.0)
    if result.retry_after is not None:
        delay = min(max(delay, result.retry_after), 300.0)
    tx.execute(
        f"UPDATE webhook_events SET next_attempt_at = {{ts}}, last_status = ?, last_error = ? WHERE {mine}",
        (now + delay, result.status, result.error, event["id"], worker, event["attempts"]),
    )
    return "retry"


def deliver_one(db, settings, worker: str) -> bool:
    """Claim, attempt and record one due event; False when none is due."""
    with db.transaction() as tx:
        event = claim(tx, worker, settings.webhook_timeout_seconds + CLAIM_MARGIN_SECONDS)
        if event is None:
            return False
        secret = tx.one("SELECT webhook_secret FROM users WHERE id = ?", (event["user_id"],))["webhook_secret"]
    result = webhooks.attempt(
        event["url"],
        secret,
        event["payload"].encode("utf-8"),
        event["id"],
        allowlist=settings.url_allowlist,
        timeout=settings.webhook_timeout_seconds,
    )
    with db.transaction() as tx:
        outcome = record(tx, event, worker, result, settings)
    if outcome != "delivered":
        log.warning(
            "webhook %s to %s, attempt %d: %s (%s)", event["id"], event["url"], event["attempts"], result.error, outcome
        )
    return True


def release(tx, claimed_by: str) -> int:
    """Make the events claimed by a dead process's threads (a LIKE pattern) due now."""
    return tx.execute(
        "UPDATE webhook_events SET next_attempt_at = {ts} WHERE status = 'pending' "
        "AND claimed_by LIKE ? AND next_attempt_at > {ts}",
        (time.time(), claimed_by, time.time()),
    )


def listing(tx, status=None, limit: int = 50) -> list:
    where, params = ("WHERE status = ?", (status,)) if status else ("", ())
    return tx.all(
        f"SELECT id, artwork_id, event_type, url, status, attempts, next_attempt_at, last_status, "
        f"last_error, created_at, delivered_at FROM webhook_events {where} "
        f"ORDER BY created_at DESC LIMIT ?",
        (*params, limit),
    )


def redeliver(tx, event_ids=(), all_failed=False) -> int:
    """Put failed (or any named) events back in the queue with a fresh attempt budget."""
    now = time.time()
    tx.notify(CHANNEL)
    if all_failed:
        return tx.execute(
            "UPDATE webhook_events SET status = 'pending', attempts = 0, next_attempt_at = {ts} "
            "WHERE status = 'failed'",
            (now,),
        )
    return sum(
        tx.execute(
            "UPDATE webhook_events SET status = 'pending', attempts = 0, next_attempt_at = {ts} WHERE id = ?",
            (now, event_id),
        )
        for event_id in event_ids
    )


class DeliveryPool:
    """``threads`` delivery threads; each sleeps until woken or ``poll`` seconds pass when idle."""

    def __init__(self, db, settings, name: str, threads: int, stop: threading.Event):
        self.db, self.settings, self.name, self.stop = db, settings, name, stop
        self.woken = threading.Event()
        self.threads = [
            threading.Thread(target=self._run, args=(f"{name}:webhooks-{i}",), daemon=True, name=f"fathom-webhooks-{i}")
            for i in range(threads)
        ]

    def start(self):
        for t in self.threads:
            t.start()

    def wake(self):
        self.woken.set()

    def _run(self, worker):
        while not self.stop.is_set():
            try:
                if deliver_one(self.db, self.settings, worker):
                    continue
            except Exception:
                log.exception("webhook delivery: database error; retrying")
            if self.woken.wait(self.settings.poll_seconds * 2):
                self.woken.clear()

    def join(self, timeout):
        for t in self.threads:
            t.join(timeout)
