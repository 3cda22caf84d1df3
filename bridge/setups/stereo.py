"""Stereo pairs from a picture and its depth (engine.stereo), written under //generated/ as 8-bit PNG
and loaded as an image kept with the .blend. Re-running for the same picture and layout updates that
image and its file in place (common.keep_generated)."""

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


def setup(picture, depth, *, divergence=2.5, layout="SIDE_BY_SIDE", fill=True, folder=None, scene=None):
    """Write the stereo image of ``picture`` and ``depth`` (near = bright); returns the loaded image. A
    scene-referred picture (the render's float pixels) is shown as ``scene``'s colour management shows it."""
    depth = common.find_image(depth, "depth image")
    picture = common.find_image(picture, "picture")
    if layout not in LAYOUTS:
        raise common.SetupError(f"Unknown stereo layout {layout!r}: use one of {', '.join(LAYOUTS)}.")
    rgb = common.picture_array(picture, scene)
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
    return common.keep_generated(
        KIND,
        f"{picture.name}|{layout}",
        f"{picture.name}_stereo_{LAYOUTS[layout]}",
        ".png",
        data,
        non_color=False,
        name=f"{picture.name} stereo",
        folder=folder,
    )
