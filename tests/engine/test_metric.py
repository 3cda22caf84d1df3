"""Depth units and metric alignment (engine.units, engine.metric), judged against a known truth: an
oracle ONNX network (tests/tiny_model.py) whose output is a known affine function of the true inverse
depth encoded in the picture, plus noise, run through the real engine on onnxruntime."""

import numpy as np
import pytest

from engine import encode
from engine.depth import estimate
from engine.errors import InvalidSettingsError
from engine.metric import align, align_points, fit_line, sample
from engine.normalize import normalize_with_range
from engine.settings import DepthSettings
from engine.units import DepthUnits, distances, from_normalization, relative_units
from tests.tiny_model import build_oracle_model

H, W = 180, 320
ALPHA, BETA, NOISE = 3.7, 0.6, 0.004  # the oracle's unknown scale and shift, and its noise


def scene_z():
    """Planar depth of a small scene: sky (inf) above the horizon, a ground plane receding, a near box
    and a far wall; returns Z (inf = background)."""
    rows = np.arange(H, dtype=np.float64)[:, None] + 0.5
    z = np.where(rows > 60, 1.6 * 250.0 / np.maximum(rows - 60, 1e-9), np.inf) * np.ones((1, W))
    z = np.minimum(z, 80.0)
    z[40:150, 30:110] = 3.0  # near box
    z[20:90, 200:300] = np.minimum(z[20:90, 200:300], 40.0)  # far wall
    yy, xx = np.mgrid[0:H, 0:W]
    ball = (yy - 120) ** 2 + (xx - 160) ** 2 < 25**2
    z[ball] = 8.0 - 0.02 * np.sqrt(np.maximum(0, 25**2 - (yy - 120) ** 2 - (xx - 160) ** 2))[ball]
    return z


def oracle_picture(z, seed=0):
    """Red: the true inverse depth over the nearest's (0 for background); green: uniform noise."""
    rng = np.random.default_rng(seed)
    inverse = np.where(np.isfinite(z), z.min() / z, 0.0)
    rgb = np.zeros((*z.shape, 3), np.float32)
    rgb[:, :, 0] = inverse
    rgb[:, :, 1] = rng.uniform(0.0, 1.0, z.shape)
    return rgb


@pytest.fixture(scope="module")
def oracle(tmp_path_factory):
    return build_oracle_model(tmp_path_factory.mktemp("oracle") / "oracle.onnx", ALPHA, BETA, NOISE)


def interior(z, margin=3):
    """Surface pixels at least ``margin`` pixels from a depth edge (where resampling blends surfaces)."""
    finite = np.isfinite(z)
    zz = np.where(finite, z, 1e6)
    edge = np.zeros(z.shape, bool)
    for axis in (0, 1):
        jump = np.abs(np.diff(np.log(zz), axis=axis)) > 0.05
        pad = [(0, 0), (0, 0)]
        pad[axis] = (0, 1)
        edge |= np.pad(jump, pad)
        pad[axis] = (1, 0)
        edge |= np.pad(jump, pad)
    grown = edge.copy()
    for _ in range(margin):
        grown = grown | np.roll(grown, 1, 0) | np.roll(grown, -1, 0) | np.roll(grown, 1, 1) | np.roll(grown, -1, 1)
    return finite & ~grown


@pytest.mark.parametrize(
    "normalization,invert", [("standard", False), ("standard", True), ("raw", False), ("v2-style", False)]
)
def test_a_network_map_aligned_to_scene_z_recovers_distances_within_1_percent(oracle, normalization, invert):
    z = scene_z()
    result = estimate(
        oracle_picture(z),
        DepthSettings(resolution=518, normalization=normalization, invert=invert),
        oracle,
        model_name="oracle",
    )
    assert result.units.quantity == "relative" and not result.units.has_distances
    with pytest.raises(InvalidSettingsError, match="relative"):
        distances(result.depth, result.units)
    fit = align(result.depth, result.units, z)
    got = distances(result.depth, fit.units)
    rel = np.abs(got / z - 1.0)
    inside = interior(z)
    assert np.median(rel[inside]) < 0.01, fit.describe()
    assert np.percentile(rel[inside], 90) < 0.02
    for region in (z == 3.0, (z > 7.4) & (z < 8.0), z == 40.0):  # box, ball, wall: each one right
        assert np.median(rel[region & inside]) < 0.01
    # The fitted line itself is the truth: applied to the noise-free oracle output it gives Z within 1 %.
    red = np.linspace(z[np.isfinite(z)].min() / 80.0, 1.0, 50)
    x = ALPHA * red + BETA  # what the oracle outputs, without noise
    inverse = fit.scale * x + fit.shift
    assert np.all(np.abs((1.0 / inverse) / (z.min() / red) - 1.0) < 0.01)
    assert fit.residual < 0.01 and fit.units.source == "metric-fit" and fit.units.fit["model"] == "oracle"
    assert fit.units.near == pytest.approx(3.0, rel=0.05) and fit.units.far == pytest.approx(
        80.0, rel=0.05
    )  # noisy ends


def test_the_fit_ignores_a_region_the_network_got_wrong(oracle):
    z = scene_z()
    picture = oracle_picture(z)
    picture[70:100, 220:280, 0] = 0.9  # the "network" sees something near on the far wall
    result = estimate(picture, DepthSettings(), oracle, model_name="oracle")
    fit = align(result.depth, result.units, z)
    rel = np.abs(distances(result.depth, fit.units) / z - 1.0)
    good = interior(z)
    good[65:105, 215:285] = False
    assert np.median(rel[good]) < 0.01 and fit.inliers < fit.points
    # A plain least-squares line is tilted by that region.
    x = result.units.decode(result.depth)[np.isfinite(z)]
    s, t, _ = fit_line(x, 1.0 / z[np.isfinite(z)], robust=False)
    plain = 1.0 / (s * result.units.decode(result.depth) + t)
    assert np.median(np.abs(plain / z - 1.0)[good]) > 2 * np.median(rel[good])


