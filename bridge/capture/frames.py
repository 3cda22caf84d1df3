"""Pictures of a shot, frame by frame: what a depth sequence reads (engine.sequence).

    reader = frame_reader(context, source, ...)   main thread: checks, the frames there are
    reader.read(frame)                            the frame's picture (render, file, movie frame)
    reader.close()                                temporary scenes and files go

Kinds of frames:
- the render or the compositor's output at each frame (in this Blender; the interactive operator
  renders each frame in a child Blender instead: bridge.capture.child with a frame);
- Scene Z at each frame (the Z pass, kept as distances so the sequence maps every frame alike);
- an image sequence: an image datablock whose source is SEQUENCE, or a numbered file such as
  ``plate_0001.png``: each frame's file, read by Blender (every format it reads);
- a movie: an image datablock whose source is MOVIE, a Movie Clip, or a movie file: each frame
  read by Blender's own movie reader, through a movie strip in a temporary scene's sequencer.
"""

import os
import shutil
import tempfile
from pathlib import Path

import bpy
import numpy as np

from ...engine.errors import FathomError, InvalidSettingsError
from ...engine.frames import as_frames, frame_range, numbered_files
from .picture import from_render, image_pixels
from .render import RenderCaptureError, active_camera, read_rgb

MOVIE_SUFFIXES = {".mp4", ".mov", ".mkv", ".avi", ".webm", ".mpg", ".mpeg", ".m4v", ".ogv", ".flv", ".dv", ".mxf"}


class FrameSourceError(FathomError):
    """The source has no frames to give (not a sequence, a missing frame file)."""


class FrameReader:
    """Base: ``frames`` the source has (None: any frame, a render), a label, a short name, a source dict."""

    frames = None
    needs_main_thread = True  # reading calls bpy: not from a worker thread

    def read(self, frame):
        raise NotImplementedError

    def close(self):
        pass


class RenderFrames(FrameReader):
    """The scene rendered (or composited) at each frame, in this Blender; the frame is put back after."""

    def __init__(self, scene, *, compositor=False, progress=None):
        active_camera(scene)
        self.scene, self.compositor, self.progress = scene, compositor, progress
        self.kind = "compositor" if compositor else "render"
        self.label = f"the {'composite' if compositor else 'render'} of scene '{scene.name}'"
        self.name = f"{scene.name}_{'composite' if compositor else 'render'}"
        self.source = {"kind": self.kind, "scene": scene.name}
        self._frame = scene.frame_current

    def read(self, frame):
        self.scene.frame_set(frame)
        return from_render(self.scene, compositor=self.compositor, progress=self.progress).rgb

    def close(self):
        if self.scene.frame_current != self._frame:
            self.scene.frame_set(self._frame)


class SceneZFrames(RenderFrames):
    """The Z pass at each frame, as what the sequence maps to 0..1 (see z_values)."""

    def __init__(self, scene, settings, *, view_layer=None, progress=None):
        super().__init__(scene, progress=progress)
        from .scene_z import render_view_layer

        self.settings, self.view_layer = settings, render_view_layer(scene, view_layer).name
        self.kind, self.label, self.name = "scene-z", f"the Z pass of scene '{scene.name}'", f"{scene.name}_Z"
        self.source = {"kind": "scene-z", "scene": scene.name}

    def read(self, frame):
        from .scene_z import render_z

        self.scene.frame_set(frame)
        z, background, info = render_z(self.scene, view_layer=self.view_layer, progress=self.progress)
        return z_values(z, background, self.settings, info["clip_end"])


def z_values(z, background, settings, far):
    """Scene Z for a sequence: inverse distance (background 0, infinitely far) for Standard and
    V2-Style, the distance itself (background at ``far``) for Raw; one range then maps every frame."""
    if not (~background).any():
        raise RenderCaptureError("The camera sees nothing: every pixel of the Z pass is empty background.")
    if settings.normalization == "raw":
        return np.where(background, np.float32(far), z).astype(np.float32)
    inverse = np.zeros(z.shape, np.float32)
    np.divide(1.0, z, out=inverse, where=~background)
    return inverse


