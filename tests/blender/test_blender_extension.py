"""The built zip in real Blender: install, enable, generate depth from images, the CLI's exit codes."""

import json
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts"))
import fetch_wheels  # noqa: E402

# A test picture as Blender stores it (row 0 at the bottom): dark at the bottom, bright at the top,
# so a depth map that comes back upside down is caught.
MAKE_IMAGE = """
import numpy as np
def make_image(name, width, height):
    img = bpy.data.images.new(name, width, height)
    px = np.ones((height, width, 4), np.float32)
    px[..., :3] = np.linspace(0.0, 1.0, height, dtype=np.float32)[:, None, None]
    px[..., 0] *= np.linspace(0.6, 1.0, width, dtype=np.float32)[None, :]
    img.pixels.foreach_set(px.ravel())
    return img

def save_blend():
    bpy.ops.wm.save_as_mainfile(filepath=tmp + "/shot.blend")

def comp_nodes():
    from bl_ext.user_default.fathom.bridge.generation.nodes import compositor_tree
    tree = compositor_tree(bpy.context.scene, create=False)
    return [(n.bl_idname, n.image.name if getattr(n, "image", None) else None) for n in tree.nodes]

def comp_tree_name():
    from bl_ext.user_default.fathom.bridge.generation.nodes import compositor_tree
    return compositor_tree(bpy.context.scene, create=False).name

def image_nodes():
    return [image for idname, image in comp_nodes() if idname == "CompositorNodeImage"]

def render_output_linked():
    # Render Layers reaches the output: Group Output in 5.0+, Composite in 4.x (there through a Reroute).
    from bl_ext.user_default.fathom.bridge.generation.nodes import compositor_tree
    tree = compositor_tree(bpy.context.scene, create=False)
    reached, todo = set(), [n for n in tree.nodes if n.bl_idname == "CompositorNodeRLayers"]
    while todo:
        node = todo.pop()
        reached.add(node.bl_idname)
        todo += [l.to_node for l in tree.links if l.from_node == node]
    return bool(reached & {"NodeGroupOutput", "CompositorNodeComposite"})
"""


def test_manifest_lists_exactly_the_pinned_wheels():
    fetch_wheels.check_manifest()
    names = fetch_wheels.manifest_wheels((ROOT / "blender_manifest.toml").read_text())
    assert {fetch_wheels.parse_wheel(n)["dist"] for n in names} == {
        dist for platform in fetch_wheels.PLATFORMS for dist in fetch_wheels.pins(platform)
    }


def test_zip_ships_the_extension_and_its_wheels_only(extension_zip):
    names = zipfile.ZipFile(extension_zip).namelist()
    assert "blender_manifest.toml" in names and "__init__.py" in names and "engine/depth.py" in names
    assert "bridge/generation/backends.py" in names and "operators/generate.py" in names
    for dev in ("server/", "tests/", "bench/", "scripts/", "requirements/", ".ci/", "Makefile", ".git"):
        assert not any(n.startswith(dev) for n in names), dev
    assert not any("__pycache__" in n or n.endswith(".pyc") for n in names)
    wheels = sorted(n for n in names if n.endswith(".whl"))
    dists = sorted(fetch_wheels.parse_wheel(Path(n).name)["dist"] for n in wheels)
    assert dists == sorted(fetch_wheels.pins("linux-x64"))
    assert all(fetch_wheels.fits(fetch_wheels.parse_wheel(Path(n).name), "linux-x64", "3.11") for n in wheels)


def test_windows_zip_carries_directml(tmp_path):
    """The Windows build bundles onnxruntime-directml (GPU through DirectX 12, and the CPU) instead of
    the CPU-only onnxruntime; the other platforms keep the standard wheel (CoreML on macOS)."""
    for cmd in (
        ["fetch_wheels.py", "--platform", "windows-x64", "--python", "3.11"],
        ["build_extension.py", "--platform", "windows-x64", "--python", "3.11", "--output-dir", tmp_path],
    ):
        done = subprocess.run(
            [sys.executable, ROOT / "scripts" / cmd[0], *map(str, cmd[1:])], capture_output=True, text=True
        )
        assert done.returncode == 0, done.stdout + done.stderr
    (zip_path,) = tmp_path.glob("fathom-*windows*.zip")
    wheels = sorted(Path(n).name for n in zipfile.ZipFile(zip_path).namelist() if n.endswith(".whl"))
    dists = {fetch_wheels.parse_wheel(n)["dist"] for n in wheels}
    assert "onnxruntime-directml" in dists and "onnxruntime" not in dists and "onnx" in dists
    assert all(fetch_wheels.fits(fetch_wheels.parse_wheel(n), "windows-x64", "3.11") for n in wheels)
    assert fetch_wheels.pins("macos-arm64")["onnxruntime"] == fetch_wheels.PINS["onnxruntime"]


