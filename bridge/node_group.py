"""The Depth Map node: a compositor node group Fathom creates and recognises.

    node = add_depth_map(tree)         a group node: input Image, output Depth (Distance when the
                                       result has distances); transparent until generated
    input_socket(node)                 the socket wired into its Image input (what Generate captures)
    fingerprint(node, settings, frame) what its result depends on: the upstream nodes, settings, frame
    state(node, settings, frame)       'missing', 'current' or 'stale', and what made the result
    fill(node, image, record)          after a generation: the node carries the new result

Each Depth Map node has its own node group (one Image node inside holds the result), so several
in one tree keep their own results; a duplicated node (sharing its group) gets a copy of the group
when it is generated. The group's Image node with no image outputs nothing (transparent), as the
product's node does before its first generation.
"""

import hashlib
import json
import time

import bpy

from ..engine.settings import SETTING_NAMES
from .capture.sources import SourceError
from .generation.nodes import compositor_tree

GROUP_KEY = "fathom_depth_map"  # on the node group: it is a Depth Map group
RECORD_KEY = "fathom_depth_map"  # on the group node: what made its result (fingerprint, model, time...)
NAME = "Depth Map"
INPUT, DEPTH, DISTANCE = "Image", "Depth", "Distance"
RESULT_NODE = "Result"  # the Image node inside the group

# Node attributes that do not change what a node outputs (drawing, placement, identity).
_NOT_OUTPUT = {
    "rna_type",
    "name",
    "label",
    "location",
    "location_absolute",
    "width",
    "height",
    "dimensions",
    "select",
    "show_options",
    "show_preview",
    "show_texture",
    "hide",
    "use_custom_color",
    "color",
    "color_tag",
    "parent",
    "inputs",
    "outputs",
    "internal_links",
    "type",
    "is_active_output",
    "warning_propagation",
}


class NodeSourceError(SourceError):
    """The Depth Map node cannot be found or has nothing wired into it."""


def is_depth_map(node) -> bool:
    group = getattr(node, "node_tree", None)
    return (
        node is not None
        and node.bl_idname == "CompositorNodeGroup"
        and group is not None
        and bool(group.get(GROUP_KEY))
    )


def depth_maps(tree):
    return [node for node in tree.nodes if is_depth_map(node)] if tree is not None else []


def new_group():
    """An empty Depth Map group: Image in, Depth out, a result Image node with no image yet."""
    group = bpy.data.node_groups.new(NAME, "CompositorNodeTree")
    group[GROUP_KEY] = True
    group.interface.new_socket(INPUT, in_out="INPUT", socket_type="NodeSocketColor")
    group.interface.new_socket(DEPTH, in_out="OUTPUT", socket_type="NodeSocketFloat")
    inputs = group.nodes.new("NodeGroupInput")
    inputs.location = (-300, 0)
    result = group.nodes.new("CompositorNodeImage")
    result.name = RESULT_NODE
    outputs = group.nodes.new("NodeGroupOutput")
    outputs.location = (300, 0)
    group.links.new(result.outputs["Image"], outputs.inputs[DEPTH])
    return group


def add_depth_map(tree, location=None):
    """A new, empty Depth Map node in ``tree`` (selected and active)."""
    node = tree.nodes.new("CompositorNodeGroup")
    node.node_tree = new_group()
    node.name = NAME  # Blender numbers it when the name is taken
    node.width = 180
    if location is not None:
        node.location = location
    for other in tree.nodes:
        other.select = False
    node.select = True
    tree.nodes.active = node
    return node


def carrying(tree, image):
    """The Depth Map node of ``tree`` whose result is ``image``, or None."""
    return next((node for node in depth_maps(tree) if image is not None and result_image(node) == image), None)


def edited_compositor(context):
    """The compositor tree shown in this Node Editor (a group being edited included), else the scene's."""
    space = getattr(context, "space_data", None)
    if space is not None and space.type == "NODE_EDITOR" and space.tree_type == "CompositorNodeTree":
        if space.edit_tree is not None:
            return space.edit_tree
    return compositor_tree(context.scene, create=False)


def active_depth_map(context):
    tree = edited_compositor(context)
    node = tree.nodes.active if tree is not None else None
    return node if is_depth_map(node) else None


def find(scene, name=None):
    """The Depth Map node named ``name`` in the scene's compositor (else the active one), or
    NodeSourceError saying which ones there are."""
    tree = compositor_tree(scene, create=False)
    found = depth_maps(tree)
    if name:
        node = tree.nodes.get(name) if tree is not None else None
        if node is not None and is_depth_map(node):
            return node
        names = ", ".join(repr(n.name) for n in found) or "none: add one from Add > Fathom > Depth Map"
        raise NodeSourceError(f"There is no Depth Map node named {name!r} in the compositor (there are {names}).")
    node = tree.nodes.active if tree is not None else None
    if is_depth_map(node):
        return node
    if len(found) == 1:
        return found[0]
    raise NodeSourceError("Select a Depth Map node in the compositor (or name one).")


