"""Setups in Blender's default colour management (AgX) and in real distances, in real Blender on the installed
extension: the render is the picture, Scene Z results know their distances, depth of field focuses in scene
units, a network's relative map is aligned to metric depth (sidebar operator, CLI, Python API), and what the
setups make is kept with the .blend."""

import json
import os
import re
import stat

import pytest

from tests.blender.setups_scene import SCENE

# The true planar distance along the camera's axis at the picture's centre, by ray casting.
CENTRE_DISTANCE = """
def centre_distance(scene):
    cam = scene.camera
    forward = cam.matrix_world.to_3x3() @ Vector((0, 0, -1))
    hit, location, *_ = scene.ray_cast(bpy.context.evaluated_depsgraph_get(), cam.matrix_world.translation, forward)
    assert hit
    return float((location - cam.matrix_world.translation).dot(forward))

def aim(scene, target):
    cam = scene.camera
    direction = Vector(target) - cam.location
    cam.rotation_euler = direction.to_track_quat("-Z", "Y").to_euler()
"""


def test_render_depth_displacement_reproduces_the_render_under_agx(blender):
    got = blender(
        SCENE
        + """
from bl_ext.user_default.fathom import api
scene = build_scene(checker=6.0)
view = [scene.view_settings.view_transform, scene.view_settings.look, scene.view_settings.exposure,
        scene.view_settings.gamma, scene.display_settings.display_device]
sampling = [scene.cycles.samples, scene.cycles.use_denoising, scene.cycles.pixel_filter_type,
            scene.cycles.filter_width]
original = rendered(scene)
result = api.generate_depth(source="render", backend="scene-z")
assert bpy.ops.fathom.setup_displacement(depth=result.image.name) == {"FINISHED"}   # no picture named
plane = bpy.data.objects["Fathom Depth Plane"]
texture = next(n.image for n in plane.active_material.node_tree.nodes if n.bl_idname == "ShaderNodeTexImage")
for obj in scene.objects:
    if obj.type == "MESH" and obj != plane:
        obj.hide_render = True   # only the displaced plane renders now
same = rendered(scene)
scene.camera.location.x += 1.0
moved = rendered(scene)
scene.camera.location.x -= 1.0
assert bpy.ops.fathom.setup_displacement(depth=result.image.name) == {"FINISHED"}   # again: updated in place
picture = next(i for i in bpy.data.images if i.get("fathom_setup") == "picture")
as_is = np.empty(len(picture.pixels), np.float32); picture.pixels.foreach_get(as_is)
texture.filepath, kept = picture.filepath, texture.filepath   # the render's pixels as they are, for comparison
texture.reload()
unsharpened = rendered(scene)
texture.filepath = kept
texture.reload()
everything = np.ones(same.shape[:2], bool)
emit({"view": view, "sampling": sampling, "psnr": psnr(same, original, everything),
      "unsharpened_psnr": psnr(unsharpened, original, everything),
      "moved_psnr": psnr(moved, original, everything),
      "texture": [texture.name, texture.colorspace_settings.name, texture.is_float, texture.use_fake_user],
      "pictures": sorted(i.name for i in bpy.data.images if i.get("fathom_setup") == "picture"),
      "generated": sorted(os.listdir(tmp + "/generated")),
      "params": plane["fathom_params"].to_dict()})
"""
    )
    print(json.dumps(got))
    assert got["view"] == ["AgX", "None", 0.0, 1.0, "sRGB"]  # Blender's defaults, untouched
    assert got["sampling"] == [4096, True, "BLACKMAN_HARRIS", 1.5]
    assert got["psnr"] >= 35.0, got
    # The render's pixels as they are pass Cycles' pixel filter a second time (measured 32-33 dB on this checker).
    assert got["unsharpened_psnr"] < got["psnr"] - 3.0, got
    assert got["moved_psnr"] < 25.0, got  # a moved camera sees the relief
    assert got["texture"][1:] == ["Linear Rec.709", True, True]  # the render's scene-linear pixels, kept
    assert "sharpened against Cycles' 1.5 px Blackman-Harris pixel filter" in got["params"]["colour"], got
    assert len(got["pictures"]) == 1 and got["params"]["metric"]
    assert len([f for f in got["generated"] if f.endswith("_picture_001.exr")]) == 1
    assert len([f for f in got["generated"] if f.endswith("_sharpened_001.exr")]) == 1  # updated in place


