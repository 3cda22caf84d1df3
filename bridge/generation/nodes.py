"""Depth images in the scene's compositor: an Image node per source.

Re-generating from the same source puts the new image into the same node, so node setups built on
it keep working. Existing nodes are never moved, rewired or deleted.
"""

import bpy

NODE_SOURCE_KEY = "fathom_source"  # on an Image node: which source it shows the depth of


# What identifies "the same source" for each kind of source.
_IDENTITY = {"image": "image", "file": "filepath", "render": "scene", "compositor": "scene", "scene-z": "scene"}


def source_key(source: dict) -> str:
    """A stable key for 'the same source', so re-generation reuses the node."""
    kind = source.get("kind", "")
    return f"{kind}:{source.get(_IDENTITY.get(kind, ''), '')}"


def compositor_tree(scene, create: bool = True):
    """The scene's compositor node tree, created when missing (Blender 5.0+ and 4.x APIs)."""
    if hasattr(scene, "compositing_node_group"):  # Blender 5.0+
        tree = scene.compositing_node_group
        if tree is None and create:
            tree = _new_compositor_group(scene)
        return tree
    if scene.node_tree is None and create:  # Blender 4.x: the default Render Layers -> Composite tree
        scene.use_nodes = True
    return scene.node_tree


def _new_compositor_group(scene):
    """What Blender's own 'New' button makes: Render Layers into the group's Image output, so
    rendering and compositing behave exactly as before the tree existed."""
    tree = bpy.data.node_groups.new(f"{scene.name} Compositing", "CompositorNodeTree")
    tree.interface.new_socket("Image", in_out="OUTPUT", socket_type="NodeSocketColor")
    layers = tree.nodes.new("CompositorNodeRLayers")
    layers.location = (-300, 0)
    output = tree.nodes.new("NodeGroupOutput")
    output.location = (200, 0)
    tree.links.new(layers.outputs["Image"], output.inputs[0])
    scene.compositing_node_group = tree
    return tree


def add_depth_node(scene, key: str):
    """An empty Depth node for the source ``key``: it outputs nothing (transparent) until the first
    generation from that source fills it, so it can be wired into a comp beforehand."""
    tree = compositor_tree(scene, create=True)
    for node in tree.nodes:
        if node.bl_idname == "CompositorNodeImage" and node.get(NODE_SOURCE_KEY) == key:
            return node
    return _new_depth_node(tree, key)


def place_image_node(scene, image, key: str):
    """Show ``image`` in the compositor: in the node that holds this source's depth, else a new
    Image node placed clear of the existing ones."""
    tree = compositor_tree(scene, create=True)
    for node in tree.nodes:
        if node.bl_idname == "CompositorNodeImage" and node.get(NODE_SOURCE_KEY) == key:
            node.image = image
            return node
    node = _new_depth_node(tree, key)
    node.image = image
    return node


def _new_depth_node(tree, key):
    others = list(tree.nodes)
    node = tree.nodes.new("CompositorNodeImage")
    node.label = "Depth"
    node[NODE_SOURCE_KEY] = key
    if others:
        node.location = (min(n.location.x for n in others) - 300, min(n.location.y for n in others) - 300)
    return node
