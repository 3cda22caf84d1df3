"""Fathom for Python scripts: the same generation as the button and the CLI, synchronous.

    from bl_ext.user_default.fathom import api as fathom     # the module name of the installed extension

    result = fathom.generate_depth(image="Photo")                         # the scene's settings otherwise
    result = fathom.generate_depth(source="render", resolution=1024, invert=True)
    result = fathom.generate_depth(source="render", backend="scene-z", output="/tmp/shot_z.exr")
    result = fathom.generate_depth(image="Photo", backend="server")      # the depth server, uses tokens
    result = fathom.generate_depth(image="Photo", backend="server", force=True)  # again, even if identical
    result = fathom.generate_depth(source="node", node="Depth Map")   # what is wired into that node
    result.path, result.image, result.node, result.depth_map.depth        # file, datablock, node, array
    result.reused                      # server: an identical earlier result was shown again, no tokens spent

    metric, fit = fathom.align_depth(result.image)                        # relative -> scene distances (Scene Z)
    metric, fit = fathom.align_depth(result.image, points=[(0.3, 0.4, 2.0), (0.7, 0.5, 9.5)])  # u, v, distance
    fit.residual, fit.describe()       # median relative error of the fit, and a sentence
    fathom.distances(metric)           # HxW distances in scene units (None for a relative map)

    fathom.fetch_pending(wait=30)      # paid server results this file still waits for (see its doc)
    shot = fathom.generate_depth(source="render", frames=(1, 250))   # a shot: one numbered file per frame
    shot = fathom.generate_depth(image="Plate", frames="1-100:2")      # an image sequence or a movie
    shot.folder, shot.paths[12], shot.image, shot.node    # folder, {frame: file}, the SEQUENCE image, its node
    shot.written, shot.skipped, shot.by_others            # this run's frames, those done before, another process's
    shot.flicker_before, shot.flicker_after               # % of the depth range, each frame alone vs stabilised

    fathom.models()                    # catalogue entries with their status (installed, missing...)
    fathom.download_model("da2-small", progress=lambda done, total: ...)   # needs online access
    fathom.verify_model("da2-small")

Errors are engine.errors.FathomError subclasses whose message says what to do.
"""

from dataclasses import dataclass

import bpy

from .bridge.generation import backends, worker
from .bridge.kinds import BACKENDS as _BACKENDS
from .bridge.kinds import SOURCES as _SOURCES
from .bridge.prefs import model_store
from .engine.depth import DepthMap
from .engine.errors import FathomError, InvalidSettingsError
from .engine.settings import SETTING_NAMES as _SETTINGS

__all__ = (
    "Result",
    "Sequence",
    "generate_depth",
    "fetch_pending",
    "align_depth",
    "distances",
    "models",
    "download_model",
    "verify_model",
    "FathomError",
)


@dataclass
class Result:
    path: object  # pathlib.Path of the written file
    image: object  # bpy.types.Image, Non-Color
    node: object  # the compositor's Image node holding it
    depth_map: DepthMap
    reused: bool = False  # server backend: an identical earlier result, no tokens spent


@dataclass
class Sequence:
    folder: object  # pathlib.Path of the folder holding one file per frame
    paths: dict  # frame -> pathlib.Path, every frame done (by this run or before)
    frames: list  # the frames asked for
    written: list  # made by this run
    skipped: list  # already done with the same settings
    by_others: list  # being made by another process (a render farm node) sharing the folder
    image: object  # bpy.types.Image, source SEQUENCE, Non-Color
    node: object  # the compositor's Image node showing it frame by frame
    flicker_before: object = None  # mean frame-to-frame change of static pixels, % of the range, frames alone
    flicker_after: object = None  # the same, as written (stabilised)


