"""Pictures out of Blender as the engine wants them: float32 RGB, top row first.

Blender stores pixels bottom-up, and float images hold scene-linear light while byte images hold
their file's (display) values; the depth network was trained on display-referred sRGB photos, so
linear pixels go through the sRGB transfer curve before they are handed over.
"""

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Optional, Union

import bpy
import numpy as np

from ...engine.errors import ImageDecodeError
from ...engine.imageio import read_image, read_pixels


@dataclass
class Capture:
    rgb: np.ndarray  # HxWx3 float32 (or the file's own precision for image files), top row first
    label: str  # what the user would call the source: "image 'Photo'", a file name
    name: str  # a short name for result files
    source: dict = field(default_factory=dict)  # stored on the result image, to trace or re-generate it
    # An image file not decoded yet (rgb None), its path or (a packed image's) its bytes: the
    # inference worker process reads it. ``as_blender``: the file of an image datablock, read as
    # Blender gives its pixels (as stored, EXIF orientation not applied; float 0..1).
    file: Optional[Union[Path, bytes]] = None
    as_blender: bool = False


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


def from_image(image: "bpy.types.Image", *, decode=True) -> Capture:
    """An image datablock's picture. ``decode=False``: an unchanged image whose file the engine reads
    as Blender does is handed over undecoded (see :func:`stored_file`), for the inference worker
    process to decode, so that Blender's main thread does not; any other image's pixels are read
    here (``foreach_get``, no encoding)."""
    source = {"kind": "image", "image": image.name}
    if image.filepath:
        source["filepath"] = image.filepath
    label, name = f"image '{image.name}'", Path(image.name).stem
    stored = None if decode else stored_file(image)
    if stored is not None:
        return Capture(None, label, name, source, file=stored, as_blender=True)
    return Capture(image_pixels(image), label, name, source)


def decoded(picture: Capture) -> Capture:
    """``picture`` with its file decoded, here (any thread, no bpy), as the inference worker
    process decodes it; itself when it has pixels already."""
    if picture.rgb is not None:
        return picture
    return replace(picture, rgb=read_pixels(picture.file, as_blender=picture.as_blender, name=picture.label), file=None)


# Files whose pixels the engine (Pillow) reads as Blender reads them (8-bit exactly, 16-bit PNG
# within 1e-3, lossy decoders within a rounding: tests/blender/test_file_formats.py), by their
# first bytes. Not TIFF (float TIFFs hold scene-linear light) nor what only Blender reads.
_MAGIC = ((b"\x89PNG\r\n\x1a\n", 0), (b"\xff\xd8\xff", 0), (b"BM", 0), (b"WEBP", 8))


def stored_file(image: "bpy.types.Image"):
    """The file an image datablock shows, undecoded, when the engine would read the very pixels
    Blender shows: its path, or its packed bytes. None for a generated, edited (unsaved), movie,
    sequence or tiled image, a colour space other than sRGB or Non-Color data (Blender converts
    those), a format the engine does not read alike, or a file that is missing. Nothing here
    decodes the image (``image.file_format`` would: it is not used)."""
    if image.source != "FILE" or image.is_dirty or len(image.packed_files) > 1:
        return None
    colorspace = image.colorspace_settings
    if not (colorspace.is_data or colorspace.name == "sRGB"):
        return None
    if image.packed_file is not None:
        data = image.packed_file.data
        return data if _engine_reads(data[:16]) else None
    path = Path(bpy.path.abspath(image.filepath, library=image.library))
    try:
        with open(path, "rb") as f:
            head = f.read(16)
    except OSError:
        return None
    return path if _engine_reads(head) else None


def _engine_reads(head: bytes) -> bool:
    return any(head[at : at + len(magic)] == magic for magic, at in _MAGIC)


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
