"""Stereo pairs from a picture and its depth (engine.stereo), written under //generated/ as 8-bit PNG
and loaded as an image kept with the .blend. Re-running for the same picture and layout updates that
image and its file in place (common.keep_generated).

Two ways to set the depth effect:
- RIG, when the depth has distances (Scene Z, a map aligned to metric depth): a stereo camera's
  interaxial and convergence distances in scene units, typed in or taken from a camera's
  Stereoscopy settings (its pivot says which eye the picture is), and the camera's focal length
  and sensor; the pair is what Blender's stereoscopy renders (Off-Axis or Parallel).
- DIVERGENCE, for relative maps: the largest shift between the eyes in percent of the width.
AUTO is RIG when the depth has distances, else DIVERGENCE.
"""

import math

import numpy as np

from ...engine import stereo
from ...engine.encode import encode_png
from ...engine.errors import InvalidSettingsError
from ...engine.units import distances
from ..generation import results
from . import common
from .units import image_units

KIND = "stereo"
LAYOUTS = {"SIDE_BY_SIDE": "side-by-side", "TOP_BOTTOM": "top-bottom", "ANAGLYPH": "anaglyph"}
EYES = {"LEFT": "left", "RIGHT": "right", "CENTER": "centre"}
MODES = ("AUTO", "RIG", "DIVERGENCE")
CONVERGENCE_MODES = ("OFFAXIS", "PARALLEL")
REPORT_KEY = "fathom_report"


def resample(values, shape):
    """Nearest-neighbour resize of a depth map to the picture's size (when it was made at another)."""
    h, w = shape
    rows = np.minimum((np.arange(h) + 0.5) * values.shape[0] / h, values.shape[0] - 1).astype(int)
    cols = np.minimum((np.arange(w) + 0.5) * values.shape[1] / w, values.shape[1] - 1).astype(int)
    return values[rows][:, cols]


def relative_nearness(units, values):
    """(0..1 nearness linear in inverse depth, warning or None) for the divergence: a map's values
    read back through its units (engine.units), else taken as they are (near = bright)."""
    if units is None:
        return values, stereo.relative_warning(None)
    return stereo.relative_nearness(units.decode(values), units.quantity), stereo.relative_warning(units.to_metadata())


def rig_camera(depth, camera=None):
    """The camera of the rig: the one named, else the camera the depth was made from (Scene Z,
    a render), else the scene's (None when there is none)."""
    bpy = common.bpy
    if camera is not None:
        found = bpy.data.objects.get(camera) if isinstance(camera, str) else camera
        if found is None or found.type != "CAMERA":
            raise common.SetupError(f"No camera object named {camera!r}.")
        return found
    info = depth.get(results.IMAGE_KEY)
    source = info.get("source") if info is not None else None
    name = source.get("camera") if source is not None else None
    found = bpy.data.objects.get(name) if name else None
    if found is not None and found.type == "CAMERA":
        return found
    scene = bpy.context.scene
    return scene.camera if scene is not None else None


def camera_stereo(camera):
    """(interaxial, convergence, eye, note) from a camera's Stereoscopy settings; convergence is
    infinite for Parallel. Toe-in rotates the cameras, which a sideways shift cannot reproduce
    exactly: it is made as Off-Axis with the same convergence distance, and the note says so."""
    s = camera.data.stereo
    convergence = math.inf if s.convergence_mode == "PARALLEL" else float(s.convergence_distance)
    note = ""
    if s.convergence_mode == "TOE":
        note = (
            "The camera converges by Toe-in (rotated cameras): the pair is made as Off-Axis with the same "
            "convergence distance, without Toe-in's keystone."
        )
    return float(s.interocular_distance), convergence, s.pivot, note


