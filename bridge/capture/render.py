"""Capture the scene's render and the compositor's output as RGB arrays (bpy in, numpy out).

    render_scene(scene)        the active (or given) camera's render, compositing off
    capture_compositor(scene)  the render passed through the scene's compositor
    rendered_file(scene, ...)  the shared step: render once into a temporary file, settings restored

Why through a file: in background mode (`blender -b`, the bpy module) `Render Result` has no
pixels and the Viewer node is never filled, so the only capture that works everywhere is to
render with ``write_still`` into a temporary file and read it back. Every render setting this
touches (output path, file format, colour depth, codec, compositing, camera...) is put back as it
was, error or not.

Colour: by default the capture is what the user sees, the scene's view transform (Standard, AgX,
Filmic...) and look applied, because that is the picture whose depth they expect and the
display-referred sRGB-like pixels the depth network was trained on. It is rendered as a 16-bit
PNG (PNG output applies the view transform; 16 bits keep gradients smooth) and loaded back
through Blender's own image loader as Non-Color, which gives the stored values exactly (checked
against an independent PNG decode to 1/65535) with no dependency on Pillow and no guess about
Blender's PNG variants. ``linear=True`` gives the scene-linear float render instead (HDR, no
clipping), written as a 32-bit ZIP EXR that engine.exr reads directly.
"""

import contextlib
import os
import re
import shutil
import tempfile
import time

import bpy
import numpy as np

from ...engine.errors import FathomError
from ...engine.exr import read_exr


class RenderCaptureError(FathomError):
    """The scene cannot be rendered or its output cannot be captured."""


NO_CAMERA = "The scene has no active camera: add one or set Scene > Camera."

_SAMPLE = re.compile(r"Sample (\d+)\s*/\s*(\d+)")

# Output formats of the temporary file: image_settings values, applied in this order (the file
# format first, since changing it resets the others), and the file's suffix.
_FORMATS = {
    "png16": ("png", (("file_format", "PNG"), ("color_mode", "RGB"), ("color_depth", "16"), ("compression", 0))),
    "exr": ("exr", (("file_format", "OPEN_EXR"), ("color_mode", "RGB"), ("color_depth", "32"), ("exr_codec", "ZIP"))),
    # Single-part, interleaved: Blender 5.0 writes multi-part multilayer EXRs unless told to
    # interleave, and engine.exr reads single-part files only. 4.x only writes interleaved ones.
    "multilayer": (
        "exr",
        (
            ("media_type", "MULTI_LAYER_IMAGE"),
            ("file_format", "OPEN_EXR_MULTILAYER"),
            ("color_depth", "32"),
            ("exr_codec", "ZIP"),
            ("use_exr_interleave", True),
        ),
    ),
}


# Every image setting a capture may change, in the order they must be restored.
_IMAGE_SETTINGS = (
    "media_type",
    "file_format",
    "color_mode",
    "color_depth",
    "compression",
    "exr_codec",
    "use_exr_interleave",
    "color_management",
)


class Overrides:
    """Set attributes for a while and put every one back in the order first recorded.

    Order matters for image settings: changing the file format silently resets the colour depth
    and mode, so ``keep`` records a group of them before any change and they come back format
    first. An attribute the running Blender lacks (a 5.0-only setting on 4.x) is skipped."""

    def __init__(self):
        self._saved = {}  # (owner's address, name) -> (owner, name, value), in recording order

    def keep(self, owner, *names):
        # Keyed by the Blender data's address: two Python wrappers of one struct are one owner.
        address = owner.as_pointer() if hasattr(owner, "as_pointer") else id(owner)
        for name in names:
            key = (address, name)
            if hasattr(owner, name) and key not in self._saved:
                self._saved[key] = (owner, name, getattr(owner, name))

    def set(self, owner, name, value):
        if hasattr(owner, name):
            self.keep(owner, name)
            if getattr(owner, name) != value:
                setattr(owner, name, value)

    def restore(self):
        failed = []
        for owner, name, old in self._saved.values():
            try:
                if getattr(owner, name) != old:
                    setattr(owner, name, old)
            except (AttributeError, TypeError, ValueError, RuntimeError) as e:
                failed.append(f"{name}: {e}")
        self._saved.clear()
        if failed:
            raise RenderCaptureError(
                "Fathom could not restore some render settings after capturing: "
                + "; ".join(failed)
                + ". Check Output Properties before saving."
            )