@pytest.mark.smoke
def test_installs_enabled_with_its_own_wheels(blender, blender_home):
    got = blender("""
        import onnxruntime, PIL, onnx
        mod = sys.modules["bl_ext.user_default.fathom"]
        emit({"check": addon_utils.check("bl_ext.user_default.fathom"),
              "ops": dir(bpy.ops.fathom),
              "ort": onnxruntime.__file__, "pil": PIL.__file__, "onnx": onnx.__file__,
              "extensions": bpy.utils.user_resource("EXTENSIONS"),
              "engine": mod.engine.__name__,
              "panels": [(c.bl_space_type, c.bl_category) for c in mod.panels.sidebar.classes
                         if issubclass(c, bpy.types.Panel)],
              "prefs": type(bpy.context.preferences.addons["bl_ext.user_default.fathom"].preferences).__name__})
    """)
    assert got["check"] == [True, True]
    assert "generate_depth" in got["ops"]
    assert got["extensions"].startswith(str(blender_home))
    site = f"{got['extensions']}/.local/lib/python{sys.version_info[0]}.{sys.version_info[1]}/site-packages/"
    assert got["ort"].startswith(site) and got["pil"].startswith(site) and got["onnx"].startswith(site)
    assert got["engine"] == "bl_ext.user_default.fathom.engine"
    assert sorted(got["panels"]) == [["IMAGE_EDITOR", "Depth"], ["NODE_EDITOR", "Depth"], ["VIEW_3D", "Depth"]]
    assert got["prefs"] == "FATHOM_AP_preferences"


@pytest.mark.smoke
def test_generate_from_image_datablock(blender, catalog_for, tiny_model_file, tmp_path):
    got = blender(
        MAKE_IMAGE,
        """
        from bl_ext.user_default.fathom.engine.exr import read_exr
        img = make_image("Photo", 90, 60)
        save_blend()
        props = bpy.context.scene.fathom
        props.image = img
        props.resolution = 256
        first = bpy.ops.fathom.generate_depth()
        result = bpy.data.images["Photo_depth_001.exr"]
        y = read_exr(bpy.path.abspath(result.filepath)).channels["Y"]
        nodes_after_first = image_nodes()
        second = bpy.ops.fathom.generate_depth("INVOKE_DEFAULT")  # background: runs synchronously
        emit({"ops": [list(first), list(second)], "filepath": result.filepath,
              "colorspace": result.colorspace_settings.name, "size": list(result.size),
              "top": float(y[0].mean()), "bottom": float(y[-1].mean()),
                  "top_left": float(y[0, 0]), "top_right": float(y[0, -1]), "shape": list(y.shape),
              "meta": result["fathom"].to_dict(), "first": nodes_after_first, "second": image_nodes(),
              "render_linked": render_output_linked()})
    """,
        catalog=catalog_for(da2_small=tiny_model_file),
    )
    assert got["ops"] == [["FINISHED"], ["FINISHED"]]
    assert got["filepath"] == "//generated/Photo_depth_001.exr"
    assert (tmp_path / "generated" / "Photo_depth_001.exr").is_file()
    assert (tmp_path / "generated" / "Photo_depth_002.exr").is_file()
    assert got["colorspace"] == "Non-Color"
    assert got["size"] == [90, 60] and got["shape"] == [60, 90]
    # The picture is bright at the top right: the tiny model makes it near (1.0), the black bottom far (0.0).
    assert got["top_right"] > 0.99 and got["top"] > 0.7 and got["bottom"] < 0.01
    assert got["top_left"] < got["top_right"] - 0.2
    assert got["meta"]["source"] == {"kind": "image", "image": "Photo"}
    assert got["meta"]["settings"]["resolution"] == 256 and got["meta"]["model"] == "da2-small"
    # Where it ran, recorded with the result: the CPU here (no GPU runtime), the tiny graph as it is.
    assert got["meta"]["settings"]["quality"] == "best" and got["meta"]["settings"]["device"] == "auto"
    assert got["meta"]["runtime"]["provider"] == "CPU" and got["meta"]["runtime"]["graph"] == "original"
    # A new compositor tree that still passes the render through, and one Depth node, reused on re-generation.
    assert got["render_linked"]
    assert got["first"] == ["Photo_depth_001.exr"] and got["second"] == ["Photo_depth_002.exr"]


