"""engine.exr checked against the independent OpenEXR library (and Blender's own EXR reader)."""

import os
import subprocess
from pathlib import Path

import numpy as np
import OpenEXR
import pytest

from engine.errors import FathomError
from engine.exr import ExrError, read_exr, write_exr

RNG = np.random.default_rng(7)
SIZES = [(1, 1), (5, 17), (3, 1000), (37, 16), (33, 20)]  # (height, width); 16-line blocks split oddly
ROOT = Path(__file__).resolve().parents[2]


def _values(h, w):
    v = (RNG.standard_normal((h, w)) * 50).astype(np.float32)
    v.flat[0] = 0.0
    if v.size > 3:
        v.flat[1], v.flat[2], v.flat[3] = 1e-30, -0.0, 3.4e38  # a denormal-ish, signed zero, near max
    return v


def _openexr(path):
    f = OpenEXR.File(str(path), separate_channels=True)
    return dict(f.header()), {name: ch.pixels.copy() for name, ch in f.channels().items()}


@pytest.mark.parametrize("compression", ["none", "zip", "zips"])
@pytest.mark.parametrize("h, w", SIZES)
def test_float32_is_bit_exact_in_openexr(tmp_path, compression, h, w):
    y = _values(h, w)
    path = tmp_path / "y.exr"
    path.write_bytes(write_exr(y, compression=compression))
    header, channels = _openexr(path)
    assert list(channels) == ["Y"]
    assert channels["Y"].dtype == np.float32 and channels["Y"].shape == (h, w)
    assert np.array_equal(channels["Y"].view(np.uint32), y.view(np.uint32))
    assert (
        header["compression"]
        == {"none": OpenEXR.NO_COMPRESSION, "zip": OpenEXR.ZIP_COMPRESSION, "zips": OpenEXR.ZIPS_COMPRESSION}[
            compression
        ]
    )
    box = (np.array([0, 0]), np.array([w - 1, h - 1]))
    for window in ("dataWindow", "displayWindow"):
        assert all(np.array_equal(a, b) for a, b in zip(header[window], box))
    assert header["pixelAspectRatio"] == 1.0 and header["screenWindowWidth"] == 1.0
    assert list(header["screenWindowCenter"]) == [0.0, 0.0]
    assert header["lineOrder"] == OpenEXR.INCREASING_Y
    back = read_exr(path)
    assert np.array_equal(back.channels["Y"].view(np.uint32), y.view(np.uint32))
    assert back.compression == compression


@pytest.mark.parametrize("compression", ["none", "zip"])
@pytest.mark.parametrize("h, w", SIZES)
def test_half_is_within_half_precision(tmp_path, compression, h, w):
    y = RNG.random((h, w), dtype=np.float32) * 10
    path = tmp_path / "h.exr"
    path.write_bytes(write_exr(y, pixel_type="half", compression=compression))
    _, channels = _openexr(path)
    half = channels["Y"]
    assert half.dtype == np.float16
    assert np.array_equal(half, y.astype(np.float16))  # round to nearest, as OpenEXR's half does
    assert np.all(np.abs(half.astype(np.float32) - y) <= np.abs(y) * 2.0**-11 + 2.0**-24)
    assert np.array_equal(read_exr(path).channels["Y"], half)


def test_named_channels_and_metadata(tmp_path):
    r, g, b = (RNG.random((6, 9), dtype=np.float32) for _ in range(3))
    path = tmp_path / "rgb.exr"
    path.write_bytes(
        write_exr({"R": r, "G": g, "B": b}, attributes={"fathom:model": "da2-small", "note": "near = bright, ünïcode"})
    )
    header, channels = _openexr(path)
    assert sorted(channels) == ["B", "G", "R"]
    assert np.array_equal(channels["R"], r) and np.array_equal(channels["B"], b)
    assert header["fathom:model"] == "da2-small" and header["note"] == "near = bright, ünïcode"
    back = read_exr(path.read_bytes())
    assert back.strings == {"fathom:model": "da2-small", "note": "near = bright, ünïcode"}
    assert np.array_equal(back.channels["G"], g)


def test_long_names_set_the_long_names_flag(tmp_path):
    y = _values(3, 4)
    long = "fathom:settings.normalization.mode"  # 34 bytes
    data = write_exr({"depth.from.a.rather.long.layer.name.Y": y}, attributes={long: "v2-style"})
    assert data[4:8] == bytes([2, 4, 0, 0])
    path = tmp_path / "long.exr"
    path.write_bytes(data)
    header, channels = _openexr(path)
    assert header[long] == "v2-style"
    assert np.array_equal(channels["depth.from.a.rather.long.layer.name.Y"], y)
    assert read_exr(data).strings == {long: "v2-style"}
    assert write_exr(y)[4:8] == bytes([2, 0, 0, 0])


