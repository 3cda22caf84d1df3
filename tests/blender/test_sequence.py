"""Depth sequences in real Blender, from the installed extension: the render and Scene Z over a
frame range through the CLI (numbered files in one folder, the depth node an image sequence, a
rerun skipping finished frames), two CLI processes sharing overlapping ranges, an image sequence
and a movie read through Blender, and the Python API."""

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.blender.conftest import ROOT, _env

# The sample scene with the near sphere moving to the right over frames 1..6.
ANIMATED = f"""
sys.path.insert(0, {str(ROOT)!r})
from scripts.sample_scene import build_scene
scene = build_scene(64, 36, 2)
load_profile()  # build_scene starts from factory settings, which disables the extension
sphere = bpy.data.objects["Near sphere"]
for frame, x in ((1, -2.0), (6, 1.5)):
    sphere.location.x = x
    sphere.keyframe_insert("location", frame=frame)
scene.frame_start, scene.frame_end = 1, 6
scene.frame_current = 1
bpy.ops.wm.save_as_mainfile(filepath=tmp + "/shot.blend")
"""

READ_BACK = """
bpy.ops.wm.open_mainfile(filepath=tmp + "/shot.blend")
import numpy as np
from bl_ext.user_default.fathom.engine.encode import read_depth
from bl_ext.user_default.fathom.bridge.generation.nodes import compositor_tree
def depth_nodes():
    tree = compositor_tree(bpy.context.scene, create=False)  # Blender 4.5 and 5.x
    out = {}
    for node in tree.nodes:
        if node.bl_idname == "CompositorNodeImage" and node.image is not None and "fathom" in node.image:
            img = node.image
            out[img.name] = {"source": img.source, "colorspace": img.colorspace_settings.name,
                             "filepath": img.filepath, "start": node.frame_start, "offset": node.frame_offset,
                             "duration": node.frame_duration,
                             "sequence": img["fathom"]["sequence"].to_dict()}
    return out
"""


def render_frames(fathom_cli, tmp_path, *args, **kwargs):
    """`fathom generate --source render ARGS` on the animated shot."""
    return fathom_cli("generate", "--source", "render", *args, blend=tmp_path / "shot.blend", **kwargs)


def frames_line(stderr, what):
    """The frames a CLI run reports as ``what`` ('written', 'already done', 'by another process')."""
    match = re.search(rf"frames {what}: ([0-9, -]*)", stderr)
    assert match, stderr
    out = []
    for part in filter(None, (p.strip() for p in match.group(1).split(","))):
        a, _, b = part.partition("-")
        out += list(range(int(a), int(b or a) + 1))
    return out


@pytest.mark.smoke
@pytest.mark.parametrize("backend,folder", [("local", "Scene_render_depth"), ("scene-z", "Scene_Z_depth")])
def test_cli_render_frames_make_a_numbered_sequence_and_a_rerun_skips_them(
    blender, fathom_cli, catalog_for, tiny_model_file, tmp_path, backend, folder
):
    catalog = catalog_for(da2_small=tiny_model_file)
    blender(ANIMATED)
    run = render_frames(fathom_cli, tmp_path, "--backend", backend, "--frames", "1-5", "--save", catalog=catalog)
    assert run.returncode == 0, run.stderr
    out = tmp_path / "generated" / folder
    assert Path(run.stdout.strip().splitlines()[-1]) == out
    names = sorted(p.name for p in out.iterdir() if p.is_file())
    assert names == [f"{folder}_{f:04d}.exr" for f in range(1, 6)]
    assert frames_line(run.stderr, "written") == [1, 2, 3, 4, 5]
    assert "Frame 5 (5 of 5)" in run.stderr  # progress per frame

    got = blender(
        READ_BACK,
        f"""
        nodes = depth_nodes()
        maps = [read_depth(tmp + "/generated/{folder}/{folder}_%04d.exr" % f).tolist() for f in (1, 5)]
        emit({{"nodes": nodes, "maps": maps, "frame": bpy.context.scene.frame_current}})
    """,
    )
    (node,) = got["nodes"].values()
    assert node["source"] == "SEQUENCE" and node["colorspace"] == "Non-Color"
    assert node["filepath"] == f"//generated/{folder}/{folder}_0001.exr"
    assert (node["start"], node["offset"], node["duration"]) == (1, 0, 5)
    assert node["sequence"]["start"] == 1 and node["sequence"]["end"] == 5
    assert got["frame"] == 1  # the file's current frame is put back after rendering the range
    first, last = (np.array(m, np.float32) for m in got["maps"])
    assert first.shape == (36, 64) and np.abs(first - last).max() > 0.05  # the sphere moved

    mtimes = {p.name: p.stat().st_mtime_ns for p in out.glob("*.exr")}
    again = render_frames(fathom_cli, tmp_path, "--backend", backend, "--frames", "1-6", catalog=catalog)
    assert again.returncode == 0, again.stderr
    assert frames_line(again.stderr, "written") == [6] and frames_line(again.stderr, "already done") == [1, 2, 3, 4, 5]
    assert all(p.stat().st_mtime_ns == mtimes[p.name] for p in out.glob("*.exr") if p.name in mtimes)
    redo = render_frames(fathom_cli, tmp_path, "--backend", backend, "--frames", "1-2", "--redo", catalog=catalog)
    assert redo.returncode == 0 and frames_line(redo.stderr, "written") == [1, 2]


