"""Reading input pictures: any file Pillow reads, or an array already in memory.

``read_image`` gives a :class:`Picture` in the file's own precision (uint8, uint16 or float32),
upright (EXIF orientation applied) and always RGB, with alpha kept apart. Bad input raises
:class:`ImageDecodeError` naming the file and what is wrong; a picture with more pixels than
``max_pixels`` raises :class:`ImageTooLargeError` from its header, before anything is decoded.

Pillow 12 reduces 16-bit RGB/RGBA PNGs and TIFFs (and 16-bit grey+alpha PNGs) to 8 bits per
channel. For those, this module decodes the file a second time with the byte-swapped raw mode,
which makes Pillow's own C decoder (unfiltering, interlacing, decompression) hand over the low
bytes, and joins the two halves into exact uint16 values. 16-bit grey loads as 'I;16' natively.
CMYK is converted with Pillow's conversion (Adobe-inverted JPEGs are handled by Pillow);
embedded ICC profiles are not applied. Multi-frame files (GIF, TIFF) give their first frame.

Pillow is imported inside the functions: it is a bundled wheel in Blender and importing the
engine must stay cheap.
"""

import io
import os
import re
import struct
import warnings
import zlib
from dataclasses import dataclass
from typing import Optional, Union

import numpy as np

from .errors import ImageDecodeError, ImageTooLargeError

# 8192 x 8192: larger inputs are almost always a mistake or an attack, and their float copies
# alone would take gigabytes.
DEFAULT_MAX_PIXELS = 8192 * 8192

Source = Union[str, os.PathLike, bytes, bytearray, memoryview]


@dataclass
class Picture:
    """An upright RGB picture in its native precision.

    rgb: HxWx3, uint8 (8-bit and lower), uint16 (16-bit) or float32 (float images, nominally 0..1).
    alpha: HxW float32 in 0..1, or None when the source has no transparency.
    bit_depth: bits per channel of the source (1, 8, 16 or 32).
    mode: Pillow's mode of the source as opened ('array' for in-memory arrays).
    """

    rgb: np.ndarray
    alpha: Optional[np.ndarray]
    bit_depth: int
    mode: str

    @property
    def width(self) -> int:
        return self.rgb.shape[1]

    @property
    def height(self) -> int:
        return self.rgb.shape[0]

    def to_float(self) -> np.ndarray:
        """RGB as float32 in 0..1 (float sources are returned as they are, copied)."""
        if self.rgb.dtype == np.uint8:
            return self.rgb.astype(np.float32) / np.float32(255)
        if self.rgb.dtype == np.uint16:
            return self.rgb.astype(np.float32) / np.float32(65535)
        return self.rgb.astype(np.float32, copy=True)


def read_image(
    source: Source, *, max_pixels: int = DEFAULT_MAX_PIXELS, name: Optional[str] = None, orient: bool = True
) -> Picture:
    """Decode an image file (path or bytes) into a Picture.

    ``name`` is how messages refer to the picture, e.g. "the upload" (default: "image 'NAME.png'"
    for a path, "the image data" for bytes). ``orient=False``: the pixels as stored, EXIF orientation
    not applied (as Blender shows an image datablock).
    """
    from PIL import Image

    opener, label = _load_source(source, name)
    with _pillow_errors(label, max_pixels), opener() as f:
        im = Image.open(f)  # reads the header only
        _check_size(im.size, max_pixels, label)
        rawmodes = {_rawmode(t) for t in im.tile or ()}  # load() empties im.tile
        im.load()
        rgb, alpha, depth = _to_arrays(im, opener, rawmodes)
        orientation = _orientation(im) if orient else 1
    rgb = _orient(rgb, orientation)
    alpha = None if alpha is None else _orient(alpha, orientation)
    return Picture(np.ascontiguousarray(rgb), None if alpha is None else np.ascontiguousarray(alpha), depth, im.mode)


