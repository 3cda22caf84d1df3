"""Local inference in the worker process (bridge.generation.inference), in real Blender on the
installed zip: this venv has no onnxruntime, so the process can only run on the zip's wheels.
Timers do not run in background mode, so the tests drive what the modal operator drives."""

from tests.blender.test_blender_extension import MAKE_IMAGE

PRELUDE = """
import signal, threading, time
import numpy as np
from bl_ext.user_default.fathom.bridge.generation import backends, inference
from bl_ext.user_default.fathom.bridge.generation import worker as jobs
from bl_ext.user_default.fathom.engine import depth
from bl_ext.user_default.fathom.engine.settings import DepthSettings
"""


def test_process_matches_in_process_estimate_and_keeps_the_model(blender, catalog_for, tiny_model_file):
    got = blender(
        PRELUDE,
        f"""
        rgb = np.random.default_rng(3).random((60, 90, 3), dtype=np.float32)
        settings = DepthSettings(resolution=256, threads=0)
        seen = []
        made = inference.estimate(rgb, settings, {str(tiny_model_file)!r}, progress=lambda f, m: seen.append(m))
        first_pid = inference.worker().process.pid
        again = inference.estimate(rgb, settings, {str(tiny_model_file)!r})
        main_has_ort = "onnxruntime" in sys.modules
        here = depth.estimate(rgb, settings, {str(tiny_model_file)!r})  # the same engine, in this process
        emit({{"max_diff": float(np.abs(made.depth - again.depth).max()), "shape": list(made.depth.shape),
              "parity": float(np.abs(made.depth - here.depth).max()),
              "starts": inference.worker().starts, "same_pid": inference.worker().process.pid == first_pid,
              "seen": seen, "settings_kept": made.settings is settings, "model": made.model,
              "main_has_ort": main_has_ort}})
        inference.shutdown()
    """,
    )
    assert got["shape"] == [60, 90] and got["max_diff"] == 0.0 and got["parity"] < 1e-6
    assert got["starts"] == 1 and got["same_pid"]  # one process, the model loaded once, reused
    assert "Loading the model" in got["seen"] and "Depth ready" in got["seen"]
    assert got["settings_kept"] and got["model"] == "da2-small"
    assert got["main_has_ort"] is False  # Blender's own process never loads onnxruntime


def test_process_cancel_crash_and_restart(blender, tiny_model_file, standin_model):
    got = blender(
        PRELUDE,
        f"""
        rgb = np.random.default_rng(4).random((300, 400, 3), dtype=np.float32)
        settings = DepthSettings(resolution=518)
        out = {{}}
        # Cancelled while the model loads: the process is killed at once.
        flag = threading.Event()
        t = threading.Timer(1.0, flag.set); t.start()
        started = time.monotonic()
        try:
            inference.estimate(rgb, settings, {str(standin_model)!r}, cancel=flag.is_set)
        except Exception as exc:
            out["cancel"] = type(exc).__name__
        out["cancel_s"] = time.monotonic() - started
        out["after_cancel"] = inference.worker().process is None
        # Killed from outside (as the out-of-memory killer does): a clear error, Blender goes on.
        killer = lambda: (time.sleep(1.0), os.kill(inference.worker().process.pid, signal.SIGKILL))
        threading.Thread(target=killer).start()
        try:
            inference.estimate(rgb, settings, {str(standin_model)!r})
        except Exception as exc:
            out["crash"] = [type(exc).__name__, str(exc)]
        # The next generation starts a new process and works.
        made = inference.estimate(rgb[:60, :90], DepthSettings(resolution=256), {str(tiny_model_file)!r})
        out["restarted"] = list(made.depth.shape)
        out["starts"] = inference.worker().starts
        emit(out)
        inference.shutdown()
    """,
    )
    assert got["cancel"] == "CancelledError" and got["cancel_s"] < 5 and got["after_cancel"]
    name, message = got["crash"]
    assert name == "InferenceError" and "exit code -9" in message and "out of memory" in message
    assert got["restarted"] == [60, 90] and got["starts"] == 3


