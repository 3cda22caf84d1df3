"""What every setup shares: the tag on what it creates, depth image access, the compositor's output
link, files under //generated/ and the node types that differ between Blender 4.x and 5.0.

Compositor rule: a setup is a chain of tagged nodes inserted between the tree's output (5.0: the
Group Output, 4.x: the Composite node) and whatever fed it. The user's own links are never touched
otherwise; removing a setup links its downstream sockets back to what fed the chain.
"""

import os
import tempfile
from pathlib import Path

import bpy
import numpy as np

from ...engine.encode import write_file
from ...engine.errors import FathomError
from ..capture import picture as capture
from ..files import first_free_name, load_image, set_relative_path
from ..generation import nodes, results

TAG = "fathom_setup"  # on nodes, objects, materials, node groups: which setup made it
RESTORE_KEY = "fathom_restore"  # on a chain's last node: "node name|socket identifier" it replaced
PARAMS_KEY = "fathom_params"  # on a setup's main node/object: the values it was built with
TITLES = {"dof": "DoF"}


class SetupError(FathomError):
    """A setup cannot be built from what it was given."""


class MissingImageError(SetupError):
    """A named image is not in the file."""


def tagged(item, kind) -> bool:
    return item is not None and item.get(TAG) == kind


def tag(item, kind, name=None):
    item[TAG] = kind
    if name is not None:
        item.name = name
    return item


# -- images ------------------------------------------------------------------------------


def find_image(name_or_image, what="image"):
    """An image datablock from a name (or itself), or a SetupError listing the names there are."""
    if name_or_image is None or name_or_image == "":
        raise SetupError(f"No {what} given: pick one in the Depth panel or pass its name.")
    if isinstance(name_or_image, bpy.types.Image):
        return name_or_image
    image = bpy.data.images.get(name_or_image)
    if image is None:
        names = ", ".join(sorted(i.name for i in bpy.data.images)) or "(none)"
        raise MissingImageError(f"There is no image named {name_or_image!r} for the {what}: use one of {names}.")
    return image


def depth_array(image) -> np.ndarray:
    """The depth image's values as float32 HxW, top row first (its first channel, as stored)."""
    if not image.colorspace_settings.is_data:
        # A depth map read as colour gets its values bent by the sRGB curve: read the stored values.
        image.colorspace_settings.name = "Non-Color"
    return capture.image_pixels(image)[:, :, 0].copy()


def picture_array(image, scene=None) -> np.ndarray:
    """The picture's RGB as float32 HxWx3 in 0..1, display-referred, top row first: a scene-referred
    picture (the render's float pixels) as the scene's colour management shows it."""
    if scene is not None:
        from . import colour

        if colour.is_scene_referred(image) and colour.available():
            return colour.scene_linear_to_display(capture.image_pixels(image, linear=True), scene)
    return np.clip(capture.image_pixels(image), 0.0, 1.0)


def default_depth_image(context):
    """The depth image a setup works on when none is named: the Image Editor's if it is a Fathom
    result, else the newest Fathom result (by file name) in the file."""
    space = getattr(context, "space_data", None)
    image = getattr(space, "image", None) if space is not None and space.type == "IMAGE_EDITOR" else None
    if image is not None and results.IMAGE_KEY in image:
        return image
    found = [i for i in bpy.data.images if results.IMAGE_KEY in i]
    return max(found, key=lambda i: (i.filepath, i.name)) if found else None


def source_picture(depth_image):
    """The picture a Fathom depth image was made from, when that image is still in the file."""
    info = depth_image.get(results.IMAGE_KEY) if depth_image is not None else None
    source = info.get("source") if info is not None else None
    name = source.get("image") if source is not None else None
    return bpy.data.images.get(name) if name else None


# -- files -------------------------------------------------------------------------------


