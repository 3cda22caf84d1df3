"""Generate Depth: the scene's source -> depth map file -> Non-Color image in a compositor node."""
import time

import bpy
from bpy.props import StringProperty

from ..bridge import pipeline
from ..engine.errors import FathomError
from ..preferences import addon_preferences


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
            job, image, node = pipeline.generate(context, output=self.output or None)
        except FathomError as exc:
            self.report({"ERROR"}, str(exc))
            return {"CANCELLED"}
        self.report({"INFO"}, f"Depth of {job.capture.label} in {time.perf_counter() - started:.1f} s: "
                              f"{bpy.path.relpath(str(job.path)) if bpy.data.filepath else job.path}")
        return {"FINISHED"}


classes = (FATHOM_OT_generate_depth,)
