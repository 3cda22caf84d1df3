"""Artworks (jobs): submission with its charge, the queue workers claim from, and the final
states, each with its refund where one is due — always in one transaction with the state change.

starting -> processing -> succeeded | failed | canceled
   |  \\_______________________________________/^   (cancel; refunded only before processing)
   '-> (lease expired while processing: back to starting, or failed + refunded after max attempts)
"""
import json
import time
import uuid
from datetime import datetime, timezone

from . import accounts

FINAL = ("succeeded", "failed", "canceled")
RESULT_FILES = {"png": "depth.png", "exr": "depth.exr"}


class Conflict(Exception):
    """The request clashes with the artwork's state or an earlier request (HTTP 409/422)."""

    def __init__(self, status: int, message: str):
        self.status = status
        super().__init__(message)


def submit(tx, caller, parameters: dict, model_id: str, cost: int, image: bytes,
           idempotency_key=None, request_hash=None, key_ttl: float = 24 * 3600):
    """Charge and create the artwork. Returns (row, replayed). With an Idempotency-Key seen in the
    last ``key_ttl`` seconds for the same request, the first artwork comes back and nothing is
    charged; for a different request the key is refused (Conflict 422). InsufficientTokens rolls
    everything back."""
    artwork_id = str(uuid.uuid4())
    now = time.time()
    if idempotency_key is not None:
        # An expired key is a new key, whether or not the periodic clean-up has removed it yet.
        tx.execute("DELETE FROM idempotency_keys WHERE user_id = ? AND key = ? AND created_at < ?",
                   (caller.user_id, idempotency_key, now - key_ttl))
        # Claim the key first. A concurrent twin on PostgreSQL waits here for the first to commit,
        # then finds the key taken and replays its artwork; on SQLite transactions are serial.
        claimed = tx.one("INSERT INTO idempotency_keys (user_id, key, request_hash, artwork_id, created_at) "
                         "VALUES (?, ?, ?, ?, ?) ON CONFLICT (user_id, key) DO NOTHING RETURNING key",
                         (caller.user_id, idempotency_key, request_hash, artwork_id, now))
        if claimed is None:
            return replay(tx, caller.user_id, idempotency_key, request_hash, key_ttl), True
    tx.execute("INSERT INTO artworks (id, user_id, status, parameters, model_id, cost, webhook, created_at) "
               "VALUES (?, ?, 'starting', ?, ?, ?, ?, ?)",
               (artwork_id, caller.user_id, json.dumps(parameters), model_id, cost, parameters.get("webhook"), now))
    accounts.apply(tx, caller.user_id, -cost, "charge", artwork_id, note=f"depth map ({parameters['model']})")
    tx.execute("INSERT INTO artwork_inputs (artwork_id, data) VALUES (?, ?)", (artwork_id, image))
    return get(tx, caller.user_id, artwork_id), False


def forget_keys(tx, older_than: float) -> int:
    """Drop Idempotency-Keys created before ``older_than`` (a time.time()); how many went."""
    return tx.execute("DELETE FROM idempotency_keys WHERE created_at < ?", (older_than,))


def replay(tx, uid, key, request_hash, key_ttl: float = 24 * 3600):
    row = tx.one("SELECT request_hash, artwork_id FROM idempotency_keys WHERE user_id = ? AND key = ? "
                 "AND created_at >= ?", (uid, key, time.time() - key_ttl))
    if row is None:
        return None
    if row["request_hash"] != request_hash:
        raise Conflict(422, "This Idempotency-Key was used for a different request: use a new key for a new "
                            "request, or repeat the first request exactly.")
    return get(tx, uid, row["artwork_id"])


def get(tx, uid, artwork_id):
    return tx.one("SELECT * FROM artworks WHERE id = ? AND user_id = ?", (artwork_id, uid))


def listing(tx, uid, offset: int, limit: int):
    rows = tx.all("SELECT * FROM artworks WHERE user_id = ? ORDER BY created_at DESC, id LIMIT ? OFFSET ?",
                  (uid, limit, offset))
    total = tx.one("SELECT COUNT(*) AS n FROM artworks WHERE user_id = ?", (uid,))["n"]
    return rows, total


def _finalise(tx, row, status, error=None, results=None, refund=False, note=""):
    now = time.time()
    tx.execute("UPDATE artworks SET status = ?, error = ?, results = ?, finished_at = ?, lease_owner = NULL, "
               "lease_expires = NULL WHERE id = ?",
               (status, error, json.dumps(results or []), now, row["id"]))
    tx.execute("DELETE FROM artwork_inputs WHERE artwork_id = ?", (row["id"],))
    if refund:
        accounts.apply(tx, row["user_id"], row["cost"], "refund", row["id"], note=note)
    return tx.one("SELECT * FROM artworks WHERE id = ?", (row["id"],))