def test_generate_with_the_standin_model(blender, catalog_for, standin_model, tmp_path):
    got = blender(
        MAKE_IMAGE,
        """
        img = make_image("Street", 200, 113)
        save_blend()
        props = bpy.context.scene.fathom
        props.image = img
        props.resolution = 256
        props.output_format = "png16"
        ok = bpy.ops.fathom.generate_depth()
        result = bpy.data.images["Street_depth_001.png"]
        emit({"ok": list(ok), "size": list(result.size), "colorspace": result.colorspace_settings.name,
              "nodes": comp_nodes(), "runtime": result["fathom"]["runtime"].to_dict()})
    """,
        catalog=catalog_for(da2_small=standin_model),
    )
    assert got["ok"] == ["FINISHED"]
    # Inside Blender, with the zip's own onnx: the graph rewritten, verified and used.
    assert got["runtime"]["graph"] == "optimised", got["runtime"]
    assert got["size"] == [200, 113] and got["colorspace"] == "Non-Color"
    assert ["CompositorNodeImage", "Street_depth_001.png"] in got["nodes"]
    assert (tmp_path / "generated" / "Street_depth_001.png").is_file()


def test_image_file_source_and_existing_tree_left_alone(blender, catalog_for, tiny_model_file, tmp_path):
    got = blender(
        MAKE_IMAGE,
        """
        img = make_image("Pic", 40, 30)
        img.filepath_raw = tmp + "/pic.png"
        img.file_format = "PNG"
        img.save()
        save_blend()
        scene = bpy.context.scene
        if hasattr(scene, "compositing_node_group"):  # Blender 5.0+
            tree = bpy.data.node_groups.new("Mine", "CompositorNodeTree")
            scene.compositing_node_group = tree
        else:
            scene.use_nodes = True
            tree = scene.node_tree
            tree.nodes.clear()
        blur = tree.nodes.new("CompositorNodeBlur")
        scene.fathom.source = "FILE"
        scene.fathom.filepath = "//pic.png"
        ok = bpy.ops.fathom.generate_depth()
        result = [i for i in bpy.data.images if i.name.startswith("pic_depth")][0]
        emit({"ok": list(ok), "size": list(result.size), "tree": comp_tree_name() == tree.name,
              "nodes": sorted(n.bl_idname for n in tree.nodes), "blur_location": list(blur.location),
              "source": result["fathom"]["source"].to_dict()})
    """,
        catalog=catalog_for(da2_small=tiny_model_file),
    )
    assert got["ok"] == ["FINISHED"]
    assert got["size"] == [40, 30]
    assert got["tree"] is True and got["nodes"] == ["CompositorNodeBlur", "CompositorNodeImage"]
    assert got["blur_location"] == [0.0, 0.0]
    assert got["source"]["kind"] == "file"


def test_unsaved_file_gets_a_clear_message(blender, catalog_for, tiny_model_file):
    got = blender(
        MAKE_IMAGE,
        """
        bpy.context.scene.fathom.image = make_image("Photo", 32, 32)
        try:
            bpy.ops.fathom.generate_depth()
            emit("no error")
        except RuntimeError as exc:
            emit(str(exc))
    """,
        catalog=catalog_for(da2_small=tiny_model_file),
    )
    assert "Save the .blend file first" in got


def test_operators_that_generate_cannot_be_redone(blender):
    """Adjust Last Operation (redo) and Repeat Last re-run only operators registered with REGISTER:
    those that generate (and may spend tokens on the depth server) must not carry it."""
    got = blender("""
        emit({name: sorted(getattr(bpy.ops.fathom, name).bl_options) for name in dir(bpy.ops.fathom)})
    """)
    for name in ("generate_depth", "fetch_pending", "regenerate_result"):
        assert got[name] == ["UNDO"], name  # still undoable: Ctrl+Z takes the new image and node away
    assert "REGISTER" in got["add_depth_node"]  # the flags read are Blender's, not a constant


