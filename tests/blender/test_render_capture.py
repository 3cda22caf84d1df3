"""Render and compositor capture (bridge.capture.render) in real Blender, from the installed extension,
on the sample scene. Each test is one scenario in a fresh Blender (the ``blender`` fixture)."""

import textwrap
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
WIDTH, HEIGHT = 160, 90

# The sample scene, then the extension's module. build_scene starts from factory settings, which
# disables the profile's add-ons: reading the profile again enables the installed extension.
SCENE = f"""
import os
import numpy as np
sys.path.insert(0, {str(ROOT)!r})
from scripts.sample_scene import build_scene
scene = build_scene({WIDTH}, {HEIGHT}, 4)
load_profile()
assert tuple(addon_utils.check("bl_ext.user_default.fathom")) == (True, True)
from bl_ext.user_default.fathom.bridge.capture import render as rc

def settings_state():
    r = scene.render
    state = {{name: getattr(r.image_settings, name) for name in rc._IMAGE_SETTINGS}}
    state.update(filepath=r.filepath, use_file_extension=r.use_file_extension, use_compositing=r.use_compositing,
                 use_sequencer=r.use_sequencer, camera=scene.camera.name if scene.camera else None)
    return state

def odd_settings():
    # Output settings unlike any a capture uses, so that a missed restore shows.
    r = scene.render
    r.filepath, r.use_file_extension, r.use_compositing = "//frames/shot_", True, True
    r.image_settings.file_format = "OPEN_EXR"
    r.image_settings.color_depth, r.image_settings.exr_codec, r.image_settings.color_mode = "16", "PIZ", "RGBA"
    return settings_state()

def error_of(call, *args, **kwargs):
    try:
        call(*args, **kwargs)
    except Exception as e:
        return [type(e).__name__, str(e)]
    return None
"""


def scenario(blender, code):
    return blender(SCENE + textwrap.dedent(code))


