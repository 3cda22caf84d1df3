"""The Depth Map node in the UI: a Fathom submenu in the Compositor's Add menu, and the node's own
box in the Depth panel (state, what made the result, Generate and the result actions)."""

import bpy

from ..bridge import node_group
from ..bridge.prefs import addon_preferences
from ..bridge.remote.account import auto_refresh, generate_button

_STATE_ICONS = {"missing": "X", "current": "CHECKMARK", "stale": "ERROR"}
_STATE_TEXT = {"missing": "No result: transparent", "current": "Current", "stale": "Stale"}
_STALE_TEXT = {
    "frame": "Stale: made at frame {frame}",
    "settings": "Stale: the settings changed",
    "input": "Stale: its input changed",
}


class NODE_MT_fathom_add(bpy.types.Menu):
    bl_label = "Fathom"

    def draw(self, context):
        self.layout.operator("fathom.add_depth_map_node", icon="IMAGE_ZDEPTH")


def draw_add_menu(self, context):
    if getattr(context.space_data, "tree_type", "") == "CompositorNodeTree":
        self.layout.separator()
        self.layout.menu("NODE_MT_fathom_add")


def draw_depth_map(layout, context):
    """The active Depth Map node's box in the Compositor's Depth panel; False when none is active."""
    node = node_group.active_depth_map(context)
    if node is None:
        layout.operator("fathom.add_depth_map_node", text="Add Depth Map Node", icon="NODE")
        return False
    prefs = addon_preferences(context)
    scene = context.scene
    settings = scene.fathom.depth_settings(prefs.threads)
    state, record = node_group.state(node, settings, scene.frame_current)
    box = layout.box()
    box.label(text=f"Depth Map node '{node.name}'", icon="NODE")
    text = _STATE_TEXT[state]
    if state == "stale":
        text = _STALE_TEXT[node_group.stale_reason(node, settings, scene.frame_current, record)].format(**record)
    box.label(text=text, icon=_STATE_ICONS[state])
    if record and state != "missing":
        col = box.column(align=True)
        for line in node_group.describe(record):
            col.label(text=line)
    if not node.inputs[node_group.INPUT].is_linked:
        box.label(text="Wire a picture into its Image input", icon="INFO")
    text, top_up = "Generate" if state == "missing" else "Generate Again", False
    if prefs.backend == "SERVER":
        auto_refresh(context)
        button = generate_button(context)
        top_up = button["kind"] == "top_up"
        if top_up:
            box.operator("fathom.get_tokens", text=button["text"], icon="FUND")
        elif button.get("cost") is not None:
            text += f" · {button['cost']} token{'s' if button['cost'] != 1 else ''}"
        if button.get("note"):
            box.label(text=button["note"], icon="INFO")
    if not top_up:
        box.operator("fathom.generate_node_depth", text=text, icon="IMAGE_ZDEPTH").node = node.name
    row = box.row(align=True)
    row.operator("fathom.regenerate_result", icon="FILE_REFRESH")
    row.operator("fathom.delete_result", text="Delete", icon="TRASH")
    box.operator("fathom.mark_asset", icon="ASSET_MANAGER")
    return True


def _add_menus():
    # The compositor's own Add menu where the Blender version has one (4.0+), else the generic one.
    return [getattr(bpy.types, "NODE_MT_compositor_node_add_all", None) or bpy.types.NODE_MT_add]


def register():
    for menu in _add_menus():
        menu.append(draw_add_menu)


def unregister():
    for menu in _add_menus():
        menu.remove(draw_add_menu)


classes = (NODE_MT_fathom_add,)
