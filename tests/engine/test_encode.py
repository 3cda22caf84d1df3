"""engine.encode and engine.colormap: files read back by Pillow, OpenEXR and engine.imageio."""

import io
import json
import os
import subprocess
import sys

import numpy as np
import OpenEXR
import pytest
from PIL import Image

from engine import colormap
from engine.encode import (
    colorize,
    encode_depth,
    encode_png,
    read_metadata,
    side_by_side,
    suffix_for,
    to_unit_range,
    write_depth,
    write_file,
)
from engine.errors import InvalidSettingsError
from engine.imageio import read_image

RNG = np.random.default_rng(99)


def _depth(h=13, w=21):
    d = RNG.random((h, w), dtype=np.float32)
    d[0, :4] = (0.0, 1.0, 0.5, 1 / 65535)
    return d


def test_suffixes():
    assert [suffix_for(f) for f in ("exr32", "EXR16", "png16", "png8")] == [".exr", ".exr", ".png", ".png"]
    with pytest.raises(InvalidSettingsError, match="Unknown output format 'tiff'"):
        suffix_for("tiff")


def test_png16_is_true_16_bit_grey_and_exact():
    levels = np.arange(65536, dtype=np.uint16).reshape(256, 256)
    data = encode_depth(levels / np.float64(65535), "png16")
    im = Image.open(io.BytesIO(data))
    assert im.mode == "I;16" and data[24:26] == bytes([16, 0])  # IHDR: bit depth 16, colour type grey
    assert np.array_equal(np.asarray(im), levels)
    assert np.array_equal(read_image(data).rgb[:, :, 0], levels)


def test_png16_rounds_and_clips():
    d = np.array([[-0.5, 0.0, 0.5, 1.0, 7.0, 1.4 / 65535, 1.6 / 65535]], np.float32)
    got = np.asarray(Image.open(io.BytesIO(encode_depth(d, "png16"))))
    assert got.tolist() == [[0, 0, 32768, 65535, 65535, 1, 2]]


def test_png8_is_grey_l():
    d = _depth()
    im = Image.open(io.BytesIO(encode_depth(d, "png8")))
    assert im.mode == "L"
    assert np.array_equal(np.asarray(im), np.rint(d.astype(np.float64) * 255).astype(np.uint8))


def test_png_refuses_nan():
    d = _depth()
    d[3, 3] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        encode_depth(d, "png16")


def test_exr32_exact_and_exr16_half(tmp_path):
    d = (_depth() * 40 - 3).astype(np.float32)  # any range: EXR keeps raw values
    for fmt, expected in (("exr32", d), ("exr16", d.astype(np.float16))):
        path = tmp_path / f"{fmt}.exr"
        path.write_bytes(encode_depth(d, fmt))
        f = OpenEXR.File(str(path), separate_channels=True)
        y = f.channels()["Y"].pixels
        assert list(f.channels()) == ["Y"] and y.dtype == expected.dtype and np.array_equal(y, expected)
        assert f.header()["compression"] == OpenEXR.ZIP_COMPRESSION


def test_metadata_travels_in_png_and_exr():
    meta = {"model": "da2-small", "settings": {"resolution": 518, "invert": False}, "note": "naïve ✓"}
    for fmt in ("exr32", "exr16", "png16", "png8"):
        got = read_metadata(encode_depth(_depth(), fmt, metadata=meta))
        assert got["model"] == "da2-small" and got["note"] == "naïve ✓"
        assert json.loads(got["settings"]) == {"resolution": 518, "invert": False}


def test_accepts_an_object_with_a_depth_array():
    class Result:
        depth = _depth(4, 5)

    assert encode_depth(Result(), "png8") == encode_depth(Result.depth, "png8")


@pytest.mark.parametrize("bad", [np.zeros((2, 2, 3)), np.zeros((0, 3)), np.array([["a"]])])
def test_rejects_bad_depth(bad):
    with pytest.raises(ValueError, match="Expected an HxW depth map"):
        encode_depth(bad, "exr32")


def test_to_unit_range():
    d = np.array([[2.0, 4.0], [np.inf, 3.0]], np.float32)
    assert to_unit_range(d).tolist() == [[0.0, 1.0], [0.0, 0.5]]
    assert to_unit_range(np.full((2, 2), 5.0)).tolist() == [[0, 0], [0, 0]]


# -- writing files -----------------------------------------------------------------------


def test_write_depth_adds_suffix_and_round_trips(tmp_path):
    d = _depth()
    path = write_depth(tmp_path / "sub" / "shot_0001", d, "png16", metadata={"model": "m"})
    assert path == tmp_path / "sub" / "shot_0001.png" and path.exists()
    assert np.array_equal(read_image(path).rgb[:, :, 0], np.rint(d.astype(np.float64) * 65535))
    assert read_metadata(path) == {"model": "m"}
    assert os.listdir(path.parent) == ["shot_0001.png"]  # no temporary left behind


def test_write_depth_never_overwrites_unless_asked(tmp_path):
    path = tmp_path / "d.exr"
    path.write_bytes(b"the user's precious file")
    with pytest.raises(FileExistsError, match="d.exr already exists and Fathom does not overwrite"):
        write_depth(path, _depth(), "exr32")
    assert path.read_bytes() == b"the user's precious file"
    assert os.listdir(tmp_path) == ["d.exr"]
    write_depth(path, _depth(), "exr32", overwrite=True)
    assert path.read_bytes()[:4] == b"\x76\x2f\x31\x01"
    assert os.listdir(tmp_path) == ["d.exr"]