def test_two_picked_points_fix_the_scale_exactly(oracle):
    z = scene_z()
    result = estimate(oracle_picture(z), DepthSettings(), oracle, model_name="oracle")
    # (u, v) from the left and from the bottom: the box at column 70 row 95, the ball's rim at 160, 100.
    points = [(70.5 / W, 1 - 95.5 / H, 3.0), (250.5 / W, 1 - 50.5 / H, 40.0)]
    fit = align_points(result.depth, result.units, points)
    got = distances(result.depth, fit.units)
    for u, v, distance in points:  # at each point (the median of the 3x3 pixels around it), exact
        assert sample(got, u, v) == pytest.approx(distance, rel=1e-5)
    assert fit.residual < 1e-6 and fit.points == 2
    ball = (z > 7.4) & (z < 8.0) & interior(z)
    assert np.median(np.abs(got[ball] / z[ball] - 1)) < 0.02
    three = align_points(result.depth, result.units, points + [(160.5 / W, 1 - 120.5 / H, 7.5)])
    assert three.points == 3 and 0 <= three.residual < 0.02


@pytest.mark.parametrize(
    "points,match",
    [
        ([(0.2, 0.5, 3.0)], "at least two"),
        ([(0.2, 0.5, 3.0), (0.21, 0.5, 0.0)], "positive"),
        ([(0.2, 0.5, 3.0), (1.5, 0.5, 4.0)], "outside the picture"),
        ([(0.2, 0.5, 3.0), (0.2, 0.5, 4.0)], "one depth value"),
        ([(70.5 / W, 1 - 95.5 / H, 40.0), (250.5 / W, 1 - 50.5 / H, 3.0)], "other way"),
    ],
)
def test_bad_points_get_a_clear_error(oracle, points, match):
    result = estimate(oracle_picture(scene_z()), DepthSettings(), oracle, model_name="oracle")
    with pytest.raises(InvalidSettingsError, match=match):
        align_points(result.depth, result.units, points)


def test_nothing_to_align_to_is_an_error():
    values = np.linspace(0, 1, 100, dtype=np.float32).reshape(10, 10)
    units = DepthUnits("relative", "oracle")
    with pytest.raises(InvalidSettingsError, match="fewer than two"):
        align(values, units, np.full((10, 10), np.inf))
    with pytest.raises(InvalidSettingsError, match="generate it again"):
        align(values, None, np.ones((10, 10)))


@pytest.mark.parametrize("mode", ["standard", "v2-style", "raw"])
@pytest.mark.parametrize("invert", [False, True])
def test_scene_z_units_give_back_the_exact_distances(mode, invert):
    z = scene_z()
    hit = np.isfinite(z)
    if mode == "raw":  # Scene Z's raw is the distance itself, background at the clip end
        source, quantity = np.where(hit, z, 100.0), "distance"
    else:  # standard and v2-style normalise the inverse distance, background 1/inf = 0
        source, quantity = np.where(hit, 1.0 / np.where(hit, z, 1.0), 0.0), "inverse-distance"
    values, _, value_range = normalize_with_range(source.astype(np.float32), mode, invert)
    units = from_normalization(mode, invert, value_range, quantity=quantity, source="scene-z", values=values)
    got = distances(values, units)
    exact = hit if mode != "v2-style" else hit & (values > 0) & (values < 1)
    assert np.allclose(got[exact], z[exact], rtol=2e-6)
    if mode != "raw":
        assert np.all(np.isinf(got[~hit]))  # background is infinitely far
    assert units.near == pytest.approx(3.0, rel=1e-5)
    assert units.clipped == (mode == "v2-style")


def test_units_travel_in_file_metadata_and_back(tmp_path):
    z = scene_z()
    values, _, value_range = normalize_with_range(
        np.where(np.isfinite(z), 1 / np.where(np.isfinite(z), z, 1), 0).astype(np.float32)
    )
    units = from_normalization(
        "standard", False, value_range, quantity="inverse-distance", source="scene-z", values=values
    )
    path = encode.write_depth(
        tmp_path / "d.exr", values, "exr32", metadata={"fathom.units": units.to_metadata(), "fathom.model": "scene-z"}
    )
    meta = encode.read_metadata(path)
    back = DepthUnits.from_metadata(meta)
    assert back == units and meta["fathom.model"] == "scene-z"
    assert np.allclose(distances(encode.read_depth(path), back)[np.isfinite(z)], z[np.isfinite(z)], rtol=2e-6)
    assert "scene-z" in back.describe() and "3 to 80" in back.describe()
    assert DepthUnits.from_metadata({"fathom.model": "x"}) is None
    with pytest.raises(InvalidSettingsError, match="quantity"):
        DepthUnits("furlongs", "x")


@pytest.mark.parametrize("normalization,invert", [("standard", True), ("raw", True), ("v2-style", False)])
def test_settings_alone_are_enough_to_align_a_map(oracle, normalization, invert):
    """A server's result carries no value range: its settings give units that align just as well."""
    z = scene_z()
    result = estimate(
        oracle_picture(z), DepthSettings(normalization=normalization, invert=invert), oracle, model_name="oracle"
    )
    fit = align(result.depth, relative_units(normalization, invert, source="server"), z)
    rel = np.abs(distances(result.depth, fit.units) / z - 1.0)
    assert np.median(rel[interior(z)]) < 0.01
