"""The Depth Map node (issue 15) in real Blender, from the installed extension: Render Layers -> Blur
-> Depth Map -> the compositor's output, generated from the node headlessly (the capture runs in a
child Blender on a copy of the file), with the tiny model on the Local backend."""

import textwrap
from pathlib import Path

import numpy as np
import pytest

from tests.blender.test_remote import remote_catalog, server, setup  # noqa: F401 (fixtures: the real depth server)

ROOT = Path(__file__).resolve().parents[2]
WIDTH, HEIGHT = 160, 90

# The sample scene saved as shot.blend, with Render Layers -> Blur -> "Depth Map" -> output and a
# second Depth Map node ("Depth Map.001") wired straight from the Render Layers.
SCENE = f"""
import numpy as np
sys.path.insert(0, {str(ROOT)!r})
from scripts.sample_scene import build_scene, set_blur_size
scene = build_scene({WIDTH}, {HEIGHT}, 4)
load_profile()  # build_scene starts from factory settings, which disables the extension
assert tuple(addon_utils.check("bl_ext.user_default.fathom")) == (True, True)
from bl_ext.user_default.fathom import api as fathom
from bl_ext.user_default.fathom.bridge import node_group
from bl_ext.user_default.fathom.bridge.capture import render as rc
from bl_ext.user_default.fathom.bridge.generation import backends, nodes
from bl_ext.user_default.fathom.engine.exr import read_exr

tree = nodes.compositor_tree(scene)
layers = next(n for n in tree.nodes if n.bl_idname == "CompositorNodeRLayers")
if hasattr(scene, "compositing_node_group"):
    output = next(n for n in tree.nodes if n.bl_idname == "NodeGroupOutput")
else:
    output = next(n for n in tree.nodes if n.bl_idname == "CompositorNodeComposite")
blur = tree.nodes.new("CompositorNodeBlur")

set_blur_size(blur, 6)
first = node_group.add_depth_map(tree)
second = node_group.add_depth_map(tree)
tree.links.new(layers.outputs["Image"], blur.inputs["Image"])
tree.links.new(blur.outputs["Image"], first.inputs["Image"])
tree.links.new(first.outputs["Depth"], output.inputs[0])
tree.links.new(layers.outputs["Image"], second.inputs["Image"])
bpy.ops.wm.save_as_mainfile(filepath=os.path.join(tmp, "shot.blend"))
props = scene.fathom
props.resolution = 256

def snapshot():
    # The user's tree as they built it: nodes, their values, links, groups (not the results).
    state = []
    for n in sorted(tree.nodes, key=lambda n: n.name):
        values = [list(s.default_value) if hasattr(s.default_value, "__len__") else s.default_value
                  for s in n.inputs if hasattr(s, "default_value")]
        group = getattr(n, "node_tree", None)
        state.append([n.name, n.bl_idname, list(n.location), n.mute, str(values), group.name if group else None])
    links = sorted([l.from_node.name, l.from_socket.identifier, l.to_node.name, l.to_socket.identifier]
                   for l in tree.links)
    r = scene.render
    return [state, links, r.filepath, r.use_compositing, r.image_settings.file_format, scene.frame_current]
"""


def scenario(blender, code, catalog):
    return blender(SCENE + textwrap.dedent(code), catalog=catalog)


