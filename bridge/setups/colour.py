"""Pictures on setups that render back as themselves under the scene's own colour management.

A setup that shows a picture (the displaced plane's Emission texture) is rendered through the scene's
view transform, look, exposure and gamma (AgX by default) like everything else, so what it must be
given is the scene-linear light that the view transform turns into the picture:

- a scene-referred picture (a float render, an EXR in a linear colour space) already is that light:
  it is used as it is, and the scene's view transform maps it exactly as in the original render;
- a display-referred picture (a photo, an 8-bit PNG, a render saved through a view transform) is
  turned back into scene-linear light by the inverse of the scene's own display pipeline, computed
  by OpenColorIO (PyOpenColorIO, bundled with Blender) from Blender's colour configuration:
  exposure, look, view transform and display, gamma. The result is exact where the view transform
  can produce the picture's colour at all; AgX and Filmic cannot produce fully saturated primaries,
  so such pixels come out as the nearest colour they can (counted in the report). Negative light
  is kept (Cycles renders it), which brings those pixels closer than clipping would.
  RGB Curves and white balance in the scene's colour management are not inverted (said in the report).
"""

import glob
import os
import sys

import bpy
import numpy as np

from ...engine.errors import FathomError

_TOLERANCE = 1.0 / 255.0  # a pixel counts as reproduced within one 8-bit level


class ColourError(FathomError):
    """The scene's colour management cannot be inverted here."""


def ocio():
    """PyOpenColorIO: bundled in Blender's own Python (the bpy module leaves that folder off sys.path)."""
    try:
        import PyOpenColorIO

        return PyOpenColorIO
    except ImportError:
        pass
    for folder in glob.glob(
        os.path.join(bpy.utils.resource_path("LOCAL"), "python", "lib", "python3*", "site-packages")
    ):
        if os.path.isdir(os.path.join(folder, "PyOpenColorIO")) and folder not in sys.path:
            sys.path.append(folder)
    try:
        import PyOpenColorIO

        return PyOpenColorIO
    except ImportError:
        raise ColourError(
            "This Blender has no PyOpenColorIO, so a display-referred picture cannot be turned back "
            "into scene light: use the render's own float (EXR) pixels as the picture."
        ) from None


def config():
    """The OCIO configuration Blender uses: $OCIO when set, else Blender's own."""
    lib = ocio()
    path = os.environ.get("OCIO") or os.path.join(
        bpy.utils.system_resource("DATAFILES", path="colormanagement"), "config.ocio"
    )
    return lib.Config.CreateFromFile(path)


def available() -> bool:
    """Whether this Blender has PyOpenColorIO (the bpy 4.2 module does not)."""
    try:
        ocio()
    except ColourError:
        return False
    return True


def scene_linear_name() -> str:
    """The name of the scene-linear colour space in Blender's configuration."""
    if not available():
        return "Linear Rec.709"  # Blender 4.0 and later call it so
    return config().getColorSpace("scene_linear").getName()


def is_scene_referred(image) -> bool:
    """True for pictures that hold scene light (float images in a scene-referred colour space)."""
    if image.colorspace_settings.is_data:
        return False
    name = image.colorspace_settings.name
    if not available():  # without OCIO, judged by Blender's names for its linear spaces
        return image.is_float and ("linear" in name.lower() or name.lower().startswith("aces"))
    space = config().getColorSpace(name)
    return image.is_float and space is not None and space.getReferenceSpaceType() == ocio().REFERENCE_SPACE_SCENE


def view_description(scene) -> dict:
    """The scene's colour management as a dict (recorded on what depends on it)."""
    view, display = scene.view_settings, scene.display_settings
    return {
        "display": display.display_device,
        "view": view.view_transform,
        "look": view.look,
        "exposure": round(float(view.exposure), 6),
        "gamma": round(float(view.gamma), 6),
    }


