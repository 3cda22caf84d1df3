"""Generations running on a worker thread while Blender stays responsive.

The modal operator starts one with :func:`start` and polls it from a timer; the panel reads
:func:`current` to draw the progress bar and the Cancel button. One generation runs at a time
(the model's memory and the CPU are shared): a second start is refused with a message. The
worker never touches bpy; loading the result into Blender happens on the main thread once
:attr:`Running.done` is set. What a worker must change in Blender before then (a paid server job
recorded in the file) it hands over with :func:`post`; the main thread applies it with
:func:`drain` (the worker operators' modal timer, on every tick, and the job's finish).
"""

import queue
import threading
from typing import Optional

from ...engine.errors import CancelledError, FathomError


class BusyError(FathomError):
    """A generation is already running."""


class Running:
    def __init__(self, job):
        self.job = job
        self.fraction = 0.0
        self.message = "Starting"
        self.shown = (0.0, "Starting (0%)")  # what the status bar and the panel both show now
        self.error: Optional[BaseException] = None
        self.finish_ms = []  # how long each of the main thread's finishing steps took (operators._worker)
        self._cancel = threading.Event()
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._work, name="fathom-depth", daemon=True)

    def _work(self):
        try:
            self.job.run(progress=self._progress, cancel=self._cancel.is_set)
        except BaseException as exc:  # handed to the main thread, which reports it
            self.error = exc
        finally:
            self._done.set()

    def _progress(self, fraction, message):
        self.fraction, self.message = float(fraction), str(message)

    def snapshot(self):
        """Main thread, once per tick: take the progress to show; the status bar and every panel
        then show this same (fraction, text) until the next tick."""
        self.shown = (self.fraction, f"{self.message} ({self.fraction:.0%})")
        return self.shown

    def cancel(self):
        self.message = "Cancelling"
        self._cancel.set()

    @property
    def cancelled(self) -> bool:
        """True when the work stopped because of a cancel (one that came after the file was
        written is too late: the result stands)."""
        return isinstance(self.error, CancelledError)

    @property
    def done(self) -> bool:
        return self._done.is_set()

    def wait(self, timeout=None) -> bool:
        return self._done.wait(timeout)


_current: Optional[Running] = None
_last_finish_ms = []  # the finishing steps of the one collected last (the real-window tests read them)
_lock = threading.Lock()


def current() -> Optional[Running]:
    """The generation in progress (or finished and not yet collected), if any."""
    return _current


def check_idle():
    if _current is not None:
        raise BusyError(
            "A depth generation is already running: wait for it to finish or cancel it "
            "(Esc, or Cancel in the Depth panel)."
        )


def start(job) -> Running:
    global _current
    with _lock:
        check_idle()
        _current = Running(job)
    _current._thread.start()
    return _current


def collect(running: Running):
    """Forget a finished generation, so the next one may start."""
    global _current, _last_finish_ms
    with _lock:
        if _current is running:
            _current, _last_finish_ms = None, running.finish_ms


def last_finish_ms() -> list:
    """How long each main-thread finishing step of the generation collected last took, in ms."""
    return list(_last_finish_ms)


def stop(timeout: float = 10.0) -> bool:
    """Cancel the running generation and wait up to ``timeout`` seconds for its thread to end (the
    add-on is being disabled); whether it ended. Main thread: what it posted (a paid job's record
    in the file) is applied before the add-on's code goes away."""
    from . import inference

    running = _current
    if running is None:
        inference.shutdown()  # the idle worker process, and the model it holds
        return True
    running.cancel()
    ended = running.wait(timeout)
    inference.shutdown()
    collect(running)
    drain()
    return ended


# ------------------------------------------------------------------ worker -> main thread

_queue = queue.SimpleQueue()


def post(fn, *args):
    """Run fn(*args) on the main thread: now when called there, else at the next drain."""
    if threading.current_thread() is threading.main_thread():
        fn(*args)
        return
    _queue.put((fn, args))


def drain():
    """Main thread: run what the workers posted, in order."""
    while True:
        try:
            fn, args = _queue.get_nowait()
        except queue.Empty:
            return
        fn(*args)
