"""The Server backend: the captured picture goes to a Fathom depth server, the depth map comes back
into the same result handling as a local generation (file under //generated/, image, node).

    job = prepare(context, settings, target)   main thread, no network: client, checks, cached results
    job.set_capture(picture)                    the PNG, its cache key, an identical earlier result
                                                (in prepare, or in run after a deferred render)
    job.run(progress, cancel)                   worker thread: submit, follow, download, write
    image, node = job.finish(context)           main thread: image and node, pending entry gone

No network on the main thread of an interactive Blender: the balance and price list the sidebar
shows come from :data:`account`, refreshed on a worker thread. A job accepted by the server is
recorded in the .blend at once (bridge.pending), so a paid result survives a lost connection or a
closed Blender. A second identical generation (same picture, settings and server) reuses the
earlier result instead of spending tokens, unless ``force`` asks for a new one.
"""
import hashlib
import threading
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Optional

import bpy
import numpy as np

from ..engine import encode, remote
from ..engine.depth import DepthMap
from ..engine.errors import CancelledError, FathomError
from ..preferences import addon_preferences
from . import pending, results
from .pipeline import Job

REMOTE_KEY = "remote"  # in a result image's "fathom" property: server, job id, cache key, cost
_STATUS_PROGRESS = {"starting": (0.15, "Queued on the depth server"),
                    "processing": (0.5, "The depth server is computing the depth map")}


class OfflineError(FathomError):
    """Blender may not go online, and the Server backend needs to."""


class StillPendingError(FathomError):
    """The server has the job but its result could not be fetched now; it stays pending in the file."""


def check_online(allow: bool = False, url: str = ""):
    if bpy.app.online_access or allow:
        return
    where = f" ({url})" if url else ""
    raise OfflineError(f"Online access is off, so the Server backend cannot reach the depth server{where}: turn on "
                       "Edit > Preferences > System > Network > Allow Online Access (headless: run Blender with "
                       "--online-mode, or `fathom generate --online-mode`), or choose the Local backend.")


def client_for(context=None, url: Optional[str] = None) -> remote.RemoteClient:
    prefs = addon_preferences(context)
    return remote.RemoteClient(url or prefs.server_url, prefs.api_key)


# ------------------------------------------------------------------ reading a result back

def read_depth(source, settings, model: str, near_is_bright: bool) -> DepthMap:
    """A depth map file (path) or the server's EXR (bytes) as the DepthMap local generation would give."""
    depth = encode.read_depth(source)
    return DepthMap(depth, near_is_bright, model, settings, tuple(depth.shape))


# ------------------------------------------------------------------ the job

# Idempotency keys of submissions whose answer never came (cache key -> key): submitting the same
# picture and settings again reuses the key, so the server answers with the first job, uncharged.
_unanswered_keys = {}


@dataclass(frozen=True)
class Cached:
    """An earlier server result in this file: ``path`` when its file is there in the asked format
    (shown again as is), else None and only its server ``job`` is of use (downloaded again, free)."""
    image: str
    job: str
    path: Optional[Path]
    model: str
    near_is_bright: bool


