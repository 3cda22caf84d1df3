"""What a depth image's values mean, for the setups (and anything else that wants distances).

    image_units(image)        engine.units.DepthUnits, or None when nothing says
    image_distances(image)    float64 HxW distances in scene units (top row first, inf = infinitely far),
                              or None when the map is relative (a network's) or says nothing
    distance_at(image, u, v)  the distance at a point (u from the left, v from the bottom, 0..1), or None
    set_image_units(image, units)

Where units come from, first found: the image's ``fathom`` custom property (``units``, written when the
result was loaded or aligned), else its file's metadata (``fathom.units``), else, for a network result
made before units were recorded, its settings (relative depth; normalisation and invert are enough to
align it, see engine.units.relative_units).
"""

from pathlib import Path

import bpy
import numpy as np

from ...engine import encode
from ...engine.units import DepthUnits, distances, relative_units
from ..generation.results import IMAGE_KEY
from . import common

UNITS_KEY = "units"  # inside the image's IMAGE_KEY property


def image_units(image):
    info = image.get(IMAGE_KEY) if image is not None else None
    stored = info.get(UNITS_KEY) if info is not None else None
    if stored is not None:
        return DepthUnits.from_metadata(stored.to_dict() if hasattr(stored, "to_dict") else stored)
    path = Path(bpy.path.abspath(image.filepath)) if image is not None and image.filepath else None
    if path is not None and path.is_file():
        try:
            units = DepthUnits.from_metadata(encode.read_metadata(path))
        except (OSError, ValueError):
            units = None
        if units is not None:
            return units
    if info is not None and info.get("model") not in (None, "scene-z") and "settings" in info:
        settings = info["settings"]
        return relative_units(
            settings.get("normalization", "standard"), bool(settings.get("invert", False)), source=info["model"]
        )
    return None


def set_image_units(image, units: DepthUnits):
    info = image.get(IMAGE_KEY)
    info = info.to_dict() if info is not None else {}
    info[UNITS_KEY] = units.to_metadata()
    image[IMAGE_KEY] = info


def image_distances(image):
    units = image_units(image)
    if units is None or not units.has_distances:
        return None
    return distances(common.depth_array(image), units)


def distance_at(image, u, v):
    from ...engine.metric import sample

    units = image_units(image)
    if units is None or not units.has_distances:
        return None
    return float(distances(np.array(sample(common.depth_array(image), u, v)), units))
