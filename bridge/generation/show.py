"""Put a finished depth map where the user is looking, without another click.

The scene remembers its newest result (``scene.fathom.result``), which the Depth panel shows as a
thumbnail with its size, model and the time it took; every Image Editor that showed the source
switches to the result; when none did and the preferences ask for it, a new window opens on it.
"""

from pathlib import Path

import bpy
import numpy as np

from .results import IMAGE_KEY

_RENDER_VIEWS = ("RENDER_RESULT", "COMPOSITING")  # where a rendered source is seen
THUMBNAIL = 256  # pixels on the thumbnail's long side


def remember_result(context, image, seconds: float, depth=None):
    """Main thread: ``image`` becomes the scene's newest result, with the time it took, and the Depth
    panel's thumbnail. ``depth`` (HxW, top row first): the thumbnail, made now rather than by
    Blender's deferred preview job. The Generate operator calls it, then show_in_editors, at two
    timer ticks."""
    info = dict(image.get(IMAGE_KEY, {}))
    info["seconds"] = round(float(seconds), 2)
    image[IMAGE_KEY] = info
    context.scene.fathom.result = image
    set_thumbnail(image, depth)


def show_in_editors(context, image, source: dict, open_window: bool = False) -> int:
    """Every Image Editor that showed ``source`` (bridge.capture.picture.Capture.source) now shows
    ``image``; a new window on it when
    ``open_window`` and none did. How many editors now show it."""
    shown = 0
    for window in context.window_manager.windows:
        for area in window.screen.areas:
            if area.type != "IMAGE_EDITOR":
                continue
            space = area.spaces.active
            if space.image is not None and showed_source(space.image, source):
                space.image = image
                area.tag_redraw()
                shown += 1
    if not shown and open_window and not bpy.app.background:
        shown = _open_window(context, image)
    return shown


ICON = 32  # pixels on the small icon's long side (the ID field next to the thumbnail)


def set_thumbnail(image, depth, size=THUMBNAIL):
    """The image's preview and its small icon from its depth array: grey, near = bright as in the
    file, at most ``size`` (ICON) pixels on the long side (every n-th pixel: cheap on the main
    thread). Both made here, so Blender starts no preview job, which would read the whole file."""
    preview = image.preview_ensure()
    if depth is None:
        return
    thumbnail = _every_nth(np.asarray(depth, np.float32), size)[::-1]  # Blender's rows run bottom to top
    low, high = float(np.nanmin(thumbnail)), float(np.nanmax(thumbnail))
    grey = np.clip((thumbnail - low) / (high - low), 0.0, 1.0) if high > low else np.zeros_like(thumbnail)
    for small, set_size, pixels in (
        (grey, "image_size", "image_pixels_float"),
        (_every_nth(grey, ICON), "icon_size", "icon_pixels_float"),
    ):
        rgba = np.empty((*small.shape, 4), np.float32)
        rgba[..., :3] = small[..., None]
        rgba[..., 3] = 1.0
        setattr(preview, set_size, (small.shape[1], small.shape[0]))
        getattr(preview, pixels).foreach_set(rgba.ravel())


def _every_nth(a, longest):
    step = max(1, -(-max(a.shape) // longest))
    return a[::step, ::step]


def showed_source(image, source: dict) -> bool:
    """Whether an Image Editor showing ``image`` was showing the picture ``source`` names."""
    kind = source.get("kind")
    if kind == "image":
        return image.name == source.get("image")
    if kind == "file":
        if not image.filepath:
            return False
        return _same_file(image.filepath, source.get("filepath", ""))
    return image.type in _RENDER_VIEWS


def _same_file(a, b) -> bool:
    try:
        return Path(bpy.path.abspath(a)).resolve() == Path(bpy.path.abspath(b)).resolve()
    except OSError:
        return False


def _open_window(context, image) -> int:
    before = set(context.window_manager.windows[:])
    bpy.ops.wm.window_new()
    for window in context.window_manager.windows:
        if window not in before:
            area = window.screen.areas[0]
            area.type = "IMAGE_EDITOR"
            area.spaces.active.image = image
            return 1
    return 0


def describe(image) -> str:
    """The thumbnail's caption: size, model and time taken. The size is the one recorded when the
    result was made (results.load_result): ``image.size`` would decode the whole file on the main
    thread to draw a caption."""
    info = image.get(IMAGE_KEY, {})
    width, height = info["size"] if "size" in info else image.size
    parts = [f"{width} x {height}", str(info.get("model", "")) or None]
    if "seconds" in info:
        parts.append(f"{info['seconds']:.1f} s")
    return " · ".join(p for p in parts if p)
