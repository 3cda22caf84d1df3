"""engine.pixel_filter: Cycles' pixel filter as a blur of a pixel-aligned texture, and its inverse.
(tests/blender/test_setups_units.py renders it: the sharpened texture comes back as the original render.)"""

import numpy as np
import pytest

from engine import pixel_filter


def test_blackman_harris_taps_are_those_measured_in_a_cycles_render():
    # Fitted by least squares from a Cycles 5.0 render of a white-noise texture on a camera-filling plane
    # (default 1.5 px Blackman-Harris, 4096 samples, no denoising): 0.163, 0.671, 0.163 across each axis.
    taps = pixel_filter.taps("BLACKMAN_HARRIS", 1.5)
    assert taps[0] == pytest.approx(0.666, abs=0.006) and taps[1] == pytest.approx(0.166, abs=0.004)
    assert taps[2] < 1e-3 and taps[3] == 0.0


@pytest.mark.parametrize("kind,width", [("BLACKMAN_HARRIS", 1.5), ("GAUSSIAN", 1.5), ("BOX", 1.0), ("BOX", 2.0)])
def test_taps_are_symmetric_weights_summing_to_one(kind, width):
    taps = pixel_filter.taps(kind, width)
    assert taps[0] + 2 * sum(taps[1:]) == pytest.approx(1.0, abs=1e-9)
    assert all(t >= 0 for t in taps) and taps[0] >= max(taps[1:])


def test_a_point_filter_leaves_only_the_bilinear_lookup():
    assert pixel_filter.taps("BLACKMAN_HARRIS", 0.01)[0] > 0.99
    assert pixel_filter.taps("BOX", 1e-6) == pytest.approx([1.0, 0.0, 0.0, 0.0])


def test_unknown_filter_is_named():
    with pytest.raises(ValueError, match="MITCHELL"):
        pixel_filter.taps("MITCHELL", 1.5)


@pytest.mark.parametrize("kind,width", [("BLACKMAN_HARRIS", 1.5), ("GAUSSIAN", 1.5), ("BOX", 1.0)])
def test_blurring_the_sharpened_picture_gives_the_picture_back(kind, width):
    rng = np.random.default_rng(3)
    y, x = np.mgrid[0:90, 0:160]
    checker = (((x // 6) + (y // 6)) % 2).astype(np.float32) * 0.8 + 0.05
    picture = np.stack([checker, 1 - checker, rng.uniform(0, 1, checker.shape).astype(np.float32)], axis=2)
    taps = pixel_filter.taps(kind, width)
    sharpened = pixel_filter.presharpen(picture, taps)
    assert sharpened.dtype == np.float32 and sharpened.shape == picture.shape
    plain = np.abs(pixel_filter.blur(picture, taps) - picture).mean()
    back = np.abs(pixel_filter.blur(sharpened, taps) - picture)
    assert back.mean() < plain / 50 and back.max() < 0.01, (back.mean(), plain, back.max())
    grey = pixel_filter.presharpen(picture[:, :, 0], taps)  # one channel keeps its shape
    np.testing.assert_allclose(grey, sharpened[:, :, 0], atol=1e-5)