def test_scene_z_sequence_keeps_exact_distances(blender, fathom_cli, tmp_path):
    blender(ANIMATED)
    run = render_frames(fathom_cli, tmp_path, "--backend", "scene-z", "--normalization", "raw", "--frames", "2-3")
    assert run.returncode == 0, run.stderr
    got = blender(
        READ_BACK,
        """
        from bl_ext.user_default.fathom.bridge.capture import scene_z as sz
        from bl_ext.user_default.fathom.engine.settings import DepthSettings
        scene = bpy.context.scene
        scene.frame_set(3)
        single = sz.scene_depth(scene, DepthSettings(normalization="raw")).depth
        seq = read_depth(tmp + "/generated/Scene_Z_depth/Scene_Z_depth_0003.exr")
        emit(float(np.abs(single - seq).max()))
    """,
    )
    assert got == 0.0


def test_two_processes_with_overlapping_frames_write_each_frame_once(
    blender, tmp_path, catalog_for, tiny_model_file, blender_home
):
    catalog = catalog_for(da2_small=tiny_model_file)
    blender(ANIMATED)
    cmd = [
        sys.executable,
        str(ROOT / "scripts" / "blender_cli.py"),
        "--blend",
        str(tmp_path / "shot.blend"),
        "--",
        "generate",
        "--source",
        "render",
    ]
    nodes = [
        subprocess.Popen(
            cmd + ["--frames", frames],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=_env(blender_home, catalog),
            cwd=tmp_path,
        )
        for frames in ("1-4", "3-6")
    ]
    outs = [node.communicate(timeout=300) for node in nodes]
    for node, (_, err) in zip(nodes, outs):
        assert node.returncode == 0, err
    written = [frames_line(err, "written") for _, err in outs]
    assert sorted(written[0] + written[1]) == [1, 2, 3, 4, 5, 6]  # every frame, each by one process
    folder = tmp_path / "generated" / "Scene_render_depth"
    assert sorted(p.name for p in folder.glob("*.exr")) == [f"Scene_render_depth_{f:04d}.exr" for f in range(1, 7)]
    assert not list(folder.glob(".fathom/*.claim"))


MEDIA = """
# An image sequence of 4 numbered PNGs and a lossless movie of 4 frames, both made by Blender.
import os
os.makedirs(tmp + "/plate", exist_ok=True)
for f in range(1, 5):
    img = bpy.data.images.new("p%d" % f, 48, 32)
    px = np.zeros((32, 48, 4), np.float32); px[..., 3] = 1; px[:, : 8 * f, 0] = 1; px[:, :, 1] = f / 5
    img.pixels.foreach_set(px.ravel())
    img.filepath_raw = tmp + "/plate/plate_%04d.png" % f; img.file_format = "PNG"; img.save()
maker = bpy.data.scenes.new("maker")
maker.render.resolution_x, maker.render.resolution_y, maker.render.resolution_percentage = 48, 32, 100
editor = maker.sequence_editor_create()
for f in range(1, 5):
    strip = editor.strips.new_effect("c%d" % f, "COLOR", channel=1, frame_start=f, length=1)
    strip.color = (f / 4, 0.5, 1 - f / 4)
maker.frame_start, maker.frame_end = 1, 4
maker.render.image_settings.media_type = "VIDEO"
maker.render.image_settings.file_format = "FFMPEG"
maker.render.ffmpeg.format, maker.render.ffmpeg.codec = "MKV", "FFV1"
maker.render.filepath = tmp + "/movie_"
with bpy.context.temp_override(scene=maker):
    bpy.ops.render.render(animation=True)
    maker.render.image_settings.media_type = "IMAGE"
    maker.render.image_settings.file_format = "PNG"
    for f in (1, 4):  # the same frames as stills, to compare the movie's frames with
        maker.frame_set(f)
        maker.render.filepath = tmp + "/still_%d.png" % f
        bpy.ops.render.render(write_still=True)
bpy.data.scenes.remove(maker)
seq = bpy.data.images.load(tmp + "/plate/plate_0001.png")
seq.source = "SEQUENCE"
seq.name = "Plate"
seq.use_fake_user = True
bpy.ops.wm.save_as_mainfile(filepath=tmp + "/media.blend")
"""


