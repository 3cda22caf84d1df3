"""The modal half of long operators: a job on the worker thread (bridge.jobs), polled by a timer.

Progress shows in the panels (they read bridge.jobs.current()), in the status bar and on the
cursor; Esc or the Cancel button stops the job; other events pass through so Blender stays usable.
"""
from ..bridge import jobs
from ..engine.errors import FathomError


def redraw(context):
    for window in context.window_manager.windows:
        for area in window.screen.areas:
            if area.type in {"VIEW_3D", "IMAGE_EDITOR", "NODE_EDITOR", "PREFERENCES", "STATUSBAR"}:
                area.tag_redraw()


class WorkerModal:
    """Mixin: call ``start_worker(context, job)`` from invoke; implement ``worker_done(context, job)``."""

    def start_worker(self, context, job):
        self._running = jobs.start(job)
        wm = context.window_manager
        self._timer = wm.event_timer_add(0.1, window=context.window)
        wm.progress_begin(0, 100)
        wm.modal_handler_add(self)
        return {"RUNNING_MODAL"}

    def modal(self, context, event):
        running = self._running
        if event.type == "ESC" and event.value == "PRESS":
            running.cancel()
        if event.type != "TIMER":
            return {"PASS_THROUGH"}
        context.window_manager.progress_update(int(running.fraction * 100))
        if context.workspace is not None:
            context.workspace.status_text_set(f"{running.message} ({running.fraction:.0%}), Esc to cancel")
        redraw(context)
        if not running.done:
            return {"PASS_THROUGH"}
        self._end(context)
        if running.cancelled:
            self.report({"WARNING"}, str(running.error))
            return {"CANCELLED"}
        if running.error is not None:
            if not isinstance(running.error, FathomError):
                raise running.error
            self.report({"ERROR"}, str(running.error))
            return {"CANCELLED"}
        try:
            return self.worker_done(context, running.job)
        except FathomError as exc:
            self.report({"ERROR"}, str(exc))
            return {"CANCELLED"}

    def _end(self, context):
        wm = context.window_manager
        wm.event_timer_remove(self._timer)
        wm.progress_end()
        if context.workspace is not None:
            context.workspace.status_text_set(None)
        jobs.collect(self._running)
        redraw(context)
