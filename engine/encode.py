"""Depth maps to files: float EXR (32/16-bit), 16-bit and 8-bit grey PNG, and colour previews.

Values: the EXR formats store the depth exactly as given (any range). The PNG formats store
0..1 (values outside are clipped): Standard and V2-Style maps already are; a Raw map should
first go through :func:`to_unit_range` (min-max to 0..1), or its range is lost.
16-bit PNG stores round(x * 65535), 8-bit PNG round(x * 255).

Every file carries a small metadata dict (model, settings) so results are traceable: PNG
tEXt/iTXt chunks, EXR string attributes; :func:`read_metadata` gives it back.

Files are written atomically: a temporary file in the same folder, then renamed into place;
an existing file is never replaced unless ``overwrite=True``.
"""

import io
import json
import os
import struct
import tempfile
import zlib
from pathlib import Path
from typing import Mapping, Optional

import numpy as np

from . import colormap
from .errors import InvalidSettingsError
from .exr import read_exr, write_exr
from .imageio import read_image
from .settings import OUTPUT_FORMATS

_SUFFIXES = {"exr32": ".exr", "exr16": ".exr", "png16": ".png", "png8": ".png"}


def suffix_for(fmt: str) -> str:
    """The file suffix of an output format ('.exr' or '.png')."""
    return _SUFFIXES[_check_format(fmt)]


def to_unit_range(depth: np.ndarray) -> np.ndarray:
    """Min-max scale to 0..1 (float32), ignoring non-finite values; a flat map becomes zeros."""
    d = np.asarray(depth, np.float32)
    finite = np.isfinite(d)
    if not finite.any():
        return np.zeros_like(d)
    lo, hi = float(d[finite].min()), float(d[finite].max())
    scaled = (d - lo) / (hi - lo) if hi > lo else np.zeros_like(d)
    return np.where(finite, scaled, 0.0).astype(np.float32)


def encode_depth(depth, fmt: str, *, metadata: Optional[Mapping] = None) -> bytes:
    """Encode an HxW depth map (or anything with a ``.depth`` array) as file bytes of ``fmt``."""
    fmt = _check_format(fmt)
    d = _depth_array(depth)
    text = _metadata_strings(metadata)
    if fmt in ("exr32", "exr16"):
        return write_exr({"Y": d}, pixel_type="float" if fmt == "exr32" else "half", compression="zip", attributes=text)
    if np.isnan(d).any():
        raise ValueError("The depth map holds NaN values, which a PNG cannot store: use EXR.")
    unit = np.clip(d.astype(np.float64), 0.0, 1.0)
    if fmt == "png16":
        return _png(np.rint(unit * 65535).astype(np.uint16), text)  # Pillow mode 'I;16'
    return _png(np.rint(unit * 255).astype(np.uint8), text)  # mode 'L'


def encode_png(pixels, *, metadata: Optional[Mapping] = None) -> bytes:
    """PNG bytes of a preview (HxWx3 or HxW uint8, e.g. from colorize or side_by_side)."""
    a = np.asarray(pixels)
    if a.dtype != np.uint8 or not (a.ndim == 2 or a.ndim == 3 and a.shape[2] in (3, 4)):
        raise ValueError(f"Expected HxW, HxWx3 or HxWx4 uint8 pixels, got shape {a.shape} of {a.dtype}.")
    return _png(np.ascontiguousarray(a), _metadata_strings(metadata))


def encode_picture_png(rgb) -> bytes:
    """A picture (HxWx3 uint8, uint16 or float 0..1) as PNG bytes that lose nothing: 8-bit when every
    value is an exact 8-bit level (byte images captured as float), else 16-bit RGB."""
    a = np.asarray(rgb)[:, :, :3]
    if a.dtype == np.uint8:
        return encode_png(np.ascontiguousarray(a))
    if a.dtype != np.uint16:
        unit = np.clip(np.nan_to_num(a.astype(np.float32), nan=0.0), 0.0, 1.0)
        levels = unit * 255.0
        if np.abs(levels - np.rint(levels)).max(initial=0.0) < 1e-3:
            return encode_png(np.rint(levels).astype(np.uint8))
        a = np.rint(unit * 65535.0).astype(np.uint16)
    return _png16_rgb(a)


def _png16_rgb(rgb16):
    """A 16-bit RGB PNG (Pillow writes 16-bit grey only): IHDR, one zlib IDAT, IEND."""
    height, width, _ = rgb16.shape
    rows = np.ascontiguousarray(rgb16).astype(">u2").view(np.uint8).reshape(height, width * 6)
    raw = np.concatenate([np.zeros((height, 1), np.uint8), rows], axis=1)  # filter byte 0 per row

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 16, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(raw.tobytes(), 6))
        + chunk(b"IEND", b"")
    )


def read_depth(source) -> np.ndarray:
    """A depth map written by write_depth (a path, or EXR bytes) back as float32 HxW: EXR its 'Y'
    channel as written, PNG its grey levels as 0..1."""
    if isinstance(source, (bytes, bytearray)) or Path(source).suffix.lower() == ".exr":
        channels = read_exr(source).channels
        depth = channels["Y"] if "Y" in channels else next(iter(channels.values()))
    else:
        rgb = read_image(source).rgb
        depth = rgb[:, :, 0] / (np.iinfo(rgb.dtype).max if rgb.dtype.kind == "u" else 1.0)
    return np.ascontiguousarray(depth, dtype=np.float32)


