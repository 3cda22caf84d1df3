"""A small OpenEXR writer and reader, written from the OpenEXR file-layout specification.

Scope: single-part scanline images, channels of 32-bit float or 16-bit half, NO_COMPRESSION,
ZIPS_COMPRESSION (one line per block) and ZIP_COMPRESSION (16 lines per block), string
attributes for metadata. Enough for depth maps (one 'Y' channel) and previews (R, G, B), with
no compiled dependency: Blender bundles no OpenEXR module for Python, and the server should not
need one either. The reader reads what the writer writes, and files from other writers that
stay inside that scope (Blender's default ZIP EXRs do); anything else is refused by name.

File layout, as implemented:
    magic 20000630 (int32), version 2 (int32; flag 0x400 when a name passes 31 bytes),
    header: attributes (name\\0 type\\0 size:int32 value), then a 0 byte,
    offset table: one uint64 file offset per block of lines,
    blocks: first line y (int32), data size (int32), data. Inside a block, line after line,
    each line holding its channels in name order, each channel its pixels left to right,
    little-endian. ZIP: the block's bytes are split into even and odd positions (interleave),
    each byte replaced by its difference to the previous one plus 128 (predictor), then zlib;
    a block that does not shrink is stored as it is, which readers recognise by its size.

Blender (bpy 5.0.1) loads a single-channel 'Y' EXR, float or half, as a grey float image:
image.channels reports 4, the pixels are (Y, Y, Y, 1) with Y's values unchanged (rows bottom-up,
as always in Blender). Its colour space comes up as 'Linear Rec.709': set it to 'Non-Color'
for depth. Checked by tests/engine/test_exr.py with the bpy in .venv-blender.
"""

import struct
import zlib
from dataclasses import dataclass, field
from typing import Dict, Mapping, Union

import numpy as np

from .errors import FathomError

MAGIC = 20000630
PIXEL_TYPES = {"uint": 0, "half": 1, "float": 2}
_DTYPES = {0: np.dtype("<u4"), 1: np.dtype("<f2"), 2: np.dtype("<f4")}
COMPRESSIONS = {"none": 0, "zips": 2, "zip": 3}
_LINES_PER_BLOCK = {0: 1, 2: 1, 3: 16}
_COMPRESSION_NAMES = {
    0: "none",
    1: "RLE",
    2: "zips",
    3: "zip",
    4: "PIZ",
    5: "PXR24",
    6: "B44",
    7: "B44A",
    8: "DWAA",
    9: "DWAB",
}
# Attributes the writer sets itself; metadata may not replace them.
REQUIRED = (
    "channels",
    "compression",
    "dataWindow",
    "displayWindow",
    "lineOrder",
    "pixelAspectRatio",
    "screenWindowCenter",
    "screenWindowWidth",
)


class ExrError(FathomError, ValueError):
    """The data cannot be written as, or read from, the EXR subset this module handles."""


@dataclass
class ExrImage:
    channels: Dict[str, np.ndarray]  # name -> HxW array (float32, float16 or uint32)
    attributes: Dict[str, object] = field(default_factory=dict)  # every header attribute we parse
    compression: str = "none"

    @property
    def strings(self) -> Dict[str, str]:
        """The string attributes (metadata)."""
        return {k: v for k, v in self.attributes.items() if isinstance(v, str)}


# -- writing -------------------------------------------------------------------------------


