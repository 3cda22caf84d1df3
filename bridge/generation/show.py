"""Put a finished depth map where the user is looking, without another click.

The scene remembers its newest result (``scene.fathom.result``), which the Depth panel shows as a
thumbnail with its size, model and the time it took; every Image Editor that showed the source
switches to the result; when none did and the preferences ask for it, a new window opens on it.
"""

from pathlib import Path

import bpy

from .results import IMAGE_KEY

_RENDER_VIEWS = ("RENDER_RESULT", "COMPOSITING")  # where a rendered source is seen


def show_result(context, image, source: dict, seconds: float, open_window: bool = False) -> int:
    """Main thread: remember ``image`` as the scene's newest result, switch the editors that
    showed ``source`` (bridge.capture.picture.Capture.source) to it, or open a window on it when
    ``open_window`` and none did. How many editors now show it."""
    info = dict(image.get(IMAGE_KEY, {}))
    info["seconds"] = round(float(seconds), 2)
    image[IMAGE_KEY] = info
    context.scene.fathom.result = image
    image.preview_ensure()  # the panel's thumbnail
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
    """The thumbnail's caption: size, model and time taken."""
    info = image.get(IMAGE_KEY, {})
    width, height = image.size
    parts = [f"{width} x {height}", str(info.get("model", "")) or None]
    if "seconds" in info:
        parts.append(f"{info['seconds']:.1f} s")
    return " · ".join(p for p in parts if p)