def write_generated(stem, suffix, data: bytes, folder=None) -> Path:
    """Write ``data`` to the next free ``stem_NNN.suffix`` under //generated/ (or ``folder``); never
    replaces a file."""
    folder = Path(bpy.path.abspath(str(folder))) if folder else results.generated_folder()
    stem = results.safe_stem(stem)
    path = first_free_name(folder, stem, suffix, lambda path: write_file(path, data))
    if path is not None:
        return path
    raise SetupError(f"{folder} holds too many {stem} files: move some away.")


def load_generated(path: Path, *, non_color: bool, kind: str):
    return tag(load_image(path, non_color=non_color), kind)


def reload_generated(image, path: Path):
    """An earlier setup's image, now showing the new file ``path``."""
    set_relative_path(image, path)
    image.reload()
    return image


def render_size(scene):
    """The render's size in pixels (resolution times percentage)."""
    scale = scene.render.resolution_percentage / 100
    return round(scene.render.resolution_x * scale), round(scene.render.resolution_y * scale)


def kept_image(kind, key):
    """The image setup ``kind`` made for ``key`` (a depth image's or picture's name), or None."""
    return next((i for i in bpy.data.images if tagged(i, kind) and i.get("fathom_for") == key), None)


def keep_generated(kind, key, stem, suffix, data: bytes, *, non_color: bool, name: str, folder=None):
    """Show ``data`` in setup ``kind``'s image for ``key``, kept with the .blend (fake user): the first
    time written to a free ``stem_NNN.suffix`` under //generated/ (or ``folder``), afterwards over that
    same file (Fathom's own, in that folder), so re-running updates in place instead of adding files.
    In a .blend never saved (no //generated/ yet) the data is packed into the .blend instead."""
    image = kept_image(kind, key)
    if folder is None and not bpy.data.filepath:
        return _keep_packed(image, kind, key, suffix, data, non_color=non_color, name=name)
    packed = None
    if image is not None and image.packed_file is not None:  # packed while the .blend was unsaved
        packed, image = image, None
    folder = Path(bpy.path.abspath(str(folder))) if folder else results.generated_folder()
    path = Path(bpy.path.abspath(image.filepath)) if image is not None and image.filepath else None
    if path is not None and path.suffix == suffix and path.parent.resolve() == folder.resolve():
        write_file(path, data, overwrite=True)
        image.reload()
    else:
        path = write_generated(stem, suffix, data, folder)
        if image is None:
            image = load_generated(path, non_color=non_color, kind=kind)
            image["fathom_for"] = key
            image.name = name
        else:
            reload_generated(image, path)
    if packed is not None:
        packed.user_remap(image)
        bpy.data.images.remove(packed)
        image.name = name
    image.use_fake_user = True
    return image


def _keep_packed(image, kind, key, suffix, data, *, non_color, name):
    """The image for ``key`` holding ``data`` packed into the .blend (its bytes as they are)."""
    fd, tmp = tempfile.mkstemp(prefix="fathom-", suffix=suffix)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        made = tag(bpy.data.images.load(tmp, check_existing=False), kind)
        made.pack()
    finally:
        os.unlink(tmp)
    if non_color:
        made.colorspace_settings.name = "Non-Color"
    if image is not None:
        image.user_remap(made)  # materials and nodes that showed the old one show the new one
        bpy.data.images.remove(image)
    made["fathom_for"] = key
    made.name = name
    made.use_fake_user = True
    return made


# -- compositor --------------------------------------------------------------------------

IS_5 = "compositing_node_group" in bpy.types.Scene.bl_rna.properties


def compositor_tree(scene, create=True):
    return nodes.compositor_tree(scene, create=create)


def output_socket(tree):
    """The socket whose input is the compositor's result: Group Output's first input (5.0) or the
    active Composite node's Image input (4.x); None when the tree has no output node."""
    if IS_5:
        outputs = [n for n in tree.nodes if n.bl_idname == "NodeGroupOutput"]
        outputs.sort(key=lambda n: not n.is_active_output)
        return outputs[0].inputs[0] if outputs and outputs[0].inputs else None
    composites = [n for n in tree.nodes if n.bl_idname == "CompositorNodeComposite"]
    return composites[0].inputs["Image"] if composites else None