def test_poll_explains_a_missing_source(blender):
    got = blender("""
        emit({"poll": bpy.ops.fathom.generate_depth.poll()})
    """)
    assert got == {"poll": False}


def test_cli_generate_and_exit_codes(blender, fathom_cli, catalog_for, tiny_model_file, tmp_path):
    blender(
        MAKE_IMAGE,
        """
        for name in ("Photo", "Other"):
            img = make_image(name, 48, 32)
            img.pack()
            img.use_fake_user = True  # an image nothing uses is not saved
        save_blend()
    """,
    )
    blend = tmp_path / "shot.blend"
    catalog = catalog_for(da2_small=tiny_model_file)

    ok = fathom_cli(
        "generate",
        "--source",
        "image",
        "Photo",
        "--output",
        tmp_path / "out.exr",
        "--resolution",
        "256",
        blend=blend,
        catalog=catalog,
    )
    assert ok.returncode == 0, ok.stderr
    assert Path(ok.stdout.strip().splitlines()[-1]) == tmp_path / "out.exr"
    assert (tmp_path / "out.exr").is_file()

    again = fathom_cli(
        "generate", "--source", "image", "Photo", "--output", tmp_path / "out.exr", blend=blend, catalog=catalog
    )
    assert again.returncode == 5 and "already exists" in again.stderr

    missing = fathom_cli("generate", "--source", "image", "Nope", blend=blend, catalog=catalog)
    assert missing.returncode == 3 and "no image named 'Nope'" in missing.stderr
    assert "use one of Other, Photo." in missing.stderr

    corrupt = tmp_path / "corrupt.png"
    corrupt.write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    bad = fathom_cli("generate", "--source", "file", corrupt, blend=blend, catalog=catalog)
    assert bad.returncode == 3, bad.stderr

    no_model = fathom_cli(
        "generate", "--source", "image", "Photo", blend=blend, catalog=catalog_for(da2_small=tmp_path / "absent.onnx")
    )
    assert no_model.returncode == 4 and "absent.onnx" in no_model.stderr

    unsaved = fathom_cli("generate", "--source", "image", "Photo", catalog=catalog)
    assert unsaved.returncode == 5 and "Save the .blend" in unsaved.stderr

    usage = fathom_cli("generate", "--source", "video", "x", blend=blend, catalog=catalog)
    assert usage.returncode == 2 and re.search(r"--source takes", usage.stderr)


SAMPLE_SCENE = f"""
sys.path.insert(0, {str(ROOT)!r})
from scripts.sample_scene import build_scene
scene = build_scene(64, 36, 2)
load_profile()  # build_scene starts from factory settings, which disables the extension
"""


def test_render_source_and_scene_z(blender, fathom_cli, catalog_for, tiny_model_file, tmp_path):
    catalog = catalog_for(da2_small=tiny_model_file)
    got = blender(
        SAMPLE_SCENE,
        MAKE_IMAGE,
        """
        bpy.ops.wm.save_as_mainfile(filepath=tmp + "/scene.blend")
        scene = bpy.context.scene
        scene.fathom.source = "RENDER"
        scene.fathom.resolution = 256
        ok = bpy.ops.fathom.generate_depth()
        result = bpy.data.images["Scene_render_depth_001.exr"]
        emit({"ok": list(ok), "size": list(result.size), "source": result["fathom"]["source"].to_dict(),
              "nodes": comp_nodes()})
        bpy.ops.wm.save_mainfile()
    """,
        catalog=catalog,
    )
    assert got["ok"] == ["FINISHED"] and got["size"] == [64, 36]
    assert got["source"]["kind"] == "render" and got["source"]["camera"]
    assert ["CompositorNodeImage", "Scene_render_depth_001.exr"] in got["nodes"]

    blend = tmp_path / "scene.blend"
    z = fathom_cli(
        "generate",
        "--source",
        "render",
        "--backend",
        "scene-z",
        "--format",
        "exr32",
        "--save",
        blend=blend,
        catalog=catalog,
    )
    assert z.returncode == 0, z.stderr
    assert Path(z.stdout.strip().splitlines()[-1]) == tmp_path / "generated" / "Scene_Z_depth_001.exr"
    saved = blender(
        MAKE_IMAGE,
        """
        bpy.ops.wm.open_mainfile(filepath=tmp + "/scene.blend")
        emit(sorted(image_nodes()))
    """,
    )
    assert saved == ["Scene_Z_depth_001.exr", "Scene_render_depth_001.exr"]  # --save kept the new node

    blender("""
        bpy.ops.wm.open_mainfile(filepath=tmp + "/scene.blend")
        bpy.context.scene.camera = None
        bpy.ops.wm.save_as_mainfile(filepath=tmp + "/nocam.blend")
    """)
    no_camera = fathom_cli("generate", "--source", "render", blend=tmp_path / "nocam.blend", catalog=catalog)
    assert no_camera.returncode == 3 and "no active camera" in no_camera.stderr