class ImageSequenceFrames(FrameReader):
    """The numbered files of an image sequence, each loaded by Blender in the sequence image's colour space."""

    def __init__(self, path, *, colorspace=None, label=None, name=None, source=None):
        self.files = numbered_files(path)
        self.frames = list(self.files)
        self.colorspace = colorspace
        first = next(iter(self.files.values()))
        self.label = label or f"the image sequence {first.name}"
        self.name = name or first.stem.rstrip("0123456789").rstrip("_-. ") or "sequence"
        self.source = source or {"kind": "sequence", "filepath": str(path)}

    def read(self, frame):
        path = self.files.get(frame)
        if path is None:
            raise FrameSourceError(
                f"The image sequence has no file for frame {frame}: it has frames "
                f"{min(self.files)} to {max(self.files)} ({len(self.files)} files)."
            )
        image = bpy.data.images.load(str(path), check_existing=False)
        try:
            if self.colorspace:
                image.colorspace_settings.name = self.colorspace
            return image_pixels(image)
        finally:
            bpy.data.images.remove(image)


class MovieFrames(FrameReader):
    """Frames 1..N of a movie, read by Blender: a movie strip in a temporary scene, rendered one frame at
    a time with the Standard view transform, so the pixels are the movie's own (as 16-bit PNG)."""

    def __init__(self, path, *, label=None, name=None, source=None):
        path = Path(bpy.path.abspath(str(path)))
        if not path.is_file():
            raise FrameSourceError(f"The movie {path} does not exist: check the path.")
        self.path = path
        self.label, self.name = label or f"the movie {path.name}", name or path.stem
        self.source = source or {"kind": "movie", "filepath": str(path)}
        self.scene = bpy.data.scenes.new("Fathom movie frames")
        self.folder = tempfile.mkdtemp(prefix="fathom-movie-")
        try:
            editor = self.scene.sequence_editor_create()
            strips = editor.strips if hasattr(editor, "strips") else editor.sequences  # renamed in Blender 5.0
            strip = strips.new_movie("movie", str(path), channel=1, frame_start=1)
            duration = int(strip.frame_final_duration)
            width, height = _movie_size(strip, path)
            if duration < 1 or width < 1:
                raise FrameSourceError(f"Blender cannot read the movie {path.name}: no frames in it.")
            self.frames = list(range(1, duration + 1))
            r = self.scene.render
            r.resolution_x, r.resolution_y, r.resolution_percentage = width, height, 100
            r.use_sequencer, r.use_compositing = True, False
            r.image_settings.file_format = "PNG"
            r.image_settings.color_mode = "RGB"
            r.image_settings.color_depth = "16"
            self.scene.view_settings.view_transform = "Standard"  # this scene only shows the movie as it is
            self.scene.view_settings.look = "None"
            self.scene.frame_start, self.scene.frame_end = 1, duration
        except Exception:
            self.close()
            raise

    def read(self, frame):
        if frame not in range(1, len(self.frames) + 1):
            raise FrameSourceError(f"The movie {self.path.name} has frames 1 to {len(self.frames)}, not {frame}.")
        out = os.path.join(self.folder, f"frame_{frame:06d}.png")
        self.scene.frame_set(frame)
        self.scene.render.filepath = out
        with bpy.context.temp_override(scene=self.scene):
            bpy.ops.render.render(write_still=True)
        if not os.path.isfile(out):
            raise FrameSourceError(f"Blender could not read frame {frame} of the movie {self.path.name}.")
        try:
            return read_rgb(out)
        finally:
            os.unlink(out)

    def close(self):
        scene = getattr(self, "scene", None)
        if scene is not None and scene.name in bpy.data.scenes:
            bpy.data.scenes.remove(scene)
        self.scene = None
        shutil.rmtree(getattr(self, "folder", ""), ignore_errors=True)


def _movie_size(strip, path):
    clip = bpy.data.movieclips.load(str(path), check_existing=True)
    try:
        return tuple(int(v) for v in clip.size)
    finally:
        if clip.users == 0:
            bpy.data.movieclips.remove(clip)


def image_frames(image):
    """The reader for an image datablock whose source is SEQUENCE or MOVIE."""
    label, name = f"image '{image.name}'", Path(image.name).stem
    source = {"kind": "image", "image": image.name, "filepath": image.filepath}
    if image.source == "SEQUENCE":
        return ImageSequenceFrames(
            bpy.path.abspath(image.filepath),
            colorspace=image.colorspace_settings.name,
            label=label,
            name=name,
            source=source,
        )
    if image.source == "MOVIE":
        return MovieFrames(image.filepath, label=label, name=name, source=source)
    raise FrameSourceError(
        f"Image '{image.name}' is a single picture, not an image sequence or a movie: pick "
        f"a sequence (Image Editor > Image > Open, several numbered files) or a movie, or "
        f"leave out the frames."
    )


