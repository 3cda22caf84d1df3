"""engine.imageio on real files written by Pillow, or written here byte by byte from the PNG and
TIFF specifications where Pillow cannot write them (16-bit RGB, all PNG filters, Adam7)."""

import io
import struct
import time
import zlib

import numpy as np
import pytest
from PIL import Image, ImageOps

from engine.errors import ImageDecodeError, ImageTooLargeError
from engine.imageio import Picture, read_array, read_image, read_pixels

RNG = np.random.default_rng(1234)


# -- hand-made PNG and TIFF files --------------------------------------------------------


def _chunk(kind, payload):
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


def _filter_rows(raw, bpp):
    """Filter each row of a uint8 (rows, bytes) array, cycling through the 5 PNG filter types."""
    out = []
    prev = np.zeros(raw.shape[1], np.int32)
    for y, row in enumerate(raw.astype(np.int32)):
        kind = y % 5
        left = np.concatenate([np.zeros(bpp, np.int32), row[:-bpp]])
        upleft = np.concatenate([np.zeros(bpp, np.int32), prev[:-bpp]])
        if kind == 0:
            pred = np.zeros_like(row)
        elif kind == 1:
            pred = left
        elif kind == 2:
            pred = prev
        elif kind == 3:
            pred = (left + prev) // 2
        else:
            p = left + prev - upleft
            pa, pb, pc = abs(p - left), abs(p - prev), abs(p - upleft)
            pred = np.where((pa <= pb) & (pa <= pc), left, np.where(pb <= pc, prev, upleft))
        out.append(bytes([kind]) + ((row - pred) % 256).astype(np.uint8).tobytes())
        prev = row
    return b"".join(out)


ADAM7 = [(0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2)]


def png16(values, color_type, *, interlace=False, extra=b""):
    """A 16-bit PNG of an HxW(xC) uint16 array, every filter type used."""
    h, w = values.shape[:2]
    channels = 1 if values.ndim == 2 else values.shape[2]
    be = values.astype(">u2").reshape(h, w, channels)
    bpp = 2 * channels
    if interlace:
        parts = []
        for x0, y0, dx, dy in ADAM7:
            sub = be[y0::dy, x0::dx]
            if sub.size:
                parts.append(_filter_rows(np.ascontiguousarray(sub).reshape(sub.shape[0], -1).view(np.uint8), bpp))
        stream = b"".join(parts)
    else:
        stream = _filter_rows(be.reshape(h, -1).view(np.uint8), bpp)
    ihdr = struct.pack(">IIBBBBB", w, h, 16, color_type, 0, 0, 1 if interlace else 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _chunk(b"IHDR", ihdr)
        + extra
        + _chunk(b"IDAT", zlib.compress(stream))
        + _chunk(b"IEND", b"")
    )


def tiff16_rgb(values, byteorder):
    """An uncompressed baseline TIFF of an HxWx3 uint16 array ('<' or '>')."""
    h, w, _ = values.shape
    e = byteorder
    pixels = values.astype(e + "u2").tobytes()
    bits_at = 8
    data_at = bits_at + 6
    ifd_at = data_at + len(pixels)
    tags = [
        (256, 3, 1, w),
        (257, 3, 1, h),
        (258, 3, 3, bits_at),
        (259, 3, 1, 1),
        (262, 3, 1, 2),
        (273, 4, 1, data_at),
        (277, 3, 1, 3),
        (278, 3, 1, h),
        (279, 4, 1, len(pixels)),
        (284, 3, 1, 1),
    ]
    ifd = struct.pack(e + "H", len(tags))
    for tag, kind, count, value in tags:
        if kind == 3 and count == 1:
            field = struct.pack(e + "HH", value, 0)
        else:
            field = struct.pack(e + "I", value)
        ifd += struct.pack(e + "HHI", tag, kind, count) + field
    ifd += struct.pack(e + "I", 0)
    head = (b"II*\x00" if e == "<" else b"MM\x00*") + struct.pack(e + "I", ifd_at)
    return head + struct.pack(e + "3H", 16, 16, 16) + pixels + ifd


def pillow_bytes(im, fmt="PNG", **kw):
    buf = io.BytesIO()
    im.save(buf, fmt, **kw)
    return buf.getvalue()


# -- 8-bit and Pillow-native modes -------------------------------------------------------