def test_a_display_referred_picture_renders_back_as_itself_under_agx(blender):
    got = blender(
        SCENE
        + """
scene = build_scene(checker=6.0)
rgb, depth, z, background = picture_and_depth(scene)   # rgb: the AgX render as a display-referred PNG
load_picture(rgb, "photo"); load_depth(depth)
assert bpy.ops.fathom.setup_displacement(depth="depth", picture="photo", strength=0.0) == {"FINISHED"}
plane = bpy.data.objects["Fathom Depth Plane"]
for obj in scene.objects:
    if obj.type == "MESH" and obj != plane:
        obj.hide_render = True
same = rendered(scene)
picture = np.rint(np.clip(rgb, 0, 1) * 255) / 255   # what the PNG holds
emit({"psnr": psnr(same, picture, np.ones(same.shape[:2], bool)), "note": plane["fathom_params"]["colour"]})
"""
    )
    print(json.dumps(got))
    assert got["psnr"] >= 35.0 and "inverse of the scene's AgX view" in got["note"], got
    assert "sharpened against Cycles'" in got["note"], got


def test_dof_focuses_on_the_centre_in_scene_units(blender, fathom_cli, tmp_path):
    got = blender(
        SCENE
        + CENTRE_DISTANCE
        + """
from mathutils import Vector
from bl_ext.user_default.fathom import api
scene = build_scene()
aim(scene, (1.4, 2.0, 1.1))   # the middle cube
result = api.generate_depth(source="render", backend="scene-z")
# Fog in scene units: none at 5, full at 30, linear in distance between (a black picture, white fog).
z, background, _ = scene_z.render_z(scene)
black = load_picture(np.zeros((H, W, 3)), "black")
assert bpy.ops.fathom.setup_fog(depth=result.image.name, picture="black", color=(1, 1, 1), near=5.0, far=30.0) == \
    {"FINISHED"}
fogged = render_capture.capture_compositor(scene, linear=True)[0][..., 0]
expected = np.where(background, 1.0, np.clip((z - 5.0) / 25.0, 0.0, 1.0))
fog_error = float(np.abs(fogged - expected).max())
bpy.ops.fathom.remove_setup(kind="FOG")
bpy.ops.wm.save_mainfile()
from bl_ext.user_default.fathom.engine.encode import read_metadata
meta = result.image["fathom"].to_dict()
emit({"true": centre_distance(scene), "image": result.image.name, "units": meta["units"], "model": meta["model"],
      "fog_error": fog_error,
      "file": read_metadata(result.path)})
"""
    )
    out = fathom_cli("setup", "dof", "--save", blend=tmp_path / "shot.blend")
    assert out.returncode == 0, out.stderr
    focus = float(re.search(r"focus ([0-9.e+]+) scene units", out.stdout).group(1))
    print(f"DoF focus {focus} scene units, true centre distance {got['true']}")
    assert focus == pytest.approx(got["true"], rel=0.01), (out.stdout, got)
    assert got["units"]["source"] == "scene-z" and got["units"]["quantity"] == "inverse-distance"
    assert got["model"] == "scene-z"
    assert got["fog_error"] < 1e-3, got["fog_error"]  # fog from real distances
    meta = got["file"]
    assert json.loads(meta["fathom.units"])["source"] == "scene-z" and meta["fathom.model"] == "scene-z"
    picked = fathom_cli("setup", "dof", "--focus-at", "0.5", "0.5", blend=tmp_path / "shot.blend")
    assert picked.returncode == 0 and f"focus {focus:.4g}" in picked.stdout, picked.stdout


