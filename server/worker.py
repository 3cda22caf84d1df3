"""Workers: claim a job, run the engine on it, store the results, finish it — off the request path.

Inside the API process they are threads (``Settings.workers``). More can run anywhere that reaches
the database and the results folder:

    DATABASE_URL=postgresql://... python -m server.worker --threads 2

A worker holds a lease on its job and renews it while the engine runs; a worker that dies stops
renewing, and whoever reaps next (any worker, or the API process) puts the job back in the queue
or, after ``max_attempts`` claims, fails and refunds it.
"""

import argparse
import json
import logging
import signal
import threading
import time

from engine.depth import estimate
from engine.encode import encode_depth
from engine.errors import CancelledError, FathomError, ImageError, ModelError
from engine.imageio import read_image
from engine.settings import DepthSettings
from engine.store import ModelStore

from . import jobs, migrate, outbox, processes
from . import storage as storage_
from .config import Settings, settings_or_exit
from .db import open_database
from .ratelimit import RateLimiter
from .requestid import configure_logging

log = logging.getLogger("fathom.server.worker")
RESULT_FORMATS = (("png", "png16"), ("exr", "exr32"))


def run_job(row, image: bytes, settings: Settings, cancel, storage) -> list:
    """The engine's part: picture bytes -> result files in ``storage``. Returns their names."""
    params = json.loads(row["parameters"])
    picture = read_image(image, max_pixels=settings.max_pixels, name="the submitted picture")
    depth_settings = DepthSettings(
        model=row["model_id"],
        resolution=params["resolutionLowerLimit"],
        invert=params["invertDepth"],
        post_resize=params["usePostResize"],
        normalization=params["normalizationMode"],
        threads=settings.threads,
    )
    model_path = ModelStore(settings.model_dir or None).resolve(row["model_id"], allow_network=False)
    result = estimate(picture.rgb, depth_settings, model_path, cancel=cancel, model_name=params["model"])
    meta = {
        "fathom:model": params["model"],
        "fathom:near_is_bright": str(result.near_is_bright).lower(),
        "fathom:artwork": row["id"],
    }
    names = []
    for key, fmt in RESULT_FORMATS:
        if cancel():
            raise CancelledError("canceled")
        name = jobs.RESULT_FILES[key]
        storage.put(row["id"], name, encode_depth(result.depth, fmt, metadata=meta))
        names.append(name)
    return names


FAILURE_CODES = ((ImageError, "image_unreadable"), (ModelError, "model_unavailable"))


class Worker:
    """One job thread: claims, computes and finishes jobs under a lease named ``name``."""

    def __init__(self, db, settings: Settings, name: str, storage, on_final=None, finished=None):
        self.db, self.settings, self.name, self.storage = db, settings, name, storage
        self.on_final = on_final or outbox.event_writer(settings)
        self.finished = finished or (lambda: None)  # told after a final state is committed

    def run_once(self) -> bool:
        """Process one job if there is one; False when the queue is empty."""
        with self.db.transaction() as tx:
            row = jobs.claim(tx, self.name, self.settings.lease_seconds)
            image = jobs.input_image(tx, row["id"]) if row else None
        if row is None:
            return False
        if image is not None:  # the queue's table keeps no picture once a job has started
            self.storage.put(row["id"], storage_.INPUT, image)
            with self.db.transaction() as tx:
                jobs.drop_input(tx, row["id"])
        else:  # a retry: the first worker moved it
            image = self.storage.get(row["id"], storage_.INPUT)
        log.info("worker %s processing artwork %s (attempt %d)", self.name, row["id"], row["attempts"])
        lost = threading.Event()
        done = threading.Event()
        beat = threading.Thread(target=self._heartbeat, args=(row["id"], lost, done), daemon=True)
        beat.start()
        final = None
        try:  # every way out of here is succeeded, failed+refunded, or a job no longer ours
            if image is None:
                raise RuntimeError(f"the picture of artwork {row['id']} is in neither the queue nor the storage")
            names = run_job(row, image, self.settings, lost.is_set, self.storage)
            with self.db.transaction() as tx:
                final = jobs.succeed(tx, row["id"], self.name, names, on_final=self.on_final)
        except CancelledError:
            log.info("artwork %s was canceled, reaped or timed out while processing", row["id"])
        except Exception as exc:  # a bug must still refund the user, not leave the job hanging
            code = next((c for kind, c in FAILURE_CODES if isinstance(exc, kind)), "inference_failed")
            # The details stay here, with the job id; the client gets the code and a short message.
            log.error("artwork %s failed (%s): %s", row["id"], code, exc, exc_info=not isinstance(exc, FathomError))
            with self.db.transaction() as tx:
                final = jobs.fail(tx, row["id"], self.name, code, on_final=self.on_final)
        finally:
            done.set()
            beat.join()
        if final is None:
            self._discard(row["id"])
        else:
            self.storage.delete(row["id"], [storage_.INPUT] if final["status"] == "succeeded" else None)
            self.finished()
        return True

    def _discard(self, artwork_id):
        """The job stopped being ours (canceled, or reaped after a stall): keep no files for a
        canceled or failed artwork; a retry elsewhere writes its own."""
        with self.db.transaction(readonly=True) as tx:
            row = tx.one("SELECT status FROM artworks WHERE id = ?", (artwork_id,))
        log.info("artwork %s left worker %s (now %s)", artwork_id, self.name, row and row["status"])
        if row is not None and row["status"] in ("canceled", "failed"):
            self.storage.delete(artwork_id)

    def _heartbeat(self, artwork_id, lost, done):
        interval = max(self.settings.lease_seconds / 3, 0.05)
        while not done.wait(interval):
            try:
                with self.db.transaction() as tx:
                    mine = jobs.heartbeat(tx, artwork_id, self.name, self.settings.lease_seconds)
            except Exception:  # the database may be briefly unreachable: try again next beat
                log.exception("heartbeat of artwork %s failed", artwork_id)
                continue
            if not mine:  # canceled, reaped or timed out: stop the engine, discard the result
                lost.set()
                return

    def run_forever(self, stop: threading.Event, wake: threading.Event):
        """Work until ``stop``; an idle worker polls every ``poll_seconds`` or when ``wake`` is set."""
        while not stop.is_set():
            try:
                if self.run_once():
                    continue
            except Exception:
                log.exception("worker %s: database error; retrying", self.name)
            if wake.wait(self.settings.poll_seconds):
                wake.clear()