def test_image_sequence_and_movie_frames_read_through_blender(
    blender, fathom_cli, catalog_for, tiny_model_file, tmp_path
):
    catalog = catalog_for(da2_small=tiny_model_file)
    blender("import numpy as np\n", MEDIA)
    movie = next(tmp_path.glob("movie_*.mkv"))
    blend = tmp_path / "media.blend"
    seq = fathom_cli(
        "generate", "--source", "image", "Plate", "--frames", "2-4", "--save", blend=blend, catalog=catalog
    )
    assert seq.returncode == 0, seq.stderr
    assert sorted(p.name for p in (tmp_path / "generated" / "Plate_depth").glob("*.exr")) == [
        "Plate_depth_0002.exr",
        "Plate_depth_0003.exr",
        "Plate_depth_0004.exr",
    ]
    clip = fathom_cli(
        "generate", "--source", "file", str(movie), "--frames", "1-4", "--save", blend=blend, catalog=catalog
    )
    assert clip.returncode == 0, clip.stderr
    out = tmp_path / "generated" / f"{movie.stem}_depth"
    assert len(list(out.glob("*.exr"))) == 4
    got = blender(
        """
        import numpy as np
        bpy.ops.wm.open_mainfile(filepath=tmp + "/media.blend")
        from bl_ext.user_default.fathom.bridge.capture.frames import file_frames
        reader = file_frames(MOVIE)
        pixels = [reader.read(f)[16, 24].tolist() for f in (1, 4)]
        reader.close()
        stills = []
        for f in (1, 4):
            still = bpy.data.images.load(tmp + "/still_%d.png" % f)
            still.colorspace_settings.name = "Non-Color"
            px = np.array(still.pixels[:]).reshape(still.size[1], still.size[0], 4)[::-1]
            stills.append(px[16, 24, :3].tolist())
        nodes = {n.image.name: [n.image.source, n.frame_start, n.frame_duration]
                 for n in bpy.context.scene.compositing_node_group.nodes
                 if n.bl_idname == "CompositorNodeImage" and n.image is not None}
        emit({"pixels": pixels, "stills": stills, "frames": reader.frames, "nodes": nodes,
              "scenes": len(bpy.data.scenes)})
    """.replace("MOVIE", repr(str(movie)))
    )
    assert got["frames"] == [1, 2, 3, 4] and got["scenes"] == 1  # the reader's scene is gone
    # The movie's own pixels: frames 1 and 4 as the scene that made it rendered them as stills.
    np.testing.assert_allclose(got["pixels"], got["stills"], atol=2 / 255)
    assert np.abs(np.subtract(got["pixels"][0], got["pixels"][1])).max() > 0.2
    assert got["nodes"]["Plate_depth"] == ["SEQUENCE", 2, 3]
    assert got["nodes"][f"{movie.stem}_depth"] == ["SEQUENCE", 1, 4]
    bad = fathom_cli("generate", "--source", "image", "Plate", "--frames", "3-9", blend=blend, catalog=catalog)
    assert bad.returncode == 3 and "has no frames 5-9" in bad.stderr


