"""Scene Z (exact) (bridge.scene_z) in real Blender: the Z pass as a depth map, checked against an
independent render of the Z pass and against ray casts from the camera."""
import importlib
import sys
import tempfile
import types
from pathlib import Path

import bpy
import numpy as np
import pytest
from mathutils import Vector

ROOT = Path(__file__).resolve().parents[2]
WIDTH, HEIGHT = 160, 90


def load(name):
    """A repository module, imported as part of a package so its relative imports work."""
    if "fathom_src" not in sys.modules:
        package = types.ModuleType("fathom_src")
        package.__path__ = [str(ROOT)]
        sys.modules["fathom_src"] = package
    return importlib.import_module(f"fathom_src.{name}")


sz = load("bridge.scene_z")
DepthSettings = load("engine.settings").DepthSettings
read_exr = load("engine.exr").read_exr


@pytest.fixture(scope="module")
def scene():
    sys.path.insert(0, str(ROOT))
    try:
        from scripts.sample_scene import build_scene
    finally:
        sys.path.remove(str(ROOT))
    scene = build_scene(WIDTH, HEIGHT, 4)
    # A narrow pixel filter puts each pixel's first sample at its centre, where the ray casts go.
    scene.cycles.filter_width = 0.01
    scene.cycles.use_denoising = True
    return scene


@pytest.fixture(scope="module")
def reference_z(scene):
    """The Z pass rendered here, by hand, with the scene's own samples and denoising: what the user
    would get from a multilayer EXR."""
    layer = scene.view_layers[0]
    r, image = scene.render, scene.render.image_settings
    with tempfile.TemporaryDirectory() as folder:
        layer.use_pass_z = True
        image.media_type = "MULTI_LAYER_IMAGE"
        image.use_exr_interleave = True
        r.filepath = f"{folder}/z.exr"
        bpy.ops.render.render(write_still=True)
        z = read_exr(f"{folder}/z.exr").channels[f"{layer.name}.Depth.Z"]
        layer.use_pass_z = False
        image.media_type = "IMAGE"
        image.file_format = "PNG"
    return z


def pixel_ray(scene, camera, x, y):
    """Origin and direction of the camera ray through the centre of pixel (x, y), top row 0."""
    top_right, _, bottom_left, top_left = camera.data.view_frame(scene=scene)
    point = top_left + (top_right - top_left) * ((x + 0.5) / WIDTH) + (bottom_left - top_left) * ((y + 0.5) / HEIGHT)
    origin = camera.matrix_world.translation
    return origin, (camera.matrix_world @ point - origin).normalized()


def test_scene_z_is_the_z_pass_exactly(scene, reference_z):
    samples = scene.cycles.samples
    raw = sz.scene_depth(scene, DepthSettings(normalization="raw"))
    assert raw.depth.shape == (HEIGHT, WIDTH) and raw.depth.dtype == np.float32
    assert raw.model == "scene-z" and raw.near_is_bright is False
    hit = reference_z < 1e9
    assert 0.2 < hit.mean() < 0.95  # ground and objects, and sky
    np.testing.assert_array_equal(raw.depth[hit], reference_z[hit])  # 1-sample Z == the scene's Z
    assert np.all(raw.depth[~hit] == scene.camera.data.clip_end)  # background: as far as the camera sees
    # Settings restored: the pass, the samples, the denoising.
    assert not scene.view_layers[0].use_pass_z and scene.cycles.samples == samples and scene.cycles.use_denoising


def test_standard_is_min_max_of_inverse_depth_with_background_black(scene, reference_z):
    hit = reference_z < 1e9
    inverse = np.where(hit, 1.0 / np.where(hit, reference_z, 1.0), 0.0)
    expected = (inverse - inverse.min()) / (inverse.max() - inverse.min())
    standard = sz.scene_depth(scene, DepthSettings(normalization="standard"))
    assert standard.near_is_bright is True
    np.testing.assert_allclose(standard.depth, expected, atol=1e-6)
    assert np.all(standard.depth[~hit] == 0.0) and standard.depth.max() == pytest.approx(1.0)
    inverted = sz.scene_depth(scene, DepthSettings(normalization="standard", invert=True))
    assert inverted.near_is_bright is False
    np.testing.assert_allclose(inverted.depth, 1.0 - expected, atol=1e-6)