class WorkerPool:
    """What every server process runs besides requests: ``count`` job threads, the webhook delivery
    threads, and housekeeping (its entry in the process list, the reaper, expired keys)."""

    def __init__(self, db, settings: Settings, count: int):
        self.db, self.settings = db, settings
        self.storage = storage_.open_storage(settings, db)
        self.name = processes.new_name()
        self.count = count
        self.stop = threading.Event()
        self.woken = threading.Event()
        self.webhooks = outbox.DeliveryPool(db, settings, self.name, settings.webhook_workers, self.stop)
        self.workers = [
            Worker(db, settings, f"{self.name}:{i}", self.storage, finished=self.webhooks.wake) for i in range(count)
        ]
        self.threads = []

    def start(self):
        with self.db.transaction() as tx:
            processes.register(tx, self.name, self.count)
        self.housekeeping()  # released jobs go back in the queue (or fail and refund) now
        # PostgreSQL tells us about new jobs and events at once; polling stays as the fallback.
        self.db.listen({jobs.JOBS_CHANNEL: self.woken.set, outbox.CHANNEL: self.webhooks.wake}, self.stop)
        for w in self.workers:
            self.threads.append(
                threading.Thread(
                    target=w.run_forever, args=(self.stop, self.woken), daemon=True, name=f"fathom-worker-{w.name}"
                )
            )
        self.threads.append(threading.Thread(target=self._housekeeping_forever, daemon=True, name="fathom-reaper"))
        for t in self.threads:
            t.start()
        self.webhooks.start()

    def housekeeping(self):
        """Say we are alive, and reap (one process at a time: the others skip)."""
        with self.db.transaction() as tx:
            processes.touch(tx, self.name, self.count)
        with self.db.transaction() as tx:
            if not self.db.try_lock(tx, "reaper"):
                return
            processes.release_dead(tx, self.name, forget_after=max(10 * self.settings.lease_seconds, 600))
            finished = jobs.reap(
                tx,
                self.settings.max_attempts,
                self.settings.max_job_seconds,
                on_final=outbox.event_writer(self.settings),
            )
            jobs.forget_keys(tx, time.time() - self.settings.idempotency_hours * 3600)
        RateLimiter(self.db, self.settings.rate_per_second, self.settings.rate_burst).purge()
        for row in finished:
            log.warning("artwork %s failed (%s); refunded", row["id"], row["error_code"])
            self.storage.delete(row["id"])
        self.expire_results()
        if finished:
            self.webhooks.wake()

    def expire_results(self, batch: int = 100):
        """Delete the results of artworks that finished more than the retention period ago."""
        cutoff = time.time() - self.settings.result_retention_hours * 3600
        with self.db.transaction(readonly=True) as tx:
            expired = jobs.results_to_expire(tx, cutoff, batch)
        for artwork_id in expired:
            self.storage.delete(artwork_id)
            with self.db.transaction() as tx:
                jobs.mark_results_expired(tx, artwork_id)
        if expired:
            log.info("deleted the results of %d artwork(s) past the retention period", len(expired))

    def _housekeeping_forever(self):
        while not self.stop.wait(min(self.settings.lease_seconds / 3, 5.0)):
            try:
                self.housekeeping()
            except Exception:
                log.exception("housekeeping: database error; retrying")

    def wake(self):
        """A job was submitted here: an idle worker takes it now rather than at its next poll."""
        self.woken.set()

    def close(self, timeout=30.0):
        self.stop.set()
        self.woken.set()
        self.webhooks.wake()
        for t in self.threads:
            t.join(timeout)
        self.webhooks.join(timeout)
        try:  # a clean exit hands its unfinished jobs back at once
            with self.db.transaction() as tx:
                processes.unregister(tx, self.name)
        except Exception:
            log.exception("could not remove process %s from the list", self.name)


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="python -m server.worker", description="Run depth-map workers against the server's database."
    )
    parser.add_argument("--config", help="TOML settings file (else FATHOM_SERVER_CONFIG)")
    parser.add_argument("--threads", type=int, default=1, help="jobs processed at once (default 1)")
    args = parser.parse_args(argv)
    settings = settings_or_exit(args.config)
    configure_logging(settings.log_level)
    db = open_database(settings.database)
    try:
        migrate.check(db)
    except migrate.SchemaError as exc:
        parser.exit(2, f"error: {exc}\n")
    pool = WorkerPool(db, settings, max(args.threads, 1))
    signal.signal(signal.SIGTERM, lambda *_: pool.stop.set())
    pool.start()
    log.info("%d worker(s) on %s", len(pool.workers), settings.database.split("@")[-1])
    try:
        while not pool.stop.wait(1.0):
            pass
    except KeyboardInterrupt:
        pool.stop.set()
    pool.close()
    db.close()


if __name__ == "__main__":
    main()
