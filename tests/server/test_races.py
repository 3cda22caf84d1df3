"""Exactly once under races, on the real databases: two transactions touch the same artwork, one
holds its row while the other arrives. Every final state is a single guarded UPDATE, so the second
one either waits and then sees the first's result, or finds its guard false: never both."""

import threading
import time

import pytest

from server import accounts, jobs


@pytest.fixture
def db(database):
    return database


def _claimed_job(db, owner="worker-1"):
    with db.transaction() as tx:
        uid = accounts.create_user(tx, f"u{time.monotonic_ns()}", tokens=5)
        caller = accounts.caller_for_key(tx, accounts.create_key(tx, uid))
        row, _ = jobs.submit(tx, caller, {"model": "small"}, "da2-small", 2, b"png")
    with db.transaction() as tx:
        assert jobs.claim(tx, owner, 60)["id"] == row["id"]
    return uid, row["id"]


def _hold(db, first, release: threading.Event, started: threading.Event, out: dict):
    """Run ``first(tx)`` and keep its transaction (and row locks) open until ``release``."""

    def run():
        with db.transaction() as tx:
            out["first"] = first(tx)
            started.set()
            release.wait(10)

    thread = threading.Thread(target=run)
    thread.start()
    return thread


def _second(db, second, out):
    def run():
        try:
            with db.transaction() as tx:
                out["second"] = second(tx)
        except jobs.Conflict as exc:
            out["second"] = exc

    thread = threading.Thread(target=run)
    thread.start()
    return thread


def _race(db, first, second):
    release, started, out = threading.Event(), threading.Event(), {}
    holder = _hold(db, first, release, started, out)
    assert started.wait(10)
    waiter = _second(db, second, out)
    time.sleep(0.3)  # the second is now blocked on the row (PostgreSQL) or on the write lock (SQLite)
    release.set()
    holder.join(10)
    waiter.join(10)
    return out["first"], out["second"]


def _ledger_kinds(db, uid):
    with db.transaction(readonly=True) as tx:
        return sorted(e["kind"] for e in accounts.ledger(tx, uid, 100))


def test_cancel_arriving_during_success_cannot_undo_it(db):
    uid, art = _claimed_job(db)
    done, canceled = _race(
        db, lambda tx: jobs.succeed(tx, art, "worker-1", ["depth.png"]), lambda tx: jobs.cancel(tx, uid, art)
    )
    assert done["status"] == "succeeded"
    assert isinstance(canceled, jobs.Conflict) and "already succeeded" in str(canceled)
    with db.transaction(readonly=True) as tx:
        assert jobs.get(tx, uid, art)["status"] == "succeeded"
    assert _ledger_kinds(db, uid) == ["charge", "grant"]


def test_success_arriving_during_cancel_is_discarded(db):
    uid, art = _claimed_job(db)
    canceled, done = _race(
        db, lambda tx: jobs.cancel(tx, uid, art), lambda tx: jobs.succeed(tx, art, "worker-1", ["depth.png"])
    )
    assert canceled["status"] == "canceled" and done is None
    assert _ledger_kinds(db, uid) == ["charge", "grant"]  # canceled while processing: not refunded


def test_a_worker_finishing_while_its_own_heartbeat_holds_the_row_still_finishes(db):
    uid, art = _claimed_job(db)
    beat, done = _race(
        db,
        lambda tx: jobs.heartbeat(tx, art, "worker-1", 60),
        lambda tx: jobs.succeed(tx, art, "worker-1", ["depth.png"]),
    )
    assert beat is True and done is not None and done["status"] == "succeeded"


def test_failure_and_reaper_refund_once(db):
    uid, art = _claimed_job(db)
    with db.transaction() as tx:
        tx.execute("UPDATE artworks SET lease_expires = {ts}, attempts = 5 WHERE id = ?", (0, art))
    failed, reaped = _race(
        db,
        lambda tx: jobs.fail(tx, art, "worker-1", "inference_failed"),
        lambda tx: jobs.reap(tx, max_attempts=2, max_job_seconds=600),
    )
    assert failed["status"] == "failed" and failed["error_code"] == "inference_failed" and reaped == []
    assert _ledger_kinds(db, uid) == ["charge", "grant", "refund"]
    with db.transaction(readonly=True) as tx:
        assert accounts.balance(tx, uid) == 5 and accounts.reconcile(tx) == []


def test_two_cancels_refund_once(db):
    uid, art = _claimed_job(db)
    with db.transaction() as tx:  # back to waiting: a cancel now is refunded
        tx.execute("UPDATE artworks SET status = 'starting', lease_owner = NULL WHERE id = ?", (art,))
    first, second = _race(db, lambda tx: jobs.cancel(tx, uid, art), lambda tx: jobs.cancel(tx, uid, art))
    assert first["status"] == "canceled" and isinstance(second, jobs.Conflict)
    assert _ledger_kinds(db, uid) == ["charge", "grant", "refund"]
