"""Metric Depth: a network's relative depth map turned into scene distances (bridge.setups.metric), fitted to
the Scene Z of the same render or to points picked in the picture with their distances."""

import bpy
from bpy.props import EnumProperty, FloatProperty, IntProperty, StringProperty

from ..bridge.setups import metric
from ..engine.errors import FathomError
from ._pick import PickInImage
from .setups import NO_DEPTH, depth_image, panel_settings


class FATHOM_OT_metric_depth(bpy.types.Operator):
    """Turn the relative depth map into distances in scene units: fitted to the Scene Z of the same render,
    or to the known distances of picked points (the result is a new image, '<depth> metric')"""

    bl_idname = "fathom.metric_depth"
    bl_label = "Metric Depth"
    bl_options = {"REGISTER", "UNDO"}

    mode: EnumProperty(
        name="Fit To",
        items=(
            ("SCENE_Z", "Scene Z", "The exact depth of the scene's render (renders its Z pass now)"),
            ("POINTS", "Picked Points", "The points listed under Metric Depth, each with its distance (two or more)"),
        ),
    )
    depth: StringProperty(
        name="Depth Image",
        default="",
        options={"SKIP_SAVE"},
        description="Name of the relative depth image (default: the panel's, or the newest Fathom result)",
    )

    @classmethod
    def poll(cls, context):
        if context.scene is None:
            return False
        if depth_image(context) is None:
            cls.poll_message_set(NO_DEPTH)
            return False
        return True

    def execute(self, context):
        settings = panel_settings(context)
        try:
            depth = depth_image(context, self.depth)
            if depth is None:
                raise metric.common.SetupError(f"There is no image named {self.depth!r}." if self.depth else NO_DEPTH)
            if self.mode == "POINTS":
                points = [(p.x, p.y, p.distance) for p in settings.metric_points] if settings is not None else []
                image, fit = metric.align_to_points(depth, points)
            else:
                image, fit = metric.align_to_scene_z(context.scene, depth)
        except FathomError as exc:
            self.report({"ERROR"}, str(exc))
            return {"CANCELLED"}
        if settings is not None:
            settings.depth = image  # the setups now read the map in scene units
        self.report({"INFO"}, f"{image.name}: {fit.describe()}")
        return {"FINISHED"}


class FATHOM_OT_metric_point_add(PickInImage, bpy.types.Operator):
    """Add a point of known distance for Metric Depth (click it in the Image Editor)"""

    bl_idname = "fathom.metric_point_add"
    bl_label = "Add Known Distance"
    bl_options = {"REGISTER", "UNDO"}
    pick_prompt = "Click a point whose distance you know; Esc or right-click cancels"

    x: FloatProperty(name="X", default=0.5, min=0.0, max=1.0, description="From the picture's left edge, 0..1")
    y: FloatProperty(name="Y", default=0.5, min=0.0, max=1.0, description="From the picture's bottom edge, 0..1")
    distance: FloatProperty(
        name="Distance", default=1.0, min=0.0, unit="LENGTH", description="How far this point is from the camera"
    )

    @classmethod
    def poll(cls, context):
        return panel_settings(context) is not None

    def execute(self, context):
        point = panel_settings(context).metric_points.add()
        point.x, point.y, point.distance = self.x, self.y, self.distance
        self.report({"INFO"}, f"Point ({self.x:.3f}, {self.y:.3f}): set its distance under Metric Depth")
        return {"FINISHED"}


class FATHOM_OT_metric_point_remove(bpy.types.Operator):
    """Remove a point of known distance"""

    bl_idname = "fathom.metric_point_remove"
    bl_label = "Remove Known Distance"
    bl_options = {"REGISTER", "UNDO"}

    index: IntProperty(name="Index", default=0, min=0)

    @classmethod
    def poll(cls, context):
        settings = panel_settings(context)
        return settings is not None and len(settings.metric_points) > 0

    def execute(self, context):
        points = panel_settings(context).metric_points
        if self.index >= len(points):
            self.report({"ERROR"}, f"There is no point {self.index + 1}.")
            return {"CANCELLED"}
        points.remove(self.index)
        return {"FINISHED"}


classes = (FATHOM_OT_metric_depth, FATHOM_OT_metric_point_add, FATHOM_OT_metric_point_remove)
