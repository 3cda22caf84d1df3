"""Depth of field in the compositor: a Defocus node whose Z input is a blur radius made from the depth.

From depth to distance. A map that knows its distances (Scene Z, a metric alignment: engine.units) is
read in them, exactly. A relative map (a network's, near = bright, 0..1) is read as linear in 1/distance
between two chosen distances:

    1/D(d) = d / near + (1 - d) / far          (far = 0 means infinitely far: 1/far = 0)

d = 1 is ``near`` away, d = 0 is ``far`` away (by default 1 and infinity: distances in no real unit).

From distance to blur. A thin lens of focal length f at f-number N focused at S gives a circle of
confusion of diameter  c = f^2 / (N (S - f)) * |1 - S / D|  on the sensor. The chain computes
1/D from the depth value with Math nodes (common.distance_nodes, following the map's units),
then |1 - S / D| (Multiply Add, Absolute), into Defocus with Use Z-Buffer off, whose Z input is then
a radius in pixels times Z Scale: Z Scale = c's factor / 2 in pixels (the picture's width over the
sensor width). Max Blur caps the radius. The scene camera is not used or changed (Defocus with Use
Z-Buffer on would take focus and lens from it), so this works for plain pictures too.
"""

import math

import numpy as np

from ...engine.metric import sample as sample_values
from ...engine.units import DepthUnits, distances
from . import common, units

KIND = "dof"
DEFAULT_FOCAL_MM, DEFAULT_SENSOR_MM = 50.0, 36.0


def distance(d, near, far):
    """Depth value(s) d (near = bright) -> distance with the near/far reading (see the module's notes)."""
    return distances(d, near_far_units(near, far))


def near_far_units(near, far, relative=None):
    """The near/far reading of a relative map as engine.units: 1/D = offset + span * u."""
    inv_far = 1.0 / far if far > 0 else 0.0
    return DepthUnits(
        "inverse-distance",
        "near/far",
        inv_far,
        1.0 / near - inv_far,
        power=relative.power if relative is not None else 1.0,
        flip=relative.flip if relative is not None else None,
        near=near,
        far=far or None,
    )


def reading(depth, near=None, far=None, real_distances=True):
    """(units, real): the map's own distances when it has them and ``real_distances``; else the near/far
    reading (near 1, far infinite by default), real False."""
    own = units.image_units(depth)
    if real_distances and own is not None and own.has_distances:
        return own, True
    check(1.0 if near is None else near, far or 0.0, 1.0, 1.0)
    return near_far_units(1.0 if near is None else near, far or 0.0, own), False


def blur_scale(f_stop, focal_mm, sensor_mm, focus, width_px):
    """Pixels of blur radius per unit of |1 - S/D|: half the thin lens's circle of confusion, in pixels."""
    f = focal_mm / 1000.0
    if focus <= f:
        raise common.SetupError(
            f"The focus distance ({focus:g}) must be farther than the focal length "
            f"({focal_mm:g} mm): pick a farther focus point."
        )
    coc = f * f / (f_stop * (focus - f))
    return coc / 2.0 * width_px / (sensor_mm / 1000.0)


def lens_of(scene):
    """(focal length mm, sensor width mm) of the scene camera, or a 50 mm full-frame lens."""
    cam = scene.camera.data if scene.camera is not None and scene.camera.type == "CAMERA" else None
    if cam is None or cam.type != "PERSP":
        return DEFAULT_FOCAL_MM, DEFAULT_SENSOR_MM
    return cam.lens, cam.sensor_width


def check(near, far, f_stop, blur_max):
    if near <= 0:
        raise common.SetupError(f"Near ({near:g}) must be a positive distance.")
    if far and far <= near:
        raise common.SetupError(f"Far ({far:g}) must be beyond near ({near:g}), or 0 for infinitely far.")
    if f_stop <= 0:
        raise common.SetupError(f"The f-stop ({f_stop:g}) must be positive.")
    if blur_max <= 0:
        raise common.SetupError(f"Max blur ({blur_max:g} pixels) must be positive.")


