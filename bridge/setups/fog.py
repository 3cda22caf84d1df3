"""Fog in the compositor: Map Range on the distance gives the fog's amount, Mix blends in its colour.

A map that knows its distances (Scene Z, a metric alignment: engine.units) is read in scene units: no fog
at ``near`` (default: the nearest surface in the map) and ``density`` of it from ``far`` on (default: the
farthest surface; empty background is infinitely far, so fully fogged), linear in distance in between.
A relative map is read in its own values (near = bright, 0..1): no fog at ``near`` (default 1, the
nearest) and ``density`` from ``far`` on (default 0, the farthest).
"""

from ...engine.units import DepthUnits
from . import common, units

KIND = "fog"


def setup(scene, depth, picture=None, *, color=(0.75, 0.8, 0.85), near=None, far=None, density=1.0):
    """Build or update the fog setup; returns its Mix node (its parameters say whether ``real`` distances)."""
    depth = common.find_image(depth, "depth image")
    picture = common.find_image(picture, "picture") if picture else None
    own = units.image_units(depth)
    real = own is not None and own.has_distances
    if real:
        read = own
        near = own.near if near is None else near
        far = (own.far if own.far is not None else 10.0 * (near or 1.0)) if far is None else far
    else:
        read = DepthUnits("distance", "depth values")  # the values themselves
        near, far = (1.0 if near is None else near), (0.0 if far is None else far)
    if near == far:
        raise common.SetupError(f"Fog near and far are both {near:g}: they must differ.")
    if not 0.0 <= density <= 1.0:
        raise common.SetupError(f"Fog density {density:g} is out of range: use 0..1.")
    rgba = (*tuple(color)[:3], 1.0)

    def make(tree, x, y):
        depth_node = common.depth_image_node(tree, KIND, depth, (x - 1200, y))
        value = common.distance_nodes(tree, KIND, common.image_output(depth_node), read, (x - 950, y), inverse=False)
        amount, _ = common.setup_node(tree, KIND, "amount", common.map_range_idname(), (x - 450, y))
        common.set_clamp(amount, True)
        for name, v in {"From Min": near, "From Max": far, "To Min": 0.0, "To Max": density}.items():
            common.socket(amount.inputs, name).default_value = v
        tree.links.new(value, common.socket(amount.inputs, "Value"))
        mix, _ = common.setup_node(tree, KIND, "fog", common.mix_idname(), (x - 200, y))
        if common.IS_5:
            mix.data_type = "RGBA"
        mix.blend_type = "MIX"
        common.socket(mix.inputs, "B_Color", "Image_001").default_value = rgba
        tree.links.new(
            common.socket(amount.outputs, "Result", "Value"), common.socket(mix.inputs, "Factor_Float", "Fac")
        )
        mix[common.PARAMS_KEY] = {
            "depth": depth.name,
            "color": list(rgba[:3]),
            "near": near,
            "far": far,
            "density": density,
            "real": real,
        }
        return common.socket(mix.inputs, "A_Color", "Image"), common.socket(mix.outputs, "Result_Color", "Image")

    _, mix = common.build_chain(scene, KIND, picture, make)
    return mix


def remove(scene) -> int:
    return common.remove_setup_nodes(scene, KIND)
