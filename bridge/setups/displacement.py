"""2.5D displacement: a plane that fills the camera's view, pushed towards the camera by the depth.

The plane lies at ``distance`` in front of the camera, with exactly the camera's frame (Blender's own
Camera.view_frame: sensor fit, sensor size, focal length or ortho scale, shift and render aspect),
as a grid whose UVs run 0..1 over the frame, textured with the picture through an Emission shader.
It goes on two render pixels past the frame (its texture's edge extended), where the pixel filter of
the frame's edge pixels reaches.

Direction: each point moves along the line of sight through it, towards the camera for near = bright
(for an orthographic camera the line of sight is the view axis). A point never leaves its own line of
sight, so from the original camera the plane's outline and every pixel's texture stay exactly where
they were: a render from that camera reproduces the picture, while any other camera sees parallax.
Moving along the plane's normal (a Displace modifier) would grow near parts outwards instead.
The points move by strength * (depth - midlevel) scene units.

Modifiers: a Subdivision modifier (simple: more vertices, the grid's shape kept) and a geometry nodes
modifier "Fathom Depth Displace" with Strength, Midlevel, Smooth (blur iterations of the depth over
the mesh, softening depth edges) and Stretch (faces whose corners' depths spread more than this
standard deviation are deleted: the stretched faces that join a near object to what is behind it).

Cycles' adaptive subdivision is not used: it displaces in the shader along the normal, which would
move the outline seen from the original camera.
"""

import math

import bpy
import numpy as np
from mathutils import Matrix, Vector

from . import common, pictures, units

KIND = "displacement"
GROUP_NAME = "Fathom Depth Displace"
GROUP_VERSION = 3  # 3: the depth image's frame follows the scene's (depth sequences)
MODIFIER, SUBSURF = "Fathom Depth Displace", "Fathom Subdivision"
TARGET_KEY = "fathom_displaced"  # on a user's object displaced by the setup
PREVIOUS_CAMERA_KEY = "fathom_previous_camera"
MARGIN_PX = 2  # Cycles' widest default filter reaches 1.5 px
INPUTS = (  # name, socket type, default
    ("Depth", "NodeSocketImage", None),
    ("UV Map", "NodeSocketString", "UVMap"),
    ("Strength", "NodeSocketFloat", 1.0),
    ("Midlevel", "NodeSocketFloat", 0.0),
    ("Center", "NodeSocketVector", (0.0, 0.0, 0.0)),
    ("Direction", "NodeSocketVector", (0.0, 0.0, 1.0)),
    ("Orthographic", "NodeSocketFloat", 0.0),
    ("Smooth", "NodeSocketInt", 0),
    ("Stretch", "NodeSocketFloat", 0.0),
    # Real distances (1: each point goes to its distance from the camera, read through the map's units;
    # engine.units: u = Flip Scale * d + Flip Offset, x = Offset + Span * u ** Power, distance = x ** Inverse).
    ("Real Distances", "NodeSocketFloat", 0.0),
    ("Flip Scale", "NodeSocketFloat", 1.0),
    ("Flip Offset", "NodeSocketFloat", 0.0),
    ("Power", "NodeSocketFloat", 1.0),
    ("Span", "NodeSocketFloat", 1.0),
    ("Offset", "NodeSocketFloat", 0.0),
    ("Inverse", "NodeSocketFloat", -1.0),
    ("Plane Distance", "NodeSocketFloat", 10.0),
    ("Max Distance", "NodeSocketFloat", 1000.0),
)


def camera_frame(scene, camera, distance):
    """(x0, x1, y0, y1) of the camera's view at ``distance`` along its axis, in camera space."""
    frame = camera.data.view_frame(scene=scene)
    if camera.data.type == "PERSP":
        frame = [v * (distance / -v.z) for v in frame]
    elif camera.data.type != "ORTHO":
        raise common.SetupError(f"Camera {camera.name!r} is panoramic: use a perspective or orthographic camera.")
    xs, ys = [v.x for v in frame], [v.y for v in frame]
    return min(xs), max(xs), min(ys), max(ys)


