"""Files Fathom writes next to the .blend and the images that show them."""

from pathlib import Path
from typing import Callable, Optional

import bpy


def first_free_name(folder: Path, stem: str, suffix: str, put: Callable[[Path], Path]) -> Optional[Path]:
    """``put(path)`` at the first free ``stem_NNN<suffix>`` in ``folder``: what it returns, or None
    when every number is taken. ``put`` must refuse (FileExistsError) a name taken meanwhile, so a
    file is never replaced, even by two generations at once."""
    for number in range(1, 100000):
        path = folder / f"{stem}_{number:03d}{suffix}"
        if path.exists():
            continue
        try:
            return put(path)
        except FileExistsError:  # another writer took this name a moment ago
            continue
    return None


def set_relative_path(image, path):
    """Point ``image`` at ``path``, relative to a saved .blend so the two move together."""
    image.filepath = str(path)
    if bpy.data.filepath:
        try:
            image.filepath = bpy.path.relpath(str(path))
        except ValueError:  # another drive on Windows: keep the absolute path
            pass


def load_image(path, *, non_color: bool = True):
    """A new image datablock for the file (Non-Color unless it is a picture), relative path."""
    image = bpy.data.images.load(str(path), check_existing=False)
    if non_color:
        image.colorspace_settings.name = "Non-Color"
    set_relative_path(image, path)
    return image
