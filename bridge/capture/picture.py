"""Pictures out of Blender as the engine wants them: float32 RGB, top row first.

Blender stores pixels bottom-up, and float images hold scene-linear light while byte images hold
their file's (display) values; the depth network was trained on display-referred sRGB photos, so
linear pixels go through the sRGB transfer curve before they are handed over.
"""

from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import bpy
import numpy as np

from ...engine.errors import ImageDecodeError
from ...engine.imageio import read_image


@dataclass
class Capture:
    rgb: np.ndarray  # HxWx3 float32 (or the file's own precision for image files), top row first
    label: str  # what the user would call the source: "image 'Photo'", a file name
    name: str  # a short name for result files
    source: dict = field(default_factory=dict)  # stored on the result image, to trace or re-generate it
    file: Optional[Path] = None  # an image file not decoded yet (rgb None): the worker process reads it


def linear_to_srgb(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0)
    return np.where(x <= 0.0031308, x * 12.92, 1.055 * np.power(x, 1 / 2.4) - 0.055).astype(np.float32)


def image_pixels(image: "bpy.types.Image", linear: bool = False) -> np.ndarray:
    """An image datablock's RGB as float32 HxWx3, top row first (display-referred; ``linear``: a float
    image's own scene-linear values, unclipped)."""
    if not _load(image):
        where = f" from {image.filepath}" if image.filepath else ""
        raise ImageDecodeError(
            f"Image '{image.name}' has no pixels{where}: check that its file exists "
            "and opens in the Image Editor, or pick another image."
        )
    width, height = image.size
    channels = image.channels
    buf = np.empty(width * height * channels, np.float32)
    image.pixels.foreach_get(buf)
    pixels = buf.reshape(height, width, channels)[::-1]  # Blender's rows run bottom to top
    if channels >= 3:
        rgb = pixels[:, :, :3]
    else:  # grey (or grey + alpha)
        rgb = np.repeat(pixels[:, :, :1], 3, axis=2)
    if image.is_float and not image.colorspace_settings.is_data and not linear:
        rgb = linear_to_srgb(rgb)
    return np.ascontiguousarray(rgb, dtype=np.float32)


def _load(image) -> bool:
    """Make Blender read a file-backed image's pixels; False when it has none."""
    if not image.has_data:
        try:
            image.pixels[0]  # reading a pixel loads the file
        except (IndexError, RuntimeError):
            return False
    return image.has_data and image.size[0] > 0 and image.size[1] > 0


def from_image(image: "bpy.types.Image") -> Capture:
    source = {"kind": "image", "image": image.name}
    if image.filepath:
        source["filepath"] = image.filepath
    return Capture(image_pixels(image), f"image '{image.name}'", Path(image.name).stem, source)


# Formats Pillow does not read and Blender does (float, scene-linear pictures mostly).
BLENDER_FORMATS = (".exr", ".hdr", ".dpx", ".cin")


def from_file(path, *, decode=True) -> Capture:
    """An image file on disk: read by the engine (Pillow: exact 8/16-bit values, EXIF orientation
    applied), or by Blender itself for what Pillow cannot read (OpenEXR, Radiance HDR, DPX...; a
    float picture's scene-linear values go through the sRGB transfer curve, as for float images).
    ``decode=False``: a Pillow format is only checked to be a file here; the inference worker
    process decodes it."""
    abspath = Path(bpy.path.abspath(str(path)))
    source = {"kind": "file", "filepath": str(path)}
    if not abspath.exists():
        raise ImageDecodeError(f"{abspath.name} does not exist ({abspath}): check the path.")
    blender_only = abspath.suffix.lower() in BLENDER_FORMATS
    if not decode and not blender_only:
        return Capture(None, abspath.name, abspath.stem, source, file=abspath)
    if blender_only:
        rgb = blender_file_pixels(abspath)
    else:
        try:
            rgb = read_image(abspath).rgb
        except ImageDecodeError as pillow_error:  # perhaps a format only Blender reads, under another suffix
            try:
                rgb = blender_file_pixels(abspath)
            except ImageDecodeError:
                raise pillow_error from None
    return Capture(rgb, abspath.name, abspath.stem, source)


def blender_file_pixels(path: Path) -> np.ndarray:
    """A file's RGB as Blender reads it (any format it opens), display-referred float32, top row first."""
    try:
        image = bpy.data.images.load(str(path), check_existing=False)
    except RuntimeError as exc:
        raise ImageDecodeError(f"{path} is not an image file Blender or Fathom can read: {str(exc).strip()}") from None
    try:
        return image_pixels(image)
    finally:
        bpy.data.images.remove(image)


def from_render(scene, *, compositor=False, progress=None) -> Capture:
    """The scene's render (or its composite), rendered once through a temporary file, since
    Render Result and the Viewer node have no pixels in background mode."""
    from . import render as render_capture

    if compositor:
        rgb, info = render_capture.capture_compositor(scene, progress=progress)
        label, name = f"the composite of scene '{scene.name}'", f"{scene.name}_composite"
    else:
        rgb, info = render_capture.render_scene(scene, progress=progress)
        label, name = f"the render of scene '{scene.name}'", f"{scene.name}_render"
    source = {k: v for k, v in info.items() if k in ("kind", "scene", "camera", "frame", "engine")}
    return Capture(rgb, label, name, source)
