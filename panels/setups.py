"""The "Setups" sub-panel of the Depth sidebar tab: which depth image and picture, and one button per
workflow (their options are in the Adjust Last Operation panel after a click)."""

import bpy

from .sidebar import FATHOM_PT_depth_compositor, FATHOM_PT_depth_image, FATHOM_PT_depth_view3d


def draw_setups(layout, context):
    settings = getattr(context.scene, "fathom_setups", None)
    if settings is not None:
        col = layout.column()
        col.use_property_split = True
        col.use_property_decorate = False
        col.prop(settings, "depth")
        col.prop(settings, "picture")
    col = layout.column(align=True)
    col.operator("fathom.setup_displacement", icon="MOD_DISPLACE")
    row = col.row(align=True)
    row.operator("fathom.setup_dof", icon="CAMERA_DATA")
    row.operator("fathom.pick_focus", text="", icon="EYEDROPPER")
    col.operator("fathom.setup_fog", icon="FORCE_TURBULENCE")
    col.operator("fathom.setup_stereo", icon="CAMERA_STEREO")
    col.operator("fathom.normal_map", icon="NORMALS_FACE")
    row = col.row(align=True)
    row.operator("fathom.export_mesh", text="Export OBJ", icon="EXPORT").format = "OBJ"
    row.operator("fathom.export_mesh", text="Export PLY", icon="EXPORT").format = "PLY"
    layout.operator_menu_enum("fathom.remove_setup", "kind", text="Remove Setup", icon="TRASH")
    draw_metric(layout, settings)


def draw_metric(layout, settings):
    """Metric Depth: fit a relative map to the Scene Z, or to picked points with their distances."""
    box = layout.box()
    box.label(text="Metric Depth", icon="DRIVER_DISTANCE")
    box.operator("fathom.metric_depth", text="Fit to Scene Z").mode = "SCENE_Z"
    if settings is None:
        return
    for i, point in enumerate(settings.metric_points):
        row = box.row(align=True)
        row.label(text=f"{point.x:.2f}, {point.y:.2f}")
        row.prop(point, "distance", text="")
        row.operator("fathom.metric_point_remove", text="", icon="X").index = i
    row = box.row(align=True)
    row.operator("fathom.metric_point_add", text="Pick Point", icon="EYEDROPPER")
    sub = row.row(align=True)
    sub.enabled = len(settings.metric_points) >= 2
    sub.operator("fathom.metric_depth", text="Fit to Points").mode = "POINTS"


class _SetupsPanel:
    bl_region_type = "UI"
    bl_category = "Depth"
    bl_label = "Setups"
    bl_options = {"DEFAULT_CLOSED"}

    def draw(self, context):
        draw_setups(self.layout, context)


class FATHOM_PT_setups_view3d(_SetupsPanel, bpy.types.Panel):
    bl_space_type = "VIEW_3D"
    bl_parent_id = FATHOM_PT_depth_view3d.__name__


class FATHOM_PT_setups_image(_SetupsPanel, bpy.types.Panel):
    bl_space_type = "IMAGE_EDITOR"
    bl_parent_id = FATHOM_PT_depth_image.__name__


class FATHOM_PT_setups_compositor(_SetupsPanel, bpy.types.Panel):
    bl_space_type = "NODE_EDITOR"
    bl_parent_id = FATHOM_PT_depth_compositor.__name__

    @classmethod
    def poll(cls, context):
        return FATHOM_PT_depth_compositor.poll(context)


classes = (FATHOM_PT_setups_view3d, FATHOM_PT_setups_image, FATHOM_PT_setups_compositor)