def camera_matrix(camera):
    """The camera's placement without scale (scale does not change what a camera sees)."""
    loc, rot, _ = camera.matrix_world.decompose()
    return Matrix.Translation(loc) @ rot.to_matrix().to_4x4()


def grid_mesh(name, frame, distance, columns, rows, margin=(0.0, 0.0)):
    """A columns x rows vertex grid over ``frame`` at z = -distance, with UVs 0..1 over it; a ``margin``
    (fractions of the frame's width and height) adds a ring of vertices that far past the frame, UVs with it."""
    x0, x1, y0, y1 = frame

    def steps(count, extra):
        inner = np.linspace(0.0, 1.0, count)
        return np.concatenate([[-extra], inner, [1.0 + extra]]) if extra > 0 else inner

    u, v = np.meshgrid(steps(columns, margin[0]), steps(rows, margin[1]))
    rows, columns = u.shape
    co = np.stack([x0 + u * (x1 - x0), y0 + v * (y1 - y0), np.full(u.shape, -distance)], axis=2).reshape(-1, 3)
    i = np.arange(rows * columns).reshape(rows, columns)
    quads = np.stack([i[:-1, :-1], i[:-1, 1:], i[1:, 1:], i[1:, :-1]], axis=2).reshape(-1, 4)
    mesh = bpy.data.meshes.new(name)
    mesh.from_pydata(co.tolist(), [], quads.tolist())
    uv = mesh.uv_layers.new(name="UVMap")
    uvs = np.stack([u, v], axis=2).reshape(-1, 2)
    loops = np.empty(len(mesh.loops), np.int64)
    mesh.loops.foreach_get("vertex_index", loops)
    uv.data.foreach_set("uv", uvs[loops].ravel().astype(np.float32))
    mesh.update()
    return mesh


def _margin(scene):
    """MARGIN_PX render pixels as fractions of the frame: the pixel filter of the frame's edge pixels
    reaches past the frame, where the plane must go on (its texture's edge extended), not the world."""
    width, height = common.render_size(scene)
    return MARGIN_PX / width, MARGIN_PX / height


def grid_size(aspect, resolution):
    """Vertex columns and rows for ``resolution`` vertices along the long side."""
    if aspect >= 1:
        return resolution, max(2, round(resolution / aspect))
    return max(2, round(resolution * aspect)), resolution


# -- the geometry nodes group --------------------------------------------------------------