def write_exr(
    channels: Union[np.ndarray, Mapping[str, np.ndarray]],
    *,
    pixel_type: str = "float",
    compression: str = "zip",
    attributes: Mapping[str, str] = None,
) -> bytes:
    """Encode HxW channels (one array means a single 'Y' channel) as an EXR file's bytes.

    pixel_type: 'float' (32-bit) or 'half' (16-bit; values beyond +-65504 become infinite).
    compression: 'zip' (16 lines per block), 'zips' (1 line) or 'none'.
    attributes: extra string attributes (metadata), name -> text.
    """
    if isinstance(channels, np.ndarray):
        channels = {"Y": channels}
    if not channels:
        raise ExrError("An EXR needs at least one channel.")
    if pixel_type not in ("float", "half"):
        raise ExrError(f"Unknown EXR pixel type {pixel_type!r}: use 'float' or 'half'.")
    if compression not in COMPRESSIONS:
        raise ExrError(f"Unknown EXR compression {compression!r}: use one of {', '.join(COMPRESSIONS)}.")
    names = sorted(channels)  # the file stores channels in name order
    dtype = _DTYPES[PIXEL_TYPES[pixel_type]]
    planes = []
    for name in names:
        _check_name(name, "channel")
        plane = np.asarray(channels[name])
        if plane.ndim != 2 or 0 in plane.shape:
            raise ExrError(f"Channel {name!r} has shape {plane.shape}: expected height x width.")
        planes.append(plane)
    height, width = planes[0].shape
    if any(p.shape != (height, width) for p in planes):
        raise ExrError("All EXR channels must have the same size.")
    # H x C x W: one line holds every channel's run of pixels, channel after channel.
    pixels = np.stack([p.astype(dtype) for p in planes], axis=1)

    ctype = COMPRESSIONS[compression]
    extra = dict(attributes or {})
    long_names = any(len(n.encode()) > 31 for n in [*names, *extra])
    header = bytearray(struct.pack("<ii", MAGIC, 2 | (0x400 if long_names else 0)))
    chlist = (
        b"".join(n.encode() + b"\0" + struct.pack("<iB3xii", PIXEL_TYPES[pixel_type], 0, 1, 1) for n in names) + b"\0"
    )
    window = struct.pack("<4i", 0, 0, width - 1, height - 1)
    for name, kind, value in (
        ("channels", "chlist", chlist),
        ("compression", "compression", struct.pack("<B", ctype)),
        ("dataWindow", "box2i", window),
        ("displayWindow", "box2i", window),
        ("lineOrder", "lineOrder", struct.pack("<B", 0)),  # increasing y
        ("pixelAspectRatio", "float", struct.pack("<f", 1.0)),
        ("screenWindowCenter", "v2f", struct.pack("<2f", 0.0, 0.0)),
        ("screenWindowWidth", "float", struct.pack("<f", 1.0)),
    ):
        header += _attribute(name, kind, value)
    for name, text in sorted(extra.items()):
        _check_name(name, "attribute")
        if name in REQUIRED:
            raise ExrError(f"Attribute {name!r} is set by the writer itself; choose another name.")
        header += _attribute(name, "string", str(text).encode("utf-8"))
    header += b"\0"

    step = _LINES_PER_BLOCK[ctype]
    blocks = []
    for y in range(0, height, step):
        raw = pixels[y : y + step].tobytes()
        data = _zip(raw) if ctype else raw
        blocks.append(struct.pack("<ii", y, len(data)) + data)
    offsets, at = [], len(header) + 8 * len(blocks)
    for block in blocks:
        offsets.append(at)
        at += len(block)
    return bytes(header) + struct.pack(f"<{len(offsets)}Q", *offsets) + b"".join(blocks)


def _attribute(name, kind, value):
    return name.encode() + b"\0" + kind.encode() + b"\0" + struct.pack("<i", len(value)) + value


def _check_name(name, what):
    # Names past 31 bytes set the 'long names' version flag, which allows up to 255.
    if not isinstance(name, str) or not name or len(name.encode()) > 255 or "\0" in name:
        raise ExrError(f"EXR {what} name {name!r} must be 1 to 255 bytes long.")


def _zip(raw):
    b = np.frombuffer(raw, np.uint8)
    t = np.concatenate([b[0::2], b[1::2]])
    d = np.empty_like(t)
    d[:1] = t[:1]
    d[1:] = (t[1:].astype(np.int16) - t[:-1] + 128).astype(np.uint8)
    packed = zlib.compress(d.tobytes(), 6)
    return packed if len(packed) < len(raw) else raw


def _unzip(data, size):
    d = np.frombuffer(zlib.decompress(data), np.uint8)
    if d.size != size:
        raise ExrError(f"a ZIP block holds {d.size} bytes instead of {size}")
    steps = d.astype(np.int64) - 128
    steps[0] = d[0]
    t = (np.cumsum(steps) & 0xFF).astype(np.uint8)
    half = (size + 1) // 2
    out = np.empty(size, np.uint8)
    out[0::2] = t[:half]
    out[1::2] = t[half:]
    return out.tobytes()


# -- reading -------------------------------------------------------------------------------


