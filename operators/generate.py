"""Generate Depth: the scene's source -> depth map file -> Non-Color image in a compositor node.

Clicked in the UI (invoke), the slow part runs on a worker thread polled by a modal timer: a
progress bar in the Depth panel and the status bar, Esc or Cancel stops it, Blender stays usable.
Render sources and Scene Z render in a child Blender driven by that worker (bridge.capture.child);
the Local backend's model runs in the inference worker process (bridge.generation.inference), which
also decodes image files, so nothing slow holds Blender's main thread or its GIL. When it is done,
the result shows where the user looks (bridge.generation.show): the panel's thumbnail and the Image
Editors that showed the source.
Called from a script or in background mode (execute), it runs synchronously, since timers and
modal operators do not run while a script does.
"""

import time

import bpy
from bpy.props import BoolProperty, StringProperty

from ..bridge.capture.sources import active_editor_image
from ..bridge.generation import backends
from ..bridge.generation import worker as jobs
from ..bridge.generation.show import remember_result, show_in_editors
from ..bridge.prefs import addon_preferences
from ._worker import WorkerModal, poll_idle


class FATHOM_OT_generate_depth(WorkerModal, bpy.types.Operator):
    """Estimate a depth map from the chosen source and add it to the compositor"""

    bl_idname = "fathom.generate_depth"
    bl_label = "Generate Depth"
    # No REGISTER: Adjust Last Operation and Repeat Last re-run only registered operators, and a
    # re-run would spend tokens (Server) or block the main thread (execute) without a click.
    bl_options = {"UNDO"}

    # The scene's Depth settings choose the source; scripts may name where the result goes.
    output: StringProperty(
        name="Output",
        default="",
        subtype="FILE_PATH",
        options={"SKIP_SAVE"},
        description="Write the depth map here instead of //generated/ (never overwrites)",
    )
    force: BoolProperty(
        name="Generate Again",
        default=False,
        options={"SKIP_SAVE"},
        description="Server backend: generate on the server even when an identical depth map "
        "is in this file (spends tokens again)",
    )

    redo: BoolProperty(
        name="Redo All Frames",
        default=False,
        options={"SKIP_SAVE"},
        description="With Frames: make every frame again, also those already done with the same settings",
    )

    @classmethod
    def description(cls, context, properties):
        if properties.redo:
            return "Make the depth of every frame again, also those already done with the same settings"
        if properties.force:
            return (
                "Generate the depth map on the depth server even if an identical one was made before "
                "(spends tokens again)"
            )
        return None  # the class docstring

    @classmethod
    def poll(cls, context):
        props = getattr(context.scene, "fathom", None)
        if props is None:
            return False
        if not poll_idle(cls):
            return False
        backend = addon_preferences(context).backend
        if backend == "SCENE_Z" or props.source in ("RENDER", "COMPOSITOR"):
            if context.scene.camera is None:
                cls.poll_message_set("The scene has no active camera to render")
                return False
            return True
        if props.source == "IMAGE" and props.image is None and active_editor_image(context) is None:
            cls.poll_message_set("Pick an image in the Depth panel, or open one in the Image Editor")
            return False
        if props.source == "FILE" and not props.filepath:
            cls.poll_message_set("Choose an image file in the Depth panel")
            return False
        return True

    def make_job(self, context, interactive):
        self._started = time.perf_counter()
        props = context.scene.fathom
        if props.use_frames:
            from ..bridge.generation.sequence import prepare_sequence

            return prepare_sequence(
                context,
                props.frames.strip() or None,
                output=self.output or None,
                stabilize=props.stabilize,
                smoothing=props.smoothing,
                redo=self.redo,
                allow_download=interactive,
                interactive=interactive,
            )
        # Clicked, renders too happen in the worker's time, in a child Blender: the UI never waits.
        return backends.prepare(
            context,
            output=self.output or None,
            force=self.force,
            allow_download=interactive,
            offload_render=interactive,
            in_process=interactive,
        )

    def worker_done(self, context, job):
        """In three main-thread steps, Blender drawing between them (operators._worker): the image
        and its compositor node (one change of the file's data, which the 3D Viewport redraws
        for), then the panel's thumbnail, then the Image Editors and the report."""
        seconds = time.perf_counter() - self._started
        image, _node = job.finish(context)
        shown = job.shown_picture()
        if shown is not None:
            name, (source, depth) = image.name, shown
            yield "Showing the depth map"
            image = bpy.data.images.get(name)
            if image is None:  # undone meanwhile
                return {"CANCELLED"}
            remember_result(context, image, seconds, depth)
            yield "Showing the depth map"
            image = bpy.data.images.get(name)
            if image is None:
                return {"CANCELLED"}
            show_in_editors(context, image, source, addon_preferences(context).open_result)
        self.report({"INFO"}, job.done_message(seconds))
        return {"FINISHED"}


class FATHOM_OT_cancel_generation(bpy.types.Operator):
    """Stop the running depth generation or model download; nothing half-done is kept"""

    bl_idname = "fathom.cancel_generation"
    bl_label = "Cancel"

    @classmethod
    def poll(cls, context):
        return jobs.current() is not None

    def execute(self, context):
        jobs.current().cancel()
        return {"FINISHED"}


classes = (FATHOM_OT_generate_depth, FATHOM_OT_cancel_generation)
