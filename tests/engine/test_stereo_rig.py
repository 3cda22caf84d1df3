"""Stereo pairs as a camera rig makes them: eye placement, the rig's disparity in scene units,
sub-pixel views of scenes whose other eye is known exactly, and hole filling with texture."""

import math

import numpy as np
import pytest

from engine.errors import InvalidSettingsError
from engine.stereo import focal_px, relative_disparity, relative_nearness, relative_warning, rig_disparity, stereo_pair

H, W = 60, 240


def texture(x, y, seed):
    """A smooth texture known at any sub-pixel position (so the true other view is exact)."""
    rng = np.random.default_rng(seed)
    out = np.zeros(np.broadcast(x, y).shape + (3,))
    for c in range(3):
        for _ in range(4):
            fx, fy, ph = rng.uniform(0.05, 0.35), rng.uniform(0.05, 0.3), rng.uniform(0, 6.3)
            out[..., c] += 0.12 * np.sin(fx * x + fy * y + ph)
    return (out + 0.5).astype(np.float32)


def two_planes(d_far, d_near, box=(15, 45, 100, 150), sign=1):
    """A far plane and a near box, each with its own texture fixed to its surface: one eye's view,
    its disparity, the other eye's true view (sign 1: the right eye, x_right = x_left - d; sign -1:
    the left eye, x_left = x_right + d) and where that view sees the box and the plane."""
    y, x = np.mgrid[0:H, 0:W].astype(np.float64)
    y0, y1, x0, x1 = box
    inbox = (y >= y0) & (y < y1) & (x >= x0) & (x < x1)
    left = np.where(inbox[..., None], texture(x, y, 1), texture(x, y, 2))
    disparity = np.where(inbox, d_near, d_far).astype(np.float32)
    # Right view: the box moved by -d_near in front of the plane moved by -d_far.
    xs_box = x + sign * d_near
    in_box_r = (y >= y0) & (y < y1) & (xs_box >= x0) & (xs_box < x1)
    # A pixel on the box's outline is partly box, partly plane: left out.
    box_seen = in_box_r & (xs_box >= x0 + 1) & (xs_box < x1 - 1)
    near_box = (y >= y0) & (y < y1) & (xs_box >= x0 - 1) & (xs_box < x1 + 1)
    # What the right eye sees of the plane that the left eye saw too (not behind the box in the left view).
    xs_plane = x + sign * d_far
    right = np.where(in_box_r[..., None], texture(xs_box, y, 1), texture(xs_plane, y, 2))
    behind_box = (xs_plane >= x0 - 1) & (xs_plane < x1 + 1) & (y >= y0 - 1) & (y < y1 + 1)  # with its outline
    plane_seen = ~near_box & ~behind_box & (xs_plane >= 0) & (xs_plane <= W - 1)
    return left, disparity, right, box_seen, plane_seen


def psnr(a, b, mask):
    return 10 * math.log10(1.0 / max(1e-12, float(((a - b) ** 2)[mask].mean())))


def test_rig_disparity_is_the_off_axis_camera_formula():
    z = np.array([[2.0, 4.0, 8.0, np.inf, 0.0]])
    d = rig_disparity(z, focal=500.0, interaxial=0.1, convergence=4.0)
    assert np.allclose(d, [[12.5, 0.0, -6.25, -12.5, -12.5]])  # background: infinitely far
    assert np.allclose(rig_disparity(z[:, :3], 500.0, 0.1), [[25.0, 12.5, 6.25]])  # parallel
    for bad in ({"interaxial": 0.0}, {"interaxial": -1.0}, {"convergence": 0.0}, {"focal": 0.0}):
        args = {"focal": 500.0, "interaxial": 0.1, "convergence": 4.0} | bad
        with pytest.raises(InvalidSettingsError):
            rig_disparity(z, **args)