def read_exr(source) -> ExrImage:
    """Read a single-part scanline EXR (path or bytes) with uncompressed, ZIPS or ZIP blocks."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        data, label = bytes(source), "EXR data"
    else:
        with open(source, "rb") as f:
            data = f.read()
        label = f"EXR file {str(source)!r}"
    try:
        return _parse(data)
    except ExrError as e:
        raise ExrError(f"Cannot read {label}: {e}.") from None
    except (struct.error, zlib.error, IndexError, ValueError) as e:
        raise ExrError(f"Cannot read {label}: it is truncated or corrupt ({e}).") from None


def _parse(data):
    if len(data) < 8 or struct.unpack_from("<i", data)[0] != MAGIC:
        raise ExrError("it is not an OpenEXR file")
    (version,) = struct.unpack_from("<i", data, 4)
    if version & 0xFF != 2:
        raise ExrError(f"unknown EXR version {version & 0xFF}")
    if version & ~0x4FF:  # anything but 'long names': tiled, deep or multi-part
        raise ExrError("tiled, deep and multi-part EXR files are not supported")
    at, attributes, raw = 8, {}, {}
    while data[at] != 0:
        name, at = _cstring(data, at)
        kind, at = _cstring(data, at)
        (size,) = struct.unpack_from("<i", data, at)
        value = data[at + 4 : at + 4 + size]
        if len(value) != size:
            raise ExrError("the header is cut short")
        at += 4 + size
        raw[name] = (kind, value)
        attributes[name] = _decode_attribute(kind, value)
    at += 1
    for name in ("channels", "compression", "dataWindow"):
        if name not in raw:
            raise ExrError(f"the header has no {name!r} attribute")
    ctype = attributes["compression"]
    if ctype not in _LINES_PER_BLOCK:
        raise ExrError(
            f"{_COMPRESSION_NAMES.get(ctype, ctype)} compression is not supported (save it with ZIP or no compression)"
        )
    channels = attributes["channels"]
    if any(xs != 1 or ys != 1 for _, _, xs, ys in channels):
        raise ExrError("subsampled channels are not supported")
    x0, y0, x1, y1 = attributes["dataWindow"]
    width, height = x1 - x0 + 1, y1 - y0 + 1
    if width <= 0 or height <= 0:
        raise ExrError("its data window is empty")
    step = _LINES_PER_BLOCK[ctype]
    count = -(-height // step)
    offsets = struct.unpack_from(f"<{count}Q", data, at)
    line = np.dtype([(n, _DTYPES[t], (width,)) for n, t, _, _ in channels])
    out = np.empty(height, line)
    for offset in offsets:
        y, size = struct.unpack_from("<ii", data, offset)
        first = y - y0
        lines = min(step, height - first)
        if not 0 <= first < height:
            raise ExrError(f"a block starts at line {y}, outside the data window")
        block = data[offset + 8 : offset + 8 + size]
        if len(block) != size:
            raise ExrError("a block is cut short")
        expected = lines * line.itemsize
        if ctype and size < expected:
            block = _unzip(block, expected)
        out[first : first + lines] = np.frombuffer(block, line, count=lines)
    planes = {n: np.ascontiguousarray(out[n]).astype(_DTYPES[t].newbyteorder("=")) for n, t, _, _ in channels}
    return ExrImage(planes, attributes, _COMPRESSION_NAMES[ctype])


def _cstring(data, at):
    end = data.index(b"\0", at)
    return data[at:end].decode("utf-8", "replace"), end + 1


def _decode_attribute(kind, value):
    if kind == "chlist":
        channels, at = [], 0
        while value[at] != 0:
            name, at = _cstring(value, at)
            ptype, _, xs, ys = struct.unpack_from("<iB3xii", value, at)
            if ptype not in _DTYPES:
                raise ExrError(f"channel {name!r} has unknown pixel type {ptype}")
            channels.append((name, ptype, xs, ys))
            at += 16
        return channels
    if kind in ("compression", "lineOrder"):
        return value[0]
    if kind == "box2i":
        return struct.unpack("<4i", value)
    if kind == "float":
        return struct.unpack("<f", value)[0]
    if kind == "int":
        return struct.unpack("<i", value)[0]
    if kind == "v2f":
        return struct.unpack("<2f", value)
    if kind == "string":
        return value.decode("utf-8", "replace")
    return value  # kept as bytes: types this module has no use for
