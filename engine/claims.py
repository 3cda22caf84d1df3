"""Who does which frame of a sequence, and which frames are already done, in the sequence's folder.

Several processes (one artist's Blender, farm nodes sharing a folder) can work on one sequence at
once. Each frame is claimed before its work starts by creating ``.fathom/<frame>.claim`` with
O_CREAT | O_EXCL, which only one process can do; a finished frame gets ``.fathom/<frame>.done``
(written atomically after its depth file is in place) naming the settings key it was made with.
So a frame is written once, and a rerun with the same settings skips it.

A claim's owner touches it while it works (``Claims.heartbeat``); a claim untouched for
``stale_after`` seconds, or held by a process of this machine that no longer runs, belongs to a
crashed process and is taken over: renamed away to a unique name (only one taker's rename
succeeds), checked to be the one judged stale, and claimed afresh.
"""

import json
import os
import socket
import time
import uuid
from pathlib import Path

from .frames import FRAME_DIGITS

STATE_DIR = ".fathom"
DEFAULT_STALE_AFTER = 120.0  # seconds without a heartbeat; the heartbeat runs every 10 s


def _atomic_json(path, data):
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(data, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _read_json(path):
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def _pid_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True
    return True


class Claims:
    """Claims and done-records of one sequence folder, for one process."""

    def __init__(self, folder, key, *, stale_after=DEFAULT_STALE_AFTER):
        self.folder = Path(folder)
        self.state = self.folder / STATE_DIR
        self.state.mkdir(parents=True, exist_ok=True)
        self.key = key
        self.stale_after = stale_after
        self.token = uuid.uuid4().hex
        self.host = socket.gethostname()
        self.held = set()

    def _claim_path(self, frame):
        return self.state / f"{frame:0{FRAME_DIGITS}d}.claim"

    def _done_path(self, frame):
        return self.state / f"{frame:0{FRAME_DIGITS}d}.done"

    # -- done records ------------------------------------------------------------------------
    def done_record(self, frame):
        """The record of a finished frame ({key, file, ...}) or None."""
        return _read_json(self._done_path(frame))

    def is_done(self, frame):
        """Done with this key, and its file still there."""
        record = self.done_record(frame)
        return bool(
            record and record.get("key") == self.key and record.get("file") and (self.folder / record["file"]).is_file()
        )

    def mark_done(self, frame, filename, **extra):
        _atomic_json(self._done_path(frame), {"key": self.key, "file": filename, "time": time.time(), **extra})
        self.job_path(frame).unlink(missing_ok=True)

    # -- server jobs -------------------------------------------------------------------------
    def job_path(self, frame):
        """``.fathom/<frame>.job``: a paid server job for the frame, kept until the frame is done."""
        return self.state / f"{frame:0{FRAME_DIGITS}d}.job"

    def job_record(self, frame):
        record = _read_json(self.job_path(frame))
        return record if record and record.get("key") == self.key else None

    def save_job_record(self, frame, record):
        _atomic_json(self.job_path(frame), {**record, "key": self.key})

    # -- claims ------------------------------------------------------------------------------
    def claim(self, frame):
        """True when this process now owns the frame; False when another live process does."""
        path = self._claim_path(frame)
        for _ in range(3):
            try:
                fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666)
            except FileExistsError:
                if not self._take_over_if_stale(path):
                    return False
                continue
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump({"token": self.token, "host": self.host, "pid": os.getpid(), "time": time.time()}, f)
            self.held.add(frame)
            return True
        return False

    def release(self, frame):
        self.held.discard(frame)
        path = self._claim_path(frame)
        owner = _read_json(path)
        if owner and owner.get("token") == self.token:
            try:
                path.unlink()
            except FileNotFoundError:
                pass

    def release_all(self):
        for frame in list(self.held):
            self.release(frame)

    def heartbeat(self):
        """Touch every claim held, so other processes know this one still works on them."""
        for frame in list(self.held):
            try:
                os.utime(self._claim_path(frame))
            except OSError:
                pass

    def _stale(self, path):
        try:
            age = time.time() - path.stat().st_mtime
        except FileNotFoundError:
            return True
        owner = _read_json(path)
        if owner is None:  # being written right now, or garbage: only age decides
            return age > self.stale_after
        pid = owner.get("pid")
        if owner.get("host") == self.host and isinstance(pid, int) and pid != os.getpid() and not _pid_alive(pid):
            return True
        return age > self.stale_after

    def _take_over_if_stale(self, path):
        """Remove a stale claim so the caller may claim again; False when the claim is live."""
        if not self._stale(path):
            return False
        judged = _read_json(path)
        aside = path.with_name(f"{path.name}.stale.{uuid.uuid4().hex}")
        try:
            os.rename(path, aside)
        except FileNotFoundError:
            return True  # someone else removed it: try to claim
        moved = _read_json(aside)
        if moved != judged:  # a fresh claim was made in between and we moved it: put it back
            try:
                os.link(aside, path)
            except OSError:
                pass
            os.unlink(aside)
            return False
        os.unlink(aside)
        return True


def first_wins(path, data):
    """Write JSON ``data`` to ``path`` unless it exists; return what ``path`` holds then (the first writer's)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    tmp.write_text(json.dumps(data), encoding="utf-8")
    try:
        os.link(tmp, path)
    except FileExistsError:
        pass
    finally:
        tmp.unlink(missing_ok=True)
    return _read_json(path) or data


class Manifest:
    """``.fathom/sequence.json``: what the sequence is made with (settings key, file names) and
    ``.fathom/range.json``: how stabilised inverse depth maps to 0..1, fixed by the first frame
    finished. The first process to write either decides; the others read it."""

    def __init__(self, folder):
        self.path = Path(folder) / STATE_DIR / "sequence.json"
        self.range_path = self.path.with_name("range.json")

    def read(self):
        return _read_json(self.path)

    def start(self, data):
        """Record the sequence's settings; when they changed since the last run, the old range goes."""
        current = self.read()
        if current and current.get("key") == data.get("key"):
            return current
        if current is not None:
            self.range_path.unlink(missing_ok=True)
            _atomic_json(self.path, data)
            return data
        return first_wins(self.path, data)

    def fix_range(self, data):
        """The mapping in force: ``data`` if this process is first to fix it, else the one already fixed."""
        return first_wins(self.range_path, data)

    def fixed_range(self):
        return _read_json(self.range_path)