def active_camera(scene, camera=None):
    """The camera object that will render, or RenderCaptureError saying how to get one."""
    camera = camera if camera is not None else scene.camera
    if camera is None:
        raise RenderCaptureError(NO_CAMERA)
    if camera.type != "CAMERA":
        raise RenderCaptureError(f"{camera.name!r} is not a camera: pick a camera object.")
    return camera


@contextlib.contextmanager
def rendered_file(scene, fmt, *, camera=None, compositing=False, settings=(), progress=None):
    """Render ``scene`` once into a temporary file of format ``fmt`` ('png16', 'exr', 'multilayer')
    and yield its path; the file is deleted and every setting restored afterwards.

    ``settings`` are extra (owner, attribute, value) overrides for the duration (passes, samples).
    ``progress(fraction, message)`` follows the render's own status line.
    """
    camera = active_camera(scene, camera)
    suffix, image_values = _FORMATS[fmt]
    folder = tempfile.mkdtemp(prefix="fathom-render-")
    path = os.path.join(folder, f"capture.{suffix}")
    overrides = Overrides()
    handler = _progress_handler(progress)
    try:
        r = scene.render
        overrides.set(scene, "camera", camera)
        overrides.set(r, "filepath", path)
        overrides.set(r, "use_file_extension", False)  # the path is used as it is
        overrides.set(r, "use_compositing", compositing)
        overrides.set(r, "use_sequencer", False)  # the camera's picture, not the edit
        overrides.set(r, "use_multiview", False)  # one picture, not one file per view
        image = r.image_settings
        overrides.keep(image, *_IMAGE_SETTINGS)
        if fmt != "multilayer":
            overrides.set(image, "media_type", "IMAGE")
        for name, value in image_values:
            overrides.set(image, name, value)
        overrides.set(image, "color_management", "FOLLOW_SCENE")
        for owner, name, value in settings:
            overrides.set(owner, name, value)
        if handler is not None:
            bpy.app.handlers.render_stats.append(handler)
        try:
            result = bpy.ops.render.render(write_still=True, scene=scene.name)
        except RuntimeError as e:  # Blender reports render errors (no camera, engine failure) this way
            raise RenderCaptureError(f"Blender could not render the scene {scene.name!r}: {_message(e)}") from None
        if "FINISHED" not in result or not os.path.isfile(path):
            raise RenderCaptureError(
                f"Blender did not render the scene {scene.name!r} (the render was cancelled "
                f"or failed): render it once with F12 to see why."
            )
        yield path
    finally:
        if handler is not None and handler in bpy.app.handlers.render_stats:
            bpy.app.handlers.render_stats.remove(handler)
        try:
            overrides.restore()
        finally:
            shutil.rmtree(folder, ignore_errors=True)


def _progress_handler(progress):
    if progress is None:
        return None
    state = {"fraction": 0.0}

    def on_stats(stats, *_):
        text = str(stats)
        match = _SAMPLE.search(text)
        if match and int(match.group(2)) > 0:
            state["fraction"] = min(1.0, int(match.group(1)) / int(match.group(2)))
            message = f"Rendering: sample {match.group(1)} of {match.group(2)}"
        else:
            message = "Rendering: " + text.rsplit("|", 1)[-1].strip()
        progress(state["fraction"], message)

    return on_stats


def _message(error):
    """The line of a Blender operator error that says what happened (the last one)."""
    text = str(error).strip()
    return text.splitlines()[-1] if text else type(error).__name__


def read_rgb(path):
    """RGB float32 HxWx3, top row first, of a file rendered by ``rendered_file``."""
    if path.endswith(".exr"):
        channels = read_exr(path).channels
        return np.dstack([channels[c] for c in "RGB"]).astype(np.float32, copy=False)
    image = bpy.data.images.load(path, check_existing=False)
    try:
        image.colorspace_settings.name = "Non-Color"  # the stored values, no conversion to linear
        width, height = image.size
        pixels = np.empty(width * height * image.channels, np.float32)
        image.pixels.foreach_get(pixels)
    finally:
        bpy.data.images.remove(image)
    # Blender's rows run bottom-up.
    return np.ascontiguousarray(pixels.reshape(height, width, -1)[::-1, :, :3])


