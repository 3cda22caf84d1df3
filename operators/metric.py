"""Metric Depth: a network's relative depth map turned into scene distances (bridge.setups.metric), fitted to
the Scene Z of the same render or to points picked in the picture with their distances."""

import bpy
from bpy.props import EnumProperty, IntProperty

from ..bridge.setups import metric
from ..properties import KnownDistance
from ._operator import name_property, refuse, reported
from ._pick import PickInImage
from .setups import NO_DEPTH, depth_image, panel_settings

FIT_TO = (
    ("SCENE_Z", "Scene Z", "The exact depth of the scene's render (renders its Z pass now)"),
    ("POINTS", "Picked Points", "The points listed under Metric Depth, each with its distance (two or more)"),
)


class FATHOM_OT_metric_depth(bpy.types.Operator):
    """Turn the relative depth map into distances in scene units: fitted to the Scene Z of the same render,
    or to the known distances of picked points (the result is a new image, '<depth> metric')"""

    bl_idname = "fathom.metric_depth"
    bl_label = "Metric Depth"
    bl_options = {"REGISTER", "UNDO"}

    mode: EnumProperty(name="Fit To", items=FIT_TO)
    depth: name_property(
        "Depth Image", "Name of the relative depth image (default: the panel's, or the newest Fathom result)"
    )

    @classmethod
    def poll(cls, context):
        if context.scene is None:
            return False
        if depth_image(context) is None:
            return refuse(cls, NO_DEPTH)
        return True

    def execute(self, context):
        return reported(self, lambda: self.align(context))

    def align(self, context):
        settings = panel_settings(context)
        depth = depth_image(context, self.depth)
        if depth is None:
            raise metric.common.SetupError(f"There is no image named {self.depth!r}." if self.depth else NO_DEPTH)
        if self.mode == "POINTS":
            points = [(p.x, p.y, p.distance) for p in settings.metric_points] if settings is not None else []
            image, fit = metric.align_to_points(depth, points)
        else:
            image, fit = metric.align_to_scene_z(context.scene, depth)
        if settings is not None:
            settings.depth = image  # the setups now read the map in scene units
        return f"{image.name}: {fit.describe()}"


class FATHOM_OT_metric_point_add(PickInImage, KnownDistance, bpy.types.Operator):
    """Add a point of known distance for Metric Depth (click it in the Image Editor)"""

    bl_idname = "fathom.metric_point_add"
    bl_label = "Add Known Distance"
    bl_options = {"REGISTER", "UNDO"}
    pick_prompt = "Click a point whose distance you know; Esc or right-click cancels"

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
