"""The Depth Map node: add one, generate the depth of what is wired into it.

Generate captures the node's input in a child Blender (a copy of the file) on the worker thread,
then fills the node; Re-generate, Import to Assets and Delete act on the node's result through
operators/results.py (bridge.generation.results.active_result knows Depth Map nodes).
"""

import time

import bpy
from bpy.props import BoolProperty, StringProperty

from ..bridge import node_group
from ..bridge.generation import backends
from ..bridge.generation.nodes import compositor_tree
from ..bridge.prefs import addon_preferences
from ._worker import WorkerModal, poll_idle


class FATHOM_OT_add_depth_map_node(bpy.types.Operator):
    """Add a Depth Map node to the compositor: wire a picture into its Image input and Generate; its
    Depth output is transparent until then"""

    bl_idname = "fathom.add_depth_map_node"
    bl_label = "Depth Map"
    bl_options = {"REGISTER", "UNDO"}

    @classmethod
    def poll(cls, context):
        if context.scene is None:
            return False
        space = getattr(context, "space_data", None)
        if space is not None and space.type == "NODE_EDITOR" and space.tree_type != "CompositorNodeTree":
            cls.poll_message_set("The Depth Map node belongs in the Compositor")
            return False
        return True

    def execute(self, context):
        tree = node_group.edited_compositor(context) or compositor_tree(context.scene, create=True)
        space = getattr(context, "space_data", None)
        location = tuple(space.cursor_location) if space is not None and space.type == "NODE_EDITOR" else None
        node = node_group.add_depth_map(tree, location)
        self.report({"INFO"}, f"Added '{node.name}': wire a picture into its Image input, then Generate")
        return {"FINISHED"}


class FATHOM_OT_generate_node_depth(WorkerModal, bpy.types.Operator):
    """Generate the depth of what is wired into the Depth Map node, at the current frame; the node
    then carries it"""

    bl_idname = "fathom.generate_node_depth"
    bl_label = "Generate Depth Map"
    bl_options = {"UNDO"}  # not REGISTER: a re-run would generate (and maybe pay) again

    node: StringProperty(
        name="Node", default="", options={"SKIP_SAVE"}, description="The Depth Map node (default: the active one)"
    )
    force: BoolProperty(
        name="Generate Again",
        default=False,
        options={"SKIP_SAVE"},
        description="Server backend: generate on the server even when an identical depth map is in this file",
    )

    @classmethod
    def poll(cls, context):
        if getattr(context.scene, "fathom", None) is None or not poll_idle(cls):
            return False
        if addon_preferences(context).backend == "SCENE_Z":
            cls.poll_message_set("Scene Z gives the camera's depth: choose Local or Server for a Depth Map node")
            return False
        if context.scene.camera is None:
            cls.poll_message_set("The scene has no active camera to render")
            return False
        return True

    def make_job(self, context, interactive):
        self._started = time.perf_counter()
        name = self.node or None
        if name is None and interactive:
            node = node_group.active_depth_map(context)
            name = node.name if node is not None else None
        # The capture always runs in a child Blender (a copy of the file): the user's tree is never re-wired.
        options = {"allow_download": interactive, "offload_render": interactive}
        return backends.prepare(context, source="NODE", node=name, force=self.force, **options)

    def worker_done(self, context, job):
        _, node = job.finish(context)
        seconds = time.perf_counter() - self._started
        if node is None or not node_group.is_depth_map(node):  # deleted meanwhile: shown in an Image node
            self.report({"WARNING"}, f"The Depth Map node is gone; {job.done_message(seconds)}")
        else:
            self.report({"INFO"}, job.done_message(seconds))
        return {"FINISHED"}


classes = (FATHOM_OT_add_depth_map_node, FATHOM_OT_generate_node_depth)