def test_python_api_returns_the_sequence(blender, catalog_for, tiny_model_file):
    catalog = catalog_for(da2_small=tiny_model_file)
    got = blender(
        ANIMATED,
        """
        from bl_ext.user_default.fathom import api as fathom
        seen = []
        result = fathom.generate_depth(source="render", frames=(1, 3), resolution=256,
                                       progress=lambda f, m: seen.append(m))
        again = fathom.generate_depth(source="render", frames=[1, 2, 3], resolution=256)
        emit({"frames": result.frames, "written": result.written, "paths": [p.name for p in result.paths.values()],
              "image": [result.image.source, result.image.name], "node": result.node.frame_duration,
              "skipped": again.skipped,
              "flicker": [result.flicker_before is not None, result.flicker_after is not None],
              "progress": any("Frame 2 (2 of 3)" in m for m in seen)})
    """,
        catalog=catalog,
    )
    assert got["frames"] == [1, 2, 3] and got["written"] == [1, 2, 3] and got["skipped"] == [1, 2, 3]
    assert got["paths"] == [f"Scene_render_depth_{f:04d}.exr" for f in (1, 2, 3)]
    assert got["image"] == ["SEQUENCE", "Scene_render_depth"] and got["node"] == 3
    assert got["flicker"] == [True, True] and got["progress"]


def test_bad_frame_specs_are_usage_errors(fathom_cli, blender, tmp_path):
    blender(ANIMATED)
    bad = render_frames(fathom_cli, tmp_path, "--frames", "5-1")
    assert bad.returncode == 2 and "ends before it starts" in bad.stderr


def test_interactive_sequence_renders_in_child_blenders_and_cancels_between_frames(
    blender, catalog_for, tiny_model_file
):
    """What the Generate button drives with Frames on: the worker thread, a child Blender per frame,
    the main thread free (the test drains what the worker posts, as the operator's timer does)."""
    got = blender(
        ANIMATED,
        """
        import time
        from bl_ext.user_default.fathom.bridge.generation import worker as jobs
        from bl_ext.user_default.fathom.bridge.generation.sequence import prepare_sequence
        props = bpy.context.scene.fathom
        props.source, props.resolution = "RENDER", 256

        running = jobs.start(prepare_sequence(bpy.context, "1-3", interactive=True))
        seen, ticks = [], 0
        while not running.wait(0.02):
            jobs.drain()
            ticks += 1
            seen.append(running.message)
        jobs.drain()
        image, node = running.job.finish(bpy.context)
        jobs.collect(running)
        first = [running.error and str(running.error), image.source, node.frame_duration, running.job.result.written,
                 bpy.context.scene.frame_current]

        # A cancel while frame 5 renders: frame 4 stays, 5 and 6 are not made.
        job = prepare_sequence(bpy.context, "4-6", interactive=True)
        cancelled = jobs.start(job)
        while not cancelled.wait(0.02):
            jobs.drain()
            if "Frame 5" in cancelled.message:
                cancelled.cancel()
        jobs.drain()
        jobs.collect(cancelled)
        files = sorted(os.listdir(tmp + "/generated/Scene_render_depth"))
        emit({"first": first, "messages": sorted(set(seen)), "ticks": ticks, "cancelled": cancelled.cancelled,
              "error": str(cancelled.error), "files": files})
    """,
        catalog=catalog_for(da2_small=tiny_model_file),
    )
    error, source, duration, written, frame = got["first"]
    assert error is None and source == "SEQUENCE" and duration == 3 and written == [1, 2, 3] and frame == 1
    assert any(m.startswith("Frame 3 (3 of 3)") for m in got["messages"]) and got["ticks"] > 10, got
    assert got["cancelled"] and "Cancelled between frames: frame 4 is in" in got["error"], got["error"]
    assert [f for f in got["files"] if f.endswith(".exr")] == [f"Scene_render_depth_{f:04d}.exr" for f in range(1, 5)]


@pytest.fixture(scope="module")
def depth_server(tiny_model_file, tmp_path_factory):
    from tests.blender.test_remote import DepthServer

    folder = tmp_path_factory.mktemp("sequence-server")
    catalog = folder / "catalog.json"
    catalog.write_text(json.dumps({"models": {"da2-small": {"path": str(tiny_model_file)}}}))
    srv = DepthServer(folder, catalog).start()
    yield srv
    srv.stop()


