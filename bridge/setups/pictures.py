"""The picture a setup shows, and the texture that shows it exactly under the scene's colour management.

picture_for(scene, depth, picture=None) -> image or None
    the named picture; else the image the depth map was made from; else, for a depth map made from
    the render, the compositor or Scene Z, that render itself: its scene-linear pixels (rendered from
    the camera recorded on the depth map, Fathom's own objects hidden) kept as ``<depth>_picture.exr``
    under //generated/ and as an image with a fake user, made once and reused.
texture_for(scene, picture) -> (image, note)
    a scene-referred picture (float, linear colour space) as it is; a display-referred one (a photo,
    an 8-bit PNG) as the scene light that the scene's view transform shows as the picture
    (bridge.setups.colour), kept as ``<picture>_scene_light.exr``. A picture the size of the render,
    in Cycles, is also pre-sharpened against the pixel filter (engine.pixel_filter), since the plane's
    re-render filters its pixels a second time (``<picture>_sharpened.exr`` for a scene-referred one).
    Updated in place when the picture, the scene's colour management or its pixel filter changes.
    ``note`` says what was done.
"""

import numpy as np

from ...engine import pixel_filter
from ...engine.exr import write_exr
from ..capture import picture as capture
from ..generation.results import IMAGE_KEY
from . import colour, common

KIND = "picture"  # the render kept as a depth map's picture
LIGHT_KIND = "scene_light"  # a display-referred picture turned into scene light
RENDERED_SOURCES = ("render", "compositor", "scene-z")


def depth_source(depth) -> dict:
    info = depth.get(IMAGE_KEY) if depth is not None else None
    source = info.get("source") if info is not None else None
    return source.to_dict() if hasattr(source, "to_dict") else dict(source or {})


def picture_for(scene, depth, picture=None):
    if picture:
        return common.find_image(picture, "picture")
    found = common.source_picture(depth)
    if found is not None:
        return found
    source = depth_source(depth)
    if source.get("kind") in RENDERED_SOURCES:
        return render_picture(scene, depth, source)
    return None


def _exr(rgb) -> bytes:
    return write_exr(
        {c: np.ascontiguousarray(rgb[:, :, i], np.float32) for i, c in enumerate("RGB")}, pixel_type="float"
    )


def render_picture(scene, depth, source=None):
    """The render a depth map was made from, as scene-linear pixels (see the module's notes)."""
    kept = common.kept_image(KIND, depth.name)
    if kept is not None:
        return kept
    from ..capture import render

    source = source or depth_source(depth)
    camera = scene.objects.get(source.get("camera", "")) if source.get("camera") else None
    # Fathom's own objects (an earlier displaced plane) are not part of the scene that was rendered.
    hidden = [o for o in scene.objects if o.get(common.TAG) and not o.hide_render]
    try:
        for obj in hidden:
            obj.hide_render = True
        if source.get("kind") == "compositor":
            rgb, _ = render.capture_compositor(scene, camera=camera, linear=True)
        else:
            rgb, _ = render.render_scene(scene, camera=camera, linear=True)
    finally:
        for obj in hidden:
            obj.hide_render = False
    stem = depth.name.rsplit(".", 1)[0]
    image = common.keep_generated(
        KIND, depth.name, f"{stem}_picture", ".exr", _exr(rgb), non_color=False, name=f"{stem} picture"
    )
    image.colorspace_settings.name = colour.scene_linear_name()
    return image


def render_filter(scene, picture):
    """Cycles' pixel filter ({"type", "width"}) when ``picture`` is pixel for pixel the render, so that
    rendering the plane that shows it filters each of its pixels a second time; else None."""
    if scene.render.engine != "CYCLES" or not hasattr(scene, "cycles"):
        return None
    if tuple(picture.size) != common.render_size(scene):
        return None
    return {"type": scene.cycles.pixel_filter_type, "width": round(float(scene.cycles.filter_width), 6)}


def _sharpen_note(blur) -> str:
    width, kind = blur["width"], blur["type"].replace("_", "-").title()
    return f"sharpened against Cycles' {width:g} px {kind} pixel filter, which the re-render applies a second time"


def texture_for(scene, picture):
    scene_referred = colour.is_scene_referred(picture)
    blur = render_filter(scene, picture)
    if scene_referred and blur is None:
        return picture, f"the scene-linear pixels of '{picture.name}', through the scene's own view transform"
    if not scene_referred and not colour.available():  # shown as it is: it passes the view transform again
        return picture, f"'{picture.name}' as it is (this Blender has no PyOpenColorIO to undo the view transform)"
    key = f"{picture.name}|{picture.filepath}"
    made_for = {"view": None if scene_referred else colour.view_description(scene), "filter": blur}
    kept = common.kept_image(LIGHT_KIND, key)
    if (
        kept is not None
        and kept.get("fathom_made_for") is not None
        and kept["fathom_made_for"].to_dict() == made_for
        and tuple(kept.size) == tuple(picture.size)
    ):
        return kept, kept.get("fathom_note", "")
    if scene_referred:
        light = capture.image_pixels(picture, linear=True)
        note, space = f"the scene-linear pixels of '{picture.name}'", picture.colorspace_settings.name
    else:
        light, note = colour.display_to_scene_linear(
            capture.image_pixels(picture), scene, picture.colorspace_settings.name
        )
        space = colour.scene_linear_name()
    if blur is not None:
        light = pixel_filter.presharpen(light, pixel_filter.taps(blur["type"], blur["width"]))
        note = f"{note}, {_sharpen_note(blur)}"
    stem = picture.name.rsplit(".", 1)[0]
    suffix = "sharpened" if scene_referred else "scene_light"
    image = common.keep_generated(
        LIGHT_KIND, key, f"{stem}_{suffix}", ".exr", _exr(light), non_color=False, name=f"{stem} {suffix}"
    )
    image.colorspace_settings.name = space
    image["fathom_made_for"] = made_for
    image["fathom_note"] = note
    return image, note