@pytest.mark.smoke
def test_generate_from_the_node_captures_its_input_and_fills_it(blender, catalog_for, tiny_model_file, tmp_path):
    got = scenario(
        blender,
        """
        states = [node_group.state(first, props.depth_settings(), scene.frame_current)[0]]
        empty, _ = rc.capture_compositor(scene, linear=True)  # through the node before it has a result
        before = snapshot()
        job, image, node = backends.generate(bpy.context, source="NODE", node=first.name)
        captured = job.capture.rgb
        other = fathom.generate_depth(source="node", node=second.name, resolution=256)
        after = snapshot()
        record = first[node_group.RECORD_KEY].to_dict()
        settings = props.depth_settings()
        states.append(node_group.state(first, settings, scene.frame_current)[0])
        depth = read_exr(str(job.path)).channels["Y"]
        # What the tree outputs now (Depth Map -> output), linear: the depth values themselves.
        carried, _ = rc.capture_compositor(scene, linear=True)
        whole, _ = rc.capture_compositor(scene)  # the whole tree's output as a capture sees it
        raw, _ = rc.render_scene(scene)
        set_blur_size(blur, 12)
        states.append(node_group.state(first, settings, scene.frame_current)[0])
        second_state = node_group.state(second, settings, scene.frame_current)[0]
        reasons = [node_group.stale_reason(first, settings, scene.frame_current, record)]
        set_blur_size(blur, 6)
        states.append(node_group.state(first, settings, scene.frame_current)[0])
        props.resolution = 512
        changed = props.depth_settings()
        states.append(node_group.state(first, changed, scene.frame_current)[0])
        reasons.append(node_group.stale_reason(first, changed, scene.frame_current, record))
        reasons.append(node_group.stale_reason(first, settings, 2, record))
        props.resolution = 256
        # The reference: the blurred render, the output wired to the Blur by hand.
        tree.links.new(blur.outputs["Image"], output.inputs[0])
        blurred, _ = rc.capture_compositor(scene)
        emit({"captured": captured.tolist(), "blurred": blurred.tolist(), "raw": raw.tolist(),
              "whole": whole.tolist(), "carried": carried.tolist(), "depth": depth.tolist(),
              "empty": [float(empty.min()), float(empty.max())],
              "states": states, "second_state": second_state, "reasons": reasons, "before": before, "after": after,
              "images": [image.name, other.image.name, node_group.result_image(first).name,
                         node_group.result_image(second).name],
              "node": [node.name, other.node.name], "record": record, "paths": [str(job.path), str(other.path)],
              "source": image["fathom"]["source"].to_dict(), "groups": [first.node_tree.name, second.node_tree.name],
              "other_depth": other.depth_map.depth.tolist()})
        """,
        catalog_for(da2_small=tiny_model_file),
    )
    captured, blurred, raw, whole = (np.array(got[k]) for k in ("captured", "blurred", "raw", "whole"))
    assert captured.shape == (HEIGHT, WIDTH, 3)
    # Exactly the blurred render, not the raw render and not the tree's output.
    assert np.abs(captured - blurred).max() < 1e-4
    assert np.abs(captured - raw).mean() > 0.005
    assert np.abs(captured - whole).mean() > 0.02
    # The tree's output is the grey depth; the captured input has the render's colours.
    assert np.ptp(whole, axis=2).max() < 1e-3 and np.ptp(captured, axis=2).mean() > 0.02
    # The node carries the depth: the tree's output (through it) is the written depth map.
    depth, carried = np.array(got["depth"]), np.array(got["carried"])
    assert depth.shape == (HEIGHT, WIDTH) and depth.std() > 0.05
    assert np.abs(carried[:, :, 0] - depth).max() < 1e-3
    # Two nodes on different inputs: own groups, images, files, results.
    assert got["node"] == ["Depth Map", "Depth Map.001"]
    assert got["images"][0] == got["images"][2] and got["images"][1] == got["images"][3]
    assert got["images"][0] != got["images"][1] and got["groups"][0] != got["groups"][1]
    assert [Path(p).name for p in got["paths"]] == ["Depth_Map_depth_001.exr", "Depth_Map_001_depth_001.exr"]
    assert all((tmp_path / "generated" / Path(p).name).is_file() for p in got["paths"])
    assert np.abs(np.array(got["other_depth"]) - depth).mean() > 1e-3
    # The user's tree is as it was (the results live inside the nodes' own groups).
    assert got["before"] == got["after"]
    assert got["empty"] == [0.0, 0.0]  # transparent until generated
    # Honest state: missing, current; stale once the Blur changes; current again when put back.
    assert got["states"] == ["missing", "current", "stale", "current", "stale"]
    assert got["reasons"] == ["input", "settings", "frame"]
    assert got["second_state"] == "current"  # its input does not go through the Blur
    record = got["record"]
    assert record["model"] == "da2-small" and record["resolution"] == 256 and record["size"] == [WIDTH, HEIGHT]
    assert record["frame"] == 1 and record["file"] == "//generated/Depth_Map_depth_001.exr"
    assert got["source"]["kind"] == "node" and got["source"]["node"] == "Depth Map"


def test_node_result_survives_reload_and_goes_stale_with_the_frame(blender, catalog_for, tiny_model_file):
    got = scenario(
        blender,
        """
        fathom.generate_depth(source="node", node="Depth Map", resolution=256)
        bpy.ops.wm.save_mainfile()
        bpy.ops.wm.open_mainfile(filepath=os.path.join(tmp, "shot.blend"))
        scene = bpy.context.scene
        tree = nodes.compositor_tree(scene)
        node = tree.nodes["Depth Map"]
        settings = scene.fathom.depth_settings()
        image = node_group.result_image(node)
        pixels = np.empty(image.size[0] * image.size[1] * 4, np.float32)
        image.pixels.foreach_get(pixels)
        state = node_group.state(node, settings, scene.frame_current)[0]
        scene.frame_set(2)
        emit({"recognised": node_group.is_depth_map(node), "image": image.filepath,
              "colorspace": image.colorspace_settings.name, "std": float(pixels.std()), "state": state,
              "later": node_group.state(node, settings, scene.frame_current)[0],
              "empty": node_group.state(tree.nodes["Depth Map.001"], settings, 1)[0]})
        """,
        catalog_for(da2_small=tiny_model_file),
    )
    assert got["recognised"] and got["image"] == "//generated/Depth_Map_depth_001.exr"
    assert got["colorspace"] == "Non-Color" and got["std"] > 0.05
    assert (got["state"], got["later"], got["empty"]) == ("current", "stale", "missing")