def _capture(scene, source, *, camera, compositing, linear, progress, settings=()):
    started = time.perf_counter()
    with rendered_file(
        scene,
        "exr" if linear else "png16",
        camera=camera,
        compositing=compositing,
        settings=settings,
        progress=progress,
    ) as path:
        rgb = read_rgb(path)
    camera = active_camera(scene, camera)
    info = {
        "kind": source,
        "scene": scene.name,
        "camera": camera.name,
        "frame": scene.frame_current,
        "engine": scene.render.engine,
        "width": rgb.shape[1],
        "height": rgb.shape[0],
        "colour": "scene linear" if linear else f"view transform {scene.view_settings.view_transform}",
        "seconds": time.perf_counter() - started,
    }
    if progress is not None:
        progress(1.0, "Render captured")
    return rgb, info


def render_scene(scene, *, camera=None, progress=None, linear=False):
    """Render the active (or given) camera at the scene's resolution, without compositing.

    Returns (rgb float32 HxWx3 top row first, info dict). Default: the view-transformed picture
    in 0..1; ``linear=True``: scene-linear float values (may exceed 1).
    """
    return _capture(scene, "render", camera=camera, compositing=False, linear=linear, progress=progress)


def compositor_output(scene):
    """Check that the scene has a compositor with a connected output; return the settings needed to
    capture it ((owner, attribute, value) overrides, File Output nodes muted). Handles 5.0's
    ``compositing_node_group`` and 4.2-4.5's ``scene.node_tree`` with a Composite node."""
    if hasattr(scene, "compositing_node_group"):  # Blender 5.0+
        tree = scene.compositing_node_group
        if tree is None:
            raise RenderCaptureError(
                "The scene has no compositor node tree: open the Compositor, click New, "
                "and connect a result to the Group Output."
            )
        outputs = [n for n in tree.nodes if n.bl_idname == "NodeGroupOutput"]
        if not any(s.is_linked for n in outputs for s in n.inputs):
            raise RenderCaptureError(
                f"The compositor tree {tree.name!r} has no connected Group Output: "
                "connect the image to compose to a Group Output node."
            )
        return _mute_file_outputs(tree)
    tree = getattr(scene, "node_tree", None)
    if tree is None:
        raise RenderCaptureError("The scene has no compositor node tree: open the Compositor and tick Use Nodes.")
    outputs = [n for n in tree.nodes if n.bl_idname == "CompositorNodeComposite"]
    if not any(s.is_linked for n in outputs for s in n.inputs):
        raise RenderCaptureError(
            f"The compositor tree {tree.name!r} has no connected Composite node: "
            "connect the image to compose to a Composite node."
        )
    return (
        (scene, "use_nodes", True),  # the tree is only applied while Use Nodes is on
        *_mute_file_outputs(tree),
    )


def _mute_file_outputs(tree, seen=None):
    """Overrides that mute every File Output node of the tree and its node groups: a capture must not
    write, or overwrite, the files the user's compositor saves when they render."""
    seen = set() if seen is None else seen
    if tree is None or tree.name in seen:
        return ()
    seen.add(tree.name)
    settings = []
    for node in tree.nodes:
        if node.bl_idname == "CompositorNodeOutputFile":
            settings.append((node, "mute", True))
        settings.extend(_mute_file_outputs(getattr(node, "node_tree", None), seen))
    return tuple(settings)


def capture_compositor(scene, *, camera=None, progress=None, linear=False):
    """Render the scene through its compositor and capture the composite.

    Returns (rgb float32 HxWx3 top row first, info dict), coloured as in ``render_scene``.
    """
    settings = compositor_output(scene)
    return _capture(
        scene, "compositor", camera=camera, compositing=True, linear=linear, progress=progress, settings=settings
    )