def node_group():
    """The shared "Fathom Depth Displace" node group (built once per file, rebuilt when outdated)."""
    group = next(
        (g for g in bpy.data.node_groups if common.tagged(g, KIND) and g.get("fathom_version") == GROUP_VERSION), None
    )
    if group is not None:
        return group
    group = bpy.data.node_groups.new(GROUP_NAME, "GeometryNodeTree")
    common.tag(group, KIND)
    group["fathom_version"] = GROUP_VERSION
    face = group.interface
    face.new_socket("Geometry", in_out="INPUT", socket_type="NodeSocketGeometry")
    for name, socket_type, default in INPUTS:
        item = face.new_socket(name, in_out="INPUT", socket_type=socket_type)
        if default is not None:
            item.default_value = default
    face.new_socket("Geometry", in_out="OUTPUT", socket_type="NodeSocketGeometry")
    nodes, links = group.nodes, group.links

    def node(idname, x, y, **props):
        n = nodes.new(idname)
        n.location = (x, y)
        for key, value in props.items():
            setattr(n, key, value)
        return n

    def math(op, a, b, x, y):
        n = node("ShaderNodeMath", x, y, operation=op)
        for socket, value in zip(n.inputs, (a, b)):
            if isinstance(value, (int, float)):
                socket.default_value = value
            else:
                links.new(value, socket)
        return n.outputs[0]

    def blend(a, b, factor, at):
        """a * (1 - factor) + b * factor; ``at``: where its nodes go, (1 - factor), a * .., b * .. and the sum."""
        (x1, y1), (x2, y2), (x3, y3), (x4, y4) = at
        kept = math("MULTIPLY", a, math("SUBTRACT", 1.0, factor, x1, y1), x2, y2)
        return math("ADD", kept, math("MULTIPLY", b, factor, x3, y3), x4, y4)

    gi, go = node("NodeGroupInput", -1400, 0), node("NodeGroupOutput", 1000, 0)
    inp = {s.name: s for s in gi.outputs}
    uv = node("GeometryNodeInputNamedAttribute", -1200, -200, data_type="FLOAT_VECTOR")
    links.new(inp["UV Map"], uv.inputs["Name"])
    tex = node("GeometryNodeImageTexture", -1000, -200, interpolation="Linear", extension="EXTEND")
    links.new(inp["Depth"], tex.inputs["Image"])
    links.new(uv.outputs["Attribute"], tex.inputs["Vector"])
    # A depth sequence (image sequence) shows the file of the scene's frame; a still image ignores Frame.
    scene_time = node("GeometryNodeInputSceneTime", -1200, -400)
    links.new(scene_time.outputs["Frame"], tex.inputs["Frame"])
    blur = node("GeometryNodeBlurAttribute", -800, -200, data_type="FLOAT")
    links.new(tex.outputs["Color"], blur.inputs["Value"])
    links.new(inp["Smooth"], blur.inputs["Iterations"])
    depth = blur.outputs["Value"]
    # Point attributes, so that read on faces they average the corners: var = E[d^2] - E[d]^2.
    geometry = inp["Geometry"]
    for x, (name, value) in enumerate(
        (("fathom_depth", depth), ("fathom_depth_sq", math("MULTIPLY", depth, depth, -600, -400)))
    ):
        store = node("GeometryNodeStoreNamedAttribute", -600 + 200 * x, 0, data_type="FLOAT", domain="POINT")
        store.inputs["Name"].default_value = name
        links.new(geometry, store.inputs["Geometry"])
        links.new(value, store.inputs["Value"])
        geometry = store.outputs["Geometry"]
    d = node("GeometryNodeInputNamedAttribute", -200, -300, data_type="FLOAT")
    d.inputs["Name"].default_value = "fathom_depth"
    d2 = node("GeometryNodeInputNamedAttribute", -200, -450, data_type="FLOAT")
    d2.inputs["Name"].default_value = "fathom_depth_sq"
    d, d2 = d.outputs["Attribute"], d2.outputs["Attribute"]
    variance = math("SUBTRACT", d2, math("MULTIPLY", d, d, 0, -500), 150, -450)
    stretched = math("GREATER_THAN", variance, math("MULTIPLY", inp["Stretch"], inp["Stretch"], 0, -650), 300, -450)
    selection = math("MULTIPLY", stretched, math("GREATER_THAN", inp["Stretch"], 0.0, 150, -650), 450, -450)
    delete = node("GeometryNodeDeleteGeometry", 200, 0, domain="FACE")
    links.new(geometry, delete.inputs["Geometry"])
    links.new(selection, delete.inputs["Selection"])
    # Offset along the line of sight: towards Center (perspective) or along Direction (orthographic).
    relative = math("MULTIPLY", math("SUBTRACT", d, inp["Midlevel"], 200, -250), inp["Strength"], 400, -250)
    # Real distances: a point at planar distance P (the plane's) goes to planar distance D on its own line of
    # sight: |Center - position| * (1 - D / P) towards the camera, or P - D along the view axis (orthographic).
    u = math("MULTIPLY_ADD", d, inp["Flip Scale"], -200, -900)
    links.new(inp["Flip Offset"], u.node.inputs[2])
    x = math("MULTIPLY_ADD", math("POWER", u, inp["Power"], 0, -900), inp["Span"], 200, -900)
    links.new(inp["Offset"], x.node.inputs[2])
    far = math("MINIMUM", math("POWER", x, inp["Inverse"], 400, -900), inp["Max Distance"], 600, -900)
    along = math("SUBTRACT", inp["Plane Distance"], far, 800, -1000)
    position = node("GeometryNodeInputPosition", 0, -150).outputs[0]
    reach = node("ShaderNodeVectorMath", 600, -1100, operation="DISTANCE")
    links.new(inp["Center"], reach.inputs[0])
    links.new(position, reach.inputs[1])
    ray = math(
        "MULTIPLY", reach.outputs["Value"], math("DIVIDE", along, inp["Plane Distance"], 800, -1200), 1000, -1100
    )
    real = blend(ray, along, inp["Orthographic"], ((1000, -1300), (1200, -1100), (1200, -1300), (1400, -1100)))
    amount = blend(relative, real, inp["Real Distances"], ((400, -500), (600, -300), (1500, -900), (700, -250)))
    toward = node("ShaderNodeVectorMath", 200, -100, operation="SUBTRACT")
    links.new(inp["Center"], toward.inputs[0])
    links.new(position, toward.inputs[1])
    unit = node("ShaderNodeVectorMath", 400, -100, operation="NORMALIZE")
    links.new(toward.outputs[0], unit.inputs[0])
    mix = node("ShaderNodeMix", 600, -100, data_type="VECTOR")
    links.new(inp["Orthographic"], common.socket(mix.inputs, "Factor_Float"))
    links.new(unit.outputs[0], common.socket(mix.inputs, "A_Vector"))
    links.new(inp["Direction"], common.socket(mix.inputs, "B_Vector"))
    offset = node("ShaderNodeVectorMath", 800, -100, operation="SCALE")
    links.new(common.socket(mix.outputs, "Result_Vector"), offset.inputs[0])
    links.new(amount, common.socket(offset.inputs, "Scale"))
    move = node("GeometryNodeSetPosition", 800, 0)
    links.new(delete.outputs["Geometry"], move.inputs["Geometry"])
    links.new(offset.outputs[0], move.inputs["Offset"])
    links.new(move.outputs["Geometry"], go.inputs[0])
    return group


