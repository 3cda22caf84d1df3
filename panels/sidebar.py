"""The "Depth" sidebar tab in the 3D Viewport, the Image Editor and the Compositor: one draw function."""

import blf
import bpy

from ..bridge.generation import results, worker
from ..bridge.generation.show import describe
from ..bridge.prefs import addon_preferences
from ..bridge.remote import pending
from ..bridge.remote.account import account, auto_refresh, generate_button
from ..bridge.remote.messages import plural
from ..bridge.setups import common as setups_common


class FATHOM_MT_depth_presets(bpy.types.Menu):
    bl_label = "Depth Presets"
    preset_subdir = "fathom/depth"
    preset_operator = "script.execute_preset"
    draw = bpy.types.Menu.draw_preset


def draw_depth(layout, context):
    props = context.scene.fathom
    prefs = addon_preferences(context)
    layout.use_property_split = True
    layout.use_property_decorate = False

    row = layout.row(align=True)
    row.menu("FATHOM_MT_depth_presets", text=FATHOM_MT_depth_presets.bl_label)
    row.operator("fathom.add_depth_preset", text="", icon="ADD")
    row.operator("fathom.add_depth_preset", text="", icon="REMOVE").remove_active = True

    col = layout.column()
    col.prop(prefs, "backend")
    if prefs.backend == "SCENE_Z":
        col.label(text="Exact depth from the render's Z pass", icon="CAMERA_DATA")
    else:
        col.prop(props, "source")
        if props.source == "IMAGE":
            col.prop(props, "image")
        elif props.source == "FILE":
            col.prop(props, "filepath")
        col.prop(props, "model")
        col.prop(props, "resolution")
        col.prop(props, "tiling")
        col.prop(props, "post_resize")
        if prefs.backend == "LOCAL":
            from ..engine.session import runtime_summary

            col.prop(props, "quality")
            col.label(text=f"Runs on: {runtime_summary(prefs.device.lower())}", icon="MEMORY")

    col = layout.column()
    col.prop(props, "normalization")
    col.prop(props, "invert")
    col.prop(props, "output_format")

    col = layout.column()
    col.prop(props, "use_frames")
    if props.use_frames:
        col.prop(props, "frames", text="Range")  # empty: the scene's range, every frame of a sequence
        if prefs.backend != "SCENE_Z":
            col.prop(props, "stabilize")
            sub = col.column()
            sub.active = props.stabilize
            sub.prop(props, "smoothing", slider=True)
        if worker.current() is None:
            col.operator("fathom.generate_depth", text="Redo All Frames", icon="FILE_REFRESH").redo = True

    running = worker.current()
    if getattr(context.space_data, "tree_type", "") == "CompositorNodeTree" and running is None:
        from .node import draw_depth_map

        draw_depth_map(layout, context)  # the active Depth Map node: its state and Generate
    if prefs.backend == "SERVER":
        draw_server(layout, context, idle=running is None)
    elif running is None:
        layout.operator("fathom.generate_depth", icon="IMAGE_ZDEPTH")
    if running is not None:
        row = layout.row(align=True)
        fraction, text = running.shown  # the status bar's text, taken at the same tick
        row.progress(factor=fraction, type="BAR", text=text)
        row.operator("fathom.cancel_generation", text="", icon="CANCEL")
    elif props.result is not None:
        draw_result(layout, props)

    header, body = layout.panel("fathom_results", default_closed=True)
    header.label(text="Results")
    if body is not None:
        body.operator("fathom.add_depth_node", icon="NODE")
        row = body.row(align=True)
        row.operator("fathom.regenerate_result", icon="FILE_REFRESH")
        row.operator("fathom.mark_asset", icon="ASSET_MANAGER")
        row.operator("fathom.delete_result", text="Delete", icon="TRASH")
        shown = setups_common.default_depth_image(context)  # how the newest (or shown) result was made
        tiles = shown[results.IMAGE_KEY].get("tiles") if shown is not None else None
        if tiles:
            body.label(text=f"{shown.name}: {'one pass' if tiles == 1 else f'{tiles} tiles'}", icon="INFO")