def test_worker_thread_progress_refusal_and_cancel(blender, catalog_for, standin_model, tmp_path):
    """What the modal operator drives (timers do not run in background mode, so the test polls)."""
    got = blender(
        MAKE_IMAGE,
        """
        import time
        from bl_ext.user_default.fathom.bridge.generation import backends
        from bl_ext.user_default.fathom.bridge.generation import worker as jobs
        props = bpy.context.scene.fathom
        props.image = make_image("Photo", 120, 80)
        save_blend()

        # A generation on the worker thread, collected on the main thread.
        running = jobs.start(backends.prepare(bpy.context))
        seen = []
        refused = None
        try:
            jobs.start(backends.prepare(bpy.context))
        except jobs.BusyError as exc:
            refused = str(exc)
        poll_while_running = bpy.ops.fathom.generate_depth.poll()
        while not running.wait(0.01):
            seen.append(running.message)
        image, node = running.job.finish(bpy.context)
        jobs.collect(running)

        # Cancelled: no file, no image, and the next generation may start.
        files_before = sorted(os.listdir(tmp + "/generated"))
        images_before = len(bpy.data.images)
        props.resolution = 1024  # tiled: many steps to cancel between
        cancelled = jobs.start(backends.prepare(bpy.context))
        cancelled.cancel()
        cancelled.wait()
        jobs.collect(cancelled)
        emit({"error": running.error and str(running.error), "fraction": running.fraction,
              "messages": sorted(set(seen + [running.message])), "refused": refused,
              "poll_while_running": poll_while_running, "image": image.name, "size": list(image.size),
              "cancelled": cancelled.cancelled, "cancel_error": type(cancelled.error).__name__,
              "files_before": files_before, "files_after": sorted(os.listdir(tmp + "/generated")),
              "images_same": len(bpy.data.images) == images_before,
              "idle_after": jobs.current() is None and bpy.ops.fathom.generate_depth.poll()})
    """,
        catalog=catalog_for(da2_small=standin_model),
    )
    assert got["error"] is None and got["fraction"] == 1.0
    assert "Depth ready" in got["messages"]
    assert got["refused"] and "already running" in got["refused"]
    assert got["poll_while_running"] is False
    assert got["image"] == "Photo_depth_001.exr" and got["size"] == [120, 80]
    assert got["cancelled"] is True and got["cancel_error"] == "CancelledError"
    assert got["files_before"] == got["files_after"] == ["Photo_depth_001.exr"]
    assert not list((tmp_path / "generated").glob(".*"))  # no temporary file left behind
    assert got["images_same"] and got["idle_after"]


def test_cli_models_and_help(fathom_cli, tmp_path, tiny_model_file):
    catalog = tmp_path / "models.json"
    catalog.write_text(
        json.dumps(
            {
                "models": {
                    "tiny": {"name": "Tiny", "path": str(tiny_model_file)},
                    "wrong": {
                        "name": "Wrong",
                        "path": str(tiny_model_file),
                        "sha256": "0" * 64,
                        "size": tiny_model_file.stat().st_size,
                    },
                }
            }
        )
    )

    listed = fathom_cli("models", "list", catalog=catalog)
    assert listed.returncode == 0, listed.stderr
    rows = {line.split("\t")[0]: line.split("\t")[1] for line in listed.stdout.splitlines() if "\t" in line}
    assert rows["tiny"] == "installed" and rows["da2-small"] == "missing"
    assert "Apache-2.0" in listed.stdout

    assert fathom_cli("models", "verify", "tiny", catalog=catalog).returncode == 0
    wrong = fathom_cli("models", "verify", "wrong", catalog=catalog)
    assert wrong.returncode == 4 and "sha256" in wrong.stderr

    offline = fathom_cli("models", "download", "da2-small", catalog=catalog)
    assert offline.returncode == 4 and "Online access is off" in offline.stderr

    unknown = fathom_cli("models", "verify", "nope", catalog=catalog)
    assert unknown.returncode == 4 and "Unknown model 'nope'" in unknown.stderr

    helped = fathom_cli("generate", "--help")
    assert helped.returncode == 0 and "--source" in helped.stdout and "scene-z" in helped.stdout
    assert fathom_cli("frobnicate").returncode == 2