def setup(
    scene,
    depth,
    picture=None,
    *,
    f_stop=2.8,
    blur_max=16.0,
    focus_distance=0.0,
    near=None,
    far=None,
    real_distances=True,
    focal_length=0.0,
    sensor_width=0.0,
):
    """Build or update the depth of field setup; returns the Defocus node.

    ``depth``, ``picture``: images (or names). Without ``picture`` the setup blurs what fed the
    compositor's output. ``focus_distance`` 0: the distance at the picture's centre. ``near``/``far``:
    read a relative map (or any, without ``real_distances``) between these distances (see ``reading``).
    ``focal_length`` and ``sensor_width`` 0: the scene camera's (or 50 mm on 36 mm). The Defocus node's parameters say
    the focus distance and whether it is in real scene units (``real``)."""
    depth = common.find_image(depth, "depth image")
    picture = common.find_image(picture, "picture") if picture else None
    read, real = reading(depth, near, far, real_distances)
    check(1.0, 0.0, f_stop, blur_max)
    lens_mm, sensor_mm = lens_of(scene)
    focal_length, sensor_width = focal_length or lens_mm, sensor_width or sensor_mm
    if not focus_distance:
        focus_distance = focus_at(depth, read, 0.5, 0.5)
    width = (picture or depth).size[0]
    scale = blur_scale(f_stop, focal_length, sensor_width, focus_distance, width)

    def make(tree, x, y):
        for node in [n for n in tree.nodes if common.tagged(n, KIND) and n.get("fathom_role") == "distance"]:
            tree.nodes.remove(node)  # the Map Range of setups made before units
        depth_node = common.depth_image_node(tree, KIND, depth, (x - 1400, y))
        inverse = common.distance_nodes(tree, KIND, common.image_output(depth_node), read, (x - 1150, y))
        focus, _ = common.setup_node(tree, KIND, "focus", common.math_idname(), (x - 650, y))
        focus.operation = "MULTIPLY_ADD"  # 1 - S / D
        tree.links.new(inverse, focus.inputs[0])
        focus.inputs[1].default_value, focus.inputs[2].default_value = -focus_distance, 1.0
        radius, _ = common.setup_node(tree, KIND, "radius", common.math_idname(), (x - 450, y))
        radius.operation = "ABSOLUTE"
        tree.links.new(focus.outputs[0], radius.inputs[0])
        defocus, _ = common.setup_node(tree, KIND, "defocus", "CompositorNodeDefocus", (x - 200, y))
        defocus.use_zbuffer = False  # Z is a radius (times z_scale), not a distance
        defocus.z_scale = scale
        defocus.blur_max = blur_max
        defocus.f_stop = f_stop  # informative only with Use Z-Buffer off
        tree.links.new(radius.outputs[0], common.socket(defocus.inputs, "Z"))
        defocus[common.PARAMS_KEY] = {
            "depth": depth.name,
            "f_stop": f_stop,
            "blur_max": blur_max,
            "focus_distance": focus_distance,
            "near": near or 0.0,
            "far": far or 0.0,
            "real": real,
            "real_distances": real_distances,
            "units": read.describe(),
            "focal_length": focal_length,
            "sensor_width": sensor_width,
        }
        return common.socket(defocus.inputs, "Image"), defocus.outputs[0]

    _, defocus = common.build_chain(scene, KIND, picture, make)
    return defocus


def focus_at(depth, read, u, v):
    """The distance at (u, v) of the picture (0..1, v from the bottom), in the reading ``read``."""
    try:
        d = sample_values(common.depth_array(depth), u, v)
    except ValueError as exc:  # engine InvalidSettingsError: outside the picture
        raise common.SetupError(str(exc)) from None
    focus = float(distances(np.array(d), read))
    if not math.isfinite(focus) or focus <= 0:
        raise common.SetupError(
            f"The point ({u:g}, {v:g}) is infinitely far (depth {d:g}): pick a point on "
            "a surface, or set a finite Far distance."
        )
    return focus


def describe_focus(node) -> str:
    """'focus 8.045 scene units' (or, for a relative map, with what the number assumes)."""
    values = node[common.PARAMS_KEY]
    if values.get("real"):
        return f"focus {values['focus_distance']:.4g} scene units ({values['units']})"
    return (
        f"focus {values['focus_distance']:.4g} (relative depth: distances assume near {values['near'] or 1:g}, "
        f"far {values['far'] or 'infinite'}; align the map to metric depth for scene units)"
    )


def defocus_node(scene):
    """The depth of field setup's Defocus node, or None."""
    tree = common.compositor_tree(scene, create=False)
    if tree is None:
        return None
    return next((n for n in tree.nodes if common.tagged(n, KIND) and n.get("fathom_role") == "defocus"), None)


def params(scene):
    """The values the scene's depth of field setup was built with, or None when it has none."""
    node = defocus_node(scene)
    return node[common.PARAMS_KEY].to_dict() if node is not None and common.PARAMS_KEY in node else None


def pick_focus(scene, u, v, *, depth=None, set_camera=False):
    """Focus the depth of field setup on the picture's point (u, v); returns the distance there (scene units
    when the map has them).

    Without a setup, ``depth`` names the depth image and the camera alone can be focused. With
    ``set_camera`` the scene camera's own DOF focus distance is set too (3D scenes)."""
    current = params(scene)
    if current is None and depth is None:
        raise common.SetupError(
            "There is no Fathom depth of field setup in this scene: add one first, "
            "or name a depth image to focus the camera from."
        )
    values = dict(current or {"near": 0.0, "far": 0.0})
    real_distances = bool(values.get("real_distances", True))
    depth_image = common.find_image(depth or values["depth"], "depth image")
    read, _ = reading(depth_image, values["near"] or None, values["far"] or None, real_distances)
    focus = focus_at(depth_image, read, u, v)
    if current is not None:
        values.update(focus_distance=focus, depth=depth_image.name)
        setup(
            scene,
            near=values["near"] or None,
            far=values["far"] or None,
            real_distances=real_distances,
            **{k: values[k] for k in ("depth", "f_stop", "blur_max", "focus_distance", "focal_length", "sensor_width")},
        )
    if set_camera:
        if scene.camera is None or scene.camera.type != "CAMERA":
            raise common.SetupError("The scene has no camera to focus: add one or set Scene > Camera.")
        dof = scene.camera.data.dof
        dof.use_dof = True
        dof.focus_object = None
        dof.focus_distance = focus
    return focus


def remove(scene) -> int:
    return common.remove_setup_nodes(scene, KIND)
