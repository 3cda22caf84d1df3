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
JOBS_CHANNEL = "fathom_jobs"  # NOTIFY channel: a job is waiting
RESULT_FILES = {"png": "depth.png", "exr": "depth.exr"}


class Conflict(Exception):
    """The request clashes with the artwork's state or an earlier request (HTTP 409/422)."""

    def __init__(self, status: int, message: str, code: str = "conflict"):
        self.status, self.code = status, code
        super().__init__(message)


def submit(
    tx,
    caller,
    parameters: dict,
    model_id: str,
    cost: int,
    image: bytes,
    idempotency_key=None,
    request_hash=None,
    key_ttl: float = 24 * 3600,
):
    """Charge and create the artwork. Returns (row, replayed). With an Idempotency-Key seen in the
    last ``key_ttl`` seconds for the same request, the first artwork comes back and nothing is
    charged; for a different request the key is refused (Conflict 422). InsufficientTokens rolls
    everything back."""
    artwork_id = str(uuid.uuid4())
    now = time.time()
    if idempotency_key is not None:
        # An expired key is a new key, whether or not the periodic clean-up has removed it yet.
        tx.execute(
            "DELETE FROM idempotency_keys WHERE user_id = ? AND key = ? AND created_at < {ts}",
            (caller.user_id, idempotency_key, now - key_ttl),
        )
        # Claim the key first. A concurrent twin on PostgreSQL waits here for the first to commit,
        # then finds the key taken and replays its artwork; on SQLite transactions are serial.
        claimed = tx.one(
            "INSERT INTO idempotency_keys (user_id, key, request_hash, artwork_id, created_at) "
            "VALUES (?, ?, ?, ?, {ts}) ON CONFLICT (user_id, key) DO NOTHING RETURNING key",
            (caller.user_id, idempotency_key, request_hash, artwork_id, now),
        )
        if claimed is None:
            return replay(tx, caller.user_id, idempotency_key, request_hash, key_ttl), True
    tx.execute(
        "INSERT INTO artworks (id, user_id, status, parameters, model_id, cost, webhook, created_at) "
        "VALUES (?, ?, 'starting', ?, ?, ?, ?, {ts})",
        (artwork_id, caller.user_id, json.dumps(parameters), model_id, cost, parameters.get("webhook"), now),
    )
    accounts.apply(tx, caller.user_id, -cost, "charge", artwork_id, note=f"depth map ({parameters['model']})")
    tx.execute("INSERT INTO artwork_inputs (artwork_id, data) VALUES (?, ?)", (artwork_id, image))
    tx.notify(JOBS_CHANNEL)
    return get(tx, caller.user_id, artwork_id), False


def forget_keys(tx, older_than: float) -> int:
    """Drop Idempotency-Keys created before ``older_than`` (a time.time()); how many went."""
    return tx.execute("DELETE FROM idempotency_keys WHERE created_at < {ts}", (older_than,))


def replay(tx, uid, key, request_hash, key_ttl: float = 24 * 3600):
    row = tx.one(
        "SELECT request_hash, artwork_id FROM idempotency_keys WHERE user_id = ? AND key = ? AND created_at >= {ts}",
        (uid, key, time.time() - key_ttl),
    )
    if row is None:
        return None
    if row["request_hash"] != request_hash:
        raise Conflict(
            422,
            "This Idempotency-Key was used for a different request: use a new key for a new "
            "request, or repeat the first request exactly.",
        )
    return get(tx, uid, row["artwork_id"])


def get(tx, uid, artwork_id):
    return tx.one("SELECT * FROM artworks WHERE id = ? AND user_id = ?", (artwork_id, uid))


def listing(tx, uid, offset: int, limit: int):
    rows = tx.all(
        "SELECT * FROM artworks WHERE user_id = ? ORDER BY created_at DESC, id LIMIT ? OFFSET ?", (uid, limit, offset)
    )
    total = tx.one("SELECT COUNT(*) AS n FROM artworks WHERE user_id = ?", (uid,))["n"]
    return rows, total


# Stable codes of a failed artwork, with the client's message (the details go to the server log).
FAILURES = {
    "image_unreadable": "the server could not read this picture (send a PNG, JPEG, WebP, TIFF or BMP file)",
    "model_unavailable": "the server's depth model is not available right now (try again later)",
    "inference_failed": "the server could not compute this depth map",
    "timeout": "computing this depth map took longer than the server allows",
    "worker_lost": "the server's worker stopped while computing this depth map",
}


def failure_message(code: str) -> str:
    return f"Refunded: {FAILURES[code]}. Your tokens were refunded; you can submit it again."


def _finish(
    tx,
    artwork_id,
    guard: str,
    guard_params: tuple,
    status: str,
    *,
    code=None,
    results=None,
    refund_note=None,
    on_final=None,
):
    """Move an artwork to a final state in ONE guarded statement; None when the guard does not hold
    (someone else finished, canceled or reaped it first: then nothing else happens). In the same
    transaction: the input is dropped, the refund written, the webhook event queued."""
    row = tx.one(
        f"UPDATE artworks SET status = ?, error = ?, error_code = ?, results = ?, finished_at = {{ts}}, "
        f"lease_owner = NULL, lease_expires = NULL WHERE id = ? AND {guard} RETURNING *",
        (
            status,
            failure_message(code) if code else None,
            code,
            json.dumps(results or []),
            time.time(),
            artwork_id,
            *guard_params,
        ),
    )
    if row is None:
        return None
    tx.execute("DELETE FROM artwork_inputs WHERE artwork_id = ?", (artwork_id,))
    if refund_note:
        accounts.apply(tx, row["user_id"], row["cost"], "refund", artwork_id, note=refund_note)
    if on_final is not None:
        on_final(tx, row)
    return row


