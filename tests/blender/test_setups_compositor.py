"""Depth of field and fog setups in the compositor of real Blender (installed extension): Defocus blurs
the far and keeps the focus plane sharp, fog grows with depth, re-running does not stack, removal gives
the user's tree back; and the `fathom setup` CLI."""

from tests.blender.setups_scene import SCENE

HELPERS = """
def user_tree(scene):
    tree = common.compositor_tree(scene)   # Render Layers -> Group Output, as Blender's New button
    layers = next(n for n in tree.nodes if n.bl_idname == "CompositorNodeRLayers")
    out = common.output_socket(tree)
    curves = tree.nodes.new("CompositorNodeCurveRGB")   # the user's own node: identity curves
    curves.name = "My curves"
    tree.links.new(layers.outputs["Image"], common.socket(curves.inputs, "Image"))
    tree.links.new(curves.outputs[0], out)
    return tree

def links(tree):
    return sorted((l.from_node.name, l.from_socket.identifier, l.to_node.name, l.to_socket.identifier)
                  for l in tree.links)

def grey(rgb):
    return rgb @ np.array([0.2126, 0.7152, 0.0722], np.float32)

def laplacian_variance(img, mask):
    g = grey(img)
    lap = np.zeros_like(g)
    lap[1:-1, 1:-1] = 4 * g[1:-1, 1:-1] - g[:-2, 1:-1] - g[2:, 1:-1] - g[1:-1, :-2] - g[1:-1, 2:]
    return float(lap[mask].var())

def erode(mask, n=2):
    m = mask.copy()
    for _ in range(n):
        m[1:-1, 1:-1] &= m[:-2, 1:-1] & m[2:, 1:-1] & m[1:-1, :-2] & m[1:-1, 2:]
        m[0, :] = m[-1, :] = False; m[:, 0] = m[:, -1] = False
    return m
"""