def test_bad_node_sources_say_what_to_do(blender, catalog_for, tiny_model_file):
    got = scenario(
        blender,
        """
        def error_of(**kwargs):
            try:
                fathom.generate_depth(**kwargs)
            except Exception as e:
                return [type(e).__name__, str(e)]
        # Deleted while it generates: the paid-for or computed result is still shown, in an Image node.
        job = backends.prepare(bpy.context, source="NODE", node="Depth Map", backend="LOCAL")
        tree.nodes.remove(tree.nodes["Depth Map"])
        job.run()
        image, shown = job.finish(bpy.context)
        fallback = [shown.bl_idname, shown.image == image, shown.get("fathom_source")]
        tree.links.remove(second.inputs["Image"].links[0])
        emit([error_of(source="node", node="Nope"), error_of(source="node", node="Depth Map.001"),
              error_of(source="node", node="Depth Map", backend="scene-z"), fallback])
        """,
        catalog_for(da2_small=tiny_model_file),
    )
    assert got[0][0] == "NodeSourceError" and "no Depth Map node named 'Nope'" in got[0][1]
    assert "(there are 'Depth Map.001')" in got[0][1]
    assert got[1][0] == "NodeSourceError" and "Nothing is wired into the Image input" in got[1][1]
    assert "Scene Z gives the camera's depth" in got[2][1]
    assert got[3] == ["CompositorNodeImage", True, "node:Depth Map"]


def test_cli_generates_from_a_node_by_name(blender, fathom_cli, catalog_for, tiny_model_file, tmp_path):
    catalog = catalog_for(da2_small=tiny_model_file)
    scenario(blender, "emit(True)", catalog)
    done = fathom_cli(
        "generate",
        "--source",
        "node",
        "Depth Map",
        "--resolution",
        "256",
        "--save",
        blend=tmp_path / "shot.blend",
        catalog=catalog,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1].endswith("Depth_Map_depth_001.exr")
    missing = fathom_cli("generate", "--source", "node", "Nope", blend=tmp_path / "shot.blend", catalog=catalog)
    assert missing.returncode == 3 and "no Depth Map node named 'Nope'" in missing.stderr
    got = blender(
        f"""
bpy.ops.wm.open_mainfile(filepath={str(tmp_path / "shot.blend")!r})
from bl_ext.user_default.fathom.bridge import node_group
from bl_ext.user_default.fathom.bridge.generation import nodes
node = nodes.compositor_tree(bpy.context.scene).nodes["Depth Map"]
emit(node_group.result_image(node).filepath)
"""
    )
    assert got == "//generated/Depth_Map_depth_001.exr"


def test_operators_add_generate_regenerate_asset_delete(blender, catalog_for, tiny_model_file, tmp_path):
    got = scenario(
        blender,
        """
        ran = {}
        added = bpy.ops.fathom.add_depth_map_node()
        third = tree.nodes.active
        ran["added"] = [list(added), third.name, node_group.is_depth_map(third)]
        tree.links.new(blur.outputs["Image"], third.inputs["Image"])
        ran["generate"] = list(bpy.ops.fathom.generate_node_depth(node=third.name))
        image = node_group.result_image(third)
        ran["first"] = image.filepath
        tree.nodes.active = third  # the Depth panel's buttons act on the active Depth Map node
        ran["regenerate"] = list(bpy.ops.fathom.regenerate_result())
        image = node_group.result_image(third)
        ran["second"] = image.filepath
        ran["asset"] = list(bpy.ops.fathom.mark_asset())
        ran["is_asset"] = image.asset_data is not None
        ran["delete"] = list(bpy.ops.fathom.delete_result("EXEC_DEFAULT"))
        ran["after_delete"] = [node_group.result_image(third) is None,
                               node_group.state(third, props.depth_settings(), 1)[0]]
        menu = getattr(bpy.types, "NODE_MT_compositor_node_add_all", None) or bpy.types.NODE_MT_add
        names = lambda: [f.__name__ for f in getattr(menu.draw, "_draw_funcs", [])]
        ran["menu"] = "draw_add_menu" in names()
        addon_utils.disable("bl_ext.user_default.fathom")
        ran["menu_after_disable"] = "draw_add_menu" in names()
        emit(ran)
        """,
        catalog_for(da2_small=tiny_model_file),
    )
    assert got["added"] == [["FINISHED"], "Depth Map.002", True]
    assert got["generate"] == ["FINISHED"] and got["first"] == "//generated/Depth_Map_002_depth_001.exr"
    assert got["regenerate"] == ["FINISHED"] and got["second"] == "//generated/Depth_Map_002_depth_002.exr"
    assert got["asset"] == ["FINISHED"] and got["is_asset"]
    assert got["delete"] == ["FINISHED"] and got["after_delete"] == [True, "missing"]
    assert not (tmp_path / "generated" / "Depth_Map_002_depth_002.exr").exists()
    assert (tmp_path / "generated" / "Depth_Map_002_depth_001.exr").is_file()  # never deleted behind the user
    assert got["menu"] and not got["menu_after_disable"]