def test_empty_depth_node_assets_and_delete(blender, catalog_for, tiny_model_file, tmp_path):
    got = blender(
        MAKE_IMAGE,
        """
        from bl_ext.user_default.fathom.bridge.generation import nodes, results
        scene = bpy.context.scene
        scene.fathom.image = make_image("Photo", 32, 24)
        user_image = make_image("Mine", 8, 8)
        save_blend()
        bpy.ops.fathom.add_depth_node()
        tree = nodes.compositor_tree(scene, create=False)
        empty = [n for n in tree.nodes if n.bl_idname == "CompositorNodeImage"]
        before = {"count": len(empty), "image": empty[0].image}
        bpy.ops.fathom.generate_depth()
        filled = [n for n in tree.nodes if n.bl_idname == "CompositorNodeImage"]
        tree.nodes.active = filled[0]
        result = filled[0].image
        result_name = result.name
        bpy.ops.fathom.mark_asset()
        asset = result.asset_data is not None and "depth" in result.asset_data.tags
        path = bpy.path.abspath(result.filepath)
        try:
            results.delete_result(user_image)
            refused = None
        except Exception as exc:
            refused = str(exc)
        bpy.ops.fathom.delete_result()
        emit({"before": [before["count"], before["image"] is None], "filled": [len(filled), result_name],
              "same_node": filled[0].name == empty[0].name, "asset": asset, "refused": refused,
              "file_gone": not os.path.exists(path), "image_gone": "Photo_depth_001.exr" not in bpy.data.images,
              "node_empty": filled[0].image is None, "mine_kept": "Mine" in bpy.data.images})
    """,
        catalog=catalog_for(da2_small=tiny_model_file),
    )
    assert got["before"] == [1, True]
    assert got["filled"] == [1, "Photo_depth_001.exr"] and got["same_node"]
    assert got["asset"]
    assert got["refused"] and "not a depth map made by Fathom" in got["refused"]
    assert got["file_gone"] and got["image_gone"] and got["node_empty"] and got["mine_kept"]


def test_model_download_verify_delete_from_127_0_0_1(blender, tiny_model_file, tmp_path):
    import hashlib

    sys.path.insert(0, str(ROOT))
    from tests.engine.http_fixture import FileServer

    data = tiny_model_file.read_bytes()
    with FileServer() as server:
        url = server.add("tiny.onnx", data)
        catalog = tmp_path / "models.json"
        catalog.write_text(
            json.dumps(
                {
                    "models": {
                        "tiny-dl": {
                            "name": "Tiny download",
                            "url": url,
                            "size": len(data),
                            "sha256": hashlib.sha256(data).hexdigest(),
                            "filename": "tiny-dl.onnx",
                            "license": "Apache-2.0",
                        }
                    }
                }
            )
        )
        got = blender(
            """
            from bl_ext.user_default.fathom.bridge.prefs import model_store
            prefs = bpy.context.preferences.addons["bl_ext.user_default.fathom"].preferences
            prefs.models_dir = tmp + "/models"
            offline = bpy.ops.fathom.download_model.poll()
            bpy.context.preferences.system.use_online_access = True  # what the user turns on
            down = bpy.ops.fathom.download_model(model="tiny-dl")
            status = model_store().status("tiny-dl")
            verified = bpy.ops.fathom.verify_model(model="tiny-dl")
            deleted = bpy.ops.fathom.delete_model(model="tiny-dl")
            emit({"offline_poll": offline, "ops": [list(down), list(verified), list(deleted)], "status": status,
                  "after": model_store().status("tiny-dl"), "files": sorted(os.listdir(tmp + "/models"))})
        """,
            catalog=catalog,
        )
    assert got["offline_poll"] is False
    assert got["ops"] == [["FINISHED"]] * 3
    assert got["status"] == "installed" and got["after"] == "missing"
    assert not [f for f in got["files"] if f.endswith(".onnx")]