def ensure_output(tree):
    socket = output_socket(tree)
    if socket is not None:
        return socket
    if IS_5:
        if not tree.interface.items_tree:
            tree.interface.new_socket("Image", in_out="OUTPUT", socket_type="NodeSocketColor")
        node = tree.nodes.new("NodeGroupOutput")
    else:
        node = tree.nodes.new("CompositorNodeComposite")
    node.location = (max((n.location.x for n in tree.nodes if n != node), default=0) + 300, 0)
    return output_socket(tree)


def linked_from(socket):
    return socket.links[0].from_socket if socket is not None and socket.is_linked else None


def socket_ref(socket) -> str:
    return f"{socket.node.name}|{socket.identifier}" if socket is not None else ""


def socket_from_ref(tree, ref):
    if not ref:
        return None
    node_name, _, identifier = ref.partition("|")
    node = tree.nodes.get(node_name)
    if node is None:
        return None
    return next((s for s in node.outputs if s.identifier == identifier), None)


def insert_before_output(tree, entry_input, exit_output, *, feed=True):
    """Put a chain between the tree's output and what fed it: upstream -> entry_input ... exit_output
    -> output. With ``feed`` False the entry is fed by the setup itself (its own picture node) and the
    upstream is remembered on the exit node for removal."""
    out = ensure_output(tree)
    upstream = linked_from(out)
    exit_output.node[RESTORE_KEY] = socket_ref(upstream)
    if feed and upstream is not None:
        tree.links.new(upstream, entry_input)
    tree.links.new(exit_output, out)


def remove_nodes(tree, kind) -> int:
    """Delete the nodes tagged ``kind`` and link what they fed back to what fed them."""
    nodes = [n for n in tree.nodes if tagged(n, kind)]
    if not nodes:
        return 0
    names = {n.name for n in nodes}
    for node in nodes:
        if RESTORE_KEY not in node:
            continue
        ref = node[RESTORE_KEY]
        restore = socket_from_ref(tree, ref)
        if restore is not None and restore.node.name in names:
            restore, ref = None, ""
        for link in [k for s in node.outputs for k in s.links if k.to_node.name not in names]:
            to_socket = link.to_socket
            tree.links.remove(link)
            if restore is not None:
                tree.links.new(restore, to_socket)
        # A chain stacked on this one restores to what fed this one from now on.
        for other in tree.nodes:
            if other.name not in names and other.get(RESTORE_KEY, "").split("|", 1)[0] == node.name:
                other[RESTORE_KEY] = ref
    for node in nodes:
        tree.nodes.remove(node)
    return len(nodes)


def build_chain(scene, kind, picture, make):
    """Create or update setup ``kind`` in the scene's compositor. ``make(tree, x, y)`` creates or updates
    the setup's own nodes (through setup_node) and returns (entry image input, exit output socket).
    ``picture``: an image the chain starts from (its own Image node) instead of what fed the output."""
    tree = compositor_tree(scene, create=True)
    existed = any(tagged(n, kind) for n in tree.nodes)
    x, y = chain_origin(tree)
    entry, exit_output = make(tree, x, y)
    if picture is not None:
        node, _ = setup_node(tree, kind, "picture", "CompositorNodeImage", (x - 900, y - 200))
        node.image = picture
        node.label = "Fathom picture"
        tree.links.new(image_output(node), entry)
    if not existed:
        insert_before_output(tree, entry, exit_output, feed=picture is None)
    return tree, exit_output.node


def remove_setup_nodes(scene, kind) -> int:
    tree = compositor_tree(scene, create=False)
    return remove_nodes(tree, kind) if tree is not None else 0