def test_rgb_png_exact_from_path_and_bytes(tmp_path):
    rgb = RNG.integers(0, 256, (13, 7, 3), dtype=np.uint8)
    path = tmp_path / "a.png"
    Image.fromarray(rgb).save(path)
    for source in (path, str(path), path.read_bytes()):
        pic = read_image(source)
        assert pic.rgb.dtype == np.uint8 and pic.bit_depth == 8 and pic.mode == "RGB"
        assert np.array_equal(pic.rgb, rgb) and pic.alpha is None
        assert (pic.width, pic.height) == (7, 13)
    f = pic.to_float()
    assert f.dtype == np.float32 and np.allclose(f, rgb / 255.0)


def test_grey_is_replicated_and_la_keeps_alpha():
    grey = RNG.integers(0, 256, (4, 5), dtype=np.uint8)
    pic = read_image(pillow_bytes(Image.fromarray(grey)))
    assert pic.mode == "L" and pic.rgb.shape == (4, 5, 3)
    assert all(np.array_equal(pic.rgb[:, :, c], grey) for c in range(3))
    la = np.stack([grey, 255 - grey], axis=2)
    pic = read_image(pillow_bytes(Image.fromarray(la, "LA")))
    assert np.array_equal(pic.rgb[:, :, 1], grey)
    assert np.allclose(pic.alpha, (255 - grey) / 255.0)


def test_rgba_png():
    rgba = RNG.integers(0, 256, (6, 3, 4), dtype=np.uint8)
    pic = read_image(pillow_bytes(Image.fromarray(rgba)))
    assert np.array_equal(pic.rgb, rgba[:, :, :3])
    assert pic.alpha.dtype == np.float32 and np.allclose(pic.alpha, rgba[:, :, 3] / 255.0)


def test_palette_png_without_and_with_transparency():
    index = np.array([[0, 1, 2], [2, 1, 0]], np.uint8)
    im = Image.fromarray(index, "P")
    im.putpalette([255, 0, 0, 0, 255, 0, 0, 0, 255])
    pic = read_image(pillow_bytes(im))
    assert pic.mode == "P" and pic.alpha is None
    assert pic.rgb[0, 0].tolist() == [255, 0, 0] and pic.rgb[0, 2].tolist() == [0, 0, 255]
    pic = read_image(pillow_bytes(im, transparency=1))  # palette entry 1 (green) is transparent
    assert pic.alpha.tolist() == [[1, 0, 1], [1, 0, 1]]
    assert pic.rgb[1, 0].tolist() == [0, 0, 255]


def test_rgb_colour_key_transparency():
    rgb = np.zeros((2, 2, 3), np.uint8)
    rgb[0, 0] = (10, 20, 30)
    pic = read_image(pillow_bytes(Image.fromarray(rgb), transparency=(10, 20, 30)))
    assert pic.alpha.tolist() == [[0, 1], [1, 1]]


def test_cmyk_jpeg_comes_out_as_the_right_colours():
    rgb = np.zeros((16, 16, 3), np.uint8)
    rgb[:, :8] = (200, 40, 30)
    rgb[:, 8:] = (20, 90, 220)
    data = pillow_bytes(Image.fromarray(rgb).convert("CMYK"), "JPEG", quality=95)
    assert Image.open(io.BytesIO(data)).mode == "CMYK"
    pic = read_image(data)
    assert pic.mode == "CMYK" and pic.rgb.dtype == np.uint8 and pic.rgb.shape == (16, 16, 3)
    assert np.abs(pic.rgb[4:12, 2:6].astype(int) - (200, 40, 30)).max() <= 6
    assert np.abs(pic.rgb[4:12, 10:14].astype(int) - (20, 90, 220)).max() <= 6


def test_one_bit_image():
    bits = np.array([[0, 1], [1, 0]], bool)
    pic = read_image(pillow_bytes(Image.fromarray(bits)))
    assert pic.bit_depth == 1 and pic.rgb[:, :, 0].tolist() == [[0, 255], [255, 0]]


# -- 16-bit and float --------------------------------------------------------------------