def set_inputs(modifier, **values):
    """Set the modifier's inputs by socket name. Blender 5.2 exposes them as RNA,
    ``modifier.properties.inputs.<identifier>.value``; 4.2 to 5.0 as ID properties, ``modifier[identifier]``."""
    ids = {
        item.name: item.identifier
        for item in modifier.node_group.interface.items_tree
        if getattr(item, "in_out", "") == "INPUT"
    }
    inputs = getattr(getattr(modifier, "properties", None), "inputs", None)
    for name, value in values.items():
        if inputs is not None:
            getattr(inputs, ids[name]).value = value
        else:
            modifier[ids[name]] = value


def picture_material(picture, texture=None):
    """An Emission material showing the picture by UV: what a camera sees is the picture itself. ``texture``
    is the image it samples: the picture as scene light (bridge.setups.pictures), by default the picture."""
    texture = texture or picture
    material = next(
        (m for m in bpy.data.materials if common.tagged(m, KIND) and m.get("fathom_picture") == picture.name), None
    )
    if material is not None:
        tex = next((n for n in material.node_tree.nodes if n.bl_idname == "ShaderNodeTexImage"), None)
        if tex is not None:
            tex.image = texture
            return material
        bpy.data.materials.remove(material)
    material = common.tag(bpy.data.materials.new(f"Fathom {picture.name}"), KIND)
    material["fathom_picture"] = picture.name
    if material.node_tree is None:  # 4.x; 5.0 materials always have nodes
        material.use_nodes = True
    nodes = material.node_tree.nodes
    nodes.clear()
    tex = nodes.new("ShaderNodeTexImage")
    tex.image, tex.location, tex.extension = texture, (-400, 0), "EXTEND"
    emission = nodes.new("ShaderNodeEmission")
    emission.location = (-100, 0)
    out = nodes.new("ShaderNodeOutputMaterial")
    out.location = (150, 0)
    material.node_tree.links.new(tex.outputs["Color"], emission.inputs["Color"])
    material.node_tree.links.new(emission.outputs["Emission"], out.inputs["Surface"])
    return material


