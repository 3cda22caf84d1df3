"""Generate Depth: the scene's source -> depth map file -> Non-Color image in a compositor node.

Clicked in the UI (invoke), the slow part runs on a worker thread polled by a modal timer: a
progress bar in the Depth panel and the status bar, Esc or Cancel stops it, Blender stays usable.
Called from a script or in background mode (execute), it runs synchronously, since timers and
modal operators do not run while a script does.
"""
import time

import bpy
from bpy.props import StringProperty

from ..bridge import jobs, pipeline
from ..engine.errors import FathomError
from ..preferences import addon_preferences


def _redraw(context):
    for window in context.window_manager.windows:
        for area in window.screen.areas:
            if area.type in {"VIEW_3D", "IMAGE_EDITOR", "NODE_EDITOR", "STATUSBAR"}:
                area.tag_redraw()


class FATHOM_OT_generate_depth(bpy.types.Operator):
    """Estimate a depth map from the chosen source and add it to the compositor"""
    bl_idname = "fathom.generate_depth"
    bl_label = "Generate Depth"
    bl_options = {"REGISTER", "UNDO"}

    # The scene's Depth settings choose the source; scripts may name where the result goes.
    output: StringProperty(name="Output", default="", subtype="FILE_PATH", options={"SKIP_SAVE"},
                           description="Write the depth map here instead of //generated/ (never overwrites)")

    @classmethod
    def poll(cls, context):
        props = getattr(context.scene, "fathom", None)
        if props is None:
            return False
        if jobs.current() is not None:
            cls.poll_message_set("A depth generation is running: wait for it or cancel it")
            return False
        backend = addon_preferences(context).backend
        if backend == "SCENE_Z" or props.source in ("RENDER", "COMPOSITOR"):
            if context.scene.camera is None:
                cls.poll_message_set("The scene has no active camera to render")
                return False
            return True
        if props.source == "IMAGE" and props.image is None and pipeline.active_editor_image(context) is None:
            cls.poll_message_set("Pick an image in the Depth panel, or open one in the Image Editor")
            return False
        if props.source == "FILE" and not props.filepath:
            cls.poll_message_set("Choose an image file in the Depth panel")
            return False
        return True

    def execute(self, context):
        started = time.perf_counter()
        try:
            jobs.check_idle()
            job, image, node = pipeline.generate(context, output=self.output or None)
        except FathomError as exc:
            self.report({"ERROR"}, str(exc))
            return {"CANCELLED"}
        self._report_done(job, started)
        return {"FINISHED"}

    def invoke(self, context, event):
        if bpy.app.background:
            return self.execute(context)
        self._started = time.perf_counter()
        try:
            jobs.check_idle()
            job = pipeline.prepare(context, output=self.output or None, allow_download=True)
            self._running = jobs.start(job)
        except FathomError as exc:
            self.report({"ERROR"}, str(exc))
            return {"CANCELLED"}
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
            return {"PASS_THROUGH"}  # the rest of Blender keeps working
        context.window_manager.progress_update(int(running.fraction * 100))
        context.workspace.status_text_set(f"Depth: {running.message} ({running.fraction:.0%}), Esc to cancel")
        _redraw(context)
        if not running.done:
            return {"PASS_THROUGH"}
        self._end(context)
        if running.cancelled:
            self.report({"WARNING"}, "Depth generation cancelled; nothing was written.")
            return {"CANCELLED"}
        if running.error is not None:
            if not isinstance(running.error, FathomError):
                raise running.error
            self.report({"ERROR"}, str(running.error))
            return {"CANCELLED"}
        try:
            pipeline.finish(running.job, context)
        except FathomError as exc:
            self.report({"ERROR"}, str(exc))
            return {"CANCELLED"}
        self._report_done(running.job, self._started)
        return {"FINISHED"}

    def _end(self, context):
        wm = context.window_manager
        wm.event_timer_remove(self._timer)
        wm.progress_end()
        context.workspace.status_text_set(None)
        jobs.collect(self._running)
        _redraw(context)

    def _report_done(self, job, started):
        where = bpy.path.relpath(str(job.path)) if bpy.data.filepath else str(job.path)
        self.report({"INFO"}, f"Depth of {job.capture.label} in {time.perf_counter() - started:.1f} s: {where}")


class FATHOM_OT_cancel_generation(bpy.types.Operator):
    """Stop the running depth generation; nothing is written"""
    bl_idname = "fathom.cancel_generation"
    bl_label = "Cancel"

    @classmethod
    def poll(cls, context):
        return jobs.current() is not None

    def execute(self, context):
        jobs.current().cancel()
        return {"FINISHED"}


classes = (FATHOM_OT_generate_depth, FATHOM_OT_cancel_generation)
