"""Metric depth: a network's relative depth map turned into scene distances (engine.metric), in Blender.

    align_to_scene_z(scene, depth)        fit to the Scene Z of the same render (3D scenes: the network's
                                          detail with Scene Z's scale)
    align_to_points(depth, points)        fit to points picked in the picture, [(u, v, distance)], >= 2
                                          (photos: "this table is 2 m away")

Either writes the aligned map as a new result, ``<depth>_metric.exr`` under //generated/ (the same values,
its file metadata saying what they are now: inverse distance in scene units, and the fit), loaded as
the image "<depth> metric", which every setup then reads in real distances. Aligning the same map again
updates that file and image in place. The user's own result is never changed.
"""

from dataclasses import replace

import numpy as np

from ...engine import encode
from ...engine.metric import align, align_points
from . import common, units

KIND = "metric"


def _check_relative(depth):
    found = units.image_units(depth)
    if found is None:
        raise common.SetupError(
            f"'{depth.name}' does not say what its values are: align a depth map Fathom generated "
            "with a network (Local or Server backend)."
        )
    if found.source == "scene-z":
        raise common.SetupError(f"'{depth.name}' is Scene Z: it already holds distances, there is nothing to align.")
    if found.has_distances:
        original = (found.fit or {}).get("depth") or "the network's own map"
        raise common.SetupError(f"'{depth.name}' is already in distances: align {original!r} again instead.")
    return found


def align_to_scene_z(scene, depth, *, camera=None, view_layer=None, progress=None):
    """Fit ``depth`` to the scene's Z pass (rendered now, from the camera its picture was rendered with
    when it says so); returns (metric image, engine.metric.MetricFit)."""
    from ..capture import scene_z

    depth = common.find_image(depth, "depth image")
    relative = _check_relative(depth)
    source = (depth.get("fathom") or {}).get("source") or {}
    camera = camera or (scene.objects.get(source.get("camera", "")) if source.get("camera") else None)
    z, background, _ = scene_z.render_z(scene, camera=camera, view_layer=view_layer, progress=progress)
    known = np.where(background, np.inf, z)
    fit = align(common.depth_array(depth), relative, known, what=f"Scene Z of scene '{scene.name}'")
    return _metric_result(depth, fit)


def align_to_points(depth, points):
    """Fit ``depth`` to picked points [(u, v, distance), ...] (u from the left, v from the bottom, 0..1)."""
    depth = common.find_image(depth, "depth image")
    fit = align_points(common.depth_array(depth), _check_relative(depth), points)
    return _metric_result(depth, fit)


def _metric_result(depth, fit):
    values = common.depth_array(depth)
    info = dict((depth.get("fathom") or {}).to_dict()) if depth.get("fathom") is not None else {}
    fit = replace(fit, units=replace(fit.units, fit={**fit.units.fit, "depth": depth.name}))
    metadata = {"fathom.units": fit.units.to_metadata(), "fathom.model": fit.units.fit["model"]}
    data = encode.encode_depth(values, "exr32", metadata=metadata)
    stem = depth.name.rsplit(".", 1)[0] if depth.name.lower().endswith((".exr", ".png")) else depth.name
    image = common.keep_generated(
        KIND, depth.name, f"{stem}_metric", ".exr", data, non_color=True, name=f"{stem} metric"
    )
    info.update(model=fit.units.fit.get("model", ""), near_is_bright=bool(info.get("near_is_bright", True)))
    image["fathom"] = info
    units.set_image_units(image, fit.units)
    return image, fit
