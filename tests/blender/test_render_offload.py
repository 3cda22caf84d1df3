"""Renders of the interactive path in a child Blender (bridge.capture.child), from the installed
extension: the main thread never waits for a render, the child's pixels equal an in-process
capture, unsaved changes are rendered, a cancel kills the child and leaves nothing behind.

The bpy module has no UI, so the tests drive what the modal operator drives: prepare (with
``offload_render``, as invoke does) on the main thread, Job.run on bridge.generation.worker's thread,
finish on the main thread. Each test is one scenario in a fresh Blender (the ``blender`` fixture).
"""

import textwrap
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]

SCENE = f"""
import glob, hashlib, tempfile, threading, time
import numpy as np
sys.path.insert(0, {str(ROOT)!r})
from scripts.sample_scene import build_scene

def sample_scene(width, height, samples):
    scene = build_scene(width, height, samples)
    load_profile()  # build_scene starts from factory settings, which disables the extension
    assert tuple(addon_utils.check("bl_ext.user_default.fathom")) == (True, True)
    return scene

def fathom():
    from bl_ext.user_default.fathom.bridge.capture import child as render_process
    from bl_ext.user_default.fathom.bridge.capture import picture as capture
    from bl_ext.user_default.fathom.bridge.capture import scene_z
    from bl_ext.user_default.fathom.bridge.generation import backends
    from bl_ext.user_default.fathom.bridge.generation import worker as jobs
    return capture, jobs, backends, render_process, scene_z

# Renders in this process, on any thread, counted: an offloaded render must leave these at 0.
renders_here = []
def count_render(*_):
    renders_here.append(threading.get_ident())
bpy.app.handlers.render_pre.append(count_render)

# This scenario's own temporary folder (the machine's /tmp is shared with other tests): whatever a
# capture or a child Blender leaves behind shows up there, or in this Blender's session folder.
os.makedirs(tmp + "/temp")
os.environ["TMPDIR"] = tempfile.tempdir = tmp + "/temp"

def leftovers():
    session = os.path.normpath(bpy.app.tempdir)  # this Blender's own, which may now be in there
    return sorted(set(os.listdir(tmp + "/temp")) - {{os.path.basename(session)}}) + sorted(os.listdir(session))

def generate_operator():
    # The registered class: its poll says whether Generate may start again.
    return bpy.types.Operator.bl_rna_get_subclass_py("FATHOM_OT_generate_depth")

def digest(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()
"""


def scenario(blender, code, **kwargs):
    return blender(SCENE + textwrap.dedent(code), **kwargs)


