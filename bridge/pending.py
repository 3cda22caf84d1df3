"""Paid server jobs whose result is not in the file yet, kept in the .blend so no result is lost.

A job is recorded on its scene (custom property ``fathom_pending``: job id -> JSON) as soon as the
server accepts it, and removed once its result is in the file or the server says it failed (then
refunded) or was canceled. If Blender loses the connection or is closed, the saved file still
lists the job: on opening it, a load_post handler notices, the Depth panel shows a notice and
**Fetch Pending Results** downloads the finished ones into the same node a fresh generation would
use. Since a crash loses what was not saved, each job is also written at once to a journal in the
file's generated/ folder (``.fathom-pending.json``), which the handler merges back on opening.

The worker thread never touches bpy: it posts changes with :func:`post`, applied on the main
thread by :func:`drain`, which the worker operators' modal timer calls on every tick while a job
runs, and the job's finish calls once more.
"""
import json
import os
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
    folder = None
    if scene is not None and PENDING_KEY in scene.keys() and job_id in scene[PENDING_KEY]:
        try:
            folder = json.loads(scene[PENDING_KEY][job_id])["target"].get("folder")
        except (TypeError, ValueError, KeyError):
            pass
        del scene[PENDING_KEY][job_id]
    for where in {folder, _generated()} - {None}:
        journal_remove(where, job_id)


def _generated():
    return bpy.path.abspath("//generated/") if bpy.data.filepath else None


# ------------------------------------------------------------------ the journal (survives a crash)

JOURNAL = ".fathom-pending.json"
_journal_lock = threading.Lock()


def _journal(folder) -> dict:
    try:
        data = json.loads((Path(folder) / JOURNAL).read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _write_journal(folder, data):
    path = Path(folder) / JOURNAL
    if not data:
        path.unlink(missing_ok=True)
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_name(f"{JOURNAL}.{os.getpid()}.{threading.get_ident()}.tmp")
    temp.write_text(json.dumps(data, indent=1))
    os.replace(temp, path)  # a reader sees the old journal or the new one, never half of one


def journal_add(entry: dict):
    """No bpy (the worker calls it the moment the server accepts): the job into its folder's journal."""
    folder = entry.get("target", {}).get("folder")
    if not folder:
        return  # a named --output file: the .blend's record is all there is
    with _journal_lock:
        data = _journal(folder)
        data[entry["job"]] = entry
        _write_journal(folder, data)


def journal_remove(folder, job_id: str):
    with _journal_lock:
        data = _journal(folder)
        if data.pop(job_id, None) is not None:
            _write_journal(folder, data)


def _merge_journal():
    """Jobs the journal of this file's generated/ folder knows and the file does not (it was not
    saved after they were submitted): back on their scene, unless their result is already here."""
    folder = _generated()
    if folder is None:
        return
    known = {e["job"] for e in entries()}
    fetched = {image["fathom"]["remote"].get("job") for image in bpy.data.images
               if "fathom" in image.keys() and "remote" in image["fathom"]}
    for job_id, entry in _journal(folder).items():
        if job_id in known or job_id in fetched:
            continue
        scene = bpy.data.scenes.get(entry.get("scene", "")) or bpy.context.scene
        if scene is not None:
            add(scene.name, entry)


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
    _queue.put((fn, args))  # applied by the next drain(), on the main thread


def drain():
    while True:
        try:
            fn, args = _queue.get_nowait()
        except queue.Empty:
            return
        fn(*args)


# ------------------------------------------------------------------ noticed on file open

_notice = {"count": 0}


@bpy.app.handlers.persistent
def on_load(_filepath=None):
    """load_post: count the pending jobs of the opened file, say so, and offer to fetch them."""
    _merge_journal()
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

    wm = bpy.context.window_manager
    if wm is None or not wm.windows:
        return None  # no window to show it in: the Depth panel's notice remains
    with bpy.context.temp_override(window=wm.windows[0]):  # timers run without a window in context
        wm.popup_menu(draw, title="Fathom: pending results", icon="INFO")
    return None


def register():
    if on_load not in bpy.app.handlers.load_post:
        bpy.app.handlers.load_post.append(on_load)


def unregister():
    if on_load in bpy.app.handlers.load_post:
        bpy.app.handlers.load_post.remove(on_load)


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