def test_write_depth_refuses_a_mismatched_suffix(tmp_path):
    with pytest.raises(InvalidSettingsError, match="d.png ends in .png but format exr16 writes .exr"):
        write_depth(tmp_path / "d.png", _depth(), "exr16")


def test_write_file_cleans_up_when_it_fails(tmp_path):
    (tmp_path / "taken").mkdir()  # a folder in the way: os.replace cannot put a file there
    with pytest.raises(OSError):
        write_file(tmp_path / "taken", b"x", overwrite=True)
    assert os.listdir(tmp_path) == ["taken"]


# -- previews ----------------------------------------------------------------------------


def test_colormaps_have_their_ends_and_inferno_gets_lighter():
    ramp = np.linspace(0, 1, 256, dtype=np.float32)[None, :]
    inferno = colorize(ramp)
    assert inferno.shape == (1, 256, 3) and inferno.dtype == np.uint8
    assert inferno[0, 0].tolist() == [0, 0, 4] and inferno[0, -1].tolist() == [252, 255, 164]
    luminance = inferno[0].astype(float) @ [0.2126, 0.7152, 0.0722]
    assert np.all(np.diff(luminance) >= -0.5) and luminance[-1] - luminance[0] > 200
    turbo = colorize(ramp, "turbo")
    assert turbo[0, 0].tolist() == [48, 18, 59] and turbo[0, -1].tolist() == [122, 4, 3]
    assert np.all(np.abs(np.diff(turbo[0].astype(int), axis=0)) <= 12)  # smooth, no jumps
    grey = colorize(ramp, "grey")
    assert np.array_equal(grey[0, :, 0], np.arange(256))


def test_colorize_clips_and_handles_nan():
    d = np.array([[-1.0, np.nan, 2.0]], np.float32)
    out = colorize(d)
    assert out[0, 0].tolist() == out[0, 1].tolist() == [0, 0, 4] and out[0, 2].tolist() == [252, 255, 164]
    with pytest.raises(ValueError, match="Unknown colour map 'jet'"):
        colormap.apply(d, "jet")


def test_side_by_side():
    rgb = RNG.integers(0, 256, (20, 30, 3), dtype=np.uint8)
    out = side_by_side(rgb, np.linspace(0, 1, 600, dtype=np.float32).reshape(20, 30), gap=4)
    assert out.shape == (20, 64, 3) and out.dtype == np.uint8
    assert np.array_equal(out[:, :30], rgb) and not out[:, 30:34].any()
    assert out[0, 34].tolist() == [0, 0, 4]
    small = side_by_side(rgb.astype(np.float32) / 255, np.zeros((10, 15)), gap=0)  # half-size depth
    assert small.shape == (20, 60, 3) and np.array_equal(small[:, :30], rgb)
    wide = side_by_side(np.zeros((20, 30, 4), np.uint16), np.zeros((20, 30)))
    assert wide.shape == (20, 68, 3)


def test_importing_the_codecs_does_not_import_pillow():
    code = "import sys, engine.imageio, engine.encode, engine.exr, engine.colormap; print('PIL' in sys.modules)"
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        cwd=os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
    )
    assert out.stdout.strip() == "False"


def test_encode_png_of_a_preview():
    preview = side_by_side(RNG.integers(0, 256, (6, 8, 3), dtype=np.uint8), _depth(6, 8))
    data = encode_png(preview, metadata={"model": "m"})
    assert np.array_equal(read_image(data).rgb, preview) and read_metadata(data) == {"model": "m"}
    with pytest.raises(ValueError, match="uint8 pixels"):
        encode_png(preview.astype(np.float32))


def test_written_files_get_ordinary_permissions(tmp_path):
    import stat

    from engine import encode

    path = write_depth(tmp_path / "d.png", np.zeros((2, 2), np.float32), "png8")
    # Readable by a farm node or another user, like any file the process creates.
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~encode._UMASK


def test_picture_png_loses_nothing():
    from engine.encode import encode_picture_png
    from engine.imageio import read_image

    rng = np.random.default_rng(5)
    rgb8 = rng.integers(0, 256, (7, 9, 3), dtype=np.uint8)
    rgb16 = rng.integers(0, 65536, (7, 9, 3), dtype=np.uint16)
    back = read_image(encode_picture_png(rgb8))
    assert back.bit_depth == 8 and np.array_equal(back.rgb, rgb8)
    back = read_image(encode_picture_png(rgb16))  # our 16-bit RGB writer, read by imageio's own decoder
    assert back.rgb.dtype == np.uint16 and np.array_equal(back.rgb, rgb16)
    # Float pictures of whole 8-bit levels (byte images Blender hands over as float) stay 8-bit.
    assert read_image(encode_picture_png(rgb8 / np.float32(255))).bit_depth == 8
    unit = rng.random((7, 9, 3), dtype=np.float32)
    back = read_image(encode_picture_png(unit))
    assert back.rgb.dtype == np.uint16 and np.abs(back.rgb / 65535.0 - unit).max() <= 0.5 / 65535 + 1e-7


@pytest.mark.parametrize("fmt,tolerance", [("exr32", 0), ("exr16", 1e-3), ("png16", 1e-5), ("png8", 2.5e-3)])
def test_read_depth_gives_back_what_write_depth_wrote(tmp_path, fmt, tolerance):
    from engine.encode import read_depth

    depth = np.linspace(0, 1, 35, dtype=np.float32).reshape(5, 7)
    path = write_depth(tmp_path / "d", depth, fmt)
    back = read_depth(path)
    assert back.dtype == np.float32 and back.shape == (5, 7)
    assert np.abs(back - depth).max() <= tolerance
    if fmt.startswith("exr"):
        assert np.array_equal(read_depth(path.read_bytes()), back)