def test_child_render_equals_in_process_capture_with_unsaved_changes(blender, catalog_for, tiny_model_file, tmp_path):
    got = scenario(
        blender,
        """
        scene = sample_scene(96, 54, 4)
        capture, jobs, backends, render_process, scene_z = fathom()
        from bl_ext.user_default.fathom.engine.settings import DepthSettings
        bpy.ops.wm.save_as_mainfile(filepath=tmp + "/shot.blend")
        saved = digest(tmp + "/shot.blend")
        saved_render = capture.from_render(scene).rgb

        # Unsaved changes: the sphere moves, the compositor inverts the render.
        bpy.data.objects["Near sphere"].location.x += 1.5
        from bl_ext.user_default.fathom.bridge.generation.nodes import compositor_tree
        tree = compositor_tree(scene, create=True)
        layers = next(n for n in tree.nodes if n.bl_idname == "CompositorNodeRLayers")
        output = next(n for n in tree.nodes if n.bl_idname in ("NodeGroupOutput", "CompositorNodeComposite"))
        invert = tree.nodes.new("CompositorNodeInvert")
        tree.links.new(layers.outputs["Image"], invert.inputs["Color"])
        tree.links.new(invert.outputs[0], output.inputs[0])
        dirty = bpy.data.is_dirty

        out = {}
        settings = DepthSettings(normalization="raw")
        for kind in ("render", "compositor", "scene-z"):
            before = len(renders_here)
            child = render_process.ChildRender(scene, kind, settings)
            folder = child.folder
            seen = []
            made = child.run(lambda f, m: seen.append((f, m)))
            child_renders_here = len(renders_here) - before
            if kind == "scene-z":
                here = scene_z.scene_depth(scene, settings)
                pair = (made.depth, here.depth)
                same_meta = [made.near_is_bright == here.near_is_bright, made.model == here.model,
                             list(made.network_size) == list(here.network_size)]
            else:
                here = capture.from_render(scene, compositor=kind == "compositor")
                pair = (made.rgb, here.rgb)
                same_meta = [made.label == here.label, made.name == here.name, made.source == here.source]
            out[kind] = {"child": pair[0].tolist(), "here": pair[1].tolist(), "dtype": str(pair[0].dtype),
                         "same_meta": same_meta, "renders_here": child_renders_here,
                         "folder_left": os.path.exists(folder), "samples": [m for f, m in seen if "sample" in m],
                         "fractions": [f for f, m in seen]}
        file_state = [bpy.data.is_dirty, bpy.data.filepath, digest(tmp + "/shot.blend") == saved]
        # the copies were written without a preview picture; the user's preference is as it was
        prefs = [bpy.context.preferences.filepaths.file_preview_type, bpy.context.preferences.is_dirty]

        # Known only once rendered: the child's error comes back as the same error, in its words.
        scene.camera.rotation_euler.x = 3.0  # straight up, into the empty sky
        try:
            render_process.ChildRender(scene, "scene-z", settings).run()
            sky = None
        except Exception as e:
            sky = [type(e).__name__, str(e)]
        scene.camera.rotation_euler.x = 1.466

        # Painted pixels a copy of the file would miss: the render stays in this process.
        painted = bpy.data.images.new("Painted", 4, 4)
        painted.use_fake_user = True
        painted.pixels[0] = 0.5
        job = backends.prepare(bpy.context, source="RENDER", offload_render=True, output=tmp + "/painted.exr")
        emit({"out": out, "saved_render": saved_render.tolist(), "dirty": dirty, "file": file_state, "sky": sky,
              "prefs": prefs,
              "painted": [render_process.child_render(scene, "render") is None, job.render is None,
                          job.capture.rgb.shape[:2] == (54, 96)], "leftovers": leftovers()})
    """,
        catalog=catalog_for(da2_small=tiny_model_file),
    )
    out = got["out"]
    for kind, case in out.items():
        child, here = np.array(case["child"], np.float32), np.array(case["here"], np.float32)
        assert case["dtype"] == "float32" and child.shape == here.shape, kind
        assert np.abs(child - here).max() <= 1 / 65535, kind  # the same capture code, the same pixels
        assert case["same_meta"] == [True, True, True], kind
        assert case["renders_here"] == 0, kind  # the render happened in the child
        assert not case["folder_left"], kind
        assert case["fractions"][0] == 0.0 and case["fractions"][-1] == 1.0, kind
    assert out["render"]["samples"][-1] == "Rendering: sample 4 of 4"
    assert out["scene-z"]["samples"][-1] == "Rendering: sample 1 of 1"  # Scene Z renders 1 sample
    # The unsaved move is in the child's render; the compositor's Invert in its composite.
    render, saved = np.array(out["render"]["child"]), np.array(got["saved_render"])
    assert np.abs(render - saved).mean() > 0.005
    assert np.abs(np.array(out["compositor"]["child"]) - render).mean() > 0.1
    # The user's file, its path and its unsaved state are untouched; nothing is left behind.
    assert got["dirty"] and got["file"] == [True, str(tmp_path / "shot.blend"), True]
    assert got["prefs"] == ["AUTO", False], got["prefs"]
    assert got["sky"] == [
        "RenderCaptureError",
        "The camera sees nothing: every pixel of the Z pass is empty "
        "background. Point the camera at the scene or move objects inside its clip range.",
    ]
    assert got["painted"] == [True, True, True]
    assert got["leftovers"] == []


