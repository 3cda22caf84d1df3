"""Paid server jobs whose result is not in the file yet, kept in the .blend so no result is lost.

A job is recorded on its scene (custom property ``fathom_pending``: job id -> JSON) as soon as the
server accepts it, and removed once its result is in the file or the server says it failed (then
refunded) or was canceled. If Blender loses the connection or is closed, the saved file still
lists the job: on opening it, a load_post handler notices, the Depth panel shows a notice and
**Fetch Pending Results** downloads the finished ones into the same node a fresh generation would
use. Since a crash loses what was not saved, each job is also written at once to a journal in the
file's generated/ folder (``.fathom-pending.json``), which the handler merges back on opening.

The worker thread never touches bpy: it posts the .blend's record through
bridge.generation.worker.post (only the journal is written from the worker). Noticing pending jobs
on file open is bridge.remote.notice; fetching them is bridge.remote.fetch.
"""

import json
import os
import threading
from pathlib import Path

import bpy

from ..generation.results import GENERATED, IMAGE_KEY

PENDING_KEY = "fathom_pending"
REMOTE_KEY = "remote"  # in a result image's "fathom" property: server, job id, cache key, cost


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
    return bpy.path.abspath(GENERATED) if bpy.data.filepath else None


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


def journal_path(job_id: str):
    """The journal of this file's generated/ folder when it keeps ``job_id``, else None."""
    folder = _generated()
    if folder is None or job_id not in _journal(folder):
        return None
    return Path(folder) / JOURNAL


def journal_remove(folder, job_id: str):
    with _journal_lock:
        data = _journal(folder)
        if data.pop(job_id, None) is not None:
            _write_journal(folder, data)


def merge_journal():
    """Jobs the journal of this file's generated/ folder knows and the file does not (it was not
    saved after they were submitted): back on their scene, unless their result is already here."""
    folder = _generated()
    if folder is None:
        return
    known = {e["job"] for e in entries()}
    fetched = {
        image[IMAGE_KEY][REMOTE_KEY].get("job")
        for image in bpy.data.images
        if IMAGE_KEY in image.keys() and REMOTE_KEY in image[IMAGE_KEY]
    }
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
        for job_id in record.keys() if record is not None else ():
            try:
                entry = json.loads(record[job_id])
            except (TypeError, ValueError):
                continue
            entry["scene"] = scene.name  # a renamed scene keeps its jobs
            found.append(entry)
    return found