def input_socket(node):
    """The output socket wired into the node's Image input."""
    links = [link for link in node.inputs[INPUT].links if not getattr(link, "is_muted", False)]
    if not links:
        raise NodeSourceError(
            f"Nothing is wired into the Image input of '{node.name}': connect the picture whose depth you want."
        )
    return links[0].from_socket


def result_image(node):
    inner = node.node_tree.nodes.get(RESULT_NODE)
    return inner.image if inner is not None else None


def fingerprint(node, settings, frame) -> str:
    """A hash of everything upstream of the node's Image input (node types, settings, socket values,
    links, images and nested groups), the depth settings and the frame. The scene's 3D content is
    not in it: a Render Layers node counts by scene and view layer."""
    return _hash([upstream_fingerprint(node), settings_fingerprint(settings), int(frame)])


def upstream_fingerprint(node) -> str:
    """The part of the fingerprint that is the nodes upstream of the Image input."""
    return _hash(_describe_socket(input_socket(node), {}))


def settings_fingerprint(settings) -> str:
    return _hash({name: _plain(getattr(settings, name)) for name in SETTING_NAMES})  # not threads: same result


def stale_reason(node, settings, frame, record) -> str:
    """Why a stale result is stale: 'frame', 'settings' or 'input' (the upstream nodes or wiring)."""
    if record.get("frame") != frame:
        return "frame"
    if record.get("settings") != settings_fingerprint(settings):
        return "settings"
    return "input"


def _hash(value) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()[:16]


def state(node, settings, frame):
    """('missing' | 'current' | 'stale', the record of what made the result or {})."""
    record = node.get(RECORD_KEY)
    record = record.to_dict() if hasattr(record, "to_dict") else dict(record or {})
    if result_image(node) is None or not record:
        return "missing", record
    try:
        now = fingerprint(node, settings, frame)
    except NodeSourceError:
        return "stale", record
    return ("current" if now == record.get("fingerprint") else "stale"), record


def describe(record) -> list:
    """What made a result, as the panel's short lines: model and resolution; size, frame and time."""
    made = time.strftime("%Y-%m-%d %H:%M", time.localtime(record.get("made", 0)))
    size = record.get("size", [])
    size = f"{size[0]}x{size[1]}" if len(size) == 2 else "?"
    return [
        f"{record.get('model', '?')}, resolution {record.get('resolution', '?')}",
        f"{size}, frame {record.get('frame')}, {made}",
    ]


def fill(node, image, record, distances=False):
    """The node now carries ``image``; ``record`` says what made it. A group shared with other
    nodes (a duplicated node) is copied first, so the others keep their own result."""
    group = node.node_tree
    if group.users > 1:
        group = node.node_tree = group.copy()
    group.nodes[RESULT_NODE].image = image
    has_distance = any(s.name == DISTANCE for s in group.interface.items_tree if s.in_out == "OUTPUT")
    if distances and not has_distance:
        group.interface.new_socket(DISTANCE, in_out="OUTPUT", socket_type="NodeSocketFloat")
        outputs = next(n for n in group.nodes if n.bl_idname == "NodeGroupOutput")
        group.links.new(group.nodes[RESULT_NODE].outputs["Image"], outputs.inputs[DISTANCE])
    node[RECORD_KEY] = dict(record)
    return node


def _describe_socket(socket, memo):
    node = socket.node
    return [_describe_node(node, memo), socket.identifier]


def _describe_node(node, memo):
    key = node.as_pointer()
    if key in memo:
        return memo[key]
    memo[key] = ["(cycle)"]
    inputs = []
    for socket in node.inputs:
        links = [link for link in socket.links if not getattr(link, "is_muted", False)]
        if links:
            inputs.append([socket.identifier, _describe_socket(links[0].from_socket, memo)])
        elif socket.enabled:
            inputs.append([socket.identifier, _plain(getattr(socket, "default_value", None))])
    props = {}
    for prop in node.bl_rna.properties:
        name = prop.identifier
        if name in _NOT_OUTPUT or name.startswith("bl_"):
            continue
        value = getattr(node, name, None)
        if prop.type == "POINTER":
            props[name] = _describe_pointer(value, memo)
        elif prop.type != "COLLECTION":
            props[name] = _plain(value)
    memo[key] = [node.bl_idname, props, inputs]
    return memo[key]


def _describe_pointer(value, memo):
    if value is None:
        return None
    if isinstance(value, bpy.types.NodeTree):  # a nested group: every node in it
        return [value.name] + [_describe_node(n, memo) for n in value.nodes]
    if isinstance(value, bpy.types.Image):
        return [value.name, value.filepath, value.source, value.frame_duration]
    if isinstance(value, bpy.types.ID):
        return value.name
    return None  # a nested struct (format settings...): drawing and file output only


def _plain(value):
    """A JSON-able form of an RNA value."""
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return round(value, 6)
    if isinstance(value, (set, frozenset)):
        return sorted(value)
    try:
        return [_plain(v) for v in value]
    except TypeError:
        return str(value)