@pytest.mark.smoke  # the child's start and exit differ between Blender versions (4.5 once hung on exit)
def test_main_thread_never_waits_for_the_render(blender, catalog_for, tiny_model_file, tmp_path):
    """A render of several seconds, generated through the job machinery as the modal operator
    does: the main thread keeps ticking meanwhile. The bound is about blocking, not speed: the
    longest pause allowed is far below the render's length on any machine."""
    got = scenario(
        blender,
        """
        scene = sample_scene(320, 180, 256)
        capture, jobs, backends, render_process, scene_z = fathom()
        scene.fathom.source = "RENDER"
        scene.fathom.resolution = 256
        bpy.ops.wm.save_as_mainfile(filepath=tmp + "/shot.blend")

        started = time.perf_counter()
        job = backends.prepare(bpy.context, offload_render=True)
        prepare_s = time.perf_counter() - started
        deferred = [job.capture is None, job.render is not None]
        running = jobs.start(job)
        ticks, messages = [time.perf_counter()], set()
        while not running.wait(0.02):  # the modal timer's part: poll, read progress
            ticks.append(time.perf_counter())
            messages.add(running.message)
        ticks.append(time.perf_counter())
        render_s = ticks[-1] - ticks[0]
        image, node = running.job.finish(bpy.context)
        jobs.collect(running)
        emit({"prepare_s": prepare_s, "deferred": deferred, "render_s": render_s,
              "longest_pause_s": max(b - a for a, b in zip(ticks, ticks[1:])), "ticks": len(ticks),
              "error": running.error and repr(running.error), "messages": sorted(messages),
              "renders_here": len(renders_here), "image": image.name, "size": list(image.size),
              "source": image["fathom"]["source"].to_dict(), "node": node.image.name,
              "leftovers": leftovers()})
    """,
        catalog=catalog_for(da2_small=tiny_model_file),
    )
    assert got["error"] is None and got["deferred"] == [True, True]
    assert got["renders_here"] == 0
    assert got["image"] == "Scene_render_depth_001.exr" and got["size"] == [320, 180]
    assert got["source"]["kind"] == "render" and got["source"]["camera"] == "Camera" and got["node"] == got["image"]
    assert any(m.startswith("Rendering: sample") for m in got["messages"])
    # The render takes seconds; the main thread never paused for more than a fraction of that.
    assert got["render_s"] > 2.0, got
    assert got["prepare_s"] < 1.5, got
    assert got["longest_pause_s"] < min(1.0, got["render_s"] / 4), got
    assert got["leftovers"] == []


def test_cancel_kills_the_child_and_leaves_nothing(blender, catalog_for, tiny_model_file, tmp_path):
    got = scenario(
        blender,
        """
        scene = sample_scene(320, 180, 4096)  # minutes of rendering, unless cancelled
        capture, jobs, backends, render_process, scene_z = fathom()
        scene.fathom.source = "COMPOSITOR"
        from bl_ext.user_default.fathom.bridge.generation.nodes import compositor_tree
        compositor_tree(scene, create=True)
        bpy.ops.wm.save_as_mainfile(filepath=tmp + "/shot.blend")
        os.makedirs(tmp + "/generated", exist_ok=True)

        job = backends.prepare(bpy.context, offload_render=True)
        child = job.render
        running = jobs.start(job)
        deadline = time.perf_counter() + 120
        while "sample" not in running.message and not running.done and time.perf_counter() < deadline:
            time.sleep(0.05)
        rendering = running.message
        pid = child.process.pid
        alive = os.path.exists(f"/proc/{pid}")
        asked = time.perf_counter()
        running.cancel()
        running.wait(60)
        cancel_s = time.perf_counter() - asked
        jobs.collect(running)
        emit({"rendering": rendering, "alive": alive, "cancel_s": cancel_s, "cancelled": running.cancelled,
              "error": str(running.error), "exit": child.process.returncode,
              "child_gone": not os.path.exists(f"/proc/{pid}"), "folder_left": os.path.exists(child.folder),
              "generated": os.listdir(tmp + "/generated"), "leftovers": leftovers(),
              "idle": [jobs.current() is None, generate_operator().poll(bpy.context)],
              "images": sorted(i.name for i in bpy.data.images), "renders_here": len(renders_here)})
    """,
        catalog=catalog_for(da2_small=tiny_model_file),
    )
    assert got["rendering"].startswith("Rendering: sample") and got["alive"]
    assert got["cancelled"] and got["error"] == "The render was cancelled; nothing was written."
    assert got["cancel_s"] < 10 and got["exit"] < 0  # killed by a signal, not finished
    assert got["child_gone"] and not got["folder_left"] and got["leftovers"] == []
    assert got["generated"] == [] and not any("depth" in name for name in got["images"])
    assert got["idle"] == [True, True] and got["renders_here"] == 0