def clip_frames(clip):
    """The reader for a Movie Clip datablock (a movie or an image sequence)."""
    label, name = f"movie clip '{clip.name}'", Path(clip.name).stem
    source = {"kind": "clip", "clip": clip.name, "filepath": clip.filepath}
    if clip.source == "SEQUENCE":
        return ImageSequenceFrames(bpy.path.abspath(clip.filepath), label=label, name=name, source=source)
    return MovieFrames(clip.filepath, label=label, name=name, source=source)


def file_frames(path):
    """The reader for a file: a movie, or one file of a numbered image sequence."""
    abspath = Path(bpy.path.abspath(str(path)))
    if abspath.suffix.lower() in MOVIE_SUFFIXES:
        return MovieFrames(abspath, source={"kind": "file", "filepath": str(path)})
    return ImageSequenceFrames(abspath, source={"kind": "file", "filepath": str(path)})


class ChildFrames(FrameReader):
    """The render, the composite or Scene Z at each frame, each rendered in a child Blender
    (bridge.capture.child), so the interactive operator's worker renders a shot while the UI stays
    usable. The copy of the file for each frame is made on the main thread (main_thread_call)."""

    needs_main_thread = False

    def __init__(self, reader, settings, *, view_layer=None, cancel=None):
        from dataclasses import replace

        self.reader, self.cancel = reader, cancel
        self.label, self.name, self.source, self.frames = reader.label, reader.name, reader.source, reader.frames
        self.scene_name, self.kind, self.view_layer = reader.scene.name, reader.kind, view_layer
        # Scene Z comes back as distances (Raw), background at the clip end, and is turned into what the
        # sequence maps (z_values) here.
        self.settings = replace(settings, normalization="raw", invert=False) if reader.kind == "scene-z" else settings
        self.target = settings
        self.clip_end = float(reader.scene.camera.data.clip_end) if reader.kind == "scene-z" else None

    def read(self, frame):
        from .child import ChildRender

        def copy():
            scene = bpy.data.scenes[self.scene_name]
            return ChildRender(scene, self.kind, self.settings, view_layer=self.view_layer, frame=frame)

        made = main_thread_call(copy, cancel=self.cancel).run(cancel=self.cancel)
        if self.kind != "scene-z":
            return made.rgb
        distance = made.depth
        background = distance >= np.float32(self.clip_end)
        return z_values(distance, background, self.target, self.clip_end)


class MainThreadFrames(FrameReader):
    """A reader that calls bpy, used from the worker thread: each read runs on the main thread at the
    operator's next tick (bridge.generation.worker.post) while the worker waits."""

    needs_main_thread = False

    def __init__(self, reader, cancel=None):
        self.reader, self.cancel = reader, cancel
        self.label, self.name, self.source, self.frames = reader.label, reader.name, reader.source, reader.frames

    def read(self, frame):
        return main_thread_call(lambda: self.reader.read(frame), cancel=self.cancel)

    def close(self):
        main_thread_call(self.reader.close)


def main_thread_call(fn, cancel=None, poll=0.05):
    """fn() on the main thread (at once when called there); its result or its error."""
    import threading

    from ...engine.errors import CancelledError
    from ..generation import worker

    if threading.current_thread() is threading.main_thread():
        return fn()
    done, box = threading.Event(), {}

    def call():
        try:
            box["value"] = fn()
        except BaseException as exc:  # handed back to the worker
            box["error"] = exc
        finally:
            done.set()

    worker.post(call)
    while not done.wait(poll):
        if cancel is not None and cancel():
            raise CancelledError("Cancelled between frames; the finished frames stay.")
    if "error" in box:
        raise box["error"]
    return box["value"]


def scene_frames(scene):
    """The scene's frame range with its step."""
    return frame_range(scene.frame_start, scene.frame_end, max(1, scene.frame_step))


def frame_count(context):
    """How many frames Generate Depth with Frames on would make (None when only reading the source
    would tell), cheaply, for the Server backend's price on the button."""
    from ..prefs import addon_preferences

    props, scene = context.scene.fathom, context.scene
    if props.frames.strip():
        try:
            return len(as_frames(props.frames))
        except InvalidSettingsError:
            return None
    if addon_preferences(context).backend == "SCENE_Z" or props.source in ("RENDER", "COMPOSITOR"):
        return len(scene_frames(scene))
    if props.source == "IMAGE" and props.image is not None and props.image.source in ("SEQUENCE", "MOVIE"):
        return props.image.frame_duration or None
    return None
