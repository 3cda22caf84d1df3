"""Depth of field in the compositor: a Defocus node whose Z input is a blur radius made from the depth.

From depth to distance. A Fathom depth map (near = bright, 0..1) is relative inverse depth, so it is
read as linear in 1/distance between two chosen distances:

    1/D(d) = d / near + (1 - d) / far          (far = 0 means infinitely far: 1/far = 0)

d = 1 is ``near`` away, d = 0 is ``far`` away. For a Scene Z map with 'standard' normalisation and
background in view this is exact with near = the nearest surface and far = infinity.

From distance to blur. A thin lens of focal length f at f-number N focused at S gives a circle of
confusion of diameter  c = f^2 / (N (S - f)) * |1 - S / D|  on the sensor. With the distance above,
|1 - S / D| = |1 - S (d / near + (1 - d) / far)| is linear in d, so the whole chain is two nodes:
a Map Range from d to 1 - S / D, an Absolute, and Defocus with Use Z-Buffer off, whose Z input is then
a radius in pixels times Z Scale: Z Scale = c's factor / 2 in pixels (the picture's width over the
sensor width). Max Blur caps the radius. The scene camera is not used or changed (Defocus with Use
Z-Buffer on would take focus and lens from it), so this works for plain pictures too.
"""

import math

import numpy as np

from . import common

KIND = "dof"
DEFAULT_FOCAL_MM, DEFAULT_SENSOR_MM = 50.0, 36.0


def distance(d, near, far):
    """Depth value(s) d (near = bright) -> distance in scene units (see the module's notes)."""
    inv_far = 1.0 / far if far > 0 else 0.0
    inverse = np.asarray(d, np.float64) / near + (1.0 - np.asarray(d, np.float64)) * inv_far
    return np.where(inverse > 0, 1.0 / np.maximum(inverse, 1e-12), np.inf)


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
    near=1.0,
    far=0.0,
    focal_length=0.0,
    sensor_width=0.0,
):
    """Build or update the depth of field setup; returns the Defocus node.

    ``depth``, ``picture``: images (or names). Without ``picture`` the setup blurs what fed the
    compositor's output. ``focus_distance`` 0: where the picture's centre is. ``focal_length`` and
    ``sensor_width`` 0: the scene camera's (or 50 mm on 36 mm)."""
    depth = common.find_image(depth, "depth image")
    picture = common.find_image(picture, "picture") if picture else None
    check(near, far, f_stop, blur_max)
    lens_mm, sensor_mm = lens_of(scene)
    focal_length, sensor_width = focal_length or lens_mm, sensor_width or sensor_mm
    if not focus_distance:
        focus_distance = float(distance(sample(depth, 0.5, 0.5), near, far))
    width = (picture or depth).size[0]
    scale = blur_scale(f_stop, focal_length, sensor_width, focus_distance, width)
    inv_far = 1.0 / far if far > 0 else 0.0

    def make(tree, x, y):
        depth_node = common.depth_image_node(tree, KIND, depth, (x - 900, y))
        ramp, _ = common.setup_node(tree, KIND, "distance", common.map_range_idname(), (x - 650, y))
        common.set_clamp(ramp, False)
        values = {
            "From Min": 0.0,
            "From Max": 1.0,
            "To Min": 1.0 - focus_distance * inv_far,
            "To Max": 1.0 - focus_distance / near,
        }
        for name, value in values.items():
            common.socket(ramp.inputs, name).default_value = value
        tree.links.new(common.image_output(depth_node), common.socket(ramp.inputs, "Value"))
        radius, _ = common.setup_node(tree, KIND, "radius", common.math_idname(), (x - 450, y))
        radius.operation = "ABSOLUTE"
        tree.links.new(common.socket(ramp.outputs, "Result", "Value"), radius.inputs[0])
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
            "near": near,
            "far": far,
            "focal_length": focal_length,
            "sensor_width": sensor_width,
        }
        return common.socket(defocus.inputs, "Image"), defocus.outputs[0]

    _, defocus = common.build_chain(scene, KIND, picture, make)
    return defocus


def params(scene):
    """The values the scene's depth of field setup was built with, or None when it has none."""
    tree = common.compositor_tree(scene, create=False)
    if tree is None:
        return None
    node = next((n for n in tree.nodes if common.tagged(n, KIND) and n.get("fathom_role") == "defocus"), None)
    return node[common.PARAMS_KEY].to_dict() if node is not None and common.PARAMS_KEY in node else None


def sample(depth_image, u, v, radius=1):
    """The depth at (u, v) in 0..1 (u from the left, v from the bottom, as in the Image Editor): the
    median of the (2 radius + 1)^2 pixels around it, so one noisy pixel does not decide the focus."""
    if not (0.0 <= u <= 1.0 and 0.0 <= v <= 1.0):
        raise common.SetupError(f"The point ({u:g}, {v:g}) is outside the picture: use 0..1 for both.")
    values = common.depth_array(depth_image)
    h, w = values.shape
    col = min(w - 1, int(u * w))
    row = min(h - 1, int((1.0 - v) * h))  # the array's rows run from the top
    window = values[max(0, row - radius) : row + radius + 1, max(0, col - radius) : col + radius + 1]
    return float(np.median(window))


def pick_focus(scene, u, v, *, depth=None, set_camera=False):
    """Focus the depth of field setup on the picture's point (u, v); returns the distance there.

    Without a setup, ``depth`` names the depth image and the camera alone can be focused. With
    ``set_camera`` the scene camera's own DOF focus distance is set too (3D scenes)."""
    current = params(scene)
    if current is None and depth is None:
        raise common.SetupError(
            "There is no Fathom depth of field setup in this scene: add one first, "
            "or name a depth image to focus the camera from."
        )
    values = dict(current or {"near": 1.0, "far": 0.0})
    depth_image = common.find_image(depth or values["depth"], "depth image")
    d = sample(depth_image, u, v)
    focus = float(distance(d, values["near"], values["far"]))
    if not math.isfinite(focus):
        raise common.SetupError(
            f"The point ({u:g}, {v:g}) is infinitely far (depth {d:g}): pick a point on "
            "a surface, or set a finite Far distance."
        )
    if current is not None:
        values.update(focus_distance=focus, depth=depth_image.name)
        setup(
            scene,
            **{
                k: values[k]
                for k in (
                    "depth",
                    "f_stop",
                    "blur_max",
                    "focus_distance",
                    "near",
                    "far",
                    "focal_length",
                    "sensor_width",
                )
            },
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
