"""The Server backend: the captured picture goes to a Fathom depth server, the depth map comes back
into the same result handling as a local generation (file under //generated/, image, node).

    job = prepare(context, settings, target)   main thread, no network: client, checks, cached results
    job.set_capture(picture)                    the PNG, its cache key, an identical earlier result
                                                (in prepare, or in run: interactive, or after a
                                                deferred render)
    job.run(progress, cancel)                   worker thread: submit, follow, download, write
    image, node = job.finish(context)           main thread: image and node, pending entry gone

No network on the main thread of an interactive Blender: the balance and price list come from
bridge.remote.account, refreshed on a worker thread. A job accepted by the server is recorded in
the .blend at once (bridge.remote.pending), so a paid result survives a lost connection or a
closed Blender. A second identical generation (same picture, settings and server) reuses the
earlier result instead of spending tokens, unless ``force`` asks for a new one.
"""

import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Optional

import bpy

from ...engine import encode, remote
from ...engine.depth import DepthMap
from ...engine.errors import CancelledError, FathomError
from ...engine.units import relative_units
from ..capture.picture import decoded
from ..generation import results, worker
from ..generation.job import Job
from . import messages, pending
from .account import account
from .online import check_online, client_for
from .pending import REMOTE_KEY
from .reuse import Cached, cached_results

_STATUS_PROGRESS = {
    "starting": (0.15, "Queued on the depth server"),
    "processing": (0.5, "The depth server is computing the depth map"),
}


class StillPendingError(FathomError):
    """The server has the job but its result could not be fetched now; it stays pending in the file.
    ``message``: the headline and details (bridge.remote.messages)."""

    def __init__(self, message, *, job_id=None, server=""):
        super().__init__(str(message))
        self.message, self.job_id, self.server = message, job_id, server


def read_depth(source, settings, model: str, near_is_bright: bool) -> DepthMap:
    """A depth map file (path) or the server's EXR (bytes) as the DepthMap local generation would give."""
    depth = encode.read_depth(source)
    # The server's file does not carry the value range; the settings are enough to align it later.
    units = relative_units(settings.normalization, settings.invert, source=model)
    return DepthMap(depth, near_is_bright, model, settings, tuple(depth.shape), units=units)


# Idempotency keys of submissions whose answer never came (cache key -> key): submitting the same
# picture and settings again reuses the key, so the server answers with the first job, uncharged.
_unanswered_keys = {}


