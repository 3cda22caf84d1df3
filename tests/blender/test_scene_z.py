"""Scene Z (exact) (bridge.capture.scene_z) in real Blender, from the installed extension: the Z pass as a
depth map, checked against a Z pass rendered by hand and against ray casts from the camera.
Each test is one scenario in a fresh Blender (the ``blender`` fixture)."""

import textwrap
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
WIDTH, HEIGHT = 160, 90

# The sample scene with Blender's own sampling, denoising and pixel filter.
# build_scene starts from factory settings, which disables the profile's add-ons: reading the
# profile again enables the installed extension.
SCENE = f"""
import tempfile
import numpy as np
from mathutils import Vector
sys.path.insert(0, {str(ROOT)!r})
from scripts.sample_scene import build_scene
scene = build_scene({WIDTH}, {HEIGHT}, None)   # Blender's own sampling and denoising
load_profile()
assert tuple(addon_utils.check("bl_ext.user_default.fathom")) == (True, True)
from bl_ext.user_default.fathom.bridge.capture import scene_z as sz
from bl_ext.user_default.fathom.engine.exr import read_exr
from bl_ext.user_default.fathom.engine.settings import DepthSettings

def reference_z():
    # The Z pass rendered by hand with the scene's own samples and denoising, as a user would, with the
    # pixel filter narrowed so that the first sample (the one the Z pass keeps) goes through the pixel's centre.
    layer = scene.view_layers[0]
    width, scene.cycles.filter_width = scene.cycles.filter_width, 0.01
    r, image = scene.render, scene.render.image_settings
    with tempfile.TemporaryDirectory() as folder:
        layer.use_pass_z = True
        image.media_type = "MULTI_LAYER_IMAGE"
        image.use_exr_interleave = True
        r.filepath = folder + "/z.exr"
        bpy.ops.render.render(write_still=True)
        z = read_exr(folder + "/z.exr").channels[layer.name + ".Depth.Z"]
    layer.use_pass_z = False
    scene.cycles.filter_width = width
    image.media_type = "IMAGE"
    image.file_format = "PNG"
    return z
"""


def scenario(blender, code):
    return blender(SCENE + textwrap.dedent(code))


def test_scene_z_is_the_z_pass_exactly_in_every_normalisation(blender):
    got = scenario(
        blender,
        """
        z = reference_z()
        samples = scene.cycles.samples
        maps = {}
        for normalization in ("raw", "standard", "v2-style"):
            for invert in (False, True):
                m = sz.scene_depth(scene, DepthSettings(normalization=normalization, invert=invert))
                maps[f"{normalization} {invert}"] = {"depth": m.depth.tolist(), "bright": m.near_is_bright,
                                                     "model": m.model, "dtype": str(m.depth.dtype)}
        emit({"module": sz.__name__, "z": z.tolist(), "maps": maps, "clip_end": scene.camera.data.clip_end,
              "restored": [scene.view_layers[0].use_pass_z, scene.cycles.samples == samples,
                           scene.cycles.use_denoising, scene.render.image_settings.file_format,
                           scene.cycles.filter_width]})
    """,
    )
    assert got["module"] == "bl_ext.user_default.fathom.bridge.capture.scene_z"
    z = np.array(got["z"], np.float32)
    hit = z < 1e9  # Cycles' empty background is 1e10
    assert z.shape == (HEIGHT, WIDTH) and 0.2 < hit.mean() < 0.95  # ground, objects and sky
    maps = {k: (np.array(v["depth"], np.float32), v["bright"]) for k, v in got["maps"].items()}
    assert {v["model"] for v in got["maps"].values()} == {"scene-z"}
    assert {v["dtype"] for v in got["maps"].values()} == {"float32"}

    # raw: the Z pass itself (1 sample, no denoising == the scene's own samples), background at the clip end.
    raw, bright = maps["raw False"]
    np.testing.assert_array_equal(raw[hit], z[hit])
    assert np.all(raw[~hit] == np.float32(got["clip_end"])) and bright is False
    raw_inverted, bright = maps["raw True"]
    np.testing.assert_array_equal(raw_inverted, raw.max() - raw)
    assert bright is True

    # standard: min-max of inverse depth 1/z, background infinitely far (black), near = bright.
    inverse = np.where(hit, 1.0 / np.where(hit, z, 1.0), 0.0)
    expected = (inverse - inverse.min()) / (inverse.max() - inverse.min())
    standard, bright = maps["standard False"]
    np.testing.assert_allclose(standard, expected, atol=1e-6)
    assert bright is True and np.all(standard[~hit] == 0.0)
    inverted, bright = maps["standard True"]
    np.testing.assert_allclose(inverted, 1.0 - expected, atol=1e-6)
    assert bright is False

    # v2-style: 1st-99th percentile stretch of 1/z, then square root.
    lo, hi = np.percentile(inverse, (1.0, 99.0))
    v2, bright = maps["v2-style False"]
    np.testing.assert_allclose(v2, np.sqrt(np.clip((inverse - lo) / (hi - lo), 0.0, 1.0)), atol=1e-5)
    assert bright is True and np.all(v2[~hit] == 0.0)
    assert maps["v2-style True"][1] is False

    assert got["restored"] == [False, True, True, "PNG", 1.5]  # Blender's default pixel filter, restored