def _png(array, text):
    from PIL import Image, PngImagePlugin

    info = PngImagePlugin.PngInfo()
    for key, value in text.items():
        info.add_text(key, value)  # tEXt, or iTXt when the value is not Latin-1
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, "PNG", pnginfo=info, compress_level=6)
    return buf.getvalue()


def write_depth(path, depth, fmt: str, *, overwrite: bool = False, metadata: Optional[Mapping] = None) -> Path:
    """Write a depth map to ``path`` (the format's suffix is added when ``path`` has none).

    Raises FileExistsError when the file exists and ``overwrite`` is False.
    """
    path = Path(path)
    suffix = suffix_for(fmt)
    if not path.suffix:
        path = path.with_suffix(suffix)
    elif path.suffix.lower() != suffix:
        raise InvalidSettingsError(
            f"{path.name} ends in {path.suffix} but format {fmt} writes {suffix} files: "
            f"rename it or choose another format."
        )
    return write_file(path, encode_depth(depth, fmt, metadata=metadata), overwrite=overwrite)


def write_file(path, data: bytes, *, overwrite: bool = False) -> Path:
    """Atomically write bytes: a temporary file in the same folder, then renamed into place."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not overwrite and path.exists():
        raise _exists(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, ordinary_file_mode())  # mkstemp makes it private; results are ordinary files
        if overwrite:
            os.replace(tmp, path)
        else:
            try:
                os.link(tmp, path)  # fails if the name was taken meanwhile: no race, no overwrite
            except FileExistsError:
                raise _exists(path) from None
            except OSError:  # a file system without hard links: the check above has to do
                if path.exists():
                    raise _exists(path) from None
                os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def _read_umask() -> int:
    # Reading it means setting it; done once at import, before any writer threads start.
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


_UMASK = _read_umask()


def ordinary_file_mode() -> int:
    """The permissions of an ordinary new file here (0644 under the usual umask 022)."""
    return 0o666 & ~_UMASK


def _exists(path):
    return FileExistsError(
        f"{path} already exists and Fathom does not overwrite files unless asked: choose another "
        f"name, move the old file, or allow overwriting."
    )


def read_metadata(source) -> dict:
    """The metadata strings of a file written by this module (path or bytes)."""
    data = bytes(source) if isinstance(source, (bytes, bytearray, memoryview)) else Path(source).read_bytes()
    if data[:4] == b"\x76\x2f\x31\x01":
        return read_exr(data).strings
    from PIL import Image

    with Image.open(io.BytesIO(data)) as im:
        return dict(getattr(im, "text", {}))


def colorize(depth, cmap: str = "inferno") -> np.ndarray:
    """A colour preview (HxWx3 uint8) of a 0..1 depth map (clipped; NaN as 0)."""
    return colormap.apply(_depth_array(depth), cmap)


def side_by_side(rgb, depth, *, cmap: str = "inferno", gap: int = 8) -> np.ndarray:
    """The picture and its colourised depth next to each other, as one HxWx3 uint8 image.

    ``rgb`` is HxW(x3|x4) uint8, uint16 or float 0..1 (alpha dropped). A depth map of another
    size is resized to the picture's height, keeping its aspect ratio.
    """
    picture = _as_uint8_rgb(rgb)
    preview = colorize(depth, cmap)
    h = picture.shape[0]
    if preview.shape[0] != h:
        from PIL import Image

        w = max(1, round(preview.shape[1] * h / preview.shape[0]))
        preview = np.asarray(Image.fromarray(preview).resize((w, h), Image.Resampling.BILINEAR))
    spacer = np.zeros((h, gap, 3), np.uint8)
    return np.concatenate([picture, spacer, preview], axis=1)


def _as_uint8_rgb(rgb):
    a = np.asarray(rgb)
    if a.ndim == 2:
        a = np.repeat(a[:, :, None], 3, axis=2)
    if a.ndim != 3 or a.shape[2] not in (3, 4):
        raise ValueError(f"Expected an HxWx3 picture, got shape {a.shape}.")
    a = a[:, :, :3]
    if a.dtype == np.uint8:
        return a
    if a.dtype == np.uint16:
        return np.rint(a / 257.0).astype(np.uint8)
    return np.rint(np.clip(np.nan_to_num(a.astype(np.float32)), 0, 1) * 255).astype(np.uint8)


def _check_format(fmt):
    f = str(fmt).lower()
    if f not in OUTPUT_FORMATS:
        raise InvalidSettingsError(f"Unknown output format {fmt!r}: use one of {', '.join(OUTPUT_FORMATS)}.")
    return f


def _depth_array(depth):
    d = np.asarray(getattr(depth, "depth", depth))
    if d.ndim == 3 and d.shape[2] == 1:
        d = d[:, :, 0]
    if d.ndim != 2 or 0 in d.shape or d.dtype.kind not in "fiu":
        raise ValueError(f"Expected an HxW depth map of numbers, got shape {d.shape} of {d.dtype}.")
    return d.astype(np.float32, copy=False)


def _metadata_strings(metadata):
    """name -> text: strings stay as they are, anything else becomes JSON."""
    return {
        str(k): v if isinstance(v, str) else json.dumps(v, sort_keys=True, default=str)
        for k, v in (metadata or {}).items()
    }