def test_focal_length_in_pixels_fits_the_sensor_like_blender():
    assert focal_px(50, 36, 24, 1920, 1080) == pytest.approx(50 / 36 * 1920)
    assert focal_px(50, 36, 24, 1080, 1920) == pytest.approx(50 / 36 * 1920)  # AUTO: the longer side
    assert focal_px(50, 36, 24, 1080, 1920, "HORIZONTAL") == pytest.approx(50 / 36 * 1080)
    assert focal_px(50, 36, 24, 1920, 1080, "VERTICAL") == pytest.approx(50 / 24 * 1080)
    with pytest.raises(InvalidSettingsError, match="sensor fit"):
        focal_px(50, 36, 24, 10, 10, "DIAGONAL")


@pytest.mark.parametrize("d_far,d_near", [(0.0, 7.3), (-4.6, 9.25), (2.5, 12.7)])
def test_synthesised_right_eye_is_the_true_right_view_to_sub_pixel(d_far, d_near):
    left, disparity, truth, box, plane = two_planes(d_far, d_near)
    pair = stereo_pair(left, disparity, eye="left")
    assert pair.left is left  # the input is the left eye, untouched
    assert psnr(pair.right, truth, box) > 45 and psnr(pair.right, truth, plane) > 45
    assert psnr(left, truth, box | plane) < 25  # the unshifted picture is far from it
    assert pair.largest_shift == pytest.approx(100 * max(abs(d_far), abs(d_near)) / W, rel=1e-6)


def test_eye_placement_right_and_centre():
    # The input as the right eye: the left view is synthesised (x_left = x_right + d).
    right, disparity, truth, box, plane = two_planes(-3.2, 8.6, sign=-1)
    pair = stereo_pair(right, disparity, eye="right")
    assert pair.right is right
    assert psnr(pair.left, truth, box) > 45 and psnr(pair.left, truth, plane) > 45
    # Centred: each eye gets half the disparity, the two eyes differ by all of it.
    left, disparity, _, _, _ = two_planes(0.0, 8.0)
    pair = stereo_pair(left, disparity, eye="centre")
    assert np.allclose(pair.left[20:40, 120], left[20:40, 116], atol=1e-6)
    assert np.allclose(pair.right[20:40, 120], left[20:40, 124], atol=1e-6)


def test_divergence_is_the_largest_shift_between_the_eyes():
    left, _, _, _, _ = two_planes(0.0, 0.0)
    depth = np.zeros((H, W), np.float32)
    depth[15:45, 100:150] = 1.0
    d = relative_disparity(depth, 5.0)
    assert d.max() == pytest.approx(0.05 * W) and d.min() == 0.0
    for eye in ("left", "right", "centre"):
        pair = stereo_pair(left, d, eye=eye)
        assert pair.largest_shift == pytest.approx(5.0)
        # Between the two eyes the box moved by exactly 12 px (5 % of 240), wherever the input sits.
        assert np.allclose(pair.left[20:40, 125], pair.right[20:40, 113], atol=1e-6), eye
    with pytest.raises(InvalidSettingsError, match="Divergence"):
        relative_disparity(depth, 31.0)
    with pytest.raises(InvalidSettingsError, match="eye"):
        stereo_pair(left, d, eye="middle")
    with pytest.raises(InvalidSettingsError, match="differ in size"):
        stereo_pair(left[:, :10], d)


def test_slanted_surface_keeps_its_texture():
    """A receding floor: disparity falls smoothly along the row; the view stretches, no holes."""
    y, x = np.mgrid[0:H, 0:W].astype(np.float64)
    d = 2.0 + 10.0 * x / W  # nearer to the right
    # The right view of a surface with d(x) = 2 + x/24: x_r = x - d(x) = x * 23/24 - 2.
    x_l = (x + 2.0) * W / (W - 10.0)
    truth = texture(x_l, y, 3)
    pair = stereo_pair(texture(x, y, 3), d.astype(np.float32), eye="left")
    seen = x_l <= W - 1
    assert pair.filled == pytest.approx(1 - seen.mean(), abs=0.5 / W)
    assert psnr(pair.right, truth, seen) > 45