def cancel(tx, uid, artwork_id, on_final=None):
    """Cancel an artwork that has not finished; refunded when it had not started. Returns the row,
    None when there is no such artwork of this user; Conflict when it had already finished."""
    mine = "user_id = ? AND status = ?"
    row = _finish(
        tx, artwork_id, mine, (uid, "starting"), "canceled", refund_note="canceled before it started", on_final=on_final
    )
    if row is None:  # a processing job's worker notices at its next heartbeat; its result is discarded
        row = _finish(tx, artwork_id, mine, (uid, "processing"), "canceled", on_final=on_final)
    if row is not None:
        return row
    row = get(tx, uid, artwork_id)
    if row is None:
        return None
    raise Conflict(
        409,
        f"This artwork has already {row['status']}; only starting or processing artworks can be canceled.",
        code="already_final",
    )


def claim(tx, owner: str, lease_seconds: float):
    """Take the oldest waiting artwork for ``owner`` (SKIP LOCKED on PostgreSQL; SQLite's
    BEGIN IMMEDIATE already serialises claimers)."""
    now = time.time()
    return tx.one(
        "UPDATE artworks SET status = 'processing', lease_owner = ?, lease_expires = {ts}, claimed_at = {ts}, "
        "attempts = attempts + 1, started_at = COALESCE(started_at, {ts}) "
        "WHERE id = (SELECT id FROM artworks WHERE status = 'starting' ORDER BY created_at LIMIT 1 {lock}) "
        "AND status = 'starting' RETURNING *",
        (owner, now + lease_seconds, now, now),
    )


def heartbeat(tx, artwork_id, owner, lease_seconds) -> bool:
    """Extend the lease; False when the job is no longer this worker's (canceled, reaped, timed out)."""
    return (
        tx.execute(
            "UPDATE artworks SET lease_expires = {ts} WHERE id = ? AND lease_owner = ? AND status = 'processing'",
            (time.time() + lease_seconds, artwork_id, owner),
        )
        == 1
    )


def input_image(tx, artwork_id):
    row = tx.one("SELECT data FROM artwork_inputs WHERE artwork_id = ?", (artwork_id,))
    return None if row is None else bytes(row["data"])


def drop_input(tx, artwork_id):
    tx.execute("DELETE FROM artwork_inputs WHERE artwork_id = ?", (artwork_id,))


def results_to_expire(tx, finished_before: float, limit: int) -> list:
    return [
        r["id"]
        for r in tx.all(
            "SELECT id FROM artworks WHERE status = 'succeeded' AND results_expired_at IS NULL "
            "AND finished_at < {ts} ORDER BY finished_at LIMIT ?",
            (finished_before, limit),
        )
    ]


def mark_results_expired(tx, artwork_id):
    tx.execute("UPDATE artworks SET results_expired_at = {ts} WHERE id = ?", (time.time(), artwork_id))


_OWNED = "status = 'processing' AND lease_owner = ?"


def succeed(tx, artwork_id, owner, results: list, on_final=None):
    return _finish(tx, artwork_id, _OWNED, (owner,), "succeeded", results=results, on_final=on_final)


def fail(tx, artwork_id, owner, code: str, on_final=None):
    """Fail the worker's job and refund it, only while it is still this worker's."""
    return _finish(
        tx,
        artwork_id,
        _OWNED,
        (owner,),
        "failed",
        code=code,
        refund_note="refund: the depth map failed",
        on_final=on_final,
    )


def release(tx, owner: str) -> int:
    """Expire the leases of ``owner`` (a worker known to be dead) so the next reap handles its jobs
    now instead of a lease later."""
    return tx.execute(
        "UPDATE artworks SET lease_expires = {ts} WHERE status = 'processing' AND lease_owner LIKE ?", (0, owner)
    )


def reap(tx, max_attempts: int, max_job_seconds: float, on_final=None) -> list:
    """Jobs whose worker stopped heartbeating go back in the queue, or fail and are refunded once
    they have had ``max_attempts`` claims; jobs processing for longer than ``max_job_seconds`` fail
    and are refunded (a hung engine keeps heartbeating). Every change is guarded, so a worker
    finishing at the same moment wins or loses cleanly. Returns the rows that became final."""
    now = time.time()
    if tx.execute(
        "UPDATE artworks SET status = 'starting', lease_owner = NULL, lease_expires = NULL "
        "WHERE status = 'processing' AND lease_expires < {ts} AND attempts < ?",
        (now, max_attempts),
    ):
        tx.notify(JOBS_CHANNEL)
    finished = []
    stale = tx.all("SELECT id FROM artworks WHERE status = 'processing' AND lease_expires < {ts} {lock}", (now,))
    for r in stale:
        row = _finish(
            tx,
            r["id"],
            "status = 'processing' AND lease_expires < {ts}",
            (now,),
            "failed",
            code="worker_lost",
            refund_note="refund: the worker stopped",
            on_final=on_final,
        )
        finished.append(row)
    overdue = tx.all(
        "SELECT id FROM artworks WHERE status = 'processing' AND claimed_at < {ts} {lock}", (now - max_job_seconds,)
    )
    for r in overdue:
        finished.append(
            _finish(
                tx,
                r["id"],
                "status = 'processing' AND claimed_at < {ts}",
                (now - max_job_seconds,),
                "failed",
                code="timeout",
                refund_note="refund: the depth map took too long",
                on_final=on_final,
            )
        )
    return [r for r in finished if r is not None]


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
        if row.get("error_code"):
            body["errorCode"] = row["error_code"]
    return body