# -- the setup -----------------------------------------------------------------------------


def _tagged_object(role):
    return next((o for o in bpy.data.objects if common.tagged(o, KIND) and o.get("fathom_role") == role), None)


def _camera(scene, picture_size):
    """The scene camera, or a new one looking along +Y when the scene has none (the render then gets
    the picture's size, so the picture fills it)."""
    if scene.camera is not None:
        if scene.camera.type != "CAMERA":
            raise common.SetupError(f"The scene camera {scene.camera.name!r} is not a camera object.")
        parallax = _tagged_object("parallax")
        if scene.camera == parallax and parallax.get(PREVIOUS_CAMERA_KEY) in bpy.data.objects:
            return bpy.data.objects[parallax[PREVIOUS_CAMERA_KEY]]  # re-running: the original camera
        return scene.camera
    camera = common.tag(bpy.data.objects.new("Fathom Camera", bpy.data.cameras.new("Fathom Camera")), KIND)
    camera["fathom_role"] = "camera"
    camera.rotation_euler = (math.pi / 2, 0.0, 0.0)
    scene.collection.objects.link(camera)
    scene.camera = camera
    scene.render.resolution_x, scene.render.resolution_y = picture_size
    scene.render.resolution_percentage = 100
    return camera


def setup(
    scene,
    depth,
    picture=None,
    *,
    target=None,
    distance=10.0,
    strength=None,
    midlevel=0.0,
    resolution=256,
    subdivisions=1,
    smooth=0,
    stretch=0.0,
    parallax="NONE",
    amplitude=0.1,
    real_distances=True,
):
    """Build or update the displacement setup; returns the displaced object.

    A depth map that knows its distances (Scene Z, a metric alignment) puts every point of the plane at its
    own distance from the camera (``real_distances``; ``strength`` and ``midlevel`` then do not apply);
    a relative map moves points by ``strength`` (default half the distance) times (depth - ``midlevel``).
    ``picture``: the image shown (default: the depth map's source; for render, compositor and Scene Z
    depth the render itself), shown so that it renders back as itself under the scene's colour management.
    ``target``: displace this mesh object (by its UV map) instead of a camera-filling plane.
    ``parallax``: 'NONE', 'DOLLY' (forward by ``amplitude`` times the distance) or 'ORBIT'
    (``amplitude`` x 90 degrees either side). The object's parameters say what was done (``colour``)."""
    depth = common.find_image(depth, "depth image")
    if distance <= 0:
        raise common.SetupError(f"The plane's distance ({distance:g}) must be positive.")
    if resolution < 2:
        raise common.SetupError(f"Resolution {resolution} is too low: use at least 2 vertices per side.")
    picture = (
        pictures.picture_for(scene, depth, picture)
        if target is None
        else (common.find_image(picture, "picture") if picture else None)
    )
    if target is None and picture is None:
        raise common.SetupError(
            f"No picture to show on the plane: '{depth.name}' was not made from an image that "
            "is still in this file or from the render. Name the picture (--picture NAME, or "
            "Picture under Depth > Setups)."
        )
    read = units.image_units(depth)
    metric = bool(real_distances and read is not None and read.has_distances)
    strength = distance * 0.5 if strength is None else strength
    size = tuple((picture or depth).size)
    camera = _camera(scene, size)
    cam_matrix = camera_matrix(camera)
    ortho = camera.data.type == "ORTHO"
    note = ""
    if target is None:
        frame = camera_frame(scene, camera, distance)
        aspect = (frame[1] - frame[0]) / (frame[3] - frame[2])
        picture_aspect = size[0] / size[1]
        if abs(aspect / picture_aspect - 1.0) > 0.01:
            print(
                f"Fathom: the picture's aspect {picture_aspect:.3f} differs from the camera's {aspect:.3f}: "
                "the picture is stretched to fill the view (set the render size to the picture's)."
            )
        obj = _tagged_object("plane")
        mesh = grid_mesh("Fathom Depth Plane", frame, distance, *grid_size(aspect, resolution), _margin(scene))
        if obj is None:
            obj = common.tag(bpy.data.objects.new("Fathom Depth Plane", mesh), KIND)
            obj["fathom_role"] = "plane"
            scene.collection.objects.link(obj)
        else:
            old, obj.data = obj.data, mesh
            if old.users == 0:
                bpy.data.meshes.remove(old)
        obj.matrix_world = cam_matrix
        # A card seen by the camera only: it neither shadows, lights nor shows in reflections of the scene
        # it stands in (it may sit exactly on the surfaces it shows).
        for ray in ("diffuse", "glossy", "transmission", "volume_scatter", "shadow"):
            if hasattr(obj, f"visible_{ray}"):
                setattr(obj, f"visible_{ray}", False)
        texture, note = pictures.texture_for(scene, picture)
        obj.data.materials.clear()
        obj.data.materials.append(picture_material(picture, texture))
        center, direction = Vector((0, 0, 0)), Vector((0, 0, 1))
    else:
        metric = False  # a user's object has no camera-filling frame to put at distances
        obj = target if isinstance(target, bpy.types.Object) else bpy.data.objects.get(target)
        if obj is None or obj.type != "MESH":
            raise common.SetupError(
                f"{getattr(obj, 'name', target)!r} is not a mesh object: select a mesh to displace."
            )
        if not obj.data.uv_layers:
            raise common.SetupError(f"{obj.name!r} has no UV map: unwrap it (or project from the camera) first.")
        obj[TARGET_KEY] = True
        to_local = obj.matrix_world.inverted()
        center = to_local @ cam_matrix.translation
        direction = (to_local.to_3x3() @ (cam_matrix.to_3x3() @ Vector((0, 0, 1)))).normalized()
    reading = read if metric else None
    _modifiers(
        obj,
        depth,
        subdivisions,
        dict(
            Strength=float(strength),
            Midlevel=float(midlevel),
            Center=tuple(center),
            Direction=tuple(direction),
            Orthographic=1.0 if ortho else 0.0,
            Smooth=int(smooth),
            Stretch=float(stretch),
            **{"UV Map": obj.data.uv_layers.active.name},
            **_distance_inputs(reading, distance, camera),
        ),
    )
    obj[common.PARAMS_KEY] = {
        "depth": depth.name,
        "picture": picture.name if picture else "",
        "distance": distance,
        "strength": strength,
        "midlevel": midlevel,
        "camera": camera.name,
        "metric": metric,
        "units": read.describe() if read is not None else "unknown",
        "colour": note,
    }
    if target is None or parallax != "NONE":  # displacing a user's object leaves the plane's camera move alone
        _parallax(scene, camera, distance, parallax, amplitude)
    return obj