def test_z_is_planar_distance_along_the_camera_axis(scene):
    """Compare with ray casts through pixel centres: Z is the hit's distance along the camera's view
    axis, not the ray's length (the two differ by over 1 % towards the picture's edges)."""
    camera = scene.camera
    depsgraph = bpy.context.evaluated_depsgraph_get()
    forward = (camera.matrix_world.to_3x3() @ Vector((0.0, 0.0, -1.0))).normalized()
    raw = sz.scene_depth(scene, DepthSettings(normalization="raw")).depth
    checked = misses = 0
    for y in range(3, HEIGHT, 11):
        for x in range(2, WIDTH, 13):
            origin, direction = pixel_ray(scene, camera, x, y)
            found, location, *_ = scene.ray_cast(depsgraph, origin, direction)
            if not found:
                misses += 1
                assert raw[y, x] == camera.data.clip_end
                continue
            planar = (location - origin).dot(forward)
            assert raw[y, x] == pytest.approx(planar, rel=2e-4), (x, y)
            if abs((location - origin).length / planar - 1.0) > 0.01:
                assert raw[y, x] != pytest.approx((location - origin).length, rel=2e-3)
            checked += 1
    assert checked > 50 and misses > 10


@pytest.mark.parametrize("normalization", ["standard", "v2-style", "raw"])
def test_every_normalisation_puts_near_and_far_where_the_convention_says(scene, normalization):
    near = (HEIGHT - 1, WIDTH // 2)  # the ground at the bottom edge: the nearest surface
    sky = (0, 0)
    for invert in (False, True):
        result = sz.scene_depth(scene, DepthSettings(normalization=normalization, invert=invert))
        d = result.depth
        bright_near = result.near_is_bright
        assert bright_near == ((normalization != "raw") != invert)
        assert (d[near] > d[sky]) == bright_near


def test_background_only_is_a_clear_error(scene):
    camera = scene.camera
    rotation = camera.rotation_euler.copy()
    camera.rotation_euler = (np.radians(170.0), 0.0, 0.0)  # straight up, into the sky
    try:
        with pytest.raises(sz.RenderCaptureError, match="camera sees nothing"):
            sz.scene_depth(scene)
    finally:
        camera.rotation_euler = rotation


def test_the_view_layer_with_the_z_pass_is_the_one_in_use(scene, reference_z):
    first = scene.view_layers[0]
    other = scene.view_layers.new("Other")
    try:
        z, background, info = sz.render_z(scene)
        assert info["view_layer"] == first.name and other.use and not other.use_pass_z
        np.testing.assert_array_equal(z[~background], reference_z[~background])
        first.use = False  # now only "Other" renders
        z, background, info = sz.render_z(scene)
        assert info["view_layer"] == "Other" and not first.use
        np.testing.assert_array_equal(z[~background], reference_z[~background])
    finally:
        first.use = True
        scene.view_layers.remove(other)


def test_z_to_depth_marks_background_far_in_each_mode():
    z = np.array([[2.0, 4.0], [1e10, 8.0]], np.float32)
    background = z >= 1e9
    standard, bright = sz.z_to_depth(z, background, DepthSettings())
    np.testing.assert_allclose(standard, [[1.0, 0.5], [0.0, 0.25]])
    assert bright
    raw, bright = sz.z_to_depth(z, background, DepthSettings(normalization="raw"), far=100.0)
    np.testing.assert_array_equal(raw, [[2.0, 4.0], [100.0, 8.0]])
    assert not bright
    raw_inverted, bright = sz.z_to_depth(z, background, DepthSettings(normalization="raw", invert=True), far=100.0)
    np.testing.assert_array_equal(raw_inverted, [[98.0, 96.0], [0.0, 92.0]])
    assert bright