def test_depth_of_field_fog_idempotence_and_removal(blender):
    got = blender(
        SCENE
        + HELPERS
        + """
scene, rgb, depth, z, background = loaded_scene(checker=60.0)
black = load_picture(np.zeros_like(rgb), "black")
tree = user_tree(scene)
original = links(tree)
near = float(z[~background].min())        # standard Scene Z: depth = near / z exactly
row, col = np.unravel_index(np.argmin(np.where(background, np.inf, z)), z.shape)
u, v = (col + 0.5) / W, 1.0 - (row + 0.5) / H
for _ in range(2):
    assert bpy.ops.fathom.setup_dof(depth="depth", f_stop=1.4, blur_max=12.0, near=near, far=0.0,
                                    focal_length=135.0, sensor_width=36.0) == {"FINISHED"}
dof_nodes = tagged("dof")[1]
assert bpy.ops.fathom.pick_focus(x=u, y=v, set_camera=True) == {"FINISHED"}
focus = bpy.data.node_groups[tree.name].nodes["Fathom DoF defocus"]["fathom_params"]["focus_distance"]
blurred = render_capture.capture_compositor(scene)[0]
in_focus = erode((~background) & (z < near * 1.3))
far = erode((~background) & (z > 25.0))
sharp_ratio = laplacian_variance(blurred, in_focus) / laplacian_variance(rgb, in_focus)
far_ratio = laplacian_variance(blurred, far) / laplacian_variance(rgb, far)

for _ in range(2):
    made = bpy.ops.fathom.setup_fog(depth="depth", picture="black", color=(1.0, 1.0, 1.0), near=1.0, far=0.0)
    assert made == {"FINISHED"}
fog_nodes = tagged("fog")[1]
fogged = render_capture.capture_compositor(scene, linear=True)[0][..., 0]
bins = np.linspace(0.0, 1.0, 11)
which = np.digitize(depth, bins[1:-1])
means = [float(fogged[which == i].mean()) for i in range(10) if (which == i).sum() > 3]
fog_error = float(np.abs(fogged - (1.0 - depth)).max())

assert bpy.ops.fathom.remove_setup(kind="DOF") == {"FINISHED"}
after_dof = links(tree)
still_fogged = render_capture.capture_compositor(scene, linear=True)[0][..., 0]
assert bpy.ops.fathom.remove_setup(kind="FOG") == {"FINISHED"}
emit({"dof_nodes": dof_nodes, "fog_nodes": fog_nodes, "focus": focus, "z_focus": float(z[row, col]),
      "camera_focus": scene.camera.data.dof.focus_distance, "sharp_ratio": sharp_ratio, "far_ratio": far_ratio,
      "counts": [int(in_focus.sum()), int(far.sum())], "means": means, "fog_error": fog_error,
      "fog_after_dof_removed": float(np.abs(still_fogged - fogged).max()),
      "after_dof": [l for l in after_dof if "Fathom" not in l[0] + l[2]],
      "original": original, "final": links(tree), "nodes": sorted(n.name for n in tree.nodes)})
"""
    )
    print(got)
    # Twice run, once built: DoF = depth, 1/distance (one Multiply Add: near/far), focus, radius, defocus.
    assert len(got["dof_nodes"]) == 5 and len(got["fog_nodes"]) == 4
    assert abs(got["focus"] / got["z_focus"] - 1) < 0.03  # picked distance = the Z pass's
    assert abs(got["camera_focus"] - got["focus"]) < 1e-4
    assert min(got["counts"]) > 30
    assert got["sharp_ratio"] > 0.6, got  # the focus plane keeps its texture
    assert got["far_ratio"] < 0.25, got  # the far is blurred
    assert all(a > b for a, b in zip(got["means"], got["means"][1:])), got["means"]  # fog grows with distance
    assert got["fog_error"] < 2e-3
    assert got["fog_after_dof_removed"] < 1e-6  # removing one setup leaves the other working
    assert got["after_dof"] == [["Render Layers", "Image", "My curves", "Image"]]
    assert got["final"] == got["original"]
    assert got["nodes"] == ["Group Output", "My curves", "Render Layers"]


def test_setup_cli(blender, fathom_cli, tmp_path):
    blender(
        SCENE
        + """
scene, rgb, depth, z, background = loaded_scene()
bpy.ops.wm.save_mainfile()
"""
    )
    blend = tmp_path / "shot.blend"
    fog = fathom_cli("setup", "fog", "--depth", "depth", "--picture", "source", "--save", blend=blend)
    assert fog.returncode == 0, fog.stderr
    assert fog.stdout.strip().splitlines()[-1] == "Fathom Fog fog: from 1 to 0 (depth values)"
    dof = fathom_cli("setup", "dof", "--depth", "depth", "--near", "5", "--focus-at", "0.5", "0.5", blend=blend)
    assert dof.returncode == 0 and "focus" in dof.stdout, dof.stderr
    stereo = fathom_cli(
        "setup", "stereo", "--depth", "depth", "--picture", "source", "--layout", "anaglyph", blend=blend
    )
    assert stereo.returncode == 0, stereo.stderr
    written = stereo.stdout.strip().splitlines()[-1]
    assert (
        written.endswith("source_stereo_anaglyph_001.png")
        and (tmp_path / "generated" / written.rsplit("/", 1)[-1]).exists()
    )
    missing = fathom_cli("setup", "dof", "--depth", "nope", blend=blend)
    assert missing.returncode == 3 and "no image named 'nope'" in missing.stderr
    assert fathom_cli("setup", "wobble", blend=blend).returncode == 2
    saved = blender("""
bpy.ops.wm.open_mainfile(filepath=tmp + "/shot.blend")
tree = bpy.context.scene.compositing_node_group
emit(sorted(n.get("fathom_setup", "") for n in tree.nodes))
""")
    assert saved == ["", "", "fog", "fog", "fog", "fog"]  # --save kept the fog setup, once
