"""Depth for a shot: a frame range of the render, Scene Z, an image sequence or a movie.

    job = prepare_sequence(context, frames, ...)   main thread: source, frames, model, folder, checks
    job.run(progress, cancel)                      frames read, estimated, stabilised, written one by one
    image, node = job.finish(context)              one image datablock (source SEQUENCE) in the node

The frames go to one folder, ``//generated/<name>_depth/<name>_depth_0001.exr`` and so on (the
frame number, 4 digits), each written atomically as soon as it is done; engine.sequence claims each
frame first, so render farm nodes given overlapping ranges share the folder, and a rerun skips the
frames already done with the same settings. The compositor's Image node shows the sequence with
matching start and duration, so a comp built on it works at every frame.
"""

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Optional

import bpy

from ...engine.errors import FathomError, InvalidSettingsError
from ...engine.frames import as_frames, describe
from ...engine.sequence import SequenceResult, local_depth_fn, run_sequence
from ...engine.settings import DepthSettings
from ..capture import frames as frame_sources
from ..capture.frames import scene_frames
from ..capture.sources import source_filepath, source_image
from ..files import set_relative_path
from . import nodes, results
from .results import GENERATED, IMAGE_KEY, OutputError, safe_stem

SEQUENCE_KEY = "sequence"  # in a result image's IMAGE_KEY record: {folder, start, end}


@dataclass
class SequenceJob:
    frames: list
    reader: object  # a bridge.capture.frames.FrameReader
    settings: DepthSettings
    backend: str  # LOCAL, SERVER, SCENE_Z
    folder: Path
    stem: str
    scene_name: str
    model_path: Optional[Path] = None
    download: Optional[object] = None  # a ModelStore to fetch the model from first
    client: Optional[object] = None  # the Server backend's RemoteClient
    stabilize: bool = True
    smoothing: float = 0.0
    redo: bool = False
    result: Optional[SequenceResult] = None
    remote_frames: Optional[object] = None
    timings: dict = field(default_factory=dict)
    batch_size: int = 8  # frames read before one estimate_batch; 1 where each read is a render

    def shown_picture(self):
        """None: a sequence shows in its node, not as one picture's thumbnail."""
        return None

    @property
    def reused(self) -> bool:
        return False

    @property
    def path(self):
        return self.folder

    def run(self, progress=None, cancel=None):
        if hasattr(self.reader, "cancel"):  # readers that wait (a child render, the main thread) stop too
            self.reader.cancel = cancel
        if self.model_path is None and self.download is not None:
            self.model_path = self.download.download(self.settings.model, cancel=cancel)
        exact = self.backend == "SCENE_Z"
        depth_fn = None
        if exact:
            depth_fn = _as_is
        elif self.backend == "SERVER":
            from ...engine.sequence_remote import RemoteFrames

            depth_fn = self.remote_frames = RemoteFrames(self.client, self.settings, name=self.stem, cancel=cancel)
        else:
            depth_fn = local_depth_fn(self.settings, self.model_path, cancel=cancel)
        settings = self.settings
        started = time.perf_counter()
        try:
            self.result = run_sequence(
                self.frames,
                self.reader.read,
                self.folder,
                depth_fn=depth_fn,
                settings=settings,
                stem=self.stem,
                stabilize=self.stabilize and not exact,
                smoothing=self.smoothing,
                batch_size=self.batch_size,
                one_range=True,
                redo=self.redo,
                progress=progress,
                cancel=cancel,
                key_extra={"source": self.reader.source, "backend": self.backend},
                metadata={"fathom.source": self.reader.source, "fathom.settings": asdict(self.settings)},
            )
        finally:
            self.reader.close()
        self.timings["total"] = time.perf_counter() - started
        return self.folder

    def finish(self, context):
        """Main thread: the sequence as one image in the source's Image node."""
        result = self.result
        if not result.done:
            raise FathomError(
                f"No frame of {describe(self.frames)} is done yet: other processes hold "
                f"{describe(result.by_others)}; run again when they finish."
            )
        near_is_bright = result.near_is_bright
        if self.backend == "SCENE_Z" and self.settings.normalization == "raw":
            near_is_bright = self.settings.invert  # distances: larger = farther, as one Scene Z map in Raw
        image = load_sequence(result, self.reader.source, self.settings, self.model_name, near_is_bright)
        scene = bpy.data.scenes.get(self.scene_name) or context.scene
        node = nodes.place_image_node(scene, image, nodes.source_key(self.reader.source))
        show_sequence(node, result.done)
        return image, node

    @property
    def model_name(self):
        return "scene-z" if self.backend == "SCENE_Z" else self.settings.model

    def done_message(self, seconds: float) -> str:
        r = self.result
        where = bpy.path.relpath(str(self.folder)) if bpy.data.filepath else str(self.folder)
        text = f"Depth of {self.reader.label}, frames {describe(r.frames)}: {len(r.written)} written"
        if r.skipped:
            text += f", {len(r.skipped)} already done"
        if r.by_others:
            text += f", {len(r.by_others)} being done by another process"
        text += f" in {seconds:.1f} s ({where})"
        if r.flicker_before is not None and self.stabilize and self.backend != "SCENE_Z":
            text += f"; flicker {r.flicker_before:.2f} % -> {r.flicker_after:.2f} %"
        return text


