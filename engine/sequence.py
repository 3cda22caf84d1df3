"""Depth for a range of frames: one numbered file per frame in one folder, frame by frame.

``run_sequence`` takes the frame numbers, a ``read_frame(frame)`` that gives each frame's picture
(a render, a file of an image sequence, a movie frame: the caller's business) and a
``depth_fn(pictures)`` that gives their inverse depth (larger = nearer; the local one batches
through ``estimate_batch``, the model loaded once). For each frame it

1. skips it when it is done with the same settings (its ``.fathom/<frame>.done`` record), unless
   ``redo``; claims it (claims.py) so another process given the same frames leaves it alone;
2. estimates it (frames claimed together run as one batch where batching pays);
3. stabilises it against the frames before it (stabilize.py), maps it to 0..1 with the range the
   sequence's first finished frame fixed (normalize.py), and writes ``<stem>_<frame>.<ext>``
   atomically, then its record, then releases the claim.

Progress is per frame with the time left; cancelling stops between frames and keeps every
finished frame. The small aligned copy of each frame is kept beside its record, so a rerun, or a
process doing the next frames, continues the alignment where the earlier frames left it.
"""

import hashlib
import json
import os
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from .claims import STATE_DIR, Claims, Manifest
from .depth import DEFAULT_MAX_TOKENS, estimate_batch
from .encode import encode_depth, read_metadata, suffix_for
from .errors import CancelledError, FathomError
from .frames import FRAME_DIGITS, describe, frame_name
from .normalize import normalize, normalize_in_range, value_range
from .settings import DepthSettings
from .stabilize import DEFAULT_WINDOW, FlickerMeter, Stabilizer, anchor_quantiles, small

HEARTBEAT_SECONDS = 10.0


@dataclass
class SequenceResult:
    folder: Path
    stem: str
    suffix: str
    frames: list[int]  # the frames asked for
    written: list[int] = field(default_factory=list)  # made by this run
    skipped: list[int] = field(default_factory=list)  # already done with the same settings
    by_others: list[int] = field(default_factory=list)  # claimed by another process while this one ran
    seconds: float = 0.0
    flicker_before: float | None = None  # % of the depth range, each frame on its own
    flicker_after: float | None = None  # % of the depth range, as written
    value_range: tuple | None = None
    near_is_bright: bool = True

    def path(self, frame):
        return self.folder / frame_name(self.stem, frame, self.suffix)

    @property
    def done(self):
        return sorted(set(self.written) | set(self.skipped))

    @property
    def paths(self) -> dict[int, Path]:
        return {f: self.path(f) for f in self.done}

    @property
    def frames_per_second(self):
        return len(self.written) / self.seconds if self.seconds > 0 and self.written else None


def settings_key(settings, **extra):
    """What decides a frame's pixels: the depth settings, the stabilisation, the source, the backend."""
    data = {"settings": {k: v for k, v in vars(settings).items() if k != "threads"}, **extra}
    return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()[:16]


def local_depth_fn(settings, model_path, *, batch_size=8, max_tokens=DEFAULT_MAX_TOKENS, cancel=None):
    """Inverse depth of pictures with the local model, batched where ``estimate_batch`` finds it pays."""
    raw = replace(settings, normalization="raw", invert=False)

    def depth_fn(pictures, frames=None):
        maps = estimate_batch(
            pictures,
            raw,
            model_path,
            batch_size=batch_size,
            max_tokens=max_tokens,
            cancel=cancel,
            model_name=settings.model,
        )
        return [m.depth for m in maps]

    return depth_fn


def format_seconds(seconds):
    seconds = round(seconds)
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"


class _Heartbeat(threading.Thread):
    def __init__(self, claims):
        super().__init__(daemon=True, name="fathom-claims")
        self.claims, self.stop = claims, threading.Event()

    def run(self):
        while not self.stop.wait(HEARTBEAT_SECONDS):
            self.claims.heartbeat()


