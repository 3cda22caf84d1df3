"""One depth generation in three steps, so the same code serves the operator, the CLI and scripts:

    job = prepare(context, ...)     main thread: capture pixels, settings, model file, output place
                                    (the operator defers renders to run: see offload_render)
    job.run(progress, cancel)       any thread, no bpy: estimate and write the file
    image, node = finish(job, ctx)  main thread: load the image, place it in the compositor

Everything that can fail cheaply (no source, unsaved .blend, missing model) fails in prepare,
before the slow part starts.
"""
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Optional

import bpy

from ..engine import depth
from ..engine.catalog import get_model
from ..engine.errors import CancelledError, FathomError, ModelMissingError
from ..engine.settings import DepthSettings
from ..engine.store import ModelStore
from ..preferences import addon_preferences, model_store
from . import capture, results


_NOT_PICTURES = ("RENDER_RESULT", "COMPOSITING")  # empty in background mode; the render is its own source


class SourceError(FathomError):
    """The chosen source has no picture to give."""


@dataclass
class Job:
    capture: Optional[capture.Capture]  # None until run when a child process renders it
    settings: DepthSettings
    model_path: Optional[Path]
    target: results.Target
    scene_name: str
    depth_map: Optional[depth.DepthMap] = None
    path: Optional[Path] = None
    download: Optional[ModelStore] = None  # fetch the model first (interactive, online, not installed)
    render: Optional["render_process.ChildRender"] = None  # render first, in a child Blender (interactive)

    def run(self, progress=None, cancel=None) -> Path:
        """Estimate (unless prepare already made the map, as Scene Z does) and write the result file.
        Cancelling raises CancelledError and writes nothing."""
        self.render_first(progress, cancel)
        if self.model_path is None and self.download is not None:
            self.model_path = self.download.download(self.settings.model, progress=_download_progress(progress),
                                                     cancel=cancel)
        if self.depth_map is None:
            self.depth_map = depth.estimate(self.capture.rgb, self.settings, self.model_path,
                                            progress=progress, cancel=cancel, model_name=self.settings.model)
        if cancel is not None and cancel():
            raise CancelledError("Depth generation was cancelled; nothing was written.")
        metadata = {"fathom.model": self.settings.model, "fathom.settings": asdict(self.settings),
                    "fathom.source": self.capture.source, "fathom.runtime": self.depth_map.runtime}
        self.path = results.write_result(self.depth_map, self.capture.name, self.target, metadata)
        return self.path


    def render_first(self, progress=None, cancel=None):
        """Run the render deferred from prepare (in a child Blender), if any: its picture, or the
        depth map itself for Scene Z."""
        if self.render is None:
            return
        made = self.render.run(progress, cancel)
        self.render = None
        if isinstance(made, depth.DepthMap):
            self.depth_map = made
        else:
            self.set_capture(made)

    def set_capture(self, picture: capture.Capture):
        """The picture to work on, once known (the Server backend's job derives its cache key from it)."""
        self.capture = picture


def _download_progress(progress):
    def report(done, total):
        if progress is not None and total:
            progress(done / total, f"Downloading the model: {done / 1e6:.0f} of {total / 1e6:.0f} MB")
    return report


def resolve_source(context, source=None, image=None, filepath=None, progress=None) -> capture.Capture:
    """The picture to work on: explicit arguments first, else the scene's Depth settings."""
    props = context.scene.fathom
    source = source or props.source
    if source == "IMAGE":
        img = image if image is not None else props.image or active_editor_image(context)
        if isinstance(img, str):
            found = bpy.data.images.get(img)
            if found is None:
                raise SourceError(f"There is no image named {img!r} in this file: "
                                  f"use one of {', '.join(sorted(i.name for i in bpy.data.images if i.type not in _NOT_PICTURES)) or '(none)'}.")
            img = found
        if img is None:
            raise SourceError("No image to work on: open one in the Image Editor or pick one in the Depth panel.")
        return capture.from_image(img)
    if source == "FILE":
        path = filepath or props.filepath
        if not path:
            raise SourceError("No image file chosen: pick one in the Depth panel.")
        return capture.from_file(path)
    if source in ("RENDER", "COMPOSITOR"):
        return capture.from_render(context.scene, compositor=source == "COMPOSITOR", progress=progress)
    raise SourceError(f"Unknown source {source!r}: use IMAGE, FILE, RENDER or COMPOSITOR.")


def active_editor_image(context):
    space = getattr(context, "space_data", None)
    if space is not None and space.type == "IMAGE_EDITOR" and space.image is not None:
        return space.image
    return None


