"""The server's processes (API and workers) in the database: who may hold job leases, whether any
process takes jobs at all, and which of this machine's earlier processes died.

A process is named ``host:pid:boot``; its job threads hold leases as ``<process>:<n>``. When a
process starts, every earlier process of the same host whose pid is gone (or is now ours: a
restarted container) is dead, and its leases are released at once instead of a lease later.
"""

import logging
import os
import socket
import time
import uuid

from . import jobs, outbox

log = logging.getLogger("fathom.server.processes")


def new_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def register(tx, name: str, threads: int):
    host, pid, _ = name.rsplit(":", 2)
    now = time.time()
    tx.execute(
        "INSERT INTO processes (name, host, pid, threads, started_at, seen_at) VALUES (?, ?, ?, ?, {ts}, {ts})",
        (name, host, int(pid), threads, now, now),
    )


def touch(tx, name: str, threads: int):
    if not tx.execute("UPDATE processes SET seen_at = {ts} WHERE name = ?", (time.time(), name)):
        register(tx, name, threads)  # removed as stale during a long pause: back in the list


def unregister(tx, name: str):
    jobs.release(tx, name + ":%")
    outbox.release(tx, name + ":%")
    tx.execute("DELETE FROM processes WHERE name = ?", (name,))


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return False  # an earlier process with our pid: we replaced it (a restarted container)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def release_dead(tx, name: str, forget_after: float) -> list:
    """Release the leases of this host's dead processes and forget them (and processes anywhere
    not seen for ``forget_after`` seconds, whose leases expire on their own). Their names."""
    host = name.rsplit(":", 2)[0]
    dead = []
    for row in tx.all("SELECT name, host, pid, seen_at FROM processes WHERE name <> ?", (name,)):
        if (row["host"] == host and not _alive(row["pid"])) or row["seen_at"] < time.time() - forget_after:
            released = jobs.release(tx, row["name"] + ":%")
            outbox.release(tx, row["name"] + ":%")
            tx.execute("DELETE FROM processes WHERE name = ?", (row["name"],))
            if released:
                log.warning("process %s is gone: released its %d job(s)", row["name"], released)
            dead.append(row["name"])
    return dead


def job_threads_alive(tx, within: float) -> int:
    """Job threads of processes seen in the last ``within`` seconds."""
    row = tx.one("SELECT COALESCE(SUM(threads), 0) AS n FROM processes WHERE seen_at > {ts}", (time.time() - within,))
    return int(row["n"])
