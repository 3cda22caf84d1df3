"""The picture a setup shows, and the texture that shows it exactly under the scene's colour management.

picture_for(scene, depth, picture=None) -> image or None
    the named picture; else the image the depth map was made from; else, for a depth map made from
    the render, the compositor or Scene Z, that render itself: its scene-linear pixels (rendered from
    the camera recorded on the depth map, Fathom's own objects hidden) kept as ``<depth>_picture.exr``
    under //generated/ and as an image with a fake user, made once and reused.
texture_for(scene, picture) -> (image, note)
    a scene-referred picture (float, linear colour space) as it is; a display-referred one (a photo,
    an 8-bit PNG) as the scene light that the scene's view transform shows as the picture
    (bridge.setups.colour), kept as ``<picture>_scene_light.exr`` and updated in place when the
    picture or the scene's colour management changes. ``note`` says which was done.
"""

import numpy as np

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


def texture_for(scene, picture):
    if colour.is_scene_referred(picture):
        return picture, f"the scene-linear pixels of '{picture.name}', through the scene's own view transform"
    key = f"{picture.name}|{picture.filepath}"
    view = colour.view_description(scene)
    kept = common.kept_image(LIGHT_KIND, key)
    if (
        kept is not None
        and kept.get("fathom_view") is not None
        and kept["fathom_view"].to_dict() == view
        and tuple(kept.size) == tuple(picture.size)
    ):
        return kept, kept.get("fathom_note", "")
    if not colour.available():  # shown as it is: it passes the scene's view transform a second time
        return picture, f"'{picture.name}' as it is (this Blender has no PyOpenColorIO to undo the view transform)"
    light, note = colour.display_to_scene_linear(capture.image_pixels(picture), scene, picture.colorspace_settings.name)
    stem = picture.name.rsplit(".", 1)[0]
    image = common.keep_generated(
        LIGHT_KIND, key, f"{stem}_scene_light", ".exr", _exr(light), non_color=False, name=f"{stem} scene light"
    )
    image.colorspace_settings.name = colour.scene_linear_name()
    image["fathom_view"] = view
    image["fathom_note"] = note
    return image, note