def _distance_inputs(read, distance, camera):
    """The group's real-distance inputs for units ``read`` (None: relative displacement)."""
    if read is None:
        return {"Real Distances": 0.0}
    return {
        "Real Distances": 1.0,
        "Flip Scale": -1.0 if read.flip is not None else 1.0,
        "Flip Offset": float(read.flip or 0.0),
        "Power": float(read.power),
        "Span": float(read.span),
        "Offset": float(read.offset),
        "Inverse": 1.0 if read.quantity == "distance" else -1.0,
        "Plane Distance": float(distance),
        "Max Distance": float(camera.data.clip_end) * 0.99,
    }  # empty background: just inside the clip end


def _modifiers(obj, depth, subdivisions, values):
    subsurf = obj.modifiers.get(SUBSURF)
    if subdivisions > 0:
        if subsurf is None:
            subsurf = obj.modifiers.new(SUBSURF, "SUBSURF")
        subsurf.subdivision_type = "SIMPLE"
        subsurf.levels = subsurf.render_levels = subdivisions
    elif subsurf is not None:
        obj.modifiers.remove(subsurf)
    modifier = obj.modifiers.get(MODIFIER)
    if modifier is None:
        modifier = obj.modifiers.new(MODIFIER, "NODES")
    modifier.node_group = node_group()
    set_inputs(modifier, Depth=depth, **values)
    # Keep the order: subdivide, then displace.
    if subsurf is not None:
        index = list(obj.modifiers).index(subsurf)
        if index > list(obj.modifiers).index(modifier):
            obj.modifiers.move(index, list(obj.modifiers).index(modifier))
    obj.update_tag()