@dataclass
class RemoteJob(Job):
    server: str = ""
    client: Optional[remote.RemoteClient] = None
    picture: Optional[bytes] = None
    cache_key: str = ""
    idempotency_key: str = ""
    job_id: Optional[str] = None  # known from the start when fetching a pending or cached result
    cost: Optional[int] = None
    force: bool = False  # generate again even when an identical result is in the file
    cached: dict = field(default_factory=dict)  # cached_results() of prepare
    earlier: Optional[Cached] = None  # the identical earlier result shown again: no tokens spent
    follow_seconds: float = 600.0
    capture_later: Optional[object] = None  # a Capture set_capture takes in run, off the main thread
    cancel_on_server: bool = True  # Esc cancels the server job (fetching a pending one only stops)

    @property
    def reused(self) -> bool:
        return self.earlier is not None

    def set_capture(self, picture):
        """No bpy (prepare, or the worker after a deferred render): the PNG to send, its cache key and
        Idempotency-Key; then an identical earlier result, else the balance check."""
        super().set_capture(picture)
        self.picture = encode.encode_picture_png(picture.rgb)
        self.cache_key = remote.result_cache_key(self.picture, self.settings, server=self.server)
        self.idempotency_key = (not self.force and _unanswered_keys.get(self.cache_key)) or str(uuid.uuid4())
        earlier = None if self.force else self.cached.get(self.cache_key)
        if earlier is not None and earlier.path is not None and earlier.path.is_file():
            self.earlier, self.job_id, self.path = earlier, earlier.job, earlier.path
        elif earlier is not None:
            self.job_id = earlier.job  # its file is gone or in another format: downloaded again, free
        else:
            check_affordable(self.client, self.settings)

    def run(self, progress=None, cancel=None) -> Path:
        report = progress or (lambda fraction, message: None)
        self.render_first(progress, cancel)
        if self.capture_later is not None:  # interactive: decoding, PNG encoding and hashing are slow for the UI
            picture, self.capture_later = self.capture_later, None
            report(0.0, "Preparing the picture")
            self.set_capture(decoded(picture))
        if self.reused:  # the earlier file's depth, for scripts (api.Result.depth_map)
            self.depth_map = read_depth(self.path, self.settings, self.earlier.model, self.earlier.near_is_bright)
            return self.path
        if self.job_id is None:
            self._submit(report, cancel)
        self._follow(report, cancel)
        report(0.9, "Downloading the depth map")
        try:
            data = self.client.download(self.job_id, "exr")
        except (remote.UnreachableError, remote.ServerError) as exc:
            raise self._still_pending(exc) from None
        self.depth_map = read_depth(data, self.settings, self.settings.model, not self.settings.invert)
        # A paid result is written even when a cancel came after the server had finished it.
        self.path = results.write_result(self.depth_map, self.capture.name, self.target, self.file_metadata())
        account.refresh_quietly(self.client)
        return self.path

    def file_metadata(self) -> dict:
        return {**super().file_metadata(), "fathom.server": self.server, "fathom.job": self.job_id}

    def _submit(self, report, cancel):
        if cancel is not None and cancel():
            raise CancelledError("Depth generation was cancelled before anything was sent; no tokens were spent.")
        report(0.05, "Sending the picture to the depth server")
        try:
            job = self.client.submit(
                self.picture,
                self.settings,
                idempotency_key=self.idempotency_key,
                filename=f"{results.safe_stem(self.capture.name)}.png",
            )
        except remote.InsufficientTokensError:
            account.refresh_quietly(self.client)
            raise
        except (remote.UnreachableError, remote.ServerError):
            _unanswered_keys[self.cache_key] = self.idempotency_key  # a retry must not charge again
            raise
        _unanswered_keys.pop(self.cache_key, None)
        self.job_id, self.cost = job["id"], job.get("cost")
        entry = self.pending_entry()
        pending.journal_add(entry)  # on disk now: survives even a crash before the .blend is saved
        worker.post(pending.add, self.scene_name, entry)
        account.charged(self.server, self.client.api_key, self.cost)

    def _follow(self, report, cancel):
        seen = {}  # the last answer about the job: its status and the server's notice

        def look(status, job):
            seen.update(job)
            report(*_STATUS_PROGRESS.get(status, (0.85, f"The depth map is {status}")))

        started = time.monotonic()
        try:
            if self.cancel_on_server:
                self.client.wait(self.job_id, progress=look, cancel=cancel, timeout=self.follow_seconds)
                return
            deadline = started + self.follow_seconds
            while True:  # fetching: Esc stops following, the job goes on and stays pending
                try:
                    left = max(0.1, deadline - time.monotonic())  # the Wait asked for, not a poll more
                    self.client.wait(self.job_id, progress=look, timeout=min(2.0, left))
                    return
                except remote.WaitTimeoutError:
                    if (cancel is not None and cancel()) or time.monotonic() >= deadline:
                        raise
        except remote.JobFailedError as exc:
            self._final()
            raise remote.JobFailedError(
                str(messages.job_failed(exc.job, exc.refunded)), job=exc.job, refunded=exc.refunded
            ) from None
        except remote.JobCancelledError as exc:
            self._final()
            by_caller = cancel is not None and cancel()
            raise remote.JobCancelledError(
                str(messages.job_cancelled(exc.job, exc.refunded, by_caller)), job=exc.job, refunded=exc.refunded
            ) from None
        except remote.WaitTimeoutError as exc:
            waited = time.monotonic() - started  # not the inner poll's timeout
            raise self._still_pending(
                exc, waited=waited, status=seen.get("status", exc.status), notice=seen.get("notice", "")
            ) from None
        except (remote.UnreachableError, remote.ServerError, remote.RateLimitedError) as exc:
            raise self._still_pending(exc) from None

    def _final(self):
        """The job failed or was canceled: it is no longer owed; the balance shows the refund."""
        worker.post(pending.remove, self.scene_name, self.job_id)
        account.refresh_quietly(self.client)

    def _still_pending(self, exc, waited=None, status="", notice="") -> "StillPendingError":
        said = messages.still_pending(
            self.job_id,
            waited=waited,
            status=status,
            notice=notice,
            reason=str(exc),
            retry_after=getattr(exc, "retry_after", None),
            reachable=not isinstance(exc, remote.UnreachableError),
        )
        return StillPendingError(said, job_id=self.job_id, server=self.server)

    def pending_entry(self) -> dict:
        target = {"folder": str(self.target.folder)} if self.target.folder else {"file": str(self.target.file)}
        return {
            "job": self.job_id,
            "server": self.server,
            "idempotency_key": self.idempotency_key,
            "cache_key": self.cache_key,
            "cost": self.cost,
            "settings": asdict(self.settings),
            "source": dict(self.capture.source),
            "label": self.capture.label,
            "name": self.capture.name,
            "target": target,
            "scene": self.scene_name,
            "submitted": time.time(),
        }

    def finish(self, context):
        """Main thread: the image (the earlier one when reused) in the source's node; the job is
        no longer pending."""
        worker.drain()
        image = bpy.data.images.get(self.earlier.image) if self.reused else None
        if image is None:  # a new result (or the earlier image was deleted while this one rendered)
            image = results.load_result(self.path, self.depth_map, self.capture.source)
            image[results.IMAGE_KEY][REMOTE_KEY] = {
                "server": self.server,
                "job": self.job_id,
                "cache_key": self.cache_key,
                "cost": self.cost or 0,
            }
        node = self.show(context, image)
        if self.job_id:
            pending.remove(self.scene_name, self.job_id)
        return image, node


