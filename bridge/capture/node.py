"""The picture wired into a Depth Map node, at the current frame (the child Blender's side).

The child opens a copy of the user's file; there the compositor's output is re-wired to the socket
that feeds the node's Image input, and the composite is captured as the Compositor source captures
it (view transform applied, 16-bit PNG, File Output nodes muted), so the same pixels give the same
picture whichever source is used. Background mode never fills the Viewer node, hence the output.
The user's tree is never touched: only the copy is re-wired.
"""

from .. import node_group
from ..generation.nodes import compositor_tree
from . import picture


def route_to_output(scene, name):
    """In the copy: make the compositor's output show what is wired into node ``name``'s input."""
    node = node_group.find(scene, name)
    socket = node_group.input_socket(node)
    tree = compositor_tree(scene, create=False)
    if hasattr(scene, "compositing_node_group"):  # Blender 5.0+: the group output's first socket
        if not any(item.in_out == "OUTPUT" for item in tree.interface.items_tree):
            tree.interface.new_socket("Image", in_out="OUTPUT", socket_type="NodeSocketColor")
        outputs = [n for n in tree.nodes if n.bl_idname == "NodeGroupOutput"]
        output = next((n for n in outputs if n.is_active_output), None) or (
            outputs[0] if outputs else tree.nodes.new("NodeGroupOutput")
        )
        output.is_active_output = True
        tree.links.new(socket, output.inputs[0])
        return
    composites = [n for n in tree.nodes if n.bl_idname == "CompositorNodeComposite"]
    for other in composites[1:]:
        tree.nodes.remove(other)  # one Composite node: the one that shows the socket
    composite = composites[0] if composites else tree.nodes.new("CompositorNodeComposite")
    tree.links.new(socket, composite.inputs["Image"])


def from_node(scene, name, progress=None) -> picture.Capture:
    """The picture wired into the Depth Map node ``name`` (in a copy of the file: it re-wires)."""
    route_to_output(scene, name)
    made = picture.from_render(scene, compositor=True, progress=progress)
    source = dict(made.source, kind="node", node=name)
    return picture.Capture(made.rgb, f"the input of node '{name}'", name, source)