def cached_results(server: str, output_format: str) -> dict:
    """Main thread: cache key -> Cached for the earlier results of ``server`` in this file, a
    snapshot the job consults once its picture is known (after a render deferred to the worker)."""
    found = {}
    for image in bpy.data.images:
        meta = image.get(results.IMAGE_KEY)
        info = meta.get(REMOTE_KEY) if meta is not None else None
        if info is None or not info.get("cache_key") or info.get("server") != server:
            continue
        path = Path(bpy.path.abspath(image.filepath)) if image.filepath else None
        usable = meta.get("settings", {}).get("output_format") == output_format and path is not None \
            and path.is_file()
        key = info["cache_key"]
        if key not in found or (usable and found[key].path is None):
            found[key] = Cached(image.name, info.get("job"), path if usable else None, meta.get("model", ""),
                                bool(meta.get("near_is_bright", True)))
    return found


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
    job_id: Optional[str] = None        # known from the start when fetching a pending or cached result
    cost: Optional[int] = None
    force: bool = False                 # generate again even when an identical result is in the file
    cached: dict = field(default_factory=dict)  # cached_results() of prepare
    earlier: Optional[Cached] = None    # the identical earlier result shown again: no tokens spent
    follow_seconds: float = 600.0
    cancel_on_server: bool = True       # Esc cancels the server job (fetching a pending one only stops)

    @property
    def reused(self) -> bool:
        return self.earlier is not None

    def set_capture(self, picture):
        """No bpy (prepare, or the worker after a deferred render): the PNG to send, its cache key and
        Idempotency-Key; then an identical earlier result, else the balance check."""
        super().set_capture(picture)
        self.picture = encode.encode_picture_png(picture.rgb)
        self.cache_key = remote.result_cache_key(self.picture, self.settings, server=self.server)
        self.idempotency_key = ((not self.force and _unanswered_keys.get(self.cache_key))
                                or str(uuid.uuid4()))
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
        metadata = {"fathom.model": self.settings.model, "fathom.settings": asdict(self.settings),
                    "fathom.source": self.capture.source, "fathom.server": self.server, "fathom.job": self.job_id}
        # A paid result is written even when a cancel came after the server had finished it.
        self.path = results.write_result(self.depth_map, self.capture.name, self.target, metadata)
        account.refresh_quietly(self.client)
        return self.path

    def _submit(self, report, cancel):
        if cancel is not None and cancel():
            raise CancelledError("Depth generation was cancelled before anything was sent; no tokens were spent.")
        report(0.05, "Sending the picture to the depth server")
        try:
            job = self.client.submit(self.picture, self.settings, idempotency_key=self.idempotency_key,
                                     filename=f"{results.safe_stem(self.capture.name)}.png")
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
        pending.post(pending.add, self.scene_name, entry)
        account.charged(self.server, self.client.api_key, self.cost)

    def _follow(self, report, cancel):
        def look(status, job):
            report(*_STATUS_PROGRESS.get(status, (0.85, f"The depth map is {status}")))

        try:
            if self.cancel_on_server:
                self.client.wait(self.job_id, progress=look, cancel=cancel, timeout=self.follow_seconds)
                return
            deadline = time.monotonic() + self.follow_seconds
            while True:  # fetching: Esc stops following, the job goes on and stays pending
                try:
                    self.client.wait(self.job_id, progress=look, timeout=min(2.0, self.follow_seconds))
                    return
                except remote.WaitTimeoutError:
                    if (cancel is not None and cancel()) or time.monotonic() >= deadline:
                        raise
        except (remote.JobFailedError, remote.JobCancelledError):
            pending.post(pending.remove, self.scene_name, self.job_id)
            account.refresh_quietly(self.client)
            raise
        except (remote.UnreachableError, remote.ServerError, remote.WaitTimeoutError, remote.RateLimitedError) as exc:
            raise self._still_pending(exc) from None

    def _still_pending(self, exc) -> StillPendingError:
        return StillPendingError(f"{exc} The depth map {self.job_id} is paid for and stays pending in this file: "
                                 "save the file, and use Fetch Pending Results (Depth panel) later; no tokens are "
                                 "lost.")

    def pending_entry(self) -> dict:
        target = {"folder": str(self.target.folder)} if self.target.folder else {"file": str(self.target.file)}
        return {"job": self.job_id, "server": self.server, "idempotency_key": self.idempotency_key,
                "cache_key": self.cache_key, "cost": self.cost, "settings": asdict(self.settings),
                "source": dict(self.capture.source), "label": self.capture.label, "name": self.capture.name,
                "target": target, "scene": self.scene_name, "submitted": time.time()}

    def finish(self, context):
        """Main thread: the image (the earlier one when reused) in the source's node; the job is
        no longer pending."""
        pending.drain()
        image = bpy.data.images.get(self.earlier.image) if self.reused else None
        if image is None:  # a new result (or the earlier image was deleted while this one rendered)
            image = results.load_result(self.path, self.depth_map, self.capture.source)
            image[results.IMAGE_KEY][REMOTE_KEY] = {"server": self.server, "job": self.job_id,
                                                     "cache_key": self.cache_key, "cost": self.cost or 0}
        scene = bpy.data.scenes.get(self.scene_name) or context.scene
        node = results.place_image_node(scene, image, results.source_key(self.capture.source))
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
        raise remote.AuthenticationError("No API key is set for the depth server: paste your key in Edit > "
                                         "Preferences > Add-ons > Fathom (the server's operator gives you one).")
    job = RemoteJob(None, settings, None, target, context.scene.name, server=client.base_url, client=client,
                    force=force, cached={} if force else cached_results(client.base_url, settings.output_format))
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
            f"Short by {cost - view.balance} token(s): this depth map costs {cost} and your balance is "
            f"{view.balance}. " + (f"Get tokens at {view.top_up_url}." if view.top_up_url else
                                  "Ask the server's operator for tokens.") + " Nothing was sent.",
            needed=cost, balance=view.balance, shortfall=cost - view.balance, top_up_url=view.top_up_url)


# ------------------------------------------------------------------ account: balance and prices

@dataclass(frozen=True)
class AccountView:
    server: str
    user: Optional[str] = None
    balance: Optional[int] = None
    top_up_url: Optional[str] = None
    error: Optional[str] = None
    checked_at: float = 0.0
    pricing_client: Optional[remote.RemoteClient] = None  # price list cached on it: cost() needs no network


def _fingerprint(url, key):
    return hashlib.sha256(f"{url}\n{key}".encode()).hexdigest()


