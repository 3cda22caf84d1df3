"""Depth maps back into Blender: a file under //generated/ and an image datablock (the compositor
node that shows it: generation.nodes).

Files are never overwritten: each result gets the next free numbered name, and the engine's
writer refuses a name taken meanwhile. The image is Non-Color (depth is data, not colour).
"""

import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Optional

import bpy

from ...engine import encode
from ...engine.errors import FathomError, InvalidSettingsError
from ..files import first_free_name, load_image
from .nodes import compositor_tree

GENERATED = "//generated/"
IMAGE_KEY = "fathom"  # on a result image: settings and source of the generation


class OutputError(FathomError):
    """The depth map has nowhere to go (unsaved .blend, an existing file)."""


def generated_folder() -> Path:
    if not bpy.data.filepath:
        raise OutputError(
            "Save the .blend file first: depth maps are written to the generated/ folder next "
            "to it (//generated/). From the command line you can name an --output path instead."
        )
    return Path(bpy.path.abspath(GENERATED))


def check_save():
    """Before any work: --save will be able to save the open .blend in place."""
    if not bpy.data.filepath:
        raise OutputError("--save needs a saved .blend: open one with -b FILE.blend (nothing was written).")
    path = Path(bpy.data.filepath)
    if not os.access(path.parent, os.W_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise OutputError(f"--save cannot save {path}: its folder or the file is not writable (nothing was written).")


def save_blend():
    """Save the open .blend in place (the CLI's --save)."""
    check_save()
    try:
        bpy.ops.wm.save_mainfile()
    except RuntimeError as exc:
        raise OutputError(f"--save could not save {bpy.data.filepath}: {str(exc).strip()}") from None


def check_writable(folder: Path):
    """``folder`` (made when missing) can take new files: else an OutputError, before any slow work."""
    existing = folder
    while not existing.exists() and existing.parent != existing:
        existing = existing.parent
    if not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
        raise OutputError(
            f"Fathom cannot write depth maps to {folder}: {existing} is not writable. Make it writable, "
            "or name another place (--output PATH on the command line)."
        )


@dataclass(frozen=True)
class Target:
    """Where a result goes: one named file, or the next free name in a folder."""

    folder: Optional[Path] = None
    file: Optional[Path] = None


def output_target(output=None, fmt=None) -> Target:
    """Checked on the main thread before any work: the ``output`` file (made absolute; it must
    not exist yet, and its suffix must be the one format ``fmt`` writes) or the //generated/
    folder of the saved .blend; either must be writable."""
    if output:
        path = Path(bpy.path.abspath(str(output)))
        if fmt is not None and path.suffix and path.suffix.lower() != encode.suffix_for(fmt):
            raise InvalidSettingsError(
                f"{path.name} ends in {path.suffix} but format {fmt} writes {encode.suffix_for(fmt)} files: "
                "change the output name or the format."
            )
        if path.exists():
            raise OutputError(
                f"{path} already exists and Fathom never overwrites files: choose another "
                "output name or move the old file."
            )
        check_writable(path.parent)
        return Target(file=path)
    folder = generated_folder()
    check_writable(folder)
    return Target(folder=folder)


def write_result(depth_map, name: str, target: Target, metadata=None) -> Path:
    """Write the depth map to ``target``'s file (never replaced; the format's suffix is added when
    it has none) or to the next free numbered name in its folder. No bpy: worker threads call it."""
    fmt = depth_map.settings.output_format
    depth = depth_map.depth
    metadata = {**depth_map.describe(), **(metadata or {})}  # tiled or not, how many tiles
    if fmt in ("png16", "png8") and depth_map.settings.normalization == "raw":
        depth = encode.to_unit_range(depth)  # a PNG holds 0..1 only
    try:
        return _write(depth, fmt, name, target, metadata)
    except OSError as exc:  # made unwritable after the check, a full disk...
        raise OutputError(f"Fathom cannot write the depth map to {exc.filename or target}: {exc.strerror}.") from None


def _write(depth, fmt, name, target, metadata):
    if target.file is not None:
        try:
            return encode.write_depth(target.file, depth, fmt, metadata=metadata)
        except FileExistsError as exc:
            raise OutputError(str(exc)) from None
    stem = safe_stem(name) + "_depth"
    path = first_free_name(
        target.folder,
        stem,
        encode.suffix_for(fmt),
        lambda path: encode.write_depth(path, depth, fmt, metadata=metadata),
    )
    if path is not None:
        return path
    raise OutputError(f"{target.folder} holds too many {stem} results: move some away.")


def safe_stem(name: str) -> str:
    """``name`` as a file name stem: letters, digits, - and _ only, at most 60 characters."""
    cleaned = "".join(c if c.isalnum() or c in "-_" else "_" for c in name).strip("_")
    return cleaned[:60] or "image"


def load_result(path: Path, depth_map, source: dict):
    """Load a written depth map as a Non-Color image that records how it was made."""
    image = load_image(path)
    settings = {k: v for k, v in asdict(depth_map.settings).items() if v is not None}
    height, width = depth_map.depth.shape[:2]
    image[IMAGE_KEY] = {
        "size": [int(width), int(height)],  # the file's, known without decoding it (show.describe)
        "settings": settings,
        "source": dict(source),
        "model": depth_map.model,
        "near_is_bright": bool(depth_map.near_is_bright),
        "tiles": int(depth_map.tiles),
        "runtime": dict(depth_map.runtime),
    }
    if depth_map.units is not None:  # what the values mean: bridge.setups.units reads it
        image[IMAGE_KEY]["units"] = depth_map.units.to_metadata()
    return image


def is_result(image) -> bool:
    return image is not None and IMAGE_KEY in image.keys()


def active_result(context):
    """The depth result the user is looking at: the Image Editor's image, else the active compositor
    node's image, else None."""
    space = getattr(context, "space_data", None)
    if space is not None and space.type == "IMAGE_EDITOR" and is_result(space.image):
        return space.image
    tree = compositor_tree(context.scene, create=False)
    node = tree.nodes.active if tree is not None else None
    if node is not None and is_result(getattr(node, "image", None)):
        return node.image
    from .. import node_group

    if node_group.is_depth_map(node) and is_result(node_group.result_image(node)):
        return node_group.result_image(node)  # the result a Depth Map node carries
    return None


def delete_result(image) -> Optional[Path]:
    """Remove a result's file and its datablock; nodes that showed it become empty (transparent),
    so node setups keep working. Only Fathom's own results: a user's image is never deleted."""
    if not is_result(image):
        raise OutputError(f"'{image.name}' is not a depth map made by Fathom: Fathom deletes only its own results.")
    path = Path(bpy.path.abspath(image.filepath)) if image.filepath else None
    bpy.data.images.remove(image)
    if path is not None and path.is_file():
        path.unlink()
        return path
    return None
