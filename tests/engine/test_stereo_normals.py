"""Stereo pairs and normal maps from depth, checked against pictures whose answer is known."""

import numpy as np
import pytest

from engine.errors import InvalidSettingsError
from engine.normals import normal_map
from engine.stereo import compose, stereo_views


def square_scene(h=120, w=200, x0=80, y0=40, size=40, seed=0):
    rng = np.random.default_rng(seed)
    picture = rng.random((h, w, 3)).astype(np.float32)
    depth = np.zeros((h, w), np.float32)
    depth[y0 : y0 + size, x0 : x0 + size] = 1.0
    return picture, depth


def test_known_disparity_reproduces_the_other_view():
    picture, depth = square_scene()
    shift = 6  # pixels per eye for the nearest depth
    left, right = stereo_views(picture, depth, divergence=2 * shift / 200 * 100)
    for view, s in ((left, shift), (right, -shift)):
        truth = picture.copy()
        truth[40:80, 80 + s : 120 + s] = picture[40:80, 80:120]
        # Pixels the square uncovered have no true value in a single picture: leave them out.
        seen = np.ones(depth.shape, bool)
        lo, hi = (80, 80 + s) if s > 0 else (120 + s, 120)
        seen[40:80, lo:hi] = False
        # Nor do the background's pixels along the square's outline, left out as a render's would be
        # (partly the square's colour there).
        seen[[39, 80], 80:120] = False
        seen[40:80, [79, 120]] = False
        assert np.abs(view - truth)[seen].max() < 1e-6
        # Uncovered pixels are filled from the background beside them, never left black.
        assert (view[40:80, lo:hi].sum(axis=2) > 0).all()


def test_gap_filling_takes_the_background_side():
    picture, depth = square_scene()
    picture[:] = 0.2
    picture[40:80, 80:120] = 0.9  # bright square on a grey background
    left, _ = stereo_views(picture, depth, divergence=6.0)
    assert np.allclose(left[40:80, 80:86], 0.2)


def test_zero_divergence_is_the_picture_and_layouts():
    picture, depth = square_scene()
    left, right = stereo_views(picture, depth, divergence=0.0)
    assert np.array_equal(left, picture) and np.array_equal(right, picture)
    assert compose(left, right, "side-by-side").shape == (120, 400, 3)
    assert compose(left, right, "top-bottom").shape == (240, 200, 3)
    ana = compose(left, right, "anaglyph")
    assert np.array_equal(ana[..., 0], left[..., 0]) and np.array_equal(ana[..., 1:], right[..., 1:])
    with pytest.raises(InvalidSettingsError, match="layout"):
        compose(left, right, "checkerboard")
    with pytest.raises(InvalidSettingsError, match="Divergence"):
        stereo_views(picture, depth, divergence=50)


def test_normal_map_of_flat_and_sloped_depth():
    flat = normal_map(np.full((16, 16), 0.5, np.float32))
    assert np.allclose(flat, [0.5, 0.5, 1.0])
    ramp_right = np.tile(np.linspace(0, 1, 64, dtype=np.float32), (64, 1))  # nearer to the right
    n = normal_map(ramp_right) * 2 - 1
    assert (n[..., 0] < -0.1).all() and np.allclose(n[..., 1], 0, atol=1e-6)
    ramp_up = ramp_right.T[::-1].copy()  # nearer towards the top of the picture
    n = normal_map(ramp_up) * 2 - 1
    assert (n[..., 1] < -0.1).all() and np.allclose(n[..., 0], 0, atol=1e-6)
    assert np.allclose(np.linalg.norm(n, axis=2), 1, atol=1e-5)
    gentle = normal_map(ramp_right) * 2 - 1
    stronger = normal_map(ramp_right, strength=4.0) * 2 - 1
    assert (stronger[..., 0] < gentle[..., 0]).all()