def test_server_sequence_one_job_per_frame_priced_first(blender, depth_server):
    from tests.blender.test_remote import TOP_UP

    key = depth_server.user(tokens=4)
    got = blender(
        ANIMATED,
        f"""
        prefs = bpy.context.preferences.addons["bl_ext.user_default.fathom"].preferences
        bpy.context.preferences.system.use_online_access = True
        prefs.backend, prefs.server_url, prefs.api_key = "SERVER", {depth_server.url!r}, {key!r}
        bpy.context.scene.fathom.resolution = 256
        from bl_ext.user_default.fathom import api as fathom
        from bl_ext.user_default.fathom.bridge.remote.account import generate_button
        assert bpy.ops.fathom.test_connection() == {{"FINISHED"}}  # fills the cached balance and prices
        props = bpy.context.scene.fathom
        props.source, props.use_frames, props.frames = "RENDER", True, "1-5"
        buttons = [generate_button(bpy.context)["text"]]
        props.frames = "1-3"
        buttons.append(generate_button(bpy.context)["text"])
        try:
            fathom.generate_depth(source="render", frames=(1, 5))
            short = None
        except fathom.FathomError as exc:
            short = str(exc)
        shot = fathom.generate_depth(source="render", frames=(1, 3))
        emit({{"short": short, "written": shot.written, "image": shot.image.source, "buttons": buttons,
              "files": sorted(p.name for p in shot.paths.values())}})
    """,
    )
    assert got["short"].startswith("Get tokens · 1 more: these 5 frames cost 5 tokens (1 each) and your balance is 4")
    assert TOP_UP in got["short"]
    assert got["buttons"] == ["Get tokens · 1 more", "Generate Depth · 3 tokens"]
    assert got["written"] == [1, 2, 3] and got["image"] == "SEQUENCE"
    assert got["files"] == [f"Scene_render_depth_{f:04d}.exr" for f in (1, 2, 3)]
    assert depth_server.balance(key) == 1 and len(depth_server.artworks(key)) == 3  # one job per frame


def test_displacement_of_a_depth_sequence_follows_the_frame(blender, fathom_cli, tmp_path):
    blender(ANIMATED)
    run = render_frames(fathom_cli, tmp_path, "--backend", "scene-z", "--frames", "1-5", "--save")
    assert run.returncode == 0, run.stderr
    got = blender(
        READ_BACK,
        """
        scene = bpy.context.scene
        picture = bpy.data.images.new("pic", 64, 36)
        assert bpy.ops.fathom.setup_displacement(depth="Scene_Z_depth", picture="pic", distance=10.0, strength=5.0,
                                                 resolution=64) == {"FINISHED"}
        plane = bpy.data.objects["Fathom Depth Plane"]
        heights = []
        for frame in (1, 5, 1):
            scene.frame_set(frame)
            ev = plane.evaluated_get(bpy.context.evaluated_depsgraph_get()).data
            co = np.empty(len(ev.vertices) * 3, np.float32)
            ev.vertices.foreach_get("co", co)
            heights.append(co.reshape(-1, 3)[:, 2].tolist())
        emit(heights)
    """,
    )
    first, last, again = (np.array(h) for h in got)
    assert np.abs(first - last).max() > 0.1  # the sphere moved: the relief follows the frame
    np.testing.assert_allclose(first, again)


def test_generate_depth_operator_with_frames(blender, catalog_for, tiny_model_file):
    got = blender(
        ANIMATED,
        """
        props = bpy.context.scene.fathom
        props.source, props.resolution, props.use_frames, props.frames = "RENDER", 256, True, "2-3"
        ok = list(bpy.ops.fathom.generate_depth())
        again = list(bpy.ops.fathom.generate_depth())
        mtime = os.stat(tmp + "/generated/Scene_render_depth/Scene_render_depth_0002.exr").st_mtime_ns
        redo = list(bpy.ops.fathom.generate_depth(redo=True))
        redone = os.stat(tmp + "/generated/Scene_render_depth/Scene_render_depth_0002.exr").st_mtime_ns != mtime
        image = bpy.data.images["Scene_render_depth"]
        props.frames = "3-1"
        try:
            bad = list(bpy.ops.fathom.generate_depth())
        except RuntimeError as exc:  # an operator's error report, as a script sees it
            bad = str(exc)
        emit({"ok": ok, "again": again, "redo": redo, "redone": redone, "source": image.source, "bad": bad,
              "files": sorted(os.listdir(tmp + "/generated/Scene_render_depth"))})
    """,
        catalog=catalog_for(da2_small=tiny_model_file),
    )
    assert got["ok"] == got["again"] == got["redo"] == ["FINISHED"] and got["redone"]
    assert got["source"] == "SEQUENCE" and "Frames '3-1': the range ends before it starts" in got["bad"]
    assert [f for f in got["files"] if f.endswith(".exr")] == [
        "Scene_render_depth_0002.exr",
        "Scene_render_depth_0003.exr",
    ]