def _display_pipeline(scene, cfg, picture_space=None):
    """scene linear -> the picture's encoding, as Blender displays a render: exposure (scene linear),
    look, view transform to the display, gamma (display values), then the display's encoding into
    the picture's colour space when that is another display-referred space."""
    lib = ocio()
    view, display = scene.view_settings, scene.display_settings.display_device
    group = lib.GroupTransform()
    if view.exposure:
        group.appendTransform(
            lib.ExposureContrastTransform(exposure=float(view.exposure), style=lib.EXPOSURE_CONTRAST_LINEAR)
        )
    if view.look and view.look != "None":
        group.appendTransform(lib.LookTransform(src="scene_linear", dst="scene_linear", looks=view.look))
    group.appendTransform(lib.DisplayViewTransform(src="scene_linear", display=display, view=view.view_transform))
    if view.gamma != 1.0:
        group.appendTransform(lib.ExponentTransform(value=[1.0 / float(view.gamma)] * 3 + [1.0]))
    shown_in = cfg.getDisplayViewColorSpaceName(display, view.view_transform)
    if picture_space and shown_in and picture_space != shown_in:
        group.appendTransform(lib.ColorSpaceTransform(src=shown_in, dst=picture_space))
    return group


def _apply(processor, rgb):
    flat = np.ascontiguousarray(rgb, np.float32).reshape(-1, 3).copy()
    processor.applyRGB(flat)
    return flat.reshape(rgb.shape)


def display_to_scene_linear(rgb, scene, picture_space="sRGB"):
    """Scene-linear light (float32 HxWx3) that the scene's colour management shows as the display-referred
    picture ``rgb`` (HxWx3, its encoded values in 0..1, in colour space ``picture_space``), and a sentence
    saying what was done and how much of the picture is reproduced exactly."""
    lib = ocio()
    cfg = config()
    space = cfg.getColorSpace(picture_space)
    if space is None or space.getReferenceSpaceType() != lib.REFERENCE_SPACE_DISPLAY:
        picture_space = None  # not a display space Blender knows: read it as the display's own encoding
    try:
        forward = _display_pipeline(scene, cfg, picture_space)
        inverse = _display_pipeline(scene, cfg, picture_space)
        inverse.setDirection(lib.TRANSFORM_DIR_INVERSE)
        light = _apply(cfg.getProcessor(inverse).getDefaultCPUProcessor(), rgb)
        back = _apply(cfg.getProcessor(forward).getDefaultCPUProcessor(), light)
    except lib.Exception as exc:
        raise ColourError(
            f"OpenColorIO cannot invert the view transform {scene.view_settings.view_transform!r} "
            f"with look {scene.view_settings.look!r}: {exc}"
        ) from None
    light = np.nan_to_num(light, nan=0.0, posinf=0.0, neginf=0.0).astype(np.float32)
    exact = float((np.abs(back - rgb).max(axis=2) <= _TOLERANCE).mean()) if rgb.size else 1.0
    v = view_description(scene)
    look = f", look {v['look']}" if v["look"] != "None" else ""
    note = (
        f"display-referred picture shown through the inverse of the scene's {v['view']} view ({v['display']} "
        f"display{look}, exposure {v['exposure']:g}, gamma {v['gamma']:g}): {100 * exact:.1f} % of its pixels "
        "render back within one 8-bit level"
    )
    if exact < 0.9995:
        note += f"; the other {100 * (1 - exact):.1f} % are colours {v['view']} cannot show (the nearest it can)"
    untouched = [
        what
        for what, on in (
            ("RGB curves", scene.view_settings.use_curve_mapping),
            ("white balance", getattr(scene.view_settings, "use_white_balance", False)),
        )
        if on
    ]
    if untouched:
        note += f"; the scene's {' and '.join(untouched)} are not inverted"
    return light, note


def scene_linear_to_display(rgb, scene):
    """What the scene's colour management shows for scene-linear light ``rgb`` (HxWx3): display values 0..1."""
    lib = ocio()
    cfg = config()
    try:
        processor = cfg.getProcessor(_display_pipeline(scene, cfg)).getDefaultCPUProcessor()
    except lib.Exception as exc:
        raise ColourError(
            f"OpenColorIO cannot apply the view transform {scene.view_settings.view_transform!r}: {exc}"
        ) from None
    return np.clip(_apply(processor, rgb), 0.0, 1.0)