def _parallax(scene, camera, distance, kind, amplitude):
    """A tagged copy of the camera, keyframed to move, made the scene camera (the original stays)."""
    rig = _tagged_object("parallax")
    if kind == "NONE":
        if rig is not None:
            _remove_parallax(scene, rig)
        return None
    if kind not in ("DOLLY", "ORBIT"):
        raise common.SetupError(f"Unknown parallax move {kind!r}: use NONE, DOLLY or ORBIT.")
    if rig is None:
        rig = common.tag(bpy.data.objects.new("Fathom Parallax Camera", camera.data.copy()), KIND)
        rig["fathom_role"] = "parallax"
        rig[PREVIOUS_CAMERA_KEY] = camera.name
        scene.collection.objects.link(rig)
    rig.animation_data_clear()
    start, end = scene.frame_start, scene.frame_end
    base = camera_matrix(camera)
    if kind == "DOLLY":
        poses = {start: base, end: base @ Matrix.Translation((0.0, 0.0, -amplitude * distance))}
    else:  # orbit about the plane's centre, distance ahead
        pivot = Matrix.Translation((0.0, 0.0, -distance))
        angle = amplitude * math.pi / 2

        def orbit(a):
            return base @ pivot @ Matrix.Rotation(a, 4, "Y") @ pivot.inverted()

        poses = {start: orbit(-angle), (start + end) // 2: orbit(0.0), end: orbit(angle)}
    for frame, matrix in poses.items():
        rig.matrix_world = matrix
        rig.keyframe_insert("location", frame=frame)
        rig.keyframe_insert("rotation_euler", frame=frame)
    scene.camera = rig
    scene.frame_set(scene.frame_current)
    return rig


def _remove_parallax(scene, rig):
    previous = bpy.data.objects.get(rig.get(PREVIOUS_CAMERA_KEY, ""))
    if scene.camera == rig:
        scene.camera = previous
    data = rig.data
    bpy.data.objects.remove(rig)
    if data.users == 0:
        bpy.data.cameras.remove(data)


def remove(scene) -> int:
    """Delete the setup's objects, materials and node group; strip its modifiers from user objects."""
    count = 0
    rig = _tagged_object("parallax")
    if rig is not None:
        _remove_parallax(scene, rig)
        count += 1
    for obj in list(bpy.data.objects):
        if common.tagged(obj, KIND):
            data = obj.data
            if scene.camera == obj:
                scene.camera = None
            bpy.data.objects.remove(obj)
            count += 1
            if data is not None and data.users == 0:
                (bpy.data.meshes if isinstance(data, bpy.types.Mesh) else bpy.data.cameras).remove(data)
        elif obj.get(TARGET_KEY):
            for name in (MODIFIER, SUBSURF):
                if obj.modifiers.get(name) is not None:
                    obj.modifiers.remove(obj.modifiers[name])
                    count += 1
            del obj[TARGET_KEY]
    for material in [m for m in bpy.data.materials if common.tagged(m, KIND) and m.users == 0]:
        bpy.data.materials.remove(material)
    for group in [g for g in bpy.data.node_groups if common.tagged(g, KIND) and g.users == 0]:
        bpy.data.node_groups.remove(group)
    return count


def find_object(scene=None):
    return _tagged_object("plane")
