"""Displacement setup in real Blender, through the installed extension's operators: the plane seen from
the original camera reproduces the picture; moved, it shows parallax; re-running updates; export; removal."""

import pytest

from tests.blender.setups_scene import SCENE


@pytest.mark.parametrize("camera", ["perspective", "orthographic, shifted, vertical sensor fit"])
def test_displaced_plane_reproduces_the_picture_and_shows_parallax(blender, camera):
    got = blender(
        SCENE
        + f"""
scene = build_scene()
if {camera.startswith("ortho")!r}:
    scene.camera.data.type = "ORTHO"
    scene.camera.data.ortho_scale = 14.0
    scene.camera.data.shift_x, scene.camera.data.shift_y = 0.1, -0.05
    scene.camera.data.sensor_fit = "VERTICAL"
    scene.camera.rotation_euler.x = math.radians(80)  # more ground, still some sky
"""
        + """
rgb, depth, z, background = picture_and_depth(scene)
picture, depth_image = load_picture(rgb, "source"), load_depth(depth)
user_objects = sorted(o.name for o in scene.objects)
for obj in scene.objects:
    if obj.type == "MESH":
        obj.hide_render = True   # only the displaced plane renders now
for _ in range(2):  # idempotent: the second run updates the first
    assert bpy.ops.fathom.setup_displacement(depth="depth", picture="source", distance=20.0, strength=12.0,
                                             resolution=160, subdivisions=1) == {"FINISHED"}
plane = bpy.data.objects["Fathom Depth Plane"]
ev = plane.evaluated_get(bpy.context.evaluated_depsgraph_get()).data
co = np.empty(len(ev.vertices) * 3, np.float32); ev.vertices.foreach_get("co", co)
view_depth = -co.reshape(-1, 3)[:, 2]  # the plane's space is the camera's
same = rendered(scene)
fg = ~background
camera = scene.camera
camera.location.x += 1.0
moved = rendered(scene)
camera.location.x -= 1.0
flat = bpy.ops.fathom.setup_displacement(depth="depth", picture="source", distance=20.0, strength=0.0, resolution=160)
faces_all = len(plane.evaluated_get(bpy.context.evaluated_depsgraph_get()).data.polygons)
bpy.ops.fathom.setup_displacement(depth="depth", picture="source", distance=20.0, strength=12.0, resolution=160,
                                  stretch=0.02, smooth=1)
faces_cut = len(plane.evaluated_get(bpy.context.evaluated_depsgraph_get()).data.polygons)
emit({"objects": tagged("displacement")[0], "modifiers": [m.name for m in plane.modifiers],
      "psnr": psnr(same, rgb, fg), "fg": float(fg.mean()), "moved_psnr": psnr(moved, rgb, fg),
      "depth_span": float(view_depth.max() - view_depth.min()), "nearest": float(view_depth.min()),
      "faces": [faces_all, faces_cut], "user_objects": user_objects})
"""
    )
    assert got["objects"] == ["Fathom Depth Plane"]
    assert got["modifiers"] == ["Fathom Subdivision", "Fathom Depth Displace"]
    assert got["fg"] > 0.25
    print(got)
    # Blender's default colour management (AgX): the display-referred picture is shown through the inverse of
    # the view transform, so the plane renders back as the picture.
    assert got["psnr"] >= 35.0, got
    assert got["moved_psnr"] < got["psnr"] - 20.0, got  # a moved camera sees something else
    assert 11.0 < got["depth_span"] < 12.5 and got["nearest"] > 7.5  # near = bright moved ~12 units closer
    assert 0 < got["faces"][1] < got["faces"][0]  # stretched faces at depth edges are cut


def test_parallax_export_and_removal(blender, tmp_path):
    got = blender(
        SCENE
        + """
import os
scene, rgb, depth, z, background = loaded_scene()
before = sorted(o.name for o in bpy.data.objects)
bpy.ops.fathom.setup_displacement(depth="depth", picture="source", parallax="ORBIT", amplitude=0.2, resolution=64)
bpy.ops.fathom.setup_displacement(depth="depth", picture="source", parallax="ORBIT", amplitude=0.2, resolution=64)
card = bpy.data.objects["Middle cube"]   # the user's own object (a cube has a UV map) displaced instead
bpy.context.view_layer.objects.active = card
rest = len(card.evaluated_get(bpy.context.evaluated_depsgraph_get()).data.vertices)
assert bpy.ops.fathom.setup_displacement(depth="depth", use_selected=True, strength=0.5) == {"FINISHED"}
card_modifiers = [m.name for m in card.modifiers]
card_vertices = len(card.evaluated_get(bpy.context.evaluated_depsgraph_get()).data.vertices)
rig = scene.camera
scene.frame_set(scene.frame_start); start = rig.matrix_world.translation.copy()
scene.frame_set(scene.frame_end); end = rig.matrix_world.translation.copy()
paths = []
for fmt in ("OBJ", "PLY", "OBJ"):
    assert bpy.ops.fathom.export_mesh(format=fmt) == {"FINISHED"}
paths = sorted(os.listdir(tmp + "/generated"))
obj_lines = open(tmp + "/generated/" + paths[0]).read().splitlines()
plane = bpy.data.objects["Fathom Depth Plane"]
ev_vertices = len(plane.evaluated_get(bpy.context.evaluated_depsgraph_get()).data.vertices)
camera_during = scene.camera.name
assert bpy.ops.fathom.remove_setup(kind="DISPLACEMENT") == {"FINISHED"}
emit({"card_modifiers": card_modifiers, "card_vertices": [rest, card_vertices],
      "card_after": [m.name for m in card.modifiers], "camera_during": camera_during,
      "camera_after": scene.camera.name, "moved": (end - start).length,
      "exports": paths, "obj_vertices": sum(1 for l in obj_lines if l.startswith("v ")), "ev_vertices": ev_vertices,
      "after": sorted(o.name for o in bpy.data.objects), "before": before,
      "leftovers": [m.name for m in bpy.data.materials if m.get("fathom_setup")] +
                   [g.name for g in bpy.data.node_groups if g.get("fathom_setup")]})
"""
    )
    assert got["card_modifiers"] == ["Fathom Subdivision", "Fathom Depth Displace"] and got["card_after"] == []
    assert got["card_vertices"][1] > got["card_vertices"][0]
    assert got["camera_during"] == "Fathom Parallax Camera" and got["camera_after"] == "Camera"
    assert got["moved"] > 1.0
    assert [f for f in got["exports"] if f.startswith("Fathom_Depth_Plane")] == [
        "Fathom_Depth_Plane_001.obj",
        "Fathom_Depth_Plane_001.ply",
        "Fathom_Depth_Plane_002.obj",
    ]
    assert "source_scene_light_001.exr" in got["exports"]  # the picture as scene light, kept for the plane
    assert got["obj_vertices"] == got["ev_vertices"] > 64 * 36
    assert got["after"] == got["before"] and got["leftovers"] == []
