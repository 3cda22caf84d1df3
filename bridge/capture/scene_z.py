"""Scene Z (exact): the render's own Z pass as a depth map in Fathom's convention, no network.

    render_z(scene)              the Z pass in scene units, background marked
    z_to_depth(z, background, settings) -> (depth, near_is_bright), pure numpy
    scene_depth(scene, settings) -> engine.depth.DepthMap, like a local generation's

What Blender's Z pass holds (checked against scene.ray_cast in tests/blender/test_scene_z.py):
the distance from the camera along its viewing axis (planar depth, not the length of the ray),
in scene units; panoramic cameras give the length of the ray instead (checked by hand on an
equirectangular camera). Empty background is 1e10 in Cycles and Workbench, and just past the
camera's clip end in EEVEE, so anything at or beyond the clip end counts as background.

Conventions, kept identical to the AI backends so Scene Z and AI depth look alike:
- 'standard' and 'v2-style' normalise the inverse depth 1/z, the same family as the network's
  output (relative disparity: larger = nearer), with engine.normalize. Background is infinitely
  far, 1/z = 0, so it comes out black (0) after 'standard', and near = bright unless inverted.
- 'raw' gives the metric distance itself (larger = farther, so near_is_bright is False), with
  background set to the camera's clip end, the farthest distance it can see, so the map stays
  finite and fits a half-float EXR for the default clip end. 'raw' + invert gives
  (max - distance), near = bright, as engine.normalize inverts raw values.

The Z pass comes out of a multilayer EXR rendered once into a temporary file (the only capture
that works in background mode), through bridge.capture.render.rendered_file, which restores
every setting afterwards. Cycles writes the Z pass from the first sample only (a 1-sample render
gives the Z of a 4-sample denoised one bit for bit, tested; 16 samples too, checked by hand), so
Cycles renders it with 1 sample and no denoising: the same Z, many times faster; and with Cycles' narrowest
pixel filter, so that sample goes through the pixel's centre (the Z a ray cast from the camera gets there).
"""

import time
from dataclasses import replace

import bpy
import numpy as np

from ...engine.depth import DepthMap
from ...engine.exr import read_exr
from ...engine.normalize import normalize_with_range
from ...engine.settings import DepthSettings
from ...engine.units import from_normalization
from .render import RenderCaptureError, active_camera, rendered_file

MODEL_NAME = "scene-z"
BACKGROUND_Z = 1e9  # Cycles and Workbench write 1e10 where no surface was hit


def render_view_layer(scene, name=None):
    """The view layer whose Z pass is used: the one named (a render in a separate process is told
    which the user's window shows), else the window's (context) view layer when it belongs to the
    scene and renders, else the scene's first view layer that renders."""
    current = scene.view_layers.get(name) if name else getattr(bpy.context, "view_layer", None)
    if current is not None and scene.view_layers.get(current.name) == current and current.use:
        return current
    for layer in scene.view_layers:
        if layer.use:
            return layer
    raise RenderCaptureError(
        f"No view layer of scene {scene.name!r} is enabled for rendering: "
        "tick 'Use for Rendering' on one in the View Layer properties."
    )


def render_z(scene, *, camera=None, view_layer=None, progress=None):
    """Render the scene's Z pass. Returns (z float32 HxW top row first, background bool HxW, info)."""
    started = time.perf_counter()
    camera = active_camera(scene, camera)
    layer = render_view_layer(scene, view_layer)
    settings = [(layer, "use_pass_z", True)]
    # Only this layer renders; the others would cost time and add channels.
    settings += [(other, "use", False) for other in scene.view_layers if other != layer]
    if scene.render.engine == "CYCLES":
        # filter_width: the first sample through each pixel's centre, where a ray cast goes, whatever the
        # scene's pixel filter (Cycles' smallest width; its default 1.5 px jitters the sample by up to 1.5 px).
        settings += [
            (scene.cycles, "samples", 1),
            (scene.cycles, "use_denoising", False),
            (scene.cycles, "filter_width", 0.01),
        ]
    with rendered_file(scene, "multilayer", camera=camera, settings=settings, progress=progress) as path:
        channels = read_exr(path).channels
    z = _z_channel(channels, layer.name, scene.render.engine)
    clip_end = float(camera.data.clip_end)
    background = ~np.isfinite(z) | (z >= min(BACKGROUND_Z, clip_end)) | (z <= 0.0)
    info = {
        "kind": "scene-z",
        "scene": scene.name,
        "camera": camera.name,
        "view_layer": layer.name,
        "frame": scene.frame_current,
        "engine": scene.render.engine,
        "width": z.shape[1],
        "height": z.shape[0],
        "clip_end": clip_end,
        "seconds": time.perf_counter() - started,
    }
    return z, background, info