def test_sixteen_bit_grey_png_round_trip_is_exact(tmp_path):
    grey = RNG.integers(0, 65536, (9, 11), dtype=np.uint16)
    grey[0, :5] = (0, 1, 255, 256, 65535)
    path = tmp_path / "g16.png"
    Image.fromarray(grey).save(path)
    pic = read_image(path)
    assert pic.mode in ("I;16", "I") and pic.bit_depth == 16 and pic.rgb.dtype == np.uint16
    assert np.array_equal(pic.rgb[:, :, 0], grey) and np.array_equal(pic.rgb[:, :, 2], grey)
    assert pic.to_float()[0, 4, 0] == 1.0
    # and the hand-written one, with every filter type and interlaced
    for interlace in (False, True):
        assert np.array_equal(read_image(png16(grey, 0, interlace=interlace)).rgb[:, :, 1], grey)


@pytest.mark.parametrize("interlace", [False, True])
def test_sixteen_bit_rgb_png_is_exact(interlace):
    rgb = RNG.integers(0, 65536, (19, 23, 3), dtype=np.uint16)
    data = png16(rgb, 2, interlace=interlace)
    assert Image.open(io.BytesIO(data)).mode == "RGB"  # what Pillow alone gives: 8 bits
    pic = read_image(data)
    assert pic.rgb.dtype == np.uint16 and pic.bit_depth == 16 and pic.alpha is None
    assert np.array_equal(pic.rgb, rgb)


def test_sixteen_bit_rgba_and_grey_alpha_png_are_exact():
    rgba = RNG.integers(0, 65536, (7, 10, 4), dtype=np.uint16)
    pic = read_image(png16(rgba, 6, interlace=True))
    assert np.array_equal(pic.rgb, rgba[:, :, :3])
    assert np.array_equal(np.round(pic.alpha * 65535).astype(np.uint16), rgba[:, :, 3])
    la = RNG.integers(0, 65536, (5, 6, 2), dtype=np.uint16)
    pic = read_image(png16(la, 4))
    assert pic.bit_depth == 16 and np.array_equal(pic.rgb[:, :, 2], la[:, :, 0])
    assert np.array_equal(np.round(pic.alpha * 65535).astype(np.uint16), la[:, :, 1])


def test_sixteen_bit_rgb_colour_key():
    rgb = RNG.integers(0, 65536, (3, 4, 3), dtype=np.uint16)
    key = rgb[1, 2].tolist()
    pic = read_image(png16(rgb, 2, extra=_chunk(b"tRNS", struct.pack(">3H", *key))))
    expected = np.ones((3, 4), np.float32)
    expected[1, 2] = 0
    assert np.array_equal(pic.alpha, expected)


@pytest.mark.parametrize("byteorder", ["<", ">"])
def test_sixteen_bit_rgb_tiff_is_exact(byteorder):
    rgb = RNG.integers(0, 65536, (6, 5, 3), dtype=np.uint16)
    pic = read_image(tiff16_rgb(rgb, byteorder))
    assert pic.rgb.dtype == np.uint16 and np.array_equal(pic.rgb, rgb)


def test_float_tiff_keeps_values_and_cleans_nan(tmp_path):
    f = RNG.random((4, 6), dtype=np.float32) * 3
    f[0, 0], f[0, 1], f[0, 2] = np.nan, np.inf, -np.inf
    path = tmp_path / "f.tif"
    Image.fromarray(f, "F").save(path)
    pic = read_image(path)
    assert pic.mode == "F" and pic.rgb.dtype == np.float32 and pic.bit_depth == 32
    finite = f[np.isfinite(f)].max()
    assert pic.rgb[0, 0, 0] == 0 and pic.rgb[0, 1, 0] == finite and pic.rgb[0, 2, 0] == 0
    assert np.array_equal(pic.rgb[1:, :, 1], f[1:])


def test_int32_mode_i(tmp_path):
    small = np.array([[0, 1000], [65535, 7]], np.int32)
    Image.fromarray(small, "I").save(tmp_path / "i.tif")
    pic = read_image(tmp_path / "i.tif")
    assert pic.mode == "I" and pic.rgb.dtype == np.uint16 and np.array_equal(pic.rgb[:, :, 0], small)
    wide = np.array([[-10, 0], [90, 100000]], np.int32)
    Image.fromarray(wide, "I").save(tmp_path / "w.tif")
    pic = read_image(tmp_path / "w.tif")
    assert pic.rgb.dtype == np.float32 and pic.rgb[0, 0, 0] == 0 and pic.rgb[1, 1, 0] == 1