class Account:
    """The balance and price list per server and key, fetched off the main thread; draw() reads it."""

    STALE_SECONDS = 300.0
    RETRY_SECONDS = 30.0

    def __init__(self):
        self._lock = threading.Lock()
        self._views = {}
        self._busy = set()

    def view(self, url, key) -> Optional[AccountView]:
        try:
            client = remote.RemoteClient(url, key)  # the URL as the client normalises it; no network
        except FathomError:
            return None
        with self._lock:
            return self._views.get(_fingerprint(client.base_url, client.api_key))

    def refresh(self, client: remote.RemoteClient) -> AccountView:
        """Ask the server (on the calling thread: a worker, or a headless run); errors are kept on the view."""
        fp = _fingerprint(client.base_url, client.api_key)
        with self._lock:
            self._busy.add(fp)
        return self._ask(client, fp)

    def _ask(self, client, fp) -> AccountView:
        try:
            me = client.me(ledger_limit=0)
            client.pricing(refresh=True)
            view = AccountView(client.base_url, me.get("user"), int(me["balance"]),
                               me.get("topUpUrl") or client.pricing().get("topUpUrl"), None, time.time(), client)
        except FathomError as exc:
            old = self._views.get(fp)
            view = AccountView(client.base_url, error=str(exc), checked_at=time.time(),
                               pricing_client=old.pricing_client if old else None)
        with self._lock:
            self._views[fp] = view
            self._busy.discard(fp)
        return view

    def refresh_quietly(self, client):
        try:
            self.refresh(client)
        except Exception:  # a balance display must never fail a paid result
            pass

    def refresh_in_background(self, client, on_done=None) -> bool:
        """Start a refresh on a worker thread unless one runs; ``on_done(view)`` runs on that thread."""
        fp = _fingerprint(client.base_url, client.api_key)
        with self._lock:
            if fp in self._busy:
                return False
            self._busy.add(fp)

        def work():
            view = self._ask(client, fp)
            if on_done is not None:
                on_done(view)

        threading.Thread(target=work, name="fathom-account", daemon=True).start()
        _redraw_when_idle()
        return True

    def busy(self) -> bool:
        with self._lock:
            return bool(self._busy)

    def charged(self, url, key, cost):
        """Lower the shown balance by a job's cost at once (the server's figure follows)."""
        if not cost:
            return
        fp = _fingerprint(url, key)
        with self._lock:
            view = self._views.get(fp)
            if view is not None and view.balance is not None:
                self._views[fp] = AccountView(view.server, view.user, view.balance - cost, view.top_up_url,
                                              view.error, view.checked_at, view.pricing_client)

    def needs_refresh(self, url, key) -> bool:
        view = self.view(url, key)
        if view is None:
            return True
        wait = self.RETRY_SECONDS if view.error else self.STALE_SECONDS
        return time.time() - view.checked_at > wait

    def clear(self):
        with self._lock:
            self._views.clear()


account = Account()


def _redraw_when_idle():
    """Main-thread timer: redraw the sidebar and preferences once the account refresh is done."""
    if bpy.app.background or bpy.app.timers.is_registered(_redraw_tick):
        return
    bpy.app.timers.register(_redraw_tick, first_interval=0.2)


def _redraw_tick():
    busy = account.busy()
    wm = bpy.context.window_manager
    for window in wm.windows if wm is not None else ():
        for area in window.screen.areas:
            if area.type in {"VIEW_3D", "IMAGE_EDITOR", "NODE_EDITOR", "PREFERENCES"}:
                area.tag_redraw()
    return 0.2 if busy else None


def auto_refresh(context):
    """From draw(): start a balance refresh on a worker thread when none is known for the current
    server and key (never network here; nothing when Blender may not go online)."""
    prefs = addon_preferences(context)
    if not bpy.app.online_access or not prefs.api_key.strip():
        return
    if not account.needs_refresh(prefs.server_url, prefs.api_key):
        return
    try:
        client = client_for(context)
    except FathomError:
        return
    account.refresh_in_background(client)


def generate_button(context) -> dict:
    """What the Generate button of the Server backend shows, from the cached account only:
    {kind: 'generate'|'top_up'|'unknown', text, cost, shortfall, note}."""
    prefs = addon_preferences(context)
    view = account.view(prefs.server_url, prefs.api_key)
    if not bpy.app.online_access:
        return {"kind": "generate", "text": "Generate Depth", "note": "Online access is off (Preferences > System)"}
    if view is None or view.pricing_client is None:
        return {"kind": "generate", "text": "Generate Depth", "note": view.error if view else "Checking the balance..."}
    settings = context.scene.fathom.depth_settings(prefs.threads)
    try:
        cost = view.pricing_client.cost(settings)
    except FathomError as exc:
        return {"kind": "unknown", "text": "Generate Depth", "note": str(exc)}
    tokens = "token" if cost == 1 else "tokens"
    if view.balance is not None and view.balance < cost:
        short = cost - view.balance
        return {"kind": "top_up", "text": f"Get tokens · {short} more", "cost": cost, "shortfall": short,
                "note": f"This depth map costs {cost} {tokens}; your balance is {view.balance}"}
    return {"kind": "generate", "text": f"Generate Depth · {cost} {tokens}", "cost": cost, "shortfall": 0,
            "note": view.error}
