"""Paid server jobs whose result is not in the file yet, kept in the .blend so no result is lost.

A job is recorded on its scene (custom property ``fathom_pending``: job id -> JSON) as soon as the
server accepts it, and removed once its result is in the file or the server says it failed (then
refunded) or was canceled. If Blender loses the connection, is closed or crashes, the saved file
still lists the job: on opening it, a load_post handler notices, the Depth panel shows a notice
and **Fetch Pending Results** downloads the finished ones into the same node a fresh generation
would use.

The worker thread never touches bpy: it posts changes with :func:`post`, applied on the main
thread by a timer (interactive) or by :func:`drain` (finish, headless).
"""
import json
import queue
import threading
from dataclasses import dataclass, field
from pathlib import Path

import bpy

from ..engine import remote
from ..engine.errors import CancelledError, FathomError
from ..engine.settings import DepthSettings

PENDING_KEY = "fathom_pending"
_queue = queue.SimpleQueue()


# ------------------------------------------------------------------ the record in the .blend

def add(scene_name: str, entry: dict):
    scene = bpy.data.scenes.get(scene_name)
    if scene is None:
        return
    if PENDING_KEY not in scene.keys():
        scene[PENDING_KEY] = {}
    scene[PENDING_KEY][entry["job"]] = json.dumps(entry)


def remove(scene_name: str, job_id: str):
    scene = bpy.data.scenes.get(scene_name)
    if scene is not None and PENDING_KEY in scene.keys() and job_id in scene[PENDING_KEY]:
        del scene[PENDING_KEY][job_id]


def entries(scenes=None) -> list:
    """Every pending job (dicts as RemoteJob.pending_entry made them) in ``scenes`` (default: all)."""
    found = []
    for scene in scenes if scenes is not None else bpy.data.scenes:
        record = scene.get(PENDING_KEY)
        for job_id in (record.keys() if record is not None else ()):
            try:
                entry = json.loads(record[job_id])
            except (TypeError, ValueError):
                continue
            entry["scene"] = scene.name  # a renamed scene keeps its jobs
            found.append(entry)
    return found


def post(fn, *args):
    """Run fn(*args) on the main thread: now when called there, else at the next drain."""
    if threading.current_thread() is threading.main_thread():
        fn(*args)
        return
    _queue.put((fn, args))  # applied by the timer watch() started, or by the next drain()


def drain():
    while True:
        try:
            fn, args = _queue.get_nowait()
        except queue.Empty:
            return
        fn(*args)


def _tick():
    drain()
    return 0.25


def watch():
    """Main thread, interactive: keep applying posted changes while remote jobs may run."""
    if not bpy.app.background and not bpy.app.timers.is_registered(_tick):
        bpy.app.timers.register(_tick, first_interval=0.25, persistent=True)


def unwatch():
    if bpy.app.timers.is_registered(_tick):
        bpy.app.timers.unregister(_tick)


# ------------------------------------------------------------------ noticed on file open

_notice = {"count": 0}


@bpy.app.handlers.persistent
def on_load(_filepath=None):
    """load_post: count the pending jobs of the opened file, say so, and offer to fetch them."""
    found = entries()
    _notice["count"] = len(found)
    if not found:
        return
    print(f"Fathom: this file has {len(found)} paid depth map(s) pending on the depth server; fetch them with "
          "Fetch Pending Results in the Depth panel (or bpy.ops.fathom.fetch_pending()).")
    if not bpy.app.background:
        bpy.app.timers.register(_offer, first_interval=0.5)


def _offer():
    count = len(entries())
    if not count:
        return None

    def draw(menu, _context):
        menu.layout.label(text=f"{count} paid depth map(s) from the depth server are not in this file yet.")
        menu.layout.operator("fathom.fetch_pending", icon="IMPORT")

    bpy.context.window_manager.popup_menu(draw, title="Fathom: pending results", icon="INFO")
    return None


def register():
    if on_load not in bpy.app.handlers.load_post:
        bpy.app.handlers.load_post.append(on_load)
    watch()


def unregister():
    if on_load in bpy.app.handlers.load_post:
        bpy.app.handlers.load_post.remove(on_load)
    unwatch()


# ------------------------------------------------------------------ fetching

@dataclass
class Outcome:
    entry: dict
    job: object = None          # the RemoteJob once its result is written
    message: str = ""
    done: bool = False          # finished one way or another: no longer pending
    refunded: int = None


@dataclass
class FetchJob:
    """Fetch every pending job (worker thread: network and files); apply() puts them in Blender."""
    jobs: list
    outcomes: list = field(default_factory=list)
    path = None

    def run(self, progress=None, cancel=None):
        report = progress or (lambda fraction, message: None)
        count = len(self.jobs)
        for number, (entry, job) in enumerate(self.jobs):
            if cancel is not None and cancel():
                raise CancelledError("Stopped fetching; the remaining results stay pending in this file.")
            step = lambda fraction, message, n=number: report((n + fraction) / count,  # noqa: E731
                                                              f"{entry['label']}: {message}")
            outcome = Outcome(entry)
            try:
                job.run(step, cancel)
                outcome.job, outcome.done = job, True
                outcome.message = f"Fetched the depth of {entry['label']}"
            except remote.JobFailedError as exc:
                outcome.done, outcome.refunded, outcome.message = True, exc.refunded, str(exc)
            except remote.JobCancelledError as exc:
                outcome.done, outcome.refunded, outcome.message = True, exc.refunded, str(exc)
            except remote.JobError as exc:
                outcome.done = exc.status == 410
                outcome.message = f"Depth map {entry['job']}: {exc}"
            except FathomError as exc:  # still running, unreachable...: it stays pending
                outcome.message = str(exc)
            self.outcomes.append(outcome)
        return None

    def apply(self, context) -> list:
        """Main thread: results into their nodes, finished jobs off the list; the messages."""
        drain()
        for outcome in self.outcomes:
            if outcome.job is not None:
                outcome.job.finish(context)
            elif outcome.done:
                remove(outcome.entry["scene"], outcome.entry["job"])
        _notice["count"] = len(entries())
        return [o.message for o in self.outcomes]


def fetch_job(context, scene_entries=None, *, follow_seconds=30.0, allow_online=False) -> FetchJob:
    """Main thread: a FetchJob for the pending entries (default: all in the file)."""
    from . import remote as backend
    from .capture import Capture
    from .results import Target, output_target

    found = entries() if scene_entries is None else scene_entries
    if not found:
        raise FathomError("No depth maps are pending in this file.")
    jobs = []
    for entry in found:
        backend.check_online(allow_online, entry["server"])
        client = backend.client_for(context, url=entry["server"])
        settings = DepthSettings(**entry["settings"]).validated()
        target = entry["target"]
        if "file" in target:
            target = Target(file=Path(target["file"]))
        else:  # //generated/ of the file as it is now (it may have moved since)
            target = output_target(None) if bpy.data.filepath else Target(folder=Path(target["folder"]))
        picture = Capture(None, entry["label"], entry["name"], entry["source"])
        job = backend.RemoteJob(picture, settings, None, target, entry["scene"], server=client.base_url,
                                client=client, cache_key=entry.get("cache_key", ""),
                                idempotency_key=entry.get("idempotency_key", ""), job_id=entry["job"],
                                cost=entry.get("cost"), follow_seconds=follow_seconds, cancel_on_server=False)
        jobs.append((entry, job))
    return FetchJob(jobs)


def notice_count() -> int:
    return _notice["count"]
