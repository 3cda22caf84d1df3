"""Fog in the compositor: Map Range on the depth gives the fog's amount, Mix blends in its colour.

Depth values are Fathom's convention (near = bright, 0..1): there is no fog at ``near`` (default 1,
the nearest) and ``density`` of it from ``far`` on (default 0, the farthest), linear in between and
clamped, so the fog grows steadily with distance.
"""

from . import common

KIND = "fog"


def setup(scene, depth, picture=None, *, color=(0.75, 0.8, 0.85), near=1.0, far=0.0, density=1.0):
    """Build or update the fog setup; returns its Mix node."""
    depth = common.find_image(depth, "depth image")
    picture = common.find_image(picture, "picture") if picture else None
    if near == far:
        raise common.SetupError(f"Fog near and far are both {near:g}: they must differ.")
    if not 0.0 <= density <= 1.0:
        raise common.SetupError(f"Fog density {density:g} is out of range: use 0..1.")
    rgba = (*tuple(color)[:3], 1.0)

    def make(tree, x, y):
        depth_node = common.depth_image_node(tree, KIND, depth, (x - 700, y))
        amount, _ = common.setup_node(tree, KIND, "amount", common.map_range_idname(), (x - 450, y))
        common.set_clamp(amount, True)
        for name, value in {"From Min": near, "From Max": far, "To Min": 0.0, "To Max": density}.items():
            common.socket(amount.inputs, name).default_value = value
        tree.links.new(common.image_output(depth_node), common.socket(amount.inputs, "Value"))
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
        }
        return common.socket(mix.inputs, "A_Color", "Image"), common.socket(mix.outputs, "Result_Color", "Image")

    _, mix = common.build_chain(scene, KIND, picture, make)
    return mix


def remove(scene) -> int:
    return common.remove_setup_nodes(scene, KIND)