# -- orientation -------------------------------------------------------------------------


def _exif(orientation):
    exif = Image.Exif()
    exif[0x0112] = orientation
    return exif


def test_exif_orientation_6_jpeg_comes_in_rotated():
    rgb = np.zeros((20, 40, 3), np.uint8)  # wide: red on the left, blue on the right
    rgb[:, :20] = (255, 0, 0)
    rgb[:, 20:] = (0, 0, 255)
    pic = read_image(pillow_bytes(Image.fromarray(rgb), "JPEG", quality=95, exif=_exif(6)))
    assert pic.rgb.shape == (40, 20, 3)  # turned 90 degrees clockwise: now tall, red on top
    assert pic.rgb[5, 10, 0] > 200 and pic.rgb[5, 10, 2] < 50
    assert pic.rgb[35, 10, 2] > 200 and pic.rgb[35, 10, 0] < 50


def test_orient_false_keeps_the_pixels_as_stored():
    """As Blender shows an image datablock: EXIF orientation not applied (read_pixels(as_blender=True)
    also gives float 0..1, like Blender's pixels)."""
    rgb = RNG.integers(0, 256, (3, 5, 3), dtype=np.uint8)
    data = pillow_bytes(Image.fromarray(rgb), exif=_exif(6))
    assert np.array_equal(read_image(data, orient=False).rgb, rgb)
    assert read_image(data).rgb.shape == (5, 3, 3)
    as_blender = read_pixels(data, as_blender=True)
    assert as_blender.dtype == np.float32 and np.array_equal(as_blender, rgb / np.float32(255))
    assert np.array_equal(read_pixels(data), read_image(data).rgb)


@pytest.mark.parametrize("orientation", range(1, 9))
def test_every_orientation_matches_pillow(orientation):
    rgb = RNG.integers(0, 256, (3, 5, 3), dtype=np.uint8)
    data = pillow_bytes(Image.fromarray(rgb), exif=_exif(orientation))
    expected = np.asarray(ImageOps.exif_transpose(Image.open(io.BytesIO(data))))
    assert np.array_equal(read_image(data).rgb, expected)


def test_orientation_applies_to_sixteen_bit_and_alpha():
    rgba = RNG.integers(0, 65536, (3, 5, 4), dtype=np.uint16)
    exif = _exif(6).tobytes()
    pic = read_image(png16(rgba, 6, extra=_chunk(b"eXIf", exif[6:] if exif.startswith(b"Exif") else exif)))
    assert np.array_equal(pic.rgb, np.rot90(rgba[:, :, :3], -1))
    assert pic.alpha.shape == (5, 3)


# -- bad input ---------------------------------------------------------------------------


def test_zero_byte_file(tmp_path):
    path = tmp_path / "empty.png"
    path.write_bytes(b"")
    with pytest.raises(ImageDecodeError, match=r"Image 'empty.png' is empty \(0 bytes\)"):
        read_image(path)


def test_missing_file_and_folder(tmp_path):
    with pytest.raises(ImageDecodeError, match="'nope.png' does not exist"):
        read_image(tmp_path / "nope.png")
    with pytest.raises(ImageDecodeError, match="is a folder"):
        read_image(tmp_path)


def test_truncated_png(tmp_path):
    rgb = RNG.integers(0, 256, (64, 64, 3), dtype=np.uint8)
    data = pillow_bytes(Image.fromarray(rgb))
    path = tmp_path / "cut.png"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageDecodeError, match=r"Cannot decode image 'cut.png': it is truncated"):
        read_image(path)


def test_corrupt_png_data():
    data = bytearray(pillow_bytes(Image.fromarray(RNG.integers(0, 256, (32, 32, 3), dtype=np.uint8))))
    data[60:80] = b"\xff" * 20  # inside the compressed stream
    with pytest.raises(ImageDecodeError, match="Cannot decode the image data: it is corrupt"):
        read_image(bytes(data))


def test_random_bytes_are_not_an_image(tmp_path):
    path = tmp_path / "noise.jpg"
    path.write_bytes(RNG.integers(0, 256, 4000, dtype=np.uint8).tobytes())
    with pytest.raises(ImageDecodeError, match="'noise.jpg' is not an image"):
        read_image(path)
    with pytest.raises(ImageDecodeError, match="The upload is not an image"):
        read_image(b"hello world", name="the upload")