def _z_channel(channels, layer_name, engine):
    wanted = f"{layer_name}.Depth.Z"  # how Blender names passes in a multilayer EXR: layer.pass.channel
    if wanted in channels:
        return channels[wanted].astype(np.float32, copy=False)
    found = [name for name in channels if name.endswith("Depth.Z")]
    if len(found) == 1:
        return channels[found[0]].astype(np.float32, copy=False)
    raise RenderCaptureError(
        f"The {engine} render wrote no Z pass for view layer {layer_name!r} "
        f"(channels: {', '.join(sorted(channels))}): use Cycles, EEVEE or Workbench."
    )


def z_to_depth(z, background, settings=None, *, far=None):
    """Planar Z (scene units) -> (depth float32 HxW, near_is_bright) in Fathom's convention (see the
    module's notes). ``background`` marks pixels where nothing was hit; ``far`` is the distance
    'raw' gives them (the camera's clip end; by default the farthest surface)."""
    depth, near_is_bright, _ = z_to_depth_units(z, background, settings, far=far)
    return depth, near_is_bright


def z_to_depth_units(z, background, settings=None, *, far=None):
    """z_to_depth, and the map's engine.units.DepthUnits: how to read its values back as distances
    (exactly: 1/Z from 'standard', Z from 'raw'), with the nearest and farthest surface seen."""
    settings = (settings or DepthSettings()).validated()
    hit = ~background
    if not hit.any():
        raise RenderCaptureError(
            "The camera sees nothing: every pixel of the Z pass is empty background. "
            "Point the camera at the scene or move objects inside its clip range."
        )
    if settings.normalization == "raw":
        far = float(z[hit].max()) if far is None else far
        source, quantity = np.where(hit, z, np.float32(far)).astype(np.float32), "distance"
    else:
        source, quantity = np.zeros(z.shape, np.float32), "inverse-distance"
        np.divide(1.0, z, out=source, where=hit)  # background stays 0: infinitely far
    values, near_is_bright, value_range = normalize_with_range(source, settings.normalization, settings.invert)
    units = from_normalization(
        settings.normalization, settings.invert, value_range, quantity=quantity, source=MODEL_NAME
    )
    units = replace(units, near=float(z[hit].min()), far=float(z[hit].max()))
    if settings.normalization == "raw":
        near_is_bright = settings.invert  # distance: larger = farther; inverted: larger = nearer
    return values, near_is_bright, units


def scene_depth(scene, settings=None, *, camera=None, view_layer=None, progress=None):
    """The scene's exact depth from its Z pass, as an engine.depth.DepthMap, so it flows through the
    same result handling as a local generation. Resolution and resizing settings do not apply: the
    map has the render's size."""
    settings = (settings or DepthSettings()).validated()
    z, background, info = render_z(scene, camera=camera, view_layer=view_layer, progress=progress)
    t = time.perf_counter()
    depth, near_is_bright, units = z_to_depth_units(z, background, settings, far=info["clip_end"])
    timings = {"render": info["seconds"], "postprocess": time.perf_counter() - t}
    timings["total"] = timings["render"] + timings["postprocess"]
    if progress is not None:
        progress(1.0, "Scene depth ready")
    return DepthMap(depth, near_is_bright, MODEL_NAME, settings, z.shape, 1, timings, units=units)