def test_holes_are_filled_from_the_background_with_its_texture():
    rng = np.random.default_rng(5)
    left = np.empty((H, W, 3), np.float32)
    left[:] = rng.uniform(0.0, 0.5, (H, W, 3))  # textured background
    left[15:45, 100:150] = 0.9  # a bright, flat near box
    disparity = np.zeros((H, W), np.float32)
    disparity[15:45, 100:150] = 10.0
    pair = stereo_pair(left, disparity, eye="left")
    # The right eye sees the box 10 px further left; the 10 px behind its right edge were never seen,
    # nor are the background's pixels along the box's outline used (in a render they are part box).
    gap = pair.right[15:45, 140:151]
    assert pair.filled == pytest.approx((30 * 11 + 2 * 50) / (H * W))
    assert (gap.max(axis=2) <= 0.5).all()  # background, not the box
    assert np.allclose(gap, left[15:45, 152:163][:, ::-1], atol=1e-6)  # mirrored from the background beside
    assert gap.std(axis=1).min() > 0.05  # texture along each row, not one pixel smeared
    assert np.array_equal(pair.right[15:45, 151:], left[15:45, 151:])
    assert np.allclose(pair.right[15:45, 90:140], 0.9)
    assert (pair.right[[14, 45], 100:150].max(axis=2) <= 0.5).all()
    unfilled = stereo_pair(left, disparity, eye="left", fill=False)
    assert (unfilled.right[15:45, 140:150] == 0).all() and unfilled.filled == pytest.approx(300 / (H * W))


def test_border_strip_is_filled_with_the_texture_beside_it():
    rng = np.random.default_rng(6)
    left = rng.uniform(0.0, 1.0, (H, W, 3)).astype(np.float32)
    pair = stereo_pair(left, np.full((H, W), 6.0, np.float32), eye="left")  # everything in front of the screen
    assert np.allclose(pair.right[:, : W - 6], left[:, 6:])
    assert pair.filled == pytest.approx(6 / W)
    strip = pair.right[:, W - 6 :]
    assert np.allclose(strip, left[:, W - 6 :][:, ::-1])  # the picture's mirror image beyond its edge
    assert strip.reshape(H, -1).std(axis=1).min() > 0.1


def test_relative_maps_are_a_rig_converged_on_the_farthest_point():
    z = np.array([[2.0, 4.0, 8.0, np.inf]])
    for x, quantity in ((1 / z, "relative"), (3 + 7 / z, "relative"), (1 / z, "inverse-distance"), (z, "distance")):
        n = relative_nearness(x, quantity)
        # Affine in inverse depth: shifts = a parallel rig's shifts minus those of the farthest point.
        assert np.allclose(n, [[1.0, 0.5, 0.25, 0.0]]), quantity
    d = relative_disparity(relative_nearness(1 / z), 10.0, width=100)
    rig = rig_disparity(z, focal=1.0, interaxial=20.0, convergence=np.inf)
    assert np.allclose(d, rig - rig.min())
    assert "no units" in relative_warning(None)
    assert "clipped" in relative_warning({"quantity": "relative", "clipped": True, "power": 2.0})
    assert relative_warning({"quantity": "relative", "source": "depth-anything"}) is None


def test_what_lies_beyond_the_edge_never_hides_what_the_picture_saw():
    rng = np.random.default_rng(7)
    right = rng.uniform(0.0, 0.5, (H, W, 3)).astype(np.float32)
    right[:, :5] = 0.9  # a near post cut by the picture's left edge
    disparity = np.zeros((H, W), np.float32)
    disparity[:, :5] = 12.0
    pair = stereo_pair(right, disparity, eye="right")  # the left eye: everything near moves right
    assert np.allclose(pair.left[:, 12:17], 0.9)  # the post
    # The background beside the post, which the right eye saw, is not covered by a guess of what
    # lies beyond the edge (the post's mirror image would reach 7..11).
    assert np.array_equal(pair.left[:, 6:12], right[:, 6:12])
    assert pair.filled == pytest.approx(6 / W)  # 0..4 never seen, and the post's halo pixel 5