def test_python_api(blender, catalog_for, tiny_model_file, tmp_path):
    got = blender(
        MAKE_IMAGE,
        """
        from bl_ext.user_default.fathom import api as fathom
        make_image("Photo", 50, 30)
        first = fathom.generate_depth(image="Photo", output=tmp + "/api.png", output_format="png16", invert=True)
        try:
            fathom.generate_depth(image="Photo", output=tmp + "/x.exr", colour="red")
            bad = None
        except fathom.FathomError as exc:
            bad = str(exc)
        emit({"path": str(first.path), "image": first.image.name, "node": first.node.bl_idname,
              "shape": list(first.depth_map.depth.shape), "near_is_bright": first.depth_map.near_is_bright,
              "bad": bad, "models": [m.info.id for m in fathom.models()]})
    """,
        catalog=catalog_for(da2_small=tiny_model_file),
    )
    assert got["path"] == str(tmp_path / "api.png") and (tmp_path / "api.png").is_file()
    assert got["image"] == "api.png" and got["node"] == "CompositorNodeImage"
    assert got["shape"] == [30, 50] and got["near_is_bright"] is False
    assert "Unknown setting(s) colour" in got["bad"]
    assert "da2-small" in got["models"]


def test_depth_presets(blender):
    got = blender("""
        props = bpy.context.scene.fathom
        props.resolution, props.output_format, props.invert = 1036, "png16", True
        bpy.ops.fathom.add_depth_preset(name="Fine Detail")
        folder = bpy.utils.user_resource("SCRIPTS", path="presets/fathom/depth")
        (path,) = [os.path.join(folder, f) for f in os.listdir(folder) if f.lower() == "fine_detail.py"]
        props.resolution, props.output_format, props.invert = 518, "exr32", False
        bpy.ops.script.execute_preset(filepath=path, menu_idname="FATHOM_MT_depth_presets")
        emit({"exists": os.path.isfile(path), "values": [props.resolution, props.output_format, props.invert]})
    """)
    assert got == {"exists": True, "values": [1036, "png16", True]}


def test_regenerate_with_the_stored_settings(blender, catalog_for, tiny_model_file):
    got = blender(
        MAKE_IMAGE,
        """
        from bl_ext.user_default.fathom.bridge.generation import nodes, results
        scene = bpy.context.scene
        props = scene.fathom
        props.image = make_image("Photo", 40, 20)
        props.resolution, props.invert, props.output_format = 300, True, "exr16"
        save_blend()
        bpy.ops.fathom.generate_depth()
        props.resolution, props.invert, props.output_format = 700, False, "png8"
        props.image = make_image("Other", 8, 8)
        tree = nodes.compositor_tree(scene, create=False)
        tree.nodes.active = [n for n in tree.nodes if n.bl_idname == "CompositorNodeImage"][0]
        ok = bpy.ops.fathom.regenerate_result()
        emit({"ok": list(ok), "settings": [props.resolution, props.invert, props.output_format, props.image.name],
              "nodes": image_nodes()})
    """,
        catalog=catalog_for(da2_small=tiny_model_file),
    )
    assert got["ok"] == ["FINISHED"]
    assert got["settings"] == [300, True, "exr16", "Photo"]
    assert got["nodes"] == ["Photo_depth_002.exr"]


def test_capture_flips_rows_and_displays_float_images(blender):
    got = blender("""
        import numpy as np
        from bl_ext.user_default.fathom.bridge.capture.picture import image_pixels
        out = {}
        for name, is_float in (("byte", False), ("float", True)):
            img = bpy.data.images.new(name, 4, 2, float_buffer=is_float)
            px = np.ones((2, 4, 4), np.float32)
            px[0, :, :3] = 0.0             # Blender's first row is the bottom one
            px[1, :, :3] = 0.2140          # linear value of sRGB 0.5
            img.pixels.foreach_set(px.ravel())
            rgb = image_pixels(img)
            out[name] = [rgb.shape, float(rgb[0, 0, 0]), float(rgb[1, 0, 0])]
        emit(out)
    """)
    # Top row first; a byte image's values as stored, a float image's linear light shown as sRGB.
    assert got["byte"][0] == [2, 4, 3] and got["byte"][2] == 0.0
    assert abs(got["byte"][1] - 0.214) < 0.003  # 8-bit storage
    assert got["float"][2] == 0.0 and abs(got["float"][1] - 0.5) < 0.002
