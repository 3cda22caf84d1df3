"""Stereo pairs from a picture and its depth (engine.stereo), written under //generated/ as 8-bit PNG
(never over an existing file) and loaded as an image. Re-running for the same picture updates the
same image datablock with the new file."""

import numpy as np

from ...engine import stereo
from ...engine.encode import encode_png
from . import common

KIND = "stereo"
LAYOUTS = {"SIDE_BY_SIDE": "side-by-side", "TOP_BOTTOM": "top-bottom", "ANAGLYPH": "anaglyph"}


def resample(values, shape):
    """Nearest-neighbour resize of a depth map to the picture's size (when it was made at another)."""
    h, w = shape
    rows = np.minimum((np.arange(h) + 0.5) * values.shape[0] / h, values.shape[0] - 1).astype(int)
    cols = np.minimum((np.arange(w) + 0.5) * values.shape[1] / w, values.shape[1] - 1).astype(int)
    return values[rows][:, cols]


def setup(picture, depth, *, divergence=2.5, layout="SIDE_BY_SIDE", fill=True, folder=None):
    """Write the stereo image of ``picture`` and ``depth`` (near = bright); returns the loaded image."""
    depth = common.find_image(depth, "depth image")
    picture = common.find_image(picture, "picture")
    if layout not in LAYOUTS:
        raise common.SetupError(f"Unknown stereo layout {layout!r}: use one of {', '.join(LAYOUTS)}.")
    rgb = common.picture_array(picture)
    values = common.depth_array(depth)
    if values.shape != rgb.shape[:2]:
        values = resample(values, rgb.shape[:2])
    left, right = stereo.stereo_views(rgb, values, divergence, fill)  # InvalidSettingsError on bad values
    pixels = np.rint(np.clip(stereo.compose(left, right, LAYOUTS[layout]), 0, 1) * 255).astype(np.uint8)
    data = encode_png(
        pixels,
        metadata={
            "fathom.stereo": {
                "picture": picture.name,
                "depth": depth.name,
                "divergence": divergence,
                "layout": LAYOUTS[layout],
            }
        },
    )
    path = common.write_generated(f"{picture.name}_stereo_{LAYOUTS[layout]}", ".png", data, folder)
    return _load(path, picture, layout)


def _load(path, picture, layout):
    key = f"{picture.name}|{layout}"
    image = next((i for i in common.bpy.data.images if common.tagged(i, KIND) and i.get("fathom_for") == key), None)
    if image is None:
        image = common.load_generated(path, non_color=False, kind=KIND)
        image["fathom_for"] = key
        image.name = f"{picture.name} stereo"
    else:
        common.reload_generated(image, path)
    return image
