"""Render and compositor capture (bridge.render_capture) in real Blender, on the sample scene."""
import importlib
import os
import sys
import types
from pathlib import Path

import bpy
import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
WIDTH, HEIGHT = 160, 90


def load_bridge(name):
    """The repository's bridge module, imported as part of a package so its relative imports work."""
    if "fathom_src" not in sys.modules:
        package = types.ModuleType("fathom_src")
        package.__path__ = [str(ROOT)]
        sys.modules["fathom_src"] = package
    return importlib.import_module(f"fathom_src.bridge.{name}")


rc = load_bridge("render_capture")


@pytest.fixture(scope="module")
def scene():
    sys.path.insert(0, str(ROOT))
    try:
        from scripts.sample_scene import build_scene
    finally:
        sys.path.remove(str(ROOT))
    return build_scene(WIDTH, HEIGHT, 4)


def image_settings_state(scene):
    r = scene.render
    state = {name: getattr(r.image_settings, name) for name in rc._IMAGE_SETTINGS}
    state.update(filepath=r.filepath, use_file_extension=r.use_file_extension, use_compositing=r.use_compositing,
                 use_sequencer=r.use_sequencer, camera=scene.camera.name if scene.camera else None)
    return state


@pytest.fixture
def odd_settings(scene):
    """Output settings unlike any a capture uses, so that a missed restore shows."""
    r = scene.render
    r.filepath = "//frames/shot_"
    r.use_file_extension = True
    r.use_compositing = True
    r.image_settings.file_format = "OPEN_EXR"
    r.image_settings.color_depth = "16"
    r.image_settings.exr_codec = "PIZ"
    r.image_settings.color_mode = "RGBA"
    before = image_settings_state(scene)
    yield before
    assert image_settings_state(scene) == before


def test_render_has_the_scene_size_times_percentage_and_is_not_black(scene):
    scene.render.resolution_percentage = 50
    try:
        rgb, info = rc.render_scene(scene)
    finally:
        scene.render.resolution_percentage = 100
    assert rgb.shape == (HEIGHT // 2, WIDTH // 2, 3) and rgb.dtype == np.float32
    assert (info["width"], info["height"], info["kind"], info["camera"]) == (WIDTH // 2, HEIGHT // 2, "render", "Camera")
    assert 0.0 <= rgb.min() and rgb.max() <= 1.0
    assert rgb.mean() > 0.2 and rgb.std() > 0.05
    # Top row first: the sky (blue) is at the top, the ground at the bottom.
    sky, ground = rgb[:5].mean(axis=(0, 1)), rgb[-5:].mean(axis=(0, 1))
    assert sky[2] > sky[0] and sky[2] > ground[2]


def test_render_capture_restores_every_setting(scene, odd_settings):
    rc.render_scene(scene)
    rc.render_scene(scene, linear=True)


def test_settings_and_temporary_file_are_restored_on_error(scene, odd_settings):
    with pytest.raises(KeyError):
        with rc.rendered_file(scene, "png16") as path:
            assert os.path.isfile(path) and scene.render.image_settings.file_format == "PNG"
            raise KeyError("boom")
    assert not os.path.exists(os.path.dirname(path))


def test_view_transform_is_applied_and_linear_is_scene_light(scene):
    """With the Standard view transform the PNG capture is the sRGB curve of the linear capture."""
    view = scene.view_settings
    old = view.view_transform, view.look
    view.view_transform, view.look = "Standard", "None"
    try:
        shown, info = rc.render_scene(scene)
        linear, linear_info = rc.render_scene(scene, linear=True)
    finally:
        view.view_transform, view.look = old
    assert info["colour"] == "view transform Standard" and linear_info["colour"] == "scene linear"
    x = np.clip(linear, 0.0, 1.0)
    srgb = np.where(x <= 0.0031308, 12.92 * x, 1.055 * x ** (1 / 2.4) - 0.055)
    assert np.abs(shown - srgb).max() < 4e-3
    assert np.abs(shown - linear).mean() > 0.05  # the two really differ


def test_no_camera_is_a_clear_error(scene, odd_settings):
    camera = scene.camera
    scene.camera = None
    try:
        with pytest.raises(rc.RenderCaptureError, match="no active camera: add one or set Scene > Camera"):
            rc.render_scene(scene)
    finally:
        scene.camera = camera
    with pytest.raises(rc.RenderCaptureError, match="not a camera"):
        rc.render_scene(scene, camera=bpy.data.objects["Near sphere"])


def test_a_given_camera_renders_and_the_active_one_stays(scene):
    other = bpy.data.objects.new("Top camera", bpy.data.cameras.new("Top camera"))
    scene.collection.objects.link(other)
    other.location = (0.0, 6.0, 40.0)  # straight down onto the ground
    try:
        top, info = rc.render_scene(scene, camera=other)
        front, _ = rc.render_scene(scene)
        assert info["camera"] == "Top camera" and scene.camera.name == "Camera"
        assert np.abs(top - front).mean() > 0.05
    finally:
        bpy.data.objects.remove(other)


def test_progress_follows_the_render(scene):
    seen = []
    rc.render_scene(scene, progress=lambda fraction, message: seen.append((fraction, message)))
    fractions = [f for f, _ in seen]
    assert fractions == sorted(fractions) and 0.0 <= fractions[0] and fractions[-1] == 1.0
    assert any("sample 4 of 4" in m for _, m in seen)
    assert not bpy.app.handlers.render_stats  # the progress handler is gone


def compositor_tree(scene):
    """The scene's compositor tree, made empty: 5.0's node group or 4.x's scene.node_tree."""
    if hasattr(scene, "compositing_node_group"):
        tree = bpy.data.node_groups.new("Compositing", "CompositorNodeTree")
        tree.interface.new_socket("Image", in_out="OUTPUT", socket_type="NodeSocketColor")
        scene.compositing_node_group = tree
        return tree, tree.nodes.new("NodeGroupOutput")
    scene.use_nodes = True
    tree = scene.node_tree
    tree.nodes.clear()
    return tree, tree.nodes.new("CompositorNodeComposite")


def test_compositor_capture_reflects_the_tree(scene, odd_settings):
    if hasattr(scene, "compositing_node_group"):
        scene.compositing_node_group = None
        with pytest.raises(rc.RenderCaptureError, match="no compositor node tree"):
            rc.capture_compositor(scene)
    tree, output = compositor_tree(scene)
    try:
        with pytest.raises(rc.RenderCaptureError, match="has no connected"):
            rc.capture_compositor(scene)
        layers = tree.nodes.new("CompositorNodeRLayers")
        tree.links.new(layers.outputs["Image"], output.inputs[0])
        plain, info = rc.capture_compositor(scene, linear=True)
        assert info["kind"] == "compositor" and plain.shape == (HEIGHT, WIDTH, 3)
        render, _ = rc.render_scene(scene, linear=True)
        np.testing.assert_allclose(plain, render, atol=1e-6)

        invert = tree.nodes.new("CompositorNodeInvert")
        tree.links.new(layers.outputs["Image"], invert.inputs["Color"])
        tree.links.new(invert.outputs[0], output.inputs[0])
        inverted, _ = rc.capture_compositor(scene, linear=True)
        np.testing.assert_allclose(inverted, 1.0 - plain, atol=1e-5)
        shown, _ = rc.capture_compositor(scene)  # view-transformed, as the user sees it
        assert shown.shape == (HEIGHT, WIDTH, 3) and np.abs(shown - rc.render_scene(scene)[0]).mean() > 0.1
    finally:
        bpy.data.node_groups.remove(tree) if hasattr(scene, "compositing_node_group") else tree.nodes.clear()