def read_pixels(source: Source, *, as_blender: bool = False, name: Optional[str] = None) -> np.ndarray:
    """A file's RGB for depth estimation: in its own precision, upright; or with ``as_blender``
    (the file of a Blender image datablock) float32 0..1 as stored, EXIF orientation not applied,
    as Blender gives the datablock's pixels."""
    picture = read_image(source, orient=not as_blender, name=name)
    return picture.to_float() if as_blender else picture.rgb


def read_array(array, *, max_pixels: int = DEFAULT_MAX_PIXELS, name: str = "the image array") -> Picture:
    """Validate an in-memory picture (HxW, HxWx1, HxWx3 or HxWx4; uint8, uint16 or float).

    Float data keeps its values; NaN and -inf become 0 and +inf the largest finite value (at
    least 1), since renders can hold a few of them. A float alpha channel is clipped to 0..1.
    """
    a = np.asarray(array)
    if a.ndim == 3 and a.shape[2] == 1:
        a = a[:, :, 0]
    if a.ndim not in (2, 3) or (a.ndim == 3 and a.shape[2] not in (3, 4)):
        raise ImageDecodeError(f"{_cap(name)} has shape {a.shape}: expected height x width with 1, 3 or 4 channels.")
    if a.shape[0] == 0 or a.shape[1] == 0:
        raise ImageDecodeError(f"{_cap(name)} is empty (shape {a.shape}).")
    _check_size((a.shape[1], a.shape[0]), max_pixels, name)
    if a.dtype == np.uint8:
        depth, scale = 8, 255.0
    elif a.dtype == np.uint16:
        depth, scale = 16, 65535.0
    elif a.dtype.kind == "f":
        depth, scale = 32, 1.0
        a = _finite(a.astype(np.float32), name)
    else:
        raise ImageDecodeError(f"{_cap(name)} has data type {a.dtype}: use uint8, uint16 or float (0..1).")
    alpha = None
    if a.ndim == 3 and a.shape[2] == 4:
        alpha = np.clip(a[:, :, 3].astype(np.float32) / np.float32(scale), 0, 1)
        a = a[:, :, :3]
    rgb = np.repeat(a[:, :, None], 3, axis=2) if a.ndim == 2 else a
    return Picture(np.ascontiguousarray(rgb), alpha, depth, "array")


# -- reading -------------------------------------------------------------------------------


