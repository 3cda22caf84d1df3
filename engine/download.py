"""Fetching one model file over HTTP: streamed, resumable, verified before it is used.

The bytes go to ``<file>.part``; an interrupted transfer leaves it there and the next call asks
the server for the rest (a Range request). The sha256 is computed while the bytes arrive and
checked before the file is moved into place with ``os.replace``, so a half or damaged file never
takes the model's name. Only urllib is used: ``requests`` exists inside Blender but not everywhere
the engine runs.

Two downloads of one file are kept apart by a per-file thread lock (one process) and a
``<file>.lock`` created with O_EXCL (several processes, e.g. two Blender instances). The lock file
names its owner and is touched while bytes flow; it is taken over when its owner is gone (same
machine, POSIX) or it has not been touched for STALE_AFTER_S seconds (a crash, another machine
sharing the folder). Known limits: two processes that find the same stale lock at the same
moment can both take it over (a window of microseconds after a crash), and a transfer that
stalls longer than STALE_AFTER_S (only with a download timeout above it) can be taken over.
"""

import hashlib
import http.client
import json
import os
import socket
import threading
import time
import urllib.error
import urllib.request
from contextlib import contextmanager
from pathlib import Path

from .errors import CancelledError, ChecksumError, DownloadError

CHUNK = 256 * 1024
STALE_AFTER_S = 60.0
HEARTBEAT_S = 5.0
USER_AGENT = "Fathom (Blender extension; model download)"


def human_size(n) -> str:
    if n is None:
        return "an unknown size"
    for unit in ("bytes", "KB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1000


def is_cancelled(cancel) -> bool:
    """``cancel`` is a callable returning True to stop, or a threading.Event-like object."""
    if cancel is None:
        return False
    is_set = getattr(cancel, "is_set", None)
    return bool(is_set() if is_set else cancel())


def hash_file(path: Path, *, progress=None, cancel=None, label=None, total=None):
    """sha256 of a file, read in chunks so a large model never sits in memory; returns the hasher.
    progress(done, total) gets the file's size as total unless ``total`` says otherwise."""
    hasher = hashlib.sha256()
    total = total if total is not None else os.path.getsize(path)
    done = 0
    with open(path, "rb") as f:
        while chunk := f.read(4 * CHUNK):
            if is_cancelled(cancel):
                raise CancelledError(f"Checking {label or Path(path).name} was cancelled.")
            hasher.update(chunk)
            done += len(chunk)
            if progress:
                progress(done, total)
    return hasher


def part_path(target: Path) -> Path:
    return target.with_name(target.name + ".part")


def lock_path(target: Path) -> Path:
    return target.with_name(target.name + ".lock")


# --- locking -------------------------------------------------------------------------------

_thread_locks = {}
_thread_locks_guard = threading.Lock()


class LockFile:
    """An O_EXCL lock file that says who holds it and shows it is alive by being touched."""

    def __init__(self, path: Path):
        self.path = path
        self._touched = 0.0

    def acquire(self):
        for _ in range(2):  # a stale lock is removed once, then taken
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except PermissionError as exc:
                raise DownloadError(
                    f"Cannot write in the model folder {self.path.parent}: {exc.strerror}. Choose another model folder."
                ) from None
            except FileExistsError:
                owner = self._owner()
                if self._is_stale(owner):
                    self._unlink()
                    continue
                who = f"Process {owner.get('pid')} on {owner.get('host')}" if owner else "Another process"
                raise DownloadError(
                    f"{who} is downloading {self.path.name[:-5]} into {self.path.parent} right now: "
                    f"wait for it to finish, or delete {self.path} if no download is running."
                ) from None
            with os.fdopen(fd, "w") as f:
                json.dump({"pid": os.getpid(), "host": socket.gethostname(), "started": time.time()}, f)
            self._touched = time.monotonic()
            return
        raise DownloadError(f"Could not take the download lock {self.path}: delete it if no download is running.")

    def touch(self):
        """Refresh the heartbeat, at most every HEARTBEAT_S seconds."""
        if time.monotonic() - self._touched >= HEARTBEAT_S:
            self._touched = time.monotonic()
            try:
                os.utime(self.path)
            except OSError:
                pass

    def release(self):
        self._unlink()

    def _owner(self) -> dict:
        try:
            owner = json.loads(self.path.read_text(encoding="utf-8"))
            return owner if isinstance(owner, dict) else {}
        except (OSError, ValueError):
            return {}  # half written or unreadable: only its age can tell

    def _is_stale(self, owner: dict) -> bool:
        try:
            if time.time() - self.path.stat().st_mtime > STALE_AFTER_S:
                return True
        except FileNotFoundError:
            return True
        pid = owner.get("pid")
        if owner.get("host") != socket.gethostname() or not isinstance(pid, int):
            return False
        if pid == os.getpid():
            return True  # this process holds the thread lock for this file, so the file is left over
        return os.name == "posix" and not _pid_alive(pid)

    def _unlink(self):
        try:
            self.path.unlink()
        except FileNotFoundError:
            pass


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)  # POSIX only: signal 0 probes without signalling (on Windows it would kill)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@contextmanager
def download_lock(target: Path, cancel=None):
    """Hold the file's download lock: waits for another thread of this process, fails fast if
    another process holds it. Yields the LockFile, whose ``touch`` keeps it fresh."""
    key = os.path.realpath(target)
    with _thread_locks_guard:
        lock = _thread_locks.setdefault(key, threading.Lock())
    while not lock.acquire(timeout=0.1):
        if is_cancelled(cancel):
            raise CancelledError(f"Waiting for another download of {target.name} was cancelled.")
    try:
        lockfile = LockFile(lock_path(target))
        lockfile.acquire()
        try:
            yield lockfile
        finally:
            lockfile.release()
    finally:
        lock.release()