def expected_source(context) -> dict:
    """The identity of the source the next generation will use, without capturing anything."""
    props = context.scene.fathom
    if addon_preferences(context).backend == "SCENE_Z":
        return {"kind": "scene-z", "scene": context.scene.name}
    if props.source == "IMAGE":
        image = props.image or active_editor_image(context)
        return {"kind": "image", "image": image.name if image else ""}
    if props.source == "FILE":
        return {"kind": "file", "filepath": props.filepath}
    return {"kind": props.source.lower(), "scene": context.scene.name}


def prepare(context, *, source=None, image=None, filepath=None, output=None, overrides=None, backend=None,
            progress=None, allow_download=False, force=False, allow_online=False, offload_render=False) -> Job:
    """``overrides``: DepthSettings fields to use instead of the scene's (the CLI's options);
    ``backend``: LOCAL, SERVER or SCENE_Z instead of the preferences' choice; ``allow_download``: a
    missing model is downloaded by ``Job.run`` when Blender may go online. Renders happen here,
    on the main thread, as Blender requires, unless ``offload_render`` (the interactive operator,
    every backend): then ``Job.run`` renders in a child Blender (bridge.render_process), so the
    UI never waits for a render. Server only: ``force`` generates again instead of
    reusing an identical earlier result; ``allow_online`` is the headless --online-mode."""
    prefs = addon_preferences(context)
    backend = backend or prefs.backend
    if backend not in ("LOCAL", "SERVER", "SCENE_Z"):
        raise FathomError(f"Unknown backend {backend!r}: choose Local, Server or Scene Z in Preferences > "
                          "Add-ons > Fathom.")
    settings = context.scene.fathom.depth_settings(prefs.threads, prefs.device)
    if overrides:
        settings = replace(settings, **overrides).validated()
    target = results.output_target(output)
    if backend == "SCENE_Z":
        from . import scene_z
        scene = context.scene
        render = _child_render(context, "scene-z", settings) if offload_render else None
        depth_map = None if render else scene_z.scene_depth(scene, settings, progress=progress)
        camera = scene.camera.name if scene.camera else ""
        picture = capture.Capture(None, f"the Z pass of scene '{scene.name}'", f"{scene.name}_Z",
                                  {"kind": "scene-z", "scene": scene.name, "camera": camera})
        return Job(picture, settings, None, target, scene.name, depth_map=depth_map, render=render)
    kind = source or context.scene.fathom.source
    deferred = offload_render and kind in ("RENDER", "COMPOSITOR")
    picture = None if deferred else resolve_source(context, source, image, filepath, progress)
    if backend == "SERVER":
        from . import remote
        job = remote.prepare(context, settings, target, force=force, allow_online=allow_online)
    else:
        job = _local_job(context, settings, target, allow_download)
    if deferred:
        # Last, once nothing cheap can fail: a child render copies the file (None: render here).
        job.render = _child_render(context, kind.lower(), settings)
        if job.render is None:
            picture = resolve_source(context, source, image, filepath, progress)
    if picture is not None:
        job.set_capture(picture)
    return job


def _local_job(context, settings, target, allow_download) -> Job:
    store = model_store(context)
    try:
        model_path = store.resolve(settings.model, allow_network=bpy.app.online_access)
    except ModelMissingError:
        if not (allow_download and bpy.app.online_access and not get_model(settings.model).is_local):
            raise
        model_path = None
    return Job(None, settings, model_path, target, context.scene.name,
               download=store if model_path is None else None)


def _child_render(context, kind, settings):
    from . import render_process
    layer = getattr(context, "view_layer", None)
    return render_process.child_render(context.scene, kind, settings, view_layer=layer.name if layer else None)


def finish(job: Job, context):
    """Load the written file as an image and show it in the scene's compositor."""
    if hasattr(job, "finish"):  # the Server backend's job (it may reuse an earlier image)
        return job.finish(context)
    image = results.load_result(job.path, job.depth_map, job.capture.source)
    scene = bpy.data.scenes.get(job.scene_name) or context.scene
    node = results.place_image_node(scene, image, results.source_key(job.capture.source))
    return image, node


def done_message(job, seconds: float) -> str:
    """What Generate Depth reports when done; it says when a server result was reused (no tokens)."""
    where = bpy.path.relpath(str(job.path)) if bpy.data.filepath else str(job.path)
    if getattr(job, "reused", False):
        return (f"Depth of {job.capture.label}: an identical depth map from the depth server was reused, no "
                f"tokens spent (Generate Again makes a new one): {where}")
    return f"Depth of {job.capture.label} in {seconds:.1f} s: {where}"


def generate(context, **kwargs):
    """The whole generation, synchronously (background mode, scripts, the CLI)."""
    job = prepare(context, **kwargs)
    job.run()
    return job, *finish(job, context)