def draw_result(layout, props):
    """The newest result: its thumbnail (Blender's ID preview widget, which lays its height out
    properly), with size, model and the time it took."""
    box = layout.box()
    box.use_property_split = False
    box.template_ID_preview(props, "result", hide_buttons=True, rows=3, cols=4)
    box.label(text=describe(props.result), icon="IMAGE_ZDEPTH")


def draw_server(layout, context, idle=True):
    """Balance, pending results, and the Generate button with its token cost, or "Get tokens · N
    more" when the balance is short. Reads cached answers only: never network in draw()."""
    auto_refresh(context)  # starts a worker thread when nothing is known yet
    prefs = addon_preferences(context)
    view = account.view(prefs.server_url, prefs.api_key)
    row = layout.row(align=True)
    if view is not None and view.balance is not None:
        row.label(text=f"Balance: {plural(view.balance, 'token')}", icon="FUND")
    else:
        row.label(text="Balance: unknown", icon="FUND")
    row.operator("fathom.refresh_balance", text="", icon="FILE_REFRESH")
    count = len(pending.entries())
    if count:
        box = layout.box()
        wrapped_label(box, context, f"{plural(count, 'paid depth map')} pending on the server", icon="INFO")
        box.operator("fathom.fetch_pending", icon="IMPORT")
    if not idle:
        return
    state = generate_button(context)
    if state["kind"] == "top_up":
        layout.operator("fathom.get_tokens", text=state["text"], icon="FUND")
    else:
        row = layout.row(align=True)
        row.operator("fathom.generate_depth", text=state["text"], icon="IMAGE_ZDEPTH")
        row.operator("fathom.generate_depth", text="", icon="FILE_REFRESH").force = True  # Generate Again
    if state.get("note"):
        wrapped_label(layout, context, state["note"], icon="INFO")


# Room a label loses in the sidebar: the panel's margins, a box's, and the icon (at 1x scale).
LABEL_MARGIN_PX = 60


def wrap_lines(text, width_px, font_px) -> list:
    """``text`` in lines no wider than ``width_px`` in the UI font at ``font_px`` (a word longer
    than a line keeps a line of its own): Blender cuts a long label in its middle instead."""
    blf.size(0, font_px)
    lines, line = [], ""
    for word in text.split():
        longer = f"{line} {word}".strip()
        if line and blf.dimensions(0, longer)[0] > width_px:
            lines.append(line)
            line = word
        else:
            line = longer
    return lines + [line] if line else lines


def label_room(context):
    """(width, font size) in pixels that a label of the sidebar has."""
    scale = context.preferences.system.ui_scale
    font = context.preferences.ui_styles[0].widget.points * scale
    region = getattr(context, "region", None)
    width = (region.width if region is not None else 300 * scale) - LABEL_MARGIN_PX * scale
    return max(width, 40 * scale), font


def wrapped_label(layout, context, text, icon="NONE"):
    """A note on as many lines as the sidebar's width needs, so nothing of it is cut off."""
    column = layout.column(align=True)
    for number, line in enumerate(wrap_lines(text, *label_room(context))):
        column.label(text=line, icon=icon if number == 0 else "BLANK1")


class _DepthPanel:
    bl_region_type = "UI"
    bl_category = "Depth"
    bl_label = "Depth"

    def draw(self, context):
        draw_depth(self.layout, context)


class FATHOM_PT_depth_view3d(_DepthPanel, bpy.types.Panel):
    bl_space_type = "VIEW_3D"


class FATHOM_PT_depth_image(_DepthPanel, bpy.types.Panel):
    bl_space_type = "IMAGE_EDITOR"


class FATHOM_PT_depth_compositor(_DepthPanel, bpy.types.Panel):
    bl_space_type = "NODE_EDITOR"

    @classmethod
    def poll(cls, context):
        return getattr(context.space_data, "tree_type", "") == "CompositorNodeTree"


classes = (FATHOM_MT_depth_presets, FATHOM_PT_depth_view3d, FATHOM_PT_depth_image, FATHOM_PT_depth_compositor)