# --- the transfer --------------------------------------------------------------------------


def fetch(
    url: str,
    target: Path,
    *,
    size=None,
    sha256=None,
    progress=None,
    cancel=None,
    timeout=30.0,
    label=None,
    heartbeat=None,
) -> Path:
    """Download ``url`` to ``target`` through ``target.part``, resuming a partial file.

    progress(done_bytes, total_bytes) is called as bytes arrive (total may be None when neither
    the catalogue nor the server says); cancel is checked between chunks. Raises CancelledError
    (the .part is kept for a resume), DownloadError (HTTP status, network, truncated transfer;
    the .part is kept) or ChecksumError (the .part is deleted). The caller holds download_lock.
    """
    label = label or target.name
    part = part_path(target)
    have = part.stat().st_size if part.exists() else 0
    if size is not None and have > size:
        part.unlink()  # longer than the model: not a prefix of it
        have = 0
    if size is not None and have == size:
        hasher = hash_file(part, progress=progress, cancel=cancel, label=label)
        done = have
    else:
        done, hasher = _transfer(url, part, have, size, progress, cancel, timeout, label, heartbeat)
    if size is not None and done != size:
        part.unlink()
        raise ChecksumError(
            f"The download of {label} from {url} is {done} bytes, but the model is {size} bytes: "
            "the file on the server is not this model's. The partial file was deleted."
        )
    if sha256 is not None and hasher.hexdigest() != sha256:
        part.unlink()
        raise ChecksumError(
            f"The download of {label} is damaged: its sha256 is {hasher.hexdigest()}, not {sha256}. "
            "The bad file was deleted; download it again. If this repeats, something between you and "
            f"{_host(url)} (a proxy, a captive portal) is changing the file."
        )
    with open(part, "rb+") as f:
        os.fsync(f.fileno())  # the bytes are on disk before the name says the model is there
    os.replace(part, target)
    return target


def _transfer(url, part, have, size, progress, cancel, timeout, label, heartbeat):
    """Request the bytes from ``have`` on and append them to ``part``; returns (bytes held, their sha256)."""
    response = _open(url, have, timeout, label)
    with response:
        start, total = _response_span(response, have, url, label)
        if size is not None and total is not None and total != size:
            part.unlink(missing_ok=True)
            raise DownloadError(
                f"{_host(url)} offers {total} bytes for {label}, but the model is {size} bytes: "
                f"the address {url} does not point at this model's file."
            )
        total = total if total is not None else size
        if start == 0:
            hasher = hashlib.sha256()
            open(part, "wb").close()  # the whole file is coming (a fresh start, or no Range support)
        else:
            hasher = hash_file(part, progress=progress, cancel=cancel, label=label, total=total)
        done = start
        if progress:
            progress(done, total)
        with open(part, "ab") as f:
            while True:
                if is_cancelled(cancel):
                    raise CancelledError(
                        f"The download of {label} was cancelled after {human_size(done)} of {human_size(total)}; "
                        "download it again to resume where it stopped."
                    )
                try:
                    chunk = response.read(CHUNK)
                except (http.client.HTTPException, OSError) as exc:
                    raise _interrupted(label, url, done, total, exc) from None
                if not chunk:
                    break
                try:
                    f.write(chunk)
                except OSError as exc:
                    raise DownloadError(
                        f"Cannot write {part}: {exc.strerror or exc}. Free some disk space or choose another "
                        "model folder; the part received so far is kept."
                    ) from None
                hasher.update(chunk)
                done += len(chunk)
                if heartbeat:
                    heartbeat()
                if progress:
                    progress(done, total)
    if total is not None and done < total:
        raise _interrupted(label, url, done, total, "the connection closed early")
    return done, hasher


def _open(url, have, timeout, label):
    headers = {"User-Agent": USER_AGENT, "Accept-Encoding": "identity"}
    if have:
        headers["Range"] = f"bytes={have}-"
    try:
        return urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout)
    except urllib.error.HTTPError as exc:
        exc.close()
        if exc.code == 416 and have:
            return _open(url, 0, timeout, label)  # our partial file does not fit: start over
        raise DownloadError(f"Downloading {label} failed: HTTP {exc.code} {exc.reason} from {url}.") from None
    except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
        reason = getattr(exc, "reason", exc)
        raise DownloadError(
            f"Could not reach {_host(url)} to download {label}: {reason}. Check the internet connection "
            "(and any proxy or firewall), then try again."
        ) from None


def _response_span(response, have, url, label):
    """(first byte the body holds, total size of the file or None) from the response headers."""
    length = response.headers.get("Content-Length")
    length = int(length) if length and length.isdigit() else None
    if response.status == 206:
        try:
            rest = response.headers.get("Content-Range", "").partition(" ")[2]
            span, _, whole = rest.partition("/")
            first = int(span.split("-")[0])
            total = None if whole == "*" else int(whole)
        except ValueError:
            raise DownloadError(
                f"{_host(url)} sent a partial answer for {label} without a valid Content-Range; "
                "delete the .part file in the model folder and try again."
            ) from None
        if first != have:
            raise DownloadError(
                f"{_host(url)} resumed {label} at byte {first}, not {have} as asked; delete the "
                ".part file in the model folder and try again."
            )
        return first, total
    return 0, length  # 200: the whole file, whatever was asked


def _interrupted(label, url, done, total, why):
    return DownloadError(
        f"The download of {label} from {_host(url)} stopped after {human_size(done)} of {human_size(total)} "
        f"({why}). The part received is kept: download again to resume."
    )


def _host(url):
    return urllib.request.urlparse(url).netloc or url