def test_render_has_the_scene_size_times_percentage_and_the_view_transform(blender):
    got = scenario(
        blender,
        """
        scene.render.resolution_percentage = 50
        rgb, info = rc.render_scene(scene)
        scene.render.resolution_percentage = 100
        view = scene.view_settings
        agx = view.view_transform
        view.view_transform, view.look = "Standard", "None"
        shown, shown_info = rc.render_scene(scene)
        linear, linear_info = rc.render_scene(scene, linear=True)
        emit({"module": rc.__name__, "dtype": str(rgb.dtype), "rgb": rgb.tolist(), "info": info, "agx": agx,
              "shown": shown.tolist(), "linear": linear.tolist(),
              "colours": [shown_info["colour"], linear_info["colour"]]})
    """,
    )
    assert got["module"] == "bl_ext.user_default.fathom.bridge.capture.render"
    rgb = np.array(got["rgb"])
    assert rgb.shape == (HEIGHT // 2, WIDTH // 2, 3) and got["dtype"] == "float32"
    info = got["info"]
    assert (info["width"], info["height"], info["kind"], info["camera"]) == (
        WIDTH // 2,
        HEIGHT // 2,
        "render",
        "Camera",
    )
    assert info["colour"] == f"view transform {got['agx']}"
    assert 0.0 <= rgb.min() and rgb.max() <= 1.0 and rgb.mean() > 0.2 and rgb.std() > 0.05
    # Top row first: the sky (blue) at the top, the ground at the bottom.
    sky, ground = rgb[:5].mean(axis=(0, 1)), rgb[-5:].mean(axis=(0, 1))
    assert sky[2] > sky[0] and sky[2] > ground[2]
    # With the Standard view transform the capture is the sRGB curve of the scene-linear render.
    assert got["colours"] == ["view transform Standard", "scene linear"]
    shown, linear = np.array(got["shown"]), np.array(got["linear"])
    x = np.clip(linear, 0.0, 1.0)
    srgb = np.where(x <= 0.0031308, 12.92 * x, 1.055 * x ** (1 / 2.4) - 0.055)
    assert np.abs(shown - srgb).max() < 4e-3
    assert np.abs(shown - linear).mean() > 0.05  # the two really differ


def test_every_setting_is_restored_after_a_capture_and_on_error(blender):
    got = scenario(
        blender,
        """
        before = odd_settings()
        rc.render_scene(scene)
        after_render = settings_state()
        rc.render_scene(scene, linear=True)
        after_linear = settings_state()
        inside = {}
        try:
            with rc.rendered_file(scene, "png16") as path:
                inside = {"file": os.path.isfile(path), "format": scene.render.image_settings.file_format}
                raise KeyError("boom")
        except KeyError:
            pass
        emit({"before": before, "after": [after_render, after_linear, settings_state()], "inside": inside,
              "folder_left": os.path.exists(os.path.dirname(path)), "handlers": len(bpy.app.handlers.render_stats)})
    """,
    )
    assert got["before"]["file_format"] == "OPEN_EXR" and got["before"]["color_depth"] == "16"
    for after in got["after"]:
        assert after == got["before"]
    assert got["inside"] == {"file": True, "format": "PNG"}
    assert not got["folder_left"] and got["handlers"] == 0


def test_no_camera_is_a_clear_error_and_a_given_camera_renders(blender):
    got = scenario(
        blender,
        """
        before = odd_settings()
        camera = scene.camera
        scene.camera = None
        no_camera = error_of(rc.render_scene, scene)
        no_camera_comp = error_of(rc.capture_compositor, scene)
        scene.camera = camera
        not_camera = error_of(rc.render_scene, scene, camera=bpy.data.objects["Near sphere"])
        other = bpy.data.objects.new("Top camera", bpy.data.cameras.new("Top camera"))
        scene.collection.objects.link(other)
        other.location = (0.0, 6.0, 40.0)  # straight down onto the ground
        top, info = rc.render_scene(scene, camera=other)
        front, _ = rc.render_scene(scene)
        emit({"no_camera": no_camera, "not_camera": not_camera, "no_camera_comp": no_camera_comp,
              "info": info, "active": scene.camera.name, "difference": float(np.abs(top - front).mean()),
              "same": before == settings_state()})
    """,
    )
    assert got["no_camera"] == ["RenderCaptureError", "The scene has no active camera: add one or set Scene > Camera."]
    assert got["no_camera_comp"][0] == "RenderCaptureError"
    assert got["not_camera"] == ["RenderCaptureError", "'Near sphere' is not a camera: pick a camera object."]
    assert got["info"]["camera"] == "Top camera" and got["active"] == "Camera"
    assert got["difference"] > 0.05 and got["same"]


def test_progress_follows_the_render(blender):
    got = scenario(
        blender,
        """
        seen = []
        rc.render_scene(scene, progress=lambda fraction, message: seen.append((fraction, message)))
        emit({"seen": seen, "handlers": len(bpy.app.handlers.render_stats)})
    """,
    )
    fractions = [f for f, _ in got["seen"]]
    assert fractions == sorted(fractions) and 0.0 <= fractions[0] and fractions[-1] == 1.0
    assert any("sample 4 of 4" in m for _, m in got["seen"])
    assert got["handlers"] == 0  # the progress handler is gone


def test_compositor_capture_reflects_the_tree(blender):
    got = scenario(
        blender,
        """
        before = odd_settings()
        errors = []
        if hasattr(scene, "compositing_node_group"):  # Blender 5.0+
            scene.compositing_node_group = None
            errors.append(error_of(rc.capture_compositor, scene))
            tree = bpy.data.node_groups.new("Compositing", "CompositorNodeTree")
            tree.interface.new_socket("Image", in_out="OUTPUT", socket_type="NodeSocketColor")
            scene.compositing_node_group = tree
            output = tree.nodes.new("NodeGroupOutput")
        else:  # 4.2 to 4.5
            scene.use_nodes = True
            tree = scene.node_tree
            tree.nodes.clear()
            output = tree.nodes.new("CompositorNodeComposite")
        errors.append(error_of(rc.capture_compositor, scene))
        layers = tree.nodes.new("CompositorNodeRLayers")
        tree.links.new(layers.outputs["Image"], output.inputs[0])
        # A File Output node saving the render: a capture must not write (or overwrite) its files.
        saver = tree.nodes.new("CompositorNodeOutputFile")
        saved = os.path.join(tmp, "saved")
        if hasattr(saver, "file_output_items"):  # 5.0
            saver.file_output_items.new("RGBA", "Image")
            saver.directory = saved
        else:
            saver.base_path = saved
        tree.links.new(layers.outputs["Image"], saver.inputs["Image"])
        plain, info = rc.capture_compositor(scene, linear=True)
        render, _ = rc.render_scene(scene, linear=True)
        invert = tree.nodes.new("CompositorNodeInvert")
        tree.links.new(layers.outputs["Image"], invert.inputs["Color"])
        tree.links.new(invert.outputs[0], output.inputs[0])
        inverted, _ = rc.capture_compositor(scene, linear=True)
        shown, _ = rc.capture_compositor(scene)
        shown_render, _ = rc.render_scene(scene)
        captured_saved = os.path.exists(saved)
        bpy.ops.render.render(write_still=False)  # a real render does write the File Output node's file
        emit({"file_output": [captured_saved, saver.mute, os.path.isdir(saved) and len(os.listdir(saved))],
              "errors": errors, "info": info, "plain": plain.tolist(), "render": render.tolist(),
              "inverted": inverted.tolist(), "shown": shown.tolist(), "shown_render": shown_render.tolist(),
              "same": before == settings_state()})
    """,
    )
    errors = got["errors"]
    assert all(e[0] == "RenderCaptureError" for e in errors)
    if len(errors) == 2:
        assert "no compositor node tree" in errors[0][1]
    assert "has no connected" in errors[-1][1]
    plain, render, inverted = (np.array(got[k]) for k in ("plain", "render", "inverted"))
    assert got["info"]["kind"] == "compositor" and plain.shape == (HEIGHT, WIDTH, 3)
    np.testing.assert_allclose(plain, render, atol=1e-6)  # Render Layers -> output: the render
    np.testing.assert_allclose(inverted, 1.0 - plain, atol=1e-5)  # an Invert node: its result
    shown, shown_render = np.array(got["shown"]), np.array(got["shown_render"])
    assert shown.shape == (HEIGHT, WIDTH, 3) and np.abs(shown - shown_render).mean() > 0.1
    assert got["same"]
    assert got["file_output"] == [False, False, 1]  # nothing written by captures, node unmuted again