def _as_is(pictures, frames=None):
    return list(pictures)


def load_sequence(result, source, settings, model, near_is_bright=True):
    """The image datablock showing the sequence's files (source SEQUENCE, Non-Color); an image that
    already shows this folder is reloaded instead of a second one made."""
    first = result.path(result.done[0])
    folder = str(result.folder.resolve())
    image = None
    for candidate in bpy.data.images:
        record = candidate.get(IMAGE_KEY)
        if record is not None and record.get(SEQUENCE_KEY, {}).get("folder") == folder:
            image = candidate
            break
    if image is None:
        image = bpy.data.images.load(str(first), check_existing=False)
        image.name = result.stem
    else:
        image.source = "FILE"
        image.filepath = str(first)
    image.source = "SEQUENCE"
    image.colorspace_settings.name = "Non-Color"
    set_relative_path(image, first)
    image.reload()
    image[IMAGE_KEY] = {
        "settings": {k: v for k, v in asdict(settings).items() if v is not None},
        "source": dict(source),
        "model": model,
        "near_is_bright": bool(near_is_bright),
        SEQUENCE_KEY: {"folder": folder, "start": result.done[0], "end": result.done[-1]},
    }
    return image


def show_sequence(user, frames):
    """An image user (Image node, texture) showing file N at scene frame N, from the first to the last."""
    first, last = frames[0], frames[-1]
    user.frame_start = first
    user.frame_offset = first - 1
    user.frame_duration = last - first + 1
    if hasattr(user, "use_auto_refresh"):
        user.use_auto_refresh = True


def sequence_folder(name, output=None) -> Path:
    """``output`` (a folder), else //generated/<name>_depth/ next to the saved .blend."""
    if output:
        folder = Path(bpy.path.abspath(str(output)))
        if folder.exists() and not folder.is_dir():
            raise OutputError(f"{folder} is a file: a sequence goes into a folder; name a folder for --output.")
        return folder
    return results.generated_folder() / f"{safe_stem(name)}_depth"