def test_setups_take_depth_from_the_depth_map_node(blender, catalog_for, tiny_model_file):
    got = scenario(
        blender,
        """
        from bl_ext.user_default.fathom.bridge.setups import common, dof, fog
        tree.links.new(layers.outputs["Image"], output.inputs[0])  # the user's comp: the render
        fathom.generate_depth(source="node", node=second.name, resolution=256)
        image = node_group.result_image(second)
        defocus = dof.setup(scene, image, near=1.0, far=20.0)
        mix = fog.setup(scene, image.name)
        def fed_from(kind):
            # where a setup's nodes read depth from: links into them from an Image or Depth Map node
            return sorted({(l.from_node.name, l.from_socket.name) for l in tree.links
                           if common.tagged(l.to_node, kind) and not common.tagged(l.from_node, kind)
                           and (l.from_node.bl_idname == "CompositorNodeImage"
                                or node_group.is_depth_map(l.from_node))})
        own_depth_nodes = [n.name for n in tree.nodes if n.get("fathom_role") == "depth"]
        fed = {"dof": fed_from("dof"), "fog": fed_from("fog")}
        blurred, _ = rc.capture_compositor(scene)
        raw, _ = rc.render_scene(scene)
        removed = dof.remove(scene) + fog.remove(scene)
        emit({**fed, "own": own_depth_nodes,
              "differs": float(np.abs(blurred - raw).mean()), "removed": removed,
              "kept": node_group.is_depth_map(tree.nodes.get(second.name)),
              "output": [l.from_node.name for l in output.inputs[0].links]})
        """,
        catalog_for(da2_small=tiny_model_file),
    )
    # Both setups read the Depth Map node's Depth output; they made no Image node of their own.
    assert got["dof"] == [["Depth Map.001", "Depth"]] and got["fog"] == [["Depth Map.001", "Depth"]], got
    assert got["own"] == [] and got["differs"] > 0.01
    # Removing the setups leaves the Depth Map node (the user's) and the render to the output.
    assert got["removed"] > 0 and got["kept"] and got["output"] == ["Render Layers"]


def test_server_backend_fills_the_node_and_reuses_an_identical_input(blender, server, catalog_for, tiny_model_file):  # noqa: F811
    key = server.user(tokens=5)
    got = blender(
        SCENE + setup(server.url, key),
        """
assert bpy.ops.fathom.test_connection() == {"FINISHED"}  # headless: synchronous, fills the cache
button = account.generate_button(bpy.context)
paid = api.generate_depth(source="node", node="Depth Map", backend="server")
again = api.generate_depth(source="node", node="Depth Map", backend="server")
node = nodes.compositor_tree(scene).nodes["Depth Map"]
emit({"button": [button["kind"], button.get("cost")], "node": paid.node.name, "reused": [paid.reused, again.reused],
      "carried": node_group.result_image(node).name == paid.image.name, "cost": paid.image["fathom"]["remote"]["cost"],
      "state": node_group.state(node, scene.fathom.depth_settings(), scene.frame_current)[0],
      "file": node_group.result_image(node).filepath})
""",
        catalog=catalog_for(da2_small=tiny_model_file),
    )
    assert got["button"][0] == "generate" and got["button"][1] == got["cost"] >= 1
    assert got["node"] == "Depth Map" and got["carried"] and got["state"] == "current"
    assert got["reused"] == [False, True] and got["file"] == "//generated/Depth_Map_depth_001.exr"
    assert server.balance(key) == 5 - got["cost"] and len(server.artworks(key)) == 1