def cancel(tx, uid, artwork_id):
    """Cancel an artwork that has not finished; refunded when it had not started. Returns the row."""
    row = tx.one("SELECT * FROM artworks WHERE id = ? AND user_id = ?", (artwork_id, uid))
    if row is None:
        return None
    if row["status"] in FINAL:
        raise Conflict(409, f"This artwork has already {row['status']}; only starting or processing artworks "
                            "can be canceled.")
    # A processing job's worker notices at its next heartbeat and stops; its result is discarded.
    return _finalise(tx, row, "canceled", refund=row["status"] == "starting",
                     note="canceled before it started")


def claim(tx, owner: str, lease_seconds: float):
    """Take the oldest waiting artwork for ``owner`` (SKIP LOCKED on PostgreSQL; SQLite's
    BEGIN IMMEDIATE already serialises claimers)."""
    now = time.time()
    return tx.one(
        "UPDATE artworks SET status = 'processing', lease_owner = ?, lease_expires = ?, "
        "attempts = attempts + 1, started_at = COALESCE(started_at, ?) "
        "WHERE id = (SELECT id FROM artworks WHERE status = 'starting' ORDER BY created_at LIMIT 1 {lock}) "
        "AND status = 'starting' RETURNING *",
        (owner, now + lease_seconds, now))


def heartbeat(tx, artwork_id, owner, lease_seconds) -> bool:
    """Extend the lease; False when the job is no longer this worker's (canceled or reaped)."""
    return tx.execute("UPDATE artworks SET lease_expires = ? WHERE id = ? AND lease_owner = ? "
                      "AND status = 'processing'", (time.time() + lease_seconds, artwork_id, owner)) == 1


def input_image(tx, artwork_id):
    row = tx.one("SELECT data FROM artwork_inputs WHERE artwork_id = ?", (artwork_id,))
    return None if row is None else bytes(row["data"])


def _owned(tx, artwork_id, owner):
    return tx.one("SELECT * FROM artworks WHERE id = ? AND lease_owner = ? AND status = 'processing' {lock}",
                  (artwork_id, owner))


def succeed(tx, artwork_id, owner, results: list):
    row = _owned(tx, artwork_id, owner)
    return None if row is None else _finalise(tx, row, "succeeded", results=results)


def fail(tx, artwork_id, owner, error: str):
    """Fail the worker's job and refund it (exactly once: the refund row is unique)."""
    row = _owned(tx, artwork_id, owner)
    return None if row is None else _finalise(tx, row, "failed", error=error, refund=True,
                                               note="refund: the depth map failed")


def reap(tx, max_attempts: int) -> list:
    """Jobs whose worker stopped heartbeating: back in the queue, or failed and refunded once they
    have had ``max_attempts`` claims. Returns the rows that reached a final state."""
    expired = tx.all("SELECT * FROM artworks WHERE status = 'processing' AND lease_expires < ? {lock}",
                     (time.time(),))
    finished = []
    for row in expired:
        if row["attempts"] < max_attempts:
            tx.execute("UPDATE artworks SET status = 'starting', lease_owner = NULL, lease_expires = NULL "
                       "WHERE id = ?", (row["id"],))
        else:
            finished.append(_finalise(
                tx, row, "failed", refund=True, note="refund: the worker stopped",
                error=f"The worker processing this depth map stopped {row['attempts']} time(s); "
                      "your tokens were refunded. Submit it again."))
    return finished


def iso(ts):
    return None if ts is None else datetime.fromtimestamp(ts, timezone.utc).isoformat().replace("+00:00", "Z")


def to_api(row, base_url: str) -> dict:
    """The artwork as the API shows it."""
    params = json.loads(row["parameters"])
    names = json.loads(row["results"])
    started, finished = row["started_at"], row["finished_at"]
    body = {
        "id": row["id"],
        "artworkType": "depth_map",
        "parameters": params,
        "duration": round(finished - started, 3) if started and finished else 0,
        "results": [f"{base_url}/v2/artworks/{row['id']}/results/{name}" for name in names],
        "status": row["status"],
        "createdAt": iso(row["created_at"]),
        "cost": row["cost"],
    }
    if row["error"]:
        body["error"] = row["error"]
    return body