def setup(
    picture,
    depth,
    *,
    mode="AUTO",
    eye=None,
    divergence=2.5,
    interaxial=0.065,
    convergence=1.95,
    convergence_mode="OFFAXIS",
    use_camera=False,
    camera=None,
    layout="SIDE_BY_SIDE",
    fill=True,
    folder=None,
    scene=None,
):
    """Write the stereo image of ``picture`` and ``depth``; returns (the loaded image, a line saying
    what was made, warnings: why the pair cannot be a real rig's). A scene-referred picture (the
    render's float pixels) is shown as ``scene``'s colour management shows it."""
    depth = common.find_image(depth, "depth image")
    picture = common.find_image(picture, "picture")
    for value, allowed, what in (
        (layout, LAYOUTS, "layout"),
        (mode, MODES, "mode"),
        (eye or "LEFT", EYES, "eye"),
        (convergence_mode, CONVERGENCE_MODES, "convergence mode"),
    ):
        if value not in allowed:
            raise common.SetupError(f"Unknown stereo {what} {value!r}: use one of {', '.join(allowed)}.")
    rgb = common.picture_array(picture, scene)
    values = common.depth_array(depth)
    if values.shape != rgb.shape[:2]:
        values = resample(values, rgb.shape[:2])
    units = image_units(depth)
    dist = distances(values, units) if units is not None and units.has_distances else None
    if mode == "AUTO":
        mode = "RIG" if dist is not None else "DIVERGENCE"
    notes = []
    h, w = values.shape
    cam = rig_camera(depth, camera)
    if use_camera and cam is not None:
        stereo_interaxial, stereo_convergence, pivot, note = camera_stereo(cam)
        eye = eye or pivot
    eye = eye or "LEFT"
    if mode == "RIG":
        if dist is None:
            raise common.SetupError(
                f"The depth map {depth.name!r} has no distances: a rig in scene units needs "
                "Scene Z (or a map aligned to metric depth). Use Divergence for relative "
                "depth."
            )
        if cam is None:
            raise common.SetupError("Rig mode needs a camera (its focal length and sensor): the scene has none.")
        if use_camera:
            interaxial, convergence = stereo_interaxial, stereo_convergence
            notes += [note] if note else []
        elif convergence_mode == "PARALLEL":
            convergence = math.inf
        focal = camera_focal(cam, w, h)
        try:
            disparity = stereo.rig_disparity(dist, focal, interaxial, convergence)
        except InvalidSettingsError as e:
            raise common.SetupError(str(e)) from None
        conv = "parallel" if math.isinf(convergence) else f"converged at {convergence:.4g}"
        effect = (
            f"rig {interaxial:.4g} {units.unit} apart, {conv}, focal length {focal:.1f} px ({cam.name}): "
            f"shifts {float(disparity.min()):+.1f} to {float(disparity.max()):+.1f} px"
        )
        params = {
            "interaxial": interaxial,
            "convergence": None if math.isinf(convergence) else convergence,
            "focal_px": focal,
            "camera": cam.name,
        }
    else:
        nearness, warning = relative_nearness(units, values)
        notes += [warning] if warning else []
        disparity = stereo.relative_disparity(nearness, divergence, w)  # InvalidSettingsError on a bad value
        effect = (
            f"divergence {divergence:g} %: the nearest point shifts {divergence:g} % of the width between "
            "the eyes, the farthest sits on the screen"
        )
        params = {"divergence": divergence}
    pair = stereo.stereo_pair(rgb, disparity, EYES[eye], fill)
    pixels = np.rint(np.clip(stereo.compose(pair.left, pair.right, LAYOUTS[layout]), 0, 1) * 255).astype(np.uint8)
    made = {
        "LEFT": "the right eye made from the picture as the left",
        "RIGHT": "the left eye made from the picture as the right",
        "CENTER": "both eyes made around the picture",
    }[eye]
    report = (
        f"Stereo pair ({LAYOUTS[layout]}), {made}; {effect}; "
        f"{100 * pair.filled:.1f} % of the made pixels filled from the background"
    )
    report += "."
    meta = {
        "picture": picture.name,
        "depth": depth.name,
        "mode": mode.lower(),
        "eye": EYES[eye],
        "layout": LAYOUTS[layout],
        "largest_shift_percent": pair.largest_shift,
        "filled": pair.filled,
        **params,
    }
    data = encode_png(pixels, metadata={"fathom.stereo": meta})
    image = common.keep_generated(
        KIND,
        f"{picture.name}|{layout}",
        f"{picture.name}_stereo_{LAYOUTS[layout]}",
        ".png",
        data,
        non_color=False,
        name=f"{picture.name} stereo",
        folder=folder,
    )
    image[REPORT_KEY] = " ".join([report] + notes)
    return image, report, notes


def camera_focal(camera, width, height):
    """The camera's focal length in pixels of a ``width`` x ``height`` picture."""
    data = camera.data
    if data.type != "PERSP":
        raise common.SetupError(f"Rig mode needs a perspective camera; {camera.name!r} is {data.type.lower()}.")
    return stereo.focal_px(data.lens, data.sensor_width, data.sensor_height, width, height, data.sensor_fit)