def _huge_png(width, height):
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _chunk(b"IHDR", ihdr)
        + _chunk(b"IDAT", zlib.compress(b"\0" * 1000))
        + _chunk(b"IEND", b"")
    )


def test_decompression_bomb_is_refused_from_the_header(tmp_path):
    path = tmp_path / "bomb.png"
    path.write_bytes(_huge_png(50000, 50000))
    assert path.stat().st_size < 200
    start = time.perf_counter()
    with pytest.raises(ImageTooLargeError, match="Image 'bomb.png' claims 2,500,000,000 pixels, too many"):
        read_image(path)  # Pillow's own bomb guard, mapped
    with pytest.raises(ImageTooLargeError, match="the limit is 10,000 pixels"):
        read_image(path, max_pixels=10_000)
    assert time.perf_counter() - start < 1.0  # nothing was decoded or allocated


def test_our_pixel_limit_is_checked_before_decoding():
    with pytest.raises(ImageTooLargeError, match=r"The image data is 5000 x 4000 = 20,000,000 pixels"):
        read_image(_huge_png(5000, 4000), max_pixels=1_000_000)
    data = pillow_bytes(Image.fromarray(np.zeros((10, 10, 3), np.uint8)))
    with pytest.raises(ImageTooLargeError, match="more than the limit of 99"):
        read_image(data, max_pixels=99)
    assert read_image(data, max_pixels=100).rgb.shape == (10, 10, 3)


# -- arrays ------------------------------------------------------------------------------


def test_read_array_dtypes_and_channels():
    u8 = RNG.integers(0, 256, (4, 3), dtype=np.uint8)
    pic = read_array(u8)
    assert pic.rgb.shape == (4, 3, 3) and pic.bit_depth == 8 and pic.mode == "array"
    pic = read_array(u8[:, :, None])
    assert pic.rgb.shape == (4, 3, 3)
    u16 = RNG.integers(0, 65536, (4, 3, 4), dtype=np.uint16)
    pic = read_array(u16)
    assert pic.rgb.dtype == np.uint16 and np.array_equal(pic.rgb, u16[:, :, :3])
    assert np.allclose(pic.alpha, u16[:, :, 3] / 65535.0)
    f64 = RNG.random((2, 2, 4)) * 2
    pic = read_array(f64)
    assert pic.rgb.dtype == np.float32 and pic.bit_depth == 32
    assert np.allclose(pic.rgb, f64[:, :, :3]) and pic.alpha.max() <= 1.0


def test_read_array_cleans_non_finite_values():
    f = np.full((2, 2, 3), 0.5, np.float32)
    f[0, 0, 0], f[0, 1, 1], f[1, 0, 2] = np.nan, np.inf, -np.inf
    pic = read_array(f)
    assert pic.rgb[0, 0, 0] == 0 and pic.rgb[0, 1, 1] == 1 and pic.rgb[1, 0, 2] == 0
    assert np.isfinite(f).sum() == 9  # the caller's array is left alone
    with pytest.raises(ImageDecodeError, match="no finite values"):
        read_array(np.full((2, 2), np.nan, np.float32))


@pytest.mark.parametrize(
    "bad, message",
    [
        (np.zeros((4,), np.uint8), r"shape \(4,\)"),
        (np.zeros((4, 4, 2), np.uint8), "1, 3 or 4 channels"),
        (np.zeros((0, 4, 3), np.uint8), "is empty"),
        (np.zeros((2, 2, 3), np.int64), "data type int64"),
        (np.zeros((2, 2, 3, 1), np.uint8), "expected height x width"),
    ],
)
def test_read_array_rejects(bad, message):
    with pytest.raises(ImageDecodeError, match=message):
        read_array(bad)


def test_read_array_pixel_limit():
    with pytest.raises(ImageTooLargeError, match="The image array is 20 x 10"):
        read_array(np.zeros((10, 20, 3), np.uint8), max_pixels=100)


def test_picture_to_float_of_float_is_a_copy():
    f = np.full((1, 1, 3), 2.5, np.float32)
    pic = Picture(f, None, 32, "array")
    out = pic.to_float()
    out[:] = 0
    assert f[0, 0, 0] == 2.5