def generate_depth(
    *,
    image=None,
    filepath=None,
    source=None,
    node=None,
    backend=None,
    output=None,
    context=None,
    force=False,
    frames=None,
    clip=None,
    stabilize=True,
    smoothing=0.0,
    redo=False,
    progress=None,
    **settings,
):
    """Estimate a depth map and add it to the scene, like Generate Depth. ``image`` (a name or an
    Image) or ``filepath`` pick the source, else ``source`` ('image', 'file', 'render',
    'compositor', 'node' with ``node`` the Depth Map node's name, else the active one), else the
    scene's Depth settings. ``settings``: model, resolution, invert, post_resize, normalization,
    output_format, tiling (they override the scene's for this call). With the
    server backend an identical earlier result is reused (no tokens) unless ``force``: ``reused``
    is then True, and the file, image and depth map are the earlier ones (read back from its file).

    With ``frames`` ((start, end), (start, end, step), a list, or a string such as '1-50:5'; 'all':
    the scene's range or every frame of a sequence or movie) it makes a depth sequence and returns a
    Sequence: the render, the compositor or Scene Z at each frame, an image sequence or a movie
    (``image``, ``filepath`` or a Movie Clip ``clip``). Frames done before with the same settings are
    skipped unless ``redo``; ``stabilize`` aligns each frame's scale to the frames before it (AI
    backends), ``smoothing`` (0 to below 1) also evens out noise over time; ``progress(fraction,
    message)`` follows it frame by frame; ``output`` names the folder."""
    unknown = set(settings) - set(_SETTINGS)
    if unknown:
        raise InvalidSettingsError(f"Unknown setting(s) {', '.join(sorted(unknown))}: use {', '.join(_SETTINGS)}.")
    if image is not None:
        source = "image"
    elif filepath is not None:
        source = "file"
    elif node is not None:
        source = "node"
    try:
        kind = _SOURCES[source] if source else None
        engine = _BACKENDS[backend] if backend else None
    except KeyError as exc:
        raise InvalidSettingsError(
            f"Unknown source or backend {exc.args[0]!r}: sources are "
            f"{', '.join(_SOURCES)}; backends are {', '.join(_BACKENDS)}."
        ) from None
    worker.check_idle()
    context = context or bpy.context
    where = {"source": kind, "image": image, "filepath": filepath, "output": output, "backend": engine}
    if frames is not None or clip is not None:
        from .bridge.generation.sequence import generate_sequence

        frames = None if frames in (None, "all") else frames
        job, img, node = generate_sequence(
            context,
            frames,
            **where,
            clip=clip,
            overrides=settings or None,
            stabilize=stabilize,
            smoothing=smoothing,
            redo=redo,
            progress=progress,
        )
        r = job.result
        return Sequence(
            r.folder, r.paths, r.frames, r.written, r.skipped, r.by_others, img, node, r.flicker_before, r.flicker_after
        )
    job, img, node = backends.generate(context, **where, overrides=settings or None, force=force, node=node)
    return Result(job.path, img, node, job.depth_map, job.reused)


def align_depth(depth, *, to="scene-z", points=None, scene=None):
    """Turn a network's relative depth image (an Image or its name) into scene distances, like Metric Depth
    in the sidebar: fitted (scale and shift of inverse depth, robustly) to the Scene Z of ``scene``'s render
    (``to='scene-z'``, the default), or to ``points`` picked in the picture, [(u, v, distance), ...] with u, v
    in 0..1 from the left and from the bottom. Returns (the aligned image, engine.metric.MetricFit); the
    image is ``<depth> metric``, updated in place when aligned again."""
    from .bridge.setups import metric

    if points is not None:
        return metric.align_to_points(depth, points)
    if to != "scene-z":
        raise InvalidSettingsError(f"Unknown alignment target {to!r}: use 'scene-z' or give points.")
    return metric.align_to_scene_z(scene or bpy.context.scene, depth)


def distances(depth):
    """A depth image's distances in scene units (numpy HxW, top row first, inf where infinitely far), or None
    when its values are relative (a network's map before align_depth) or say nothing."""
    from .bridge.setups import common, units

    return units.image_distances(common.find_image(depth, "depth image"))


def fetch_pending(*, wait: float = 30.0, context=None):
    """Fetch the paid depth maps this file still waits for from the depth server into their nodes.
    Headless (blender -b): synchronously, the messages (one per job) are returned. With a window, it
    never makes Blender wait for the server: it starts Fetch Pending Results on the worker thread (the
    progress bar, Esc cancels) and returns None at once; the results land when it is done."""
    from .bridge.remote import fetch

    context = context or bpy.context
    if bpy.app.background:
        worker.check_idle()
        job = fetch.fetch_job(context, follow_seconds=wait)
        job.run()
        return job.apply(context)
    window = context.window or context.window_manager.windows[0]
    with context.temp_override(window=window):
        bpy.ops.fathom.fetch_pending("INVOKE_DEFAULT", follow_seconds=wait)
    return None


def models(context=None) -> list:
    """Every catalogue entry with its status, file path and licence (engine.store.ModelEntry)."""
    return model_store(context).list_models()


def download_model(model_id: str, progress=None, cancel=None, context=None):
    """Download and verify a model (resumes a partial download); its path. Needs online access."""
    return model_store(context).download(
        model_id, progress=progress, cancel=cancel, allow_network=bpy.app.online_access
    )


def verify_model(model_id: str, progress=None, context=None):
    """Check an installed model's sha256; its path, or ChecksumError / ModelMissingError."""
    return model_store(context).verify(model_id, progress=progress)
