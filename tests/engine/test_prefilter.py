"""engine.prefilter: a picture pre-sharpened for a second pixel filter survives that filter."""

import numpy as np

from engine.prefilter import blur_kernel, precompensate


def _blur(picture, kernel):
    half = len(kernel) // 2
    for axis in (0, 1):
        moved = np.moveaxis(picture, axis, 0)
        padded = np.pad(moved, [(half, half)] + [(0, 0)] * (moved.ndim - 1), mode="reflect")
        moved = sum(k * padded[i : i + moved.shape[0]] for i, k in enumerate(kernel))
        picture = np.moveaxis(moved, 0, axis)
    return picture


def _psnr(a, b):
    return 10 * np.log10(1.0 / np.mean((a - b) ** 2))


def test_the_kernel_is_a_normalised_symmetric_blur():
    kernel = blur_kernel(1.5)
    assert abs(kernel.sum() - 1) < 1e-9 and np.allclose(kernel, kernel[::-1])
    assert 0.5 < kernel.max() < 0.9  # a real blur, not a delta
    assert len(blur_kernel(3.0)) > len(kernel)


def test_a_rendered_checker_comes_back_through_the_second_filter():
    kernel = blur_kernel(1.5)
    y, x = np.mgrid[0:90, 0:120]
    checker = (((x // 3) + (y // 3)) % 2).astype(float)[..., None].repeat(3, 2) * 0.8 + 0.1
    render = _blur(checker, kernel)  # what the renderer gave: filtered once
    plain = _psnr(_blur(render, kernel), render)
    sharpened = _psnr(_blur(precompensate(render, 1.5), kernel), render)
    assert plain < 30 and sharpened > plain + 15, (plain, sharpened)
    assert precompensate(render, 1.5).min() >= 0.0  # light is never negative
