"""The modal half of long operators: a job on the worker thread (bridge.generation.worker), polled
by a timer.

Progress shows in the panels (they read worker.current()), in the status bar and on the
cursor; Esc or the Cancel button stops the job; other events pass through so Blender stays usable.
What must happen on the main thread once the job is done (loading the result, showing it) may be
split into short steps, one per timer tick, so that Blender draws between them: with software
OpenGL one redraw of the window costs 100-300 ms, and several changes made in one go would add
their costs into one stall.
"""

import time
import types

import bpy

from ..bridge.generation import worker as jobs
from ..bridge.redraw import redraw
from ..bridge.remote.messages import report  # the headline in the status bar, details in the Info log
from ..engine.errors import FathomError

_timers = []  # (window manager, event timer) of the modal operators running now


def poll_idle(cls, message="A depth generation is running: wait for it or cancel it") -> bool:
    """For poll(): False, with ``message`` shown, while a job runs (one at a time)."""
    if jobs.current() is not None:
        cls.poll_message_set(message)
        return False
    return True


class WorkerModal:
    """Mixin: implement ``make_job(context, interactive)`` (a job with a bpy-free ``run(progress,
    cancel)``) and ``worker_done(context, job)``. Clicked (invoke), the job runs on the worker
    thread; from scripts and in background mode (execute), synchronously.

    ``worker_done`` returns the operator's result, or is a generator: each ``yield`` (the text the
    progress shows meanwhile) ends one main-thread step, the next runs at the next timer tick
    (after Blender has drawn), and what it returns is the result. The operator runs until its last
    step, so its one undo step holds everything the steps changed. A step must not keep bpy data
    across a ``yield`` (an undo meanwhile frees it): look it up again by name."""

    def make_job(self, context, interactive: bool):
        raise NotImplementedError

    def execute(self, context):
        try:
            jobs.check_idle()
            job = self.make_job(context, interactive=False)
            job.run()
            return finish_now(self.worker_done(context, job))
        except FathomError as exc:
            report(self, "ERROR", exc)
            return {"CANCELLED"}

    def invoke(self, context, event):
        if bpy.app.background:
            return self.execute(context)
        try:
            jobs.check_idle()
            return self.start_worker(context, self.make_job(context, interactive=True))
        except FathomError as exc:  # refused: a job's file copy (child render) goes with it
            report(self, "ERROR", exc)
            return {"CANCELLED"}

    def start_worker(self, context, job):
        self._finishing = None  # worker_done's steps, once the job is done
        self._running = jobs.start(job)
        wm = context.window_manager
        self._timer = wm.event_timer_add(0.1, window=context.window)
        _timers.append((wm, self._timer))
        wm.progress_begin(0, 100)
        wm.modal_handler_add(self)
        return {"RUNNING_MODAL"}

    def modal(self, context, event):
        running = self._running
        if event.type == "ESC" and event.value == "PRESS" and self._finishing is None:
            running.cancel()  # once finishing, the result is written: too late to cancel
        if event.type != "TIMER":
            return {"PASS_THROUGH"}
        jobs.drain()  # what the worker posted (e.g. a job id the server accepted) goes into the file now
        if self._finishing is not None:
            return self._finish_step(context)
        self._show_progress(context, *running.snapshot())
        if not running.done:
            return {"PASS_THROUGH"}
        if running.cancelled:
            self._end(context)
            report(self, "WARNING", running.error)
            return {"CANCELLED"}
        if running.error is not None:
            self._end(context)
            if not isinstance(running.error, FathomError):
                raise running.error
            report(self, "ERROR", running.error)
            return {"CANCELLED"}
        self._finishing = self.worker_done(context, running.job)
        if not isinstance(self._finishing, types.GeneratorType):
            self._end(context)
            return self._finishing
        return self._finish_step(context)

    def _finish_step(self, context):
        """One of worker_done's steps; the last ends the operator (and makes its undo step)."""
        running = self._running
        started = time.perf_counter()
        try:
            text = next(self._finishing)
        except StopIteration as done:
            self._end(context)
            return done.value
        except FathomError as exc:
            self._end(context)
            report(self, "ERROR", exc)
            return {"CANCELLED"}
        except BaseException:
            self._end(context)
            raise
        finally:
            running.finish_ms.append(round((time.perf_counter() - started) * 1000, 1))
        running.fraction, running.message = 1.0, text
        self._show_progress(context, *running.snapshot())
        return {"PASS_THROUGH"}

    def _show_progress(self, context, fraction, text):
        context.window_manager.progress_update(int(fraction * 100))
        if context.workspace is not None:
            context.workspace.status_text_set(f"{text}, Esc to cancel" if self._finishing is None else text)
        redraw(context.window_manager)

    def _end(self, context):
        wm = context.window_manager
        if (wm, self._timer) in _timers:  # else stop() removed it already
            _timers.remove((wm, self._timer))
            wm.event_timer_remove(self._timer)
        wm.progress_end()
        if context.workspace is not None:
            context.workspace.status_text_set(None)
        jobs.collect(self._running)
        jobs.drain()  # the job's last posts, whatever its outcome
        redraw(context.window_manager, full=True)


def finish_now(done):
    """worker_done's result, its steps (if it has them) all run now: execute(), scripts, background mode."""
    if not isinstance(done, types.GeneratorType):
        return done
    while True:
        try:
            next(done)
        except StopIteration as finished:
            return finished.value


def stop():
    """The add-on is being disabled (its job already stopped): remove the running modals' timers
    and progress, which Blender would otherwise keep firing at code that is gone."""
    while _timers:
        wm, timer = _timers.pop()
        try:
            wm.event_timer_remove(timer)
            wm.progress_end()
        except ReferenceError:  # the window manager went away first (a file was loaded)
            pass
