"""What to do with a result: an empty Depth node ahead of time, Import to Assets, Delete."""

import bpy

from ..bridge.capture.sources import expected_source
from ..bridge.generation import nodes, results
from ..bridge.kinds import SOURCES
from ..bridge.prefs import addon_preferences
from ..engine.settings import SETTING_NAMES
from ._operator import name_property, refuse


class FATHOM_OT_add_depth_node(bpy.types.Operator):
    """Add an empty Depth node for the current source to the compositor; it stays transparent until
    the first generation fills it, so node setups can be built before any depth exists"""

    bl_idname = "fathom.add_depth_node"
    bl_label = "Add Depth Node"
    bl_options = {"REGISTER", "UNDO"}

    @classmethod
    def poll(cls, context):
        return getattr(context.scene, "fathom", None) is not None

    def execute(self, context):
        key = nodes.source_key(expected_source(context, addon_preferences(context).backend))
        node = nodes.add_depth_node(context.scene, key)
        self.report({"INFO"}, f"Depth node '{node.name}' in {nodes.compositor_tree(context.scene).name}")
        return {"FINISHED"}


class _ResultOperator:
    bl_options = {"REGISTER", "UNDO"}

    image_name: name_property("Image", "The result image (default: the one shown)")

    def result(self, context):
        if self.image_name:
            image = bpy.data.images.get(self.image_name)
            return image if results.is_result(image) else None
        return results.active_result(context)

    @classmethod
    def poll(cls, context):
        if results.active_result(context) is None:
            return refuse(cls, "Show a depth result in the Image Editor or select its node")
        return True

    def execute(self, context):
        image = self.result(context)
        if image is None:
            self.report({"ERROR"}, f"No depth result named {self.image_name!r}")
            return {"CANCELLED"}
        return self.act(context, image)


class FATHOM_OT_mark_asset(_ResultOperator, bpy.types.Operator):
    """Mark the depth result as an asset, for the Asset Browser"""

    bl_idname = "fathom.mark_asset"
    bl_label = "Import to Assets"

    def act(self, context, image):
        image.use_fake_user = True  # kept in the file even when no node uses it
        image.asset_mark()
        image.asset_data.tags.new("depth", skip_if_exists=True)
        image.asset_data.description = f"Depth map ({image[results.IMAGE_KEY].get('model', '')})"
        self.report({"INFO"}, f"'{image.name}' is now an asset")
        return {"FINISHED"}


class FATHOM_OT_delete_result(_ResultOperator, bpy.types.Operator):
    """Delete the depth result: its file in generated/ and its image (nodes that showed it go empty)"""

    bl_idname = "fathom.delete_result"
    bl_label = "Delete Depth Result"

    def invoke(self, context, event):
        return context.window_manager.invoke_confirm(self, event)

    def act(self, context, image):
        name = image.name
        path = results.delete_result(image)
        self.report({"INFO"}, f"Deleted '{name}'" + (f" and {path}" if path else ""))
        return {"FINISHED"}


class FATHOM_OT_regenerate_result(_ResultOperator, bpy.types.Operator):
    """Generate this depth map again from its source, with the settings it was made with
    (they become the scene's Depth settings); the new result replaces it in its node"""

    bl_idname = "fathom.regenerate_result"
    bl_label = "Re-generate"
    bl_options = {"UNDO"}  # not REGISTER: a re-run would generate (and maybe pay) again

    def act(self, context, image):
        meta = image[results.IMAGE_KEY].to_dict()
        try:
            restore_settings(context, meta)
        except ValueError as exc:
            self.report({"ERROR"}, str(exc))
            return {"CANCELLED"}
        mode = "EXEC_DEFAULT" if bpy.app.background else "INVOKE_DEFAULT"
        if meta.get("source", {}).get("kind") == "node":  # into the Depth Map node that carries it
            return bpy.ops.fathom.generate_node_depth(mode, node=meta["source"].get("node", ""))
        return bpy.ops.fathom.generate_depth(mode)


def restore_settings(context, meta: dict):
    """Make the scene's Depth settings (and the backend) those a result was made with."""
    props = context.scene.fathom
    source = meta.get("source", {})
    kind = source.get("kind")
    prefs = addon_preferences(context)
    if kind == "scene-z":
        prefs.backend = "SCENE_Z"
    elif kind == "node":  # a Depth Map node's input: no scene source to set
        if prefs.backend == "SCENE_Z":
            prefs.backend = "LOCAL"
    elif kind in SOURCES:
        if prefs.backend == "SCENE_Z":
            prefs.backend = "LOCAL"
        props.source = SOURCES[kind]
        if kind == "image":
            img = bpy.data.images.get(source.get("image", ""))
            if img is None:
                raise ValueError(f"The source image {source.get('image')!r} is no longer in this file.")
            props.image = img
        elif kind == "file":
            props.filepath = source.get("filepath", "")
    else:
        raise ValueError(f"This result does not say where it came from (source {source!r}).")
    for name in SETTING_NAMES:
        if name in meta.get("settings", {}):
            try:
                setattr(props, name, meta["settings"][name])
            except TypeError:  # e.g. a model no longer in the catalogue: keep the scene's
                pass


classes = (FATHOM_OT_add_depth_node, FATHOM_OT_mark_asset, FATHOM_OT_delete_result, FATHOM_OT_regenerate_result)