def _load_source(source, name):
    """(a function giving a fresh binary stream of the source, how messages name it)."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
        label = name or "the image data"
        size = len(data)
        opener = lambda: io.BytesIO(data)  # noqa: E731
    else:
        path = os.fspath(source)
        label = name or f"image '{os.path.basename(path) or path}'"
        try:
            with open(path, "rb") as f:  # surfaces a missing file or a permission problem now
                size = os.fstat(f.fileno()).st_size
            opener = lambda: open(path, "rb")  # noqa: E731
        except FileNotFoundError:
            raise ImageDecodeError(f"{_cap(label)} does not exist ({path}): check the path.") from None
        except IsADirectoryError:
            raise ImageDecodeError(f"{_cap(label)} is a folder, not an image file ({path}).") from None
        except OSError as e:
            raise ImageDecodeError(f"Cannot read {label} ({path}): {e.strerror or e}.") from None
    if not size:
        raise ImageDecodeError(f"{_cap(label)} is empty (0 bytes): export or save it again.")
    return opener, label


class _pillow_errors:
    """Turns Pillow's many exception types into the engine's errors with a specific message."""

    def __init__(self, label, max_pixels):
        self.label, self.max_pixels = label, max_pixels

    def __enter__(self):
        from PIL import Image

        self._warnings = warnings.catch_warnings()
        self._warnings.__enter__()
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        return self

    def __exit__(self, kind, error, tb):
        from PIL import Image, UnidentifiedImageError

        self._warnings.__exit__(kind, error, tb)
        if error is None or isinstance(error, (ImageDecodeError, ImageTooLargeError)):
            return False
        label = self.label
        if isinstance(error, Image.DecompressionBombError):
            # Pillow's own guard fires inside Image.open, before the size can be asked.
            count = re.search(r"\((\d+) pixels\)", str(error))
            claimed = f"{int(count.group(1)):,} pixels" if count else "too many pixels"
            raise ImageTooLargeError(
                f"{_cap(label)} claims {claimed}, too many to open safely (a decompression bomb?). "
                f"Scale it down first; the limit is {min(self.max_pixels, 2 * Image.MAX_IMAGE_PIXELS):,} pixels."
            ) from None
        if isinstance(error, UnidentifiedImageError):
            raise ImageDecodeError(
                f"{_cap(label)} is not an image, or in a format Pillow cannot read "
                f"(use PNG, JPEG, TIFF, WebP, BMP or EXR through Blender)."
            ) from None
        if isinstance(error, MemoryError):
            raise ImageTooLargeError(f"Not enough memory to decode {label}: scale it down.") from None
        if isinstance(
            error,
            (OSError, SyntaxError, ValueError, EOFError, IndexError, TypeError, KeyError, struct.error, zlib.error),
        ):
            reason = str(error) or type(error).__name__
            hint = (
                "it is truncated: the file was cut short (an incomplete download or copy?)"
                if "truncated" in reason.lower()
                else f"it is corrupt ({reason})"
            )
            raise ImageDecodeError(f"Cannot decode {label}: {hint}. Save or download it again.") from None
        return False


def _cap(text):
    return text[:1].upper() + text[1:]


def _check_size(size, max_pixels, label):
    w, h = size
    if w * h > max_pixels:
        raise ImageTooLargeError(
            f"{_cap(label)} is {w} x {h} = {w * h:,} pixels, more than the limit of {max_pixels:,}: "
            f"scale it down first."
        )


_SIXTEEN_BIT = re.compile(r"^(RGB|RGBA|RGBX);16([BL])$")


def _to_arrays(im, opener, rawmodes):
    """(rgb, alpha or None, bit depth) of a loaded Pillow image."""
    mode = im.mode
    transparency = im.info.get("transparency")
    if mode in ("I;16", "I;16B", "I;16L", "I;16N"):
        grey = np.asarray(im).astype(np.uint16)
        return _grey(grey), _key_alpha(grey, transparency), 16
    if mode == "I":
        grey = np.asarray(im)
        if grey.size and grey.min() >= 0 and grey.max() <= 65535:
            grey = grey.astype(np.uint16)
            return _grey(grey), _key_alpha(grey, transparency), 16
        # Genuine 32-bit integers: there is no nominal white, so scale min..max to 0..1.
        g = grey.astype(np.float64)
        g = (g - g.min()) / max(g.max() - g.min(), 1.0)
        return _grey(g.astype(np.float32)), None, 32
    if mode == "F":
        return _grey(_finite(np.asarray(im, dtype=np.float32), "the image")), None, 32
    wide = _sixteen_bit(im, opener, rawmodes)
    if wide is not None:
        return wide
    if mode == "1":
        return _grey(np.asarray(im.convert("L"))), None, 1
    if mode == "L":
        grey = np.asarray(im)
        return _grey(grey), _key_alpha(grey, transparency), 8
    if mode == "LA":
        a = np.asarray(im)
        return _grey(a[:, :, 0]), a[:, :, 1].astype(np.float32) / np.float32(255), 8
    if mode == "RGB":
        rgb = np.asarray(im)
        return rgb, _key_alpha(rgb, transparency), 8
    if (
        mode == "RGBA"
        or mode in ("P", "PA")
        and (mode == "PA" or transparency is not None or getattr(im.palette, "mode", "") == "RGBA")
    ):
        a = np.asarray(im.convert("RGBA"))
        return a[:, :, :3], a[:, :, 3].astype(np.float32) / np.float32(255), 8
    if mode in ("La", "RGBa"):  # premultiplied
        a = np.asarray(im.convert("RGBA" if mode == "RGBa" else "LA"))
        rgb = a[:, :, :3] if mode == "RGBa" else _grey(a[:, :, 0])
        return rgb, a[:, :, -1].astype(np.float32) / np.float32(255), 8
    # P without transparency, CMYK (Pillow undoes Adobe's inversion), YCbCr, LAB, HSV, RGBX...
    return np.asarray(im.convert("RGB")), None, 8


def _sixteen_bit(im, opener, rawmodes):
    """Exact 16-bit RGB(A) / grey+alpha for the files Pillow reduces to 8 bits, else None."""
    if im.mode not in ("RGB", "RGBA") or len(rawmodes) != 1:
        return None
    (rawmode,) = rawmodes
    m = _SIXTEEN_BIT.match(rawmode or "")
    if m:
        low_mode = f"{m.group(1)};16{'L' if m.group(2) == 'B' else 'B'}"
        high = np.asarray(im).astype(np.uint16)
        low = np.asarray(_decode_with(opener, low_mode)).astype(np.uint16)
        full = (high << 8) | low
    elif rawmode == "LA;16B" and im.format == "PNG":
        # 8-bit RGBA unpacking passes the 4 bytes of each big-endian grey+alpha pixel through.
        raw = np.asarray(_decode_with(opener, "RGBA")).astype(np.uint16)
        grey = (raw[:, :, 0] << 8) | raw[:, :, 1]
        alpha = (raw[:, :, 2] << 8) | raw[:, :, 3]
        return _grey(grey), alpha.astype(np.float32) / np.float32(65535), 16
    else:
        return None
    rgb = full[:, :, :3]
    if full.shape[2] == 4 and m.group(1) == "RGBA":
        return rgb, full[:, :, 3].astype(np.float32) / np.float32(65535), 16
    return rgb, _key_alpha(rgb, im.info.get("transparency")), 16


def _rawmode(tile):
    args = tile[3]  # (codec, extents, offset, args): a plain tuple before Pillow 11's _Tile
    return args[0] if isinstance(args, tuple) else args


def _decode_with(opener, rawmode):
    """Decode the source again, unpacking its pixels with another raw mode."""
    from PIL import Image

    with opener() as f:
        im = Image.open(f)
        im.tile = [_with_rawmode(t, rawmode) for t in im.tile]
        im.load()
    return im


def _with_rawmode(tile, rawmode):
    args = tile[3]
    args = (rawmode,) + tuple(args[1:]) if isinstance(args, tuple) else rawmode
    return tile._replace(args=args) if hasattr(tile, "_replace") else (*tile[:3], args)


def _grey(a):
    return np.repeat(a[:, :, None], 3, axis=2)


def _key_alpha(pixels, transparency):
    """Alpha from a tRNS-style colour key (one grey value or one RGB triple), or None."""
    if transparency is None or isinstance(transparency, bytes):
        return None
    key = np.asarray(transparency)
    if pixels.ndim == 3:
        if key.shape != (3,):
            return None
        hit = np.all(pixels == key.astype(pixels.dtype), axis=2)
    else:
        if key.ndim != 0:
            return None
        hit = pixels == key
    return np.where(hit, np.float32(0), np.float32(1))


def _finite(a, name):
    """Float pixels with NaN/-inf as 0 and +inf as the largest finite value (at least 1)."""
    ok = np.isfinite(a)
    if ok.all():
        return a
    if not ok.any():
        raise ImageDecodeError(f"{_cap(name)} holds no finite values (all NaN or infinite).")
    top = max(float(a[ok].max()), 1.0)
    return np.nan_to_num(a, nan=0.0, posinf=top, neginf=0.0).astype(np.float32)


def _orientation(im):
    try:
        value = im.getexif().get(0x0112, 1)
    except Exception:  # a broken EXIF block must not lose the picture
        return 1
    return value if value in range(1, 9) else 1


def _orient(a, orientation):
    """Apply EXIF orientation 1-8 to an HxW(xC) array (the same turns as ImageOps.exif_transpose)."""
    if orientation == 2:
        return a[:, ::-1]
    if orientation == 3:
        return a[::-1, ::-1]
    if orientation == 4:
        return a[::-1]
    if orientation == 5:
        return a.swapaxes(0, 1)
    if orientation == 6:
        return np.rot90(a, -1)
    if orientation == 7:
        return a.swapaxes(0, 1)[::-1, ::-1]
    if orientation == 8:
        return np.rot90(a, 1)
    return a
