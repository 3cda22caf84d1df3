"""Which picture a generation works on: explicit arguments first, else the scene's Depth settings."""

import bpy

from ...engine.errors import FathomError
from ..kinds import RENDERED
from . import picture

_NOT_PICTURES = ("RENDER_RESULT", "COMPOSITING")  # empty in background mode; the render is its own source


class SourceError(FathomError):
    """The chosen source has no picture to give."""


def resolve_source(context, source=None, image=None, filepath=None, progress=None, decode=True) -> picture.Capture:
    """The picture to work on: explicit arguments first, else the scene's Depth settings.
    ``decode=False``: an image file (an unchanged image datablock's too) is left for the inference
    worker process to decode."""
    props = context.scene.fathom
    source = source or props.source
    if source == "IMAGE":
        return picture.from_image(source_image(context, image), decode=decode)
    if source == "FILE":
        return picture.from_file(source_filepath(context, filepath), decode=decode)
    if source in RENDERED:
        return picture.from_render(context.scene, compositor=source == "COMPOSITOR", progress=progress)
    raise SourceError(f"Unknown source {source!r}: use IMAGE, FILE, RENDER or COMPOSITOR.")


def source_image(context, image=None):
    """The image datablock to work on: ``image`` (one or its name), else the Depth panel's, else the Image Editor's."""
    img = image if image is not None else context.scene.fathom.image or active_editor_image(context)
    if isinstance(img, str):
        found = bpy.data.images.get(img)
        if found is None:
            names = ", ".join(sorted(i.name for i in bpy.data.images if i.type not in _NOT_PICTURES))
            raise SourceError(f"There is no image named {img!r} in this file: use one of {names or '(none)'}.")
        img = found
    if img is None:
        raise SourceError("No image to work on: open one in the Image Editor or pick one in the Depth panel.")
    return img


def source_filepath(context, filepath=None):
    """The file to work on: ``filepath``, else the Depth panel's."""
    path = filepath or context.scene.fathom.filepath
    if not path:
        raise SourceError("No image file chosen: pick one in the Depth panel.")
    return path


def active_editor_image(context):
    space = getattr(context, "space_data", None)
    if space is not None and space.type == "IMAGE_EDITOR" and space.image is not None:
        return space.image
    return None


def expected_source(context, backend: str) -> dict:
    """The identity of the source the next generation will use, without capturing anything."""
    props = context.scene.fathom
    if backend == "SCENE_Z":
        return {"kind": "scene-z", "scene": context.scene.name}
    if props.source == "IMAGE":
        image = props.image or active_editor_image(context)
        return {"kind": "image", "image": image.name if image else ""}
    if props.source == "FILE":
        return {"kind": "file", "filepath": props.filepath}
    return {"kind": props.source.lower(), "scene": context.scene.name}