def test_z_is_planar_distance_along_the_camera_axis(blender):
    """Ray casts through pixel centres: Z is the hit's distance along the camera's view axis, not the
    ray's length (the two differ by over 1 % towards the picture's edges)."""
    got = scenario(
        blender,
        f"""
        raw = sz.scene_depth(scene, DepthSettings(normalization="raw")).depth
        camera = scene.camera
        depsgraph = bpy.context.evaluated_depsgraph_get()
        forward = (camera.matrix_world.to_3x3() @ Vector((0.0, 0.0, -1.0))).normalized()
        top_right, _, bottom_left, top_left = camera.data.view_frame(scene=scene)
        origin = camera.matrix_world.translation
        rows = []
        for y in range(3, {HEIGHT}, 11):
            for x in range(2, {WIDTH}, 13):
                point = (top_left + (top_right - top_left) * ((x + 0.5) / {WIDTH})
                         + (bottom_left - top_left) * ((y + 0.5) / {HEIGHT}))
                direction = (camera.matrix_world @ point - origin).normalized()
                found, location, *_ = scene.ray_cast(depsgraph, origin, direction)
                offset = location - origin
                rows.append([x, y, found, offset.dot(forward), offset.length, float(raw[y, x])])
        emit({{"rows": rows, "clip_end": camera.data.clip_end}})
    """,
    )
    hits = [r for r in got["rows"] if r[2]]
    misses = [r for r in got["rows"] if not r[2]]
    assert len(hits) > 50 and len(misses) > 10
    for x, y, _, planar, length, z in hits:
        assert z == pytest.approx(planar, rel=2e-4), (x, y)
    edges = [r for r in hits if r[4] / r[3] > 1.01]
    assert len(edges) > 20
    for x, y, _, planar, length, z in edges:
        assert z != pytest.approx(length, rel=2e-3), (x, y)
    assert all(r[5] == got["clip_end"] for r in misses)  # nothing hit: background, at the clip end


def test_the_view_layer_in_use_gives_the_z_pass_and_settings_come_back(blender):
    got = scenario(
        blender,
        """
        first = scene.view_layers[0]
        other = scene.view_layers.new("Other")
        z1, background1, info1 = sz.render_z(scene)
        state1 = [other.use, other.use_pass_z, first.use_pass_z]
        first.use = False  # now only "Other" renders
        z2, background2, info2 = sz.render_z(scene)
        state2 = [first.use, first.use_pass_z, other.use_pass_z]
        first.use = True
        emit({"layers": [info1["view_layer"], info2["view_layer"]], "states": [state1, state2],
              "same": bool(np.array_equal(z1, z2) and np.array_equal(background1, background2)),
              "background": float(background1.mean())})
    """,
    )
    assert got["layers"] == ["ViewLayer", "Other"]
    assert got["states"] == [[True, False, False], [False, False, False]]
    assert got["same"] and 0.05 < got["background"] < 0.8


def test_empty_view_is_a_clear_error_and_conversion_marks_background_far(blender):
    got = scenario(
        blender,
        """
        scene.camera.rotation_euler = (np.radians(170.0), 0.0, 0.0)  # straight up, into the sky
        try:
            sz.scene_depth(scene)
            error = None
        except Exception as e:
            error = [type(e).__name__, str(e)]
        z = np.array([[2.0, 4.0], [1e10, 8.0]], np.float32)
        background = z >= 1e9
        converted = {}
        for normalization, invert in (("standard", False), ("raw", False), ("raw", True)):
            d, bright = sz.z_to_depth(z, background, DepthSettings(normalization=normalization, invert=invert),
                                      far=100.0)
            converted[f"{normalization} {invert}"] = [d.tolist(), bright]
        emit({"error": error, "converted": converted})
    """,
    )
    assert got["error"][0] == "RenderCaptureError" and "camera sees nothing" in got["error"][1]
    converted = got["converted"]
    assert converted["standard False"] == [[[1.0, 0.5], [0.0, 0.25]], True]
    assert converted["raw False"] == [[[2.0, 4.0], [100.0, 8.0]], False]
    assert converted["raw True"] == [[[98.0, 96.0], [0.0, 92.0]], True]