def setup_node(tree, kind, role, idname, location):
    """The node playing ``role`` in setup ``kind`` (created, tagged and placed when missing)."""
    for node in tree.nodes:
        if tagged(node, kind) and node.get("fathom_role") == role:
            if node.bl_idname == idname:
                return node, False
            tree.nodes.remove(node)  # a different node type for this role (older Blender): rebuild it
            break
    node = tree.nodes.new(idname)
    tag(node, kind)
    node["fathom_role"] = role
    node.name = node.label = f"Fathom {TITLES.get(kind, kind.title())} {role}"
    node.location = location
    return node, True


def chain_origin(tree):
    """Where a new chain is drawn: left of the output node, below the other nodes."""
    out = output_socket(tree)
    x = out.node.location.x - 250 if out is not None else 0
    y = min((n.location.y for n in tree.nodes), default=0) - 350
    return x, y


def socket(sockets, *names):
    """The first enabled socket with one of these identifiers or names (4.x and 5.0 differ)."""
    for name in names:
        for s in sockets:
            if (s.identifier == name or s.name == name) and s.enabled:
                return s
    raise SetupError(f"No socket {names} on this Blender's node: please report this Blender version.")


# Node types that changed in 5.0: compositor trees use the shader Math/Map Range/Mix nodes there.
def math_idname():
    return "ShaderNodeMath" if IS_5 else "CompositorNodeMath"


def map_range_idname():
    return "ShaderNodeMapRange" if IS_5 else "CompositorNodeMapRange"


def mix_idname():
    return "ShaderNodeMix" if IS_5 else "CompositorNodeMixRGB"


def set_clamp(node, value=True):
    for name in ("clamp", "use_clamp", "clamp_result"):
        if hasattr(node, name):
            setattr(node, name, value)
            return


def depth_image_node(tree, kind, image, location):
    """The node the setup takes its depth from: the Depth Map node of this tree that carries ``image``
    (so the setup follows its re-generations), else the setup's own Image node."""
    from .. import node_group

    carrier = node_group.carrying(tree, image)
    if carrier is not None:
        for node in [n for n in tree.nodes if tagged(n, kind) and n.get("fathom_role") == "depth"]:
            tree.nodes.remove(node)  # the setup's own Image node from before: the Depth Map node replaces it
        return carrier
    node, _ = setup_node(tree, kind, "depth", "CompositorNodeImage", location)
    node.image = image
    node.label = "Fathom depth"
    return node


def image_output(node):
    return socket(node.outputs, "Image", "Depth")  # an Image node's, or a Depth Map node's Depth


def distance_nodes(tree, kind, value, read, location, *, inverse=True):
    """Math nodes reading depth values (socket ``value``) through engine.units ``read``: their last output
    is 1 / distance (``inverse``) or the distance itself. Steps, each a node only when it changes anything
    (an earlier run's node for a step no longer needed is removed): u = flip - value, u ** power,
    x = offset + span * u, then 1 / x when the quantity is the other one."""
    x0, y0 = location
    steps = (
        ("flip", "MULTIPLY_ADD", (-1.0, float(read.flip or 0.0)), read.flip is not None),
        ("power", "POWER", (float(read.power),), read.power != 1.0),
        ("scale", "MULTIPLY_ADD", (float(read.span), float(read.offset)), (read.span, read.offset) != (1, 0)),
        ("reciprocal", "POWER", (-1.0,), (read.quantity == "distance") == inverse),
    )
    for i, (role, operation, constants, needed) in enumerate(steps):
        if not needed:
            for node in [n for n in tree.nodes if tagged(n, kind) and n.get("fathom_role") == role]:
                tree.nodes.remove(node)
            continue
        node, _ = setup_node(tree, kind, role, math_idname(), (x0 + 120 * i, y0 - 40 * i))
        node.operation = operation
        set_clamp(node, False)
        tree.links.new(value, node.inputs[0])
        for socket, constant in zip(node.inputs[1:], constants):
            socket.default_value = constant
        value = node.outputs[0]
    return value