def test_metric_alignment_recovers_scene_distances(blender, oracle_model_file, catalog_for, fathom_cli, tmp_path):
    catalog = catalog_for(da2_small=oracle_model_file)
    got = blender(
        SCENE
        + """
from bl_ext.user_default.fathom import api
from bl_ext.user_default.fathom.bridge.setups import units
from bl_ext.user_default.fathom.engine.exr import write_exr
scene = build_scene()
z, background, _ = scene_z.render_z(scene)
rng = np.random.default_rng(0)
red = np.where(background, 0.0, z.min() / np.where(background, 1.0, z)).astype(np.float32)
open(tmp + "/oracle.exr", "wb").write(write_exr({"R": red, "G": rng.uniform(0, 1, z.shape).astype(np.float32),
                                                  "B": np.zeros_like(red)}))
picture = bpy.data.images.load(tmp + "/oracle.exr"); picture.name = "oracle"
picture.colorspace_settings.name = "Non-Color"   # its values as they are: the oracle reads the true depth there
result = api.generate_depth(image="oracle", model="da2-small", resolution=518)
relative = units.image_distances(result.image)
metric, fit = api.align_depth(result.image, to="scene-z")
again, _ = api.align_depth(result.image, to="scene-z")
got = units.image_distances(metric)
hit = ~background
rel = np.abs(got[hit] / z[hit] - 1.0)
assert bpy.ops.fathom.metric_depth(depth=result.image.name, mode="SCENE_Z") == {"FINISHED"}
bpy.ops.wm.save_mainfile()
emit({"relative": relative is None, "median": float(np.median(rel)), "p75": float(np.percentile(rel, 75)),
      "residual": fit.residual, "same": again == metric, "name": metric.name, "depth": result.image.name,
      "metric_images": sorted(i.name for i in bpy.data.images if i.get("fathom_setup") == "metric"),
      "panel": hasattr(bpy.types, "FATHOM_PT_setups_view3d"), "fake_user": metric.use_fake_user})
""",
        catalog=catalog,
    )
    print(json.dumps(got))
    assert got["relative"]  # a network's map alone has no distances
    assert got["median"] < 0.01 and got["residual"] < 0.01, got
    assert got["same"] and got["metric_images"] == [got["name"]] and got["fake_user"]

    def setup_metric(*points):  # each point: U V DISTANCE
        options = [word for point in points for word in ("--point", *point.split())]
        return fathom_cli(
            "setup", "metric", "--depth", got["depth"], *options, blend=tmp_path / "shot.blend", catalog=catalog
        )

    out = setup_metric()
    assert out.returncode == 0 and "median error" in out.stdout, out.stderr
    points = setup_metric("0.1 0.2 5", "0.5 0.6 9")
    assert points.returncode == 0 and "2 picked points" in points.stdout, points.stderr
    bad = setup_metric("0.1 0.2 5")
    assert bad.returncode != 0 and "at least two points" in bad.stderr


def test_what_setups_make_is_kept_and_updated_in_place(blender, tmp_path):
    got = blender(
        SCENE
        + """
scene, rgb, depth, z, background = loaded_scene()
for _ in range(2):
    bpy.ops.fathom.setup_stereo(depth="depth", picture="source")
    bpy.ops.fathom.normal_map(depth="depth")
bpy.ops.fathom.setup_displacement(depth="depth", picture="source")
bpy.ops.fathom.export_mesh(format="OBJ")
bpy.ops.wm.save_mainfile()
bpy.ops.wm.open_mainfile(filepath=tmp + "/shot.blend")
emit({"files": sorted(os.listdir(tmp + "/generated")),
      "kept": sorted(i.name for i in bpy.data.images if i.get("fathom_setup") in ("stereo", "normal"))})
"""
    )
    assert got["kept"] == ["depth normal", "source stereo"], got
    assert not any(re.search(r"_00[2-9]\.", f) for f in got["files"]), got["files"]
    for name in got["files"]:
        mode = stat.S_IMODE(os.stat(tmp_path / "generated" / name).st_mode)
        assert mode == 0o644 & ~_umask(), (name, oct(mode))


def _umask():
    mask = os.umask(0o022)
    os.umask(mask)
    return mask