def prepare(context, settings, target, *, force=False, allow_online=False) -> RemoteJob:
    """Main thread, no network: the job, its picture still to come (Job.set_capture, at once or
    after a render in the worker). With nothing in the file to reuse, a known short balance is
    refused here, before any render."""
    client = client_for(context)  # checks the URL's form
    check_online(allow_online, client.base_url)
    if not client.api_key:
        raise remote.AuthenticationError(remote.NO_API_KEY)
    job = RemoteJob(
        None,
        settings,
        None,
        target,
        context.scene.name,
        server=client.base_url,
        client=client,
        force=force,
        cached={} if force else cached_results(client.base_url, settings.output_format),
    )
    if not job.cached:
        check_affordable(client, settings)
    return job


def check_affordable(client, settings):
    """Refuse, before anything is sent, a depth map the cached balance cannot pay (no network: an
    unknown balance lets the server decide, which charges nothing it cannot)."""
    view = account.view(client.base_url, client.api_key)
    if view is None or view.balance is None or view.pricing_client is None:
        return
    try:
        cost = view.pricing_client.cost(settings)
    except FathomError:
        return
    if cost > view.balance:
        raise remote.InsufficientTokensError(
            f"Short by {messages.plural(cost - view.balance, 'token')}: this depth map costs {cost} and your "
            f"balance is {view.balance}. "
            + (f"Get tokens at {view.top_up_url}." if view.top_up_url else "Ask the server's operator for tokens.")
            + " Nothing was sent.",
            needed=cost,
            balance=view.balance,
            shortfall=cost - view.balance,
            top_up_url=view.top_up_url,
        )