def run_sequence(
    frames,
    read_frame: Callable,
    folder,
    *,
    depth_fn: Callable | None = None,
    settings=None,
    model_path=None,
    stem="depth",
    stabilize=True,
    window=DEFAULT_WINDOW,
    smoothing=0.0,
    batch_size=8,
    redo=False,
    fixed_range=None,
    one_range=None,
    key_extra=None,
    metadata=None,
    progress=None,
    cancel=None,
    stale_after=None,
    on_frame=None,
) -> SequenceResult:
    """Depth of ``frames`` into ``folder``; see the module's description.

    ``depth_fn(pictures, frames)`` gives the frames' inverse depth (default: the local model); its
    ``start(claims)``, if it has one, is called first with the folder's claims.
    Stabilised frames share one range, the first finished frame's; ``one_range`` (default: as
    ``stabilize``) asks for that without stabilising (exact depth such as Scene Z), and
    ``fixed_range`` (lo, hi) gives the range itself. ``key_extra`` (JSON-able) joins the settings
    in the key that decides whether a frame done earlier can be skipped: the source and backend.
    ``on_frame(frame, path)`` is called after each frame is in place.
    """
    settings = (settings or DepthSettings()).validated()
    frames = sorted(set(frames))
    if not frames:
        raise FathomError("No frames to do.")
    if depth_fn is None:
        if model_path is None:
            raise FathomError("No model: pass model_path (or a depth_fn).")
        depth_fn = local_depth_fn(settings, model_path, batch_size=batch_size, cancel=cancel)
    folder = Path(folder)
    suffix = suffix_for(settings.output_format)
    one_range = stabilize if one_range is None else one_range
    key = settings_key(
        settings,
        stabilize=bool(stabilize),
        window=window,
        smoothing=smoothing,
        one_range=one_range,
        fixed_range=fixed_range,
        extra=key_extra,
    )
    claims = Claims(folder, key, **({} if stale_after is None else {"stale_after": stale_after}))
    if hasattr(depth_fn, "start"):  # a depth_fn that keeps per-frame records (sequence_remote)
        depth_fn.start(claims)
    manifest = Manifest(folder)
    manifest.start(
        {
            "key": key,
            "stem": stem,
            "suffix": suffix,
            "settings": vars(settings),
            "extra": key_extra,
            "digits": FRAME_DIGITS,
        }
    )
    result = SequenceResult(folder, stem, suffix, frames, near_is_bright=not settings.invert)
    state = _State(frames, claims, manifest, settings, window, smoothing, stabilize, one_range, fixed_range)
    todo = []
    for frame in frames:
        (todo if redo or not claims.is_done(frame) else result.skipped).append(frame)
    started = time.perf_counter()
    heartbeat = _Heartbeat(claims)
    heartbeat.start()
    processed = 0

    def report(message):
        if progress is not None:
            progress(processed / len(todo) if todo else 1.0, message)

    try:
        queue = list(todo)
        while queue:
            _check(cancel, result, folder)
            batch = []
            while queue and len(batch) < max(1, batch_size):
                frame = queue.pop(0)
                if not claims.claim(frame):
                    result.by_others.append(frame)
                    processed += 1
                    continue
                if not redo and claims.is_done(frame):  # finished by another process just before
                    claims.release(frame)
                    result.skipped.append(frame)
                    processed += 1
                    continue
                batch.append(frame)
            if not batch:
                continue
            pictures = []
            for i, frame in enumerate(batch):
                _check(cancel, result, folder)
                report(_message(frame, processed + i, len(todo), started, len(result.written), "reading"))
                pictures.append(read_frame(frame))
            report(_message(batch[0], processed, len(todo), started, len(result.written), "estimating"))
            disparities = depth_fn(pictures, batch)
            del pictures
            for frame, disparity in zip(batch, disparities):
                path = state.write(frame, np.asarray(disparity, np.float32), result, metadata)
                claims.release(frame)
                result.written.append(frame)
                processed += 1
                if on_frame is not None:
                    on_frame(frame, path)
                report(_message(frame, processed, len(todo), started, len(result.written), "done"))
    except CancelledError as exc:  # a cancel inside a frame's render or network pass: the frame is dropped
        if getattr(exc, "result", None) is None:
            raise _cancelled(result, folder) from exc
        raise
    finally:
        heartbeat.stop.set()
        claims.release_all()
        result.seconds = time.perf_counter() - started
        result.flicker_before, result.flicker_after = state.flicker.before, state.flicker.after
        result.value_range = state.range and (state.range["lo"], state.range["hi"])
        result.written.sort()
        result.skipped.sort()
        result.by_others = sorted(set(result.by_others) - set(result.written) - set(result.skipped))
    report(
        f"{len(result.written)} frames written, {len(result.skipped)} already done"
        + (f", {len(result.by_others)} done by another process" if result.by_others else "")
    )
    return result