@pytest.mark.parametrize("compression", [OpenEXR.ZIP_COMPRESSION, OpenEXR.ZIPS_COMPRESSION, OpenEXR.NO_COMPRESSION])
def test_reads_files_written_by_openexr(tmp_path, compression):
    y = _values(40, 23)
    a = RNG.random((40, 23)).astype(np.float16)
    path = tmp_path / "ref.exr"
    with OpenEXR.File({"compression": compression, "type": OpenEXR.scanlineimage}, {"Y": y, "A": a}) as f:
        f.write(str(path))
    back = read_exr(path)
    assert np.array_equal(back.channels["Y"], y) and np.array_equal(back.channels["A"], a)
    assert back.channels["A"].dtype == np.float16


def test_zip_actually_compresses_smooth_depth():
    depth = np.linspace(0, 1, 256 * 300, dtype=np.float32).reshape(256, 300)
    assert len(write_exr(depth, compression="zip")) < depth.nbytes / 4
    assert len(write_exr(depth, compression="none")) > depth.nbytes


def test_incompressible_blocks_are_stored_raw(tmp_path):
    noise = RNG.integers(0, 2**32, (16, 64), dtype=np.uint32).view(np.float32)
    data = write_exr(noise, compression="zip")
    assert len(data) < noise.nbytes + 400  # no zlib growth: the block went in as it is
    path = tmp_path / "noise.exr"
    path.write_bytes(data)
    assert np.array_equal(_openexr(path)[1]["Y"].view(np.uint32), noise.view(np.uint32))


@pytest.mark.parametrize(
    "args, kwargs, message",
    [
        ((np.zeros((2, 2, 3), np.float32),), {}, "expected height x width"),
        ((np.zeros((0, 4), np.float32),), {}, "expected height x width"),
        (({"R": np.zeros((2, 2)), "G": np.zeros((2, 3))},), {}, "same size"),
        (({},), {}, "at least one channel"),
        ((np.zeros((2, 2)),), {"pixel_type": "double"}, "pixel type"),
        ((np.zeros((2, 2)),), {"compression": "piz"}, "compression"),
        ((np.zeros((2, 2)),), {"attributes": {"dataWindow": "x"}}, "set by the writer"),
        (({"x" * 256: np.zeros((2, 2))},), {}, "1 to 255 bytes"),
        ((np.zeros((2, 2)),), {"attributes": {"": "empty name"}}, "1 to 255 bytes"),
    ],
)
def test_write_rejects(args, kwargs, message):
    with pytest.raises(ExrError, match=message):
        write_exr(*args, **kwargs)


def test_read_rejects_bad_files(tmp_path):
    good = write_exr(_values(20, 10))
    for data, message in (
        (b"", "not an OpenEXR file"),
        (b"P6\n1 1\n255\n...", "not an OpenEXR file"),
        (good[: len(good) - 30], "truncated|cut short"),
        (good[:40], "truncated|cut short"),
    ):
        with pytest.raises(ExrError, match=message) as info:
            read_exr(data)
        assert isinstance(info.value, FathomError)
    path = tmp_path / "piz.exr"
    with OpenEXR.File(
        {"compression": OpenEXR.PIZ_COMPRESSION, "type": OpenEXR.scanlineimage}, {"Y": _values(4, 4)}
    ) as f:
        f.write(str(path))
    with pytest.raises(ExrError, match="piz.exr.*PIZ compression is not supported"):
        read_exr(path)


BLENDER_PYTHON = ROOT / ".venv-blender" / "bin" / "python"


@pytest.mark.skipif(not BLENDER_PYTHON.exists(), reason="needs .venv-blender (make venvs)")
def test_blender_loads_a_y_channel_exr_as_grey(tmp_path):
    y = np.linspace(-1, 5, 12 * 7, dtype=np.float32).reshape(12, 7)
    (tmp_path / "float.exr").write_bytes(write_exr(y))
    (tmp_path / "half.exr").write_bytes(write_exr(y, pixel_type="half"))
    script = (
        "import bpy, numpy as np, sys\n"
        "for name in ('float', 'half'):\n"
        "    im = bpy.data.images.load(f'{sys.argv[1]}/{name}.exr')\n"
        "    px = np.empty(len(im.pixels), np.float32); im.pixels.foreach_get(px)\n"
        "    np.save(f'{sys.argv[1]}/{name}.npy', px.reshape(im.size[1], im.size[0], im.channels))\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    subprocess.run(
        [str(BLENDER_PYTHON), "-c", script, str(tmp_path)], check=True, timeout=120, env=env, capture_output=True
    )
    for name, expected in (("float", y), ("half", y.astype(np.float16).astype(np.float32))):
        px = np.load(tmp_path / f"{name}.npy")[::-1]  # Blender stores rows bottom-up
        assert px.shape == (12, 7, 4)
        for c in range(3):
            assert np.array_equal(px[:, :, c], expected), (name, c)
        assert np.all(px[:, :, 3] == 1)