def prepare_sequence(
    context,
    frames=None,
    *,
    source=None,
    image=None,
    filepath=None,
    clip=None,
    output=None,
    overrides=None,
    backend=None,
    stabilize=True,
    smoothing=0.0,
    redo=False,
    allow_download=False,
    allow_online=False,
    interactive=False,
) -> SequenceJob:
    """A SequenceJob. ``frames``: anything engine.frames.as_frames takes (None: the scene's range for a
    render, every frame of a sequence or movie). Sources as for one picture, plus ``clip`` (a Movie
    Clip); an image or file source must be an image sequence or a movie. ``interactive``: the job runs
    on the operator's worker thread, renders in a child Blender per frame, other reads on the main thread."""
    from ..prefs import addon_preferences

    prefs = addon_preferences(context)
    backend = backend or prefs.backend
    scene = context.scene
    settings = scene.fathom.depth_settings(prefs.threads)
    if overrides:
        from dataclasses import replace

        settings = replace(settings, **overrides).validated()
    if not 0.0 <= float(smoothing) < 1.0:
        raise InvalidSettingsError(f"Smoothing {smoothing!r} must be at least 0 and below 1 (0.5 is strong).")
    kind = "SCENE_Z" if backend == "SCENE_Z" else (source or scene.fathom.source)
    reader = _reader(context, kind, image, filepath, clip, settings)
    if interactive:
        if isinstance(reader, frame_sources.RenderFrames):
            layer = getattr(context, "view_layer", None)
            reader = frame_sources.ChildFrames(reader, settings, view_layer=layer.name if layer else None)
        else:
            reader = frame_sources.MainThreadFrames(reader)
    try:
        wanted = as_frames(frames) if frames is not None else (reader.frames or scene_frames(scene))
        if reader.frames is not None:
            missing = sorted(set(wanted) - set(reader.frames))
            if missing:
                raise frame_sources.FrameSourceError(
                    f"{reader.label[0].upper()}{reader.label[1:]} has no frames {describe(missing)}: "
                    f"it has {describe(reader.frames)}."
                )
        folder = sequence_folder(reader.name, output)
        # A render takes far longer than a network pass: batching renders would only delay each frame's file.
        renders = isinstance(reader, (frame_sources.RenderFrames, frame_sources.ChildFrames))
        job = SequenceJob(
            wanted,
            reader,
            settings,
            backend,
            folder,
            f"{safe_stem(reader.name)}_depth",
            scene.name,
            stabilize=stabilize,
            smoothing=float(smoothing),
            redo=redo,
            batch_size=1 if renders else 8,
        )
        if backend == "LOCAL":
            from .backends import local_model

            job.model_path, job.download = local_model(context, settings, allow_download)
        elif backend == "SERVER":
            job.client = _server_client(context, settings, len(wanted), allow_online)
        return job
    except BaseException:
        reader.close()
        raise


def _reader(context, kind, image, filepath, clip, settings, progress=None):
    scene = context.scene
    if kind == "SCENE_Z":
        layer = getattr(context, "view_layer", None)
        return frame_sources.SceneZFrames(scene, settings, view_layer=layer.name if layer else None, progress=progress)
    if kind in ("RENDER", "COMPOSITOR"):
        if kind == "COMPOSITOR":
            from ..capture.render import compositor_output

            compositor_output(scene)
        return frame_sources.RenderFrames(scene, compositor=kind == "COMPOSITOR", progress=progress)
    if clip is not None or kind == "CLIP":
        found = bpy.data.movieclips.get(clip) if isinstance(clip, str) else clip
        if found is None:
            names = ", ".join(sorted(c.name for c in bpy.data.movieclips)) or "(none)"
            raise frame_sources.FrameSourceError(
                f"There is no movie clip named {clip!r} in this file: use one of {names}."
            )
        return frame_sources.clip_frames(found)
    if kind == "IMAGE":
        return frame_sources.image_frames(source_image(context, image))
    if kind == "FILE":
        return frame_sources.file_frames(source_filepath(context, filepath))
    raise frame_sources.FrameSourceError(f"Unknown source {kind!r} for frames.")


def _server_client(context, settings, count, allow_online):
    """The client, once the whole sequence's price is known to be affordable (nothing sent yet)."""
    from ...engine import remote
    from ...engine.sequence_remote import check_sequence_affordable, quote_sequence
    from ..remote.online import check_online, client_for

    client = client_for(context)
    check_online(allow_online, client.base_url)
    if not client.api_key:
        raise remote.AuthenticationError(remote.NO_API_KEY)
    check_sequence_affordable(quote_sequence(client, settings, count))
    return client


def generate_sequence(context, frames=None, *, progress=None, **kwargs):
    """The whole sequence, synchronously (background mode, scripts, the CLI)."""
    job = prepare_sequence(context, frames, **kwargs)
    job.run(progress=progress)
    return job, *job.finish(context)


__all__ = ["GENERATED", "SequenceJob", "generate_sequence", "load_sequence", "prepare_sequence", "show_sequence"]