def test_image_file_decoded_in_the_worker(blender, catalog_for, tiny_model_file):
    """An Image File source, interactive: prepare does not decode it (the worker process does), and
    the result equals the synchronous path's."""
    got = blender(
        MAKE_IMAGE,
        PRELUDE,
        """
        img = make_image("Photo", 90, 60)
        img.filepath_raw = tmp + "/photo.png"; img.file_format = "PNG"; img.save()
        props = bpy.context.scene.fathom
        props.source = "FILE"; props.filepath = tmp + "/photo.png"; props.resolution = 256
        save_blend()
        job = backends.prepare(bpy.context, in_process=True, output=tmp + "/a.exr")
        deferred = job.capture.rgb is None and job.in_process
        job.run()
        _, sync_image, _ = backends.generate(bpy.context, output=tmp + "/b.exr")
        a, b = bpy.data.images.load(tmp + "/a.exr"), bpy.data.images.load(tmp + "/b.exr")
        pa, pb = np.array(a.pixels[:]), np.array(b.pixels[:])
        emit({"deferred": deferred, "diff": float(np.abs(pa - pb).max()), "size": list(a.size)})
        inference.shutdown()
    """,
        catalog=catalog_for(da2_small=tiny_model_file),
    )
    assert got["deferred"] and got["size"] == [90, 60] and got["diff"] < 1e-6


def test_image_datablock_decoded_in_the_worker(blender, catalog_for, tiny_model_file):
    """An image datablock, interactive: an unchanged image whose file the engine reads as Blender
    does (a saved PNG, a packed one, one with an EXIF rotation) goes to the worker process undecoded,
    so Blender's main thread never loads it; the result equals the synchronous path's, which reads
    Blender's own pixels (EXIF orientation not applied, as Blender does not apply it). An edited
    image, and one in another colour space, are read from Blender's pixels instead."""
    got = blender(
        MAKE_IMAGE,
        PRELUDE,
        """
        from PIL import Image
        from bl_ext.user_default.fathom.bridge.capture import picture
        img = make_image("Photo", 90, 60)
        img.filepath_raw = tmp + "/photo.png"; img.file_format = "PNG"; img.save()
        with Image.open(tmp + "/photo.png") as im:  # the same pixels, stored with "rotate 90" in EXIF
            exif = im.getexif(); exif[0x0112] = 6
            im.save(tmp + "/turned.png", exif=exif)
        make_image("Packed", 90, 60).pack()
        img.use_fake_user = bpy.data.images["Packed"].use_fake_user = True  # kept in the file
        save_blend()
        bpy.ops.wm.open_mainfile(filepath=tmp + "/shot.blend")  # nothing decoded yet
        bpy.data.images.load(tmp + "/turned.png")
        props = bpy.context.scene.fathom
        props.source = "IMAGE"; props.resolution = 256
        out = {}
        for i, name in enumerate(("Photo", "Packed", "turned.png")):
            image = props.image = bpy.data.images[name]
            job = backends.prepare(bpy.context, in_process=True, output=tmp + f"/{i}a.exr")
            handed = type(job.capture.file).__name__ if job.capture.rgb is None else None
            loaded = image.has_data  # prepare made Blender decode it
            job.run()
            _, sync_image, _ = backends.generate(bpy.context, output=tmp + f"/{i}b.exr")
            a = bpy.data.images.load(tmp + f"/{i}a.exr")
            pa, pb = np.array(a.pixels[:]), np.array(sync_image.pixels[:])
            # what the Server backend's worker thread decodes (picture.decoded) is Blender's pixels too
            pixels = picture.decoded(job.capture).rgb - picture.image_pixels(image)
            out[name] = {"handed": handed, "loaded": loaded, "diff": float(np.abs(pa - pb).max()),
                         "size": list(a.size), "blender_size": list(image.size),
                         "pixels": float(np.abs(pixels).max())}
        photo = props.image = bpy.data.images["Photo"]
        photo.pixels[0] = 0.5  # painted, not saved: only Blender's pixels are right
        out["edited"] = backends.prepare(bpy.context, in_process=True).capture.rgb is not None
        turned = props.image = bpy.data.images["turned.png"]
        turned.colorspace_settings.name = "Linear Rec.709"  # Blender converts: its pixels
        out["linear"] = backends.prepare(bpy.context, in_process=True).capture.rgb is not None
        emit(out)
        inference.shutdown()
    """,
        catalog=catalog_for(da2_small=tiny_model_file),
    )
    assert got["Photo"]["handed"] == "PosixPath" and got["Packed"]["handed"] == "bytes", got
    assert got["turned.png"]["handed"] == "PosixPath", got
    for name in ("Photo", "Packed", "turned.png"):
        assert not got[name]["loaded"] and got[name]["diff"] < 1e-6 and got[name]["pixels"] < 1e-6, (name, got[name])
        assert got[name]["size"] == got[name]["blender_size"] == [90, 60], (name, got[name])
    assert got["edited"] and got["linear"], got