def _check(cancel, result, folder):
    if cancel is not None and cancel():
        raise _cancelled(result, folder)


def _cancelled(result, folder):
    done = sorted(set(result.written) | set(result.skipped))
    if not done:
        kept = "no frame was finished"
    else:
        kept = f"frame{'s' if len(done) > 1 else ''} {describe(done)} {'are' if len(done) > 1 else 'is'} in {folder}"
    error = CancelledError(f"Cancelled between frames: {kept}; run it again to continue where it stopped.")
    error.result = result
    return error


def _message(frame, processed, total, started, written, what):
    text = f"Frame {frame} ({processed + (what != 'done')} of {total}): {what}"
    if written and processed < total:
        per_frame = (time.perf_counter() - started) / max(processed, 1)
        text += f", about {format_seconds(per_frame * (total - processed))} left"
    return text


class _State:
    """Per-run alignment, range and flicker, and how one frame's result is put in place."""

    def __init__(self, frames, claims, manifest, settings, window, smoothing, stabilize, one_range, fixed_range):
        self.frames, self.claims, self.manifest = frames, claims, manifest
        self.settings, self.stabilize, self.one_range = settings, stabilize, one_range or bool(fixed_range)
        self.stabilizer = Stabilizer(window=window, smoothing=smoothing)
        self.window = window
        self.last = None  # the frame aligned last
        self.flicker = FlickerMeter()
        self.range = {"lo": fixed_range[0], "hi": fixed_range[1], "anchor": None} if fixed_range else None

    def _small_path(self, frame):
        return self.claims.state / f"{frame:0{FRAME_DIGITS}d}.npy"

    def _seed(self, frame):
        """When the frame before this one was not aligned here, continue from the saved copies."""
        index = self.frames.index(frame)
        if index > 0 and self.frames[index - 1] == self.last:
            return
        history = []
        for previous in reversed(self.frames[max(0, index - self.window) : index]):
            if not self.claims.is_done(previous):
                break
            try:
                history.append(np.load(self._small_path(previous)))
            except (OSError, ValueError):
                break
        self.stabilizer.history.clear()
        self.stabilizer.history.extend(reversed(history))

    def write(self, frame, disparity, result, metadata):
        settings = self.settings
        if self.range is None:
            self.range = self.manifest.fixed_range()
        if self.stabilize:
            self._seed(frame)
            anchor = self.range and self.range.get("anchor")
            aligned, low, scale, shift = self.stabilizer.align(disparity, anchor=anchor)
        else:
            aligned, low, scale, shift = disparity, small(disparity), 1.0, 0.0
        self.last = frame
        alone, _ = normalize(disparity, settings.normalization, settings.invert)
        if self.one_range:  # one range for the sequence
            if self.range is None:
                lo, hi = value_range(aligned, settings.normalization)
                self.range = self.manifest.fix_range({"lo": lo, "hi": hi, "anchor": anchor_quantiles(low)})
            depth, _ = normalize_in_range(
                aligned, settings.normalization, settings.invert, self.range["lo"], self.range["hi"]
            )
        else:  # unaligned frames each have their own scale: each is mapped by its own range
            depth = alone
        if settings.normalization != "raw":
            self.flicker.add(alone, depth)
        name = frame_name(result.stem, frame, result.suffix)
        path = result.folder / name
        meta = {"model": settings.model, "frame": frame, "sequence": self.claims.key, **(metadata or {})}
        _put(path, encode_depth(depth, settings.output_format, metadata=meta), self.claims)
        tmp = self._small_path(frame).with_name(f".{frame}.{uuid.uuid4().hex}.npy")
        np.save(tmp, low.astype(np.float32))
        os.replace(tmp, self._small_path(frame))
        self.claims.mark_done(frame, name, scale=scale, shift=shift)
        return path


def _put(path, data, claims):
    """Put a frame's file in place atomically. A file there that this sequence did not write (no
    sequence key in its metadata) is someone else's and is never replaced."""
    if path.exists():
        try:
            ours = "sequence" in read_metadata(path)
        except Exception:  # noqa: BLE001 - unreadable in any way: not a file we wrote
            ours = False
        if not ours:
            raise FathomError(
                f"{path} exists and was not written by Fathom's sequence output: move it away, or choose "
                f"another output folder; Fathom does not overwrite it."
            )
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


__all__ = ["STATE_DIR", "SequenceResult", "local_depth_fn", "run_sequence", "settings_key"]
