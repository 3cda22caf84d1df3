"""One depth generation in three steps, so the same code serves the operator, the CLI and scripts:

    job = prepare(context, ...)     main thread: capture pixels, settings, model file, output place
                                    (the operator defers renders to run: see offload_render)
    job.run(progress, cancel)       any thread, no bpy: estimate and write the file
    image, node = job.finish(ctx)   main thread: load the image, place it in the compositor

prepare chooses the backend: Local (onnxruntime), Server (bridge.remote.job) or Scene Z (the
render's Z pass). Everything that can fail cheaply (no source, unsaved .blend, missing model)
fails in prepare, before the slow part starts.
"""

from dataclasses import replace

import bpy

from ...engine.catalog import get_model
from ...engine.errors import FathomError, ModelMissingError
from ..capture import picture as capture
from ..capture.sources import resolve_source
from ..kinds import BACKENDS, RENDERED
from ..prefs import addon_preferences, model_store
from . import results
from .job import Job


def prepare(
    context,
    *,
    source=None,
    image=None,
    filepath=None,
    output=None,
    overrides=None,
    backend=None,
    progress=None,
    allow_download=False,
    force=False,
    allow_online=False,
    offload_render=False,
    node=None,
    in_process=False,
) -> Job:
    """``overrides``: DepthSettings fields to use instead of the scene's (the CLI's options);
    ``backend``: LOCAL, SERVER or SCENE_Z instead of the preferences' choice; ``allow_download``: a
    missing model is downloaded by ``Job.run`` when Blender may go online. Renders happen here,
    on the main thread, as Blender requires, unless ``offload_render`` (the interactive operator,
    every backend): then ``Job.run`` renders in a child Blender (bridge.capture.child), so the
    UI never waits for a render. ``in_process`` (the interactive operator): the Local backend
    estimates in the inference worker process (bridge.generation.inference), which also decodes
    image files, so the UI never waits for the model either; the Server backend then decodes,
    encodes and hashes the picture on the worker thread (RemoteJob.run). Server only: ``force`` generates
    again instead of reusing an identical earlier result; ``allow_online`` is the headless --online-mode. Source NODE:
    what is wired into the Depth Map node ``node`` (else the active one), always captured in a child
    Blender (bridge.generation.node_source)."""
    prefs = addon_preferences(context)
    backend = backend or prefs.backend
    if backend not in BACKENDS.values():
        raise FathomError(
            f"Unknown backend {backend!r}: choose Local, Server or Scene Z in Preferences > Add-ons > Fathom."
        )
    settings = context.scene.fathom.depth_settings(prefs.threads, prefs.device)
    if overrides:
        settings = replace(settings, **overrides).validated()
    target = results.output_target(output, settings.output_format)
    kind = source or context.scene.fathom.source
    if kind == "NODE" and backend == "SCENE_Z":
        raise FathomError(
            "Scene Z gives the camera's depth, not a node's: choose Local or Server for a Depth Map node."
        )
    if backend == "SCENE_Z":
        from ..capture import scene_z

        scene = context.scene
        render = _child_render(context, "scene-z", settings) if offload_render else None
        depth_map = None if render else scene_z.scene_depth(scene, settings, progress=progress)
        camera = scene.camera.name if scene.camera else ""
        picture = capture.Capture(
            None,
            f"the Z pass of scene '{scene.name}'",
            f"{scene.name}_Z",
            {"kind": "scene-z", "scene": scene.name, "camera": camera},
        )
        return Job(picture, settings, None, target, scene.name, depth_map=depth_map, render=render)
    deferred = offload_render and kind in RENDERED
    encode_later = in_process and backend == "SERVER"  # interactive: the worker thread encodes and hashes
    in_process = in_process and backend == "LOCAL"
    if backend == "SERVER":
        from ..remote import job as remote_job

        job = remote_job.prepare(context, settings, target, force=force, allow_online=allow_online)
    else:
        job = _local_job(context, settings, target, allow_download)
        job.in_process = in_process
    picture = None
    if kind == "NODE":
        from . import node_source

        node_source.attach(context, job, node)
    else:
        if deferred:  # last, once nothing cheap can fail (the model, the key, the output): a render is slow
            job.render = _child_render(context, kind.lower(), settings)  # None: render here
        if job.render is None:
            decode = not (in_process or encode_later)  # else the worker (process) decodes an image file
            picture = resolve_source(context, source, image, filepath, progress, decode=decode)
    if picture is not None and encode_later:
        job.capture_later = picture  # RemoteJob.run decodes, encodes and hashes it, looks for an earlier result
    elif picture is not None:
        job.set_capture(picture)
    return job


def _local_job(context, settings, target, allow_download) -> Job:
    model_path, download = local_model(context, settings, allow_download)
    return Job(None, settings, model_path, target, context.scene.name, download=download)


def local_model(context, settings, allow_download):
    """(model file, None), or (None, the ModelStore to download it from first) when it is missing and
    ``allow_download`` and online access allow fetching it; else ModelMissingError."""
    store = model_store(context)
    try:
        return store.resolve(settings.model, allow_network=bpy.app.online_access), None
    except ModelMissingError:
        if not (allow_download and bpy.app.online_access and not get_model(settings.model).is_local):
            raise
        return None, store


def _child_render(context, kind, settings):
    from ..capture import child

    layer = getattr(context, "view_layer", None)
    return child.child_render(context.scene, kind, settings, view_layer=layer.name if layer else None)


def generate(context, **kwargs):
    """The whole generation, synchronously (background mode, scripts, the CLI)."""
    job = prepare(context, **kwargs)
    job.run()
    return job, *job.finish(context)
