"""The local estimator on real onnxruntime: tiny models built here, and the full-size stand-in."""

import numpy as np
import pytest

from engine import preprocess
from engine.depth import estimate, estimate_batch
from engine.errors import CancelledError, InferenceError, InvalidSettingsError
from engine.session import get_session
from engine.settings import DepthSettings
from tests.tiny_model import build_tiny_model, tiny_depth_reference


def picture(h, w, seed=0):
    """A picture with structure at every scale: gradients, a disc, and noise."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    r = np.clip(x / w, 0, 1)
    g = np.clip(y / h, 0, 1)
    b = ((x - w / 2) ** 2 + (y - h / 2) ** 2 < (min(h, w) / 3) ** 2).astype(np.float32)
    rgb = np.stack([r, g, b], axis=2) * 0.8 + rng.random((h, w, 3), dtype=np.float32) * 0.2
    return (rgb * 255).round().astype(np.uint8)


@pytest.mark.parametrize(
    "hw,res,expected",
    [
        ((1080, 1920), 518, (518, 924)),
        ((1920, 1080), 518, (924, 518)),
        ((2304, 4096), 2048, (2044, 3640)),
        ((300, 300), 256, (252, 252)),
        ((100, 4000), 256, (252, 10234)),
    ],
)
def test_network_size_keeps_aspect_and_multiples_of_14(hw, res, expected):
    size = preprocess.network_size(*hw, res)
    assert size == expected
    assert all(s % 14 == 0 for s in size)


def test_tiny_model_matches_hand_computation(tiny_model):
    rgb = picture(90, 160)
    settings = DepthSettings(resolution=256, normalization="raw", post_resize=False)
    result = estimate(rgb, settings, tiny_model)
    tensor, size = preprocess.prepare(rgb, 256)
    assert tensor.shape == (1, 3) + size and tensor.dtype == np.float32
    assert result.depth.shape == size == (252, 462)
    np.testing.assert_allclose(result.depth, tiny_depth_reference(tensor)[0], rtol=1e-6, atol=1e-6)
    assert result.near_is_bright


def test_imagenet_normalisation_of_known_pixels():
    rgb = np.zeros((14, 14, 3), np.uint8)
    rgb[...] = (255, 0, 128)
    tensor = preprocess.to_tensor(preprocess.resize_rgb(rgb, (14, 14)))
    expected = (np.array([1.0, 0.0, 128 / 255]) - [0.485, 0.456, 0.406]) / [0.229, 0.224, 0.225]
    np.testing.assert_allclose(tensor[0, :, 0, 0], expected, rtol=1e-5)


def test_io_names_are_read_from_the_model(tmp_path):
    model = build_tiny_model(tmp_path / "named.onnx", input_name="image", output_name="depth")
    session = get_session(model)
    assert (session.input_name, session.output_name) == ("image", "depth")
    assert estimate(picture(64, 64), DepthSettings(resolution=256), model).depth.shape == (64, 64)


def test_post_resize_and_normalisation_modes(tiny_model):
    rgb = picture(120, 200)
    base = DepthSettings(resolution=256)
    std = estimate(rgb, base, tiny_model).depth
    assert std.shape == (120, 200) and std.dtype == np.float32
    assert std.min() == pytest.approx(0.0, abs=1e-6) and std.max() == pytest.approx(1.0, abs=1e-6)
    inv = estimate(rgb, DepthSettings(resolution=256, invert=True), tiny_model)
    np.testing.assert_allclose(inv.depth, 1.0 - std, atol=1e-6)
    assert not inv.near_is_bright
    raw = estimate(rgb, DepthSettings(resolution=256, normalization="raw"), tiny_model).depth
    v2 = estimate(rgb, DepthSettings(resolution=256, normalization="v2-style"), tiny_model).depth
    assert 0.0 <= v2.min() and v2.max() <= 1.0
    # Both are monotonic in the raw disparity: the order of pixels never changes.
    order = np.argsort(raw.ravel(), kind="stable")
    assert np.all(np.diff(v2.ravel()[order]) >= -1e-6)
    assert np.all(np.diff(std.ravel()[order]) >= -1e-6)
    raw_inv = estimate(rgb, DepthSettings(resolution=256, normalization="raw", invert=True), tiny_model).depth
    np.testing.assert_allclose(raw_inv, raw.max() - raw, atol=1e-5)


def test_bit_depths_agree(tiny_model):
    rgb8 = picture(96, 128)
    rgb16 = rgb8.astype(np.uint16) * 257
    rgbf = rgb8.astype(np.float32) / 255
    s = DepthSettings(resolution=256)
    d8, d16, df = (estimate(x, s, tiny_model).depth for x in (rgb8, rgb16, rgbf))
    np.testing.assert_allclose(d16, df, atol=1e-5)
    # 8-bit resampling rounds to whole levels and clips bicubic overshoot, as the reference does.
    assert np.abs(d8 - df).mean() < 1e-3 and np.abs(d8 - df).max() < 0.02
    grey = estimate(rgb8[:, :, 0], s, tiny_model).depth
    assert grey.shape == (96, 128)


def test_batch_equals_single_calls(tiny_model):
    frames = [picture(72, 128, seed=i) for i in range(5)] + [picture(64, 64, seed=9)]
    s = DepthSettings(resolution=256)
    batch = estimate_batch(frames, s, tiny_model, batch_size=3)
    assert len(batch) == len(frames)
    for frame, result in zip(frames, batch):
        np.testing.assert_allclose(result.depth, estimate(frame, s, tiny_model).depth, atol=1e-6)


def _per_image_normalising_model(path):
    """A model whose output scale depends on the whole input, like a real network's relative depth."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    w = numpy_helper.from_array(np.array([0.5, 0.3, 0.2], np.float32).reshape(1, 3, 1, 1), "w")
    axes = numpy_helper.from_array(np.array([1], np.int64), "axes")
    one = numpy_helper.from_array(np.array(1.0, np.float32), "one")
    nodes = [
        helper.make_node("Mul", ["pixel_values", "w"], ["weighted"]),
        helper.make_node("ReduceSum", ["weighted", "axes"], ["summed"], keepdims=0),
        helper.make_node("Relu", ["summed"], ["pos"]),
        helper.make_node("Add", ["pos", "one"], ["shifted"]),
        helper.make_node("ReduceMean", ["shifted"], ["mean"], keepdims=1),
        helper.make_node("Div", ["shifted", "mean"], ["predicted_depth"]),
    ]
    graph = helper.make_graph(
        nodes,
        "normalising",
        [helper.make_tensor_value_info("pixel_values", TensorProto.FLOAT, ["b", 3, "h", "w"])],
        [helper.make_tensor_value_info("predicted_depth", TensorProto.FLOAT, ["b", "h", "w"])],
        initializer=[w, axes, one],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


def test_tiles_agree_with_one_pass(tmp_path):
    model = _per_image_normalising_model(tmp_path / "norm.onnx")
    rgb = picture(300, 520, seed=3)
    s = DepthSettings(resolution=512, normalization="raw", post_resize=False)
    whole = estimate(rgb, s, model, max_tokens=10_000)
    tiled = estimate(rgb, s, model, max_tokens=12 * 12)  # 168-pixel tiles
    assert whole.tiles == 1 and tiled.tiles > 6
    assert tiled.depth.shape == whole.depth.shape
    # Tiles come back on one scale: without the fit to the global pass each tile would carry its own.
    a, b = np.polyfit(tiled.depth.ravel(), whole.depth.ravel(), 1)
    residual = whole.depth - (a * tiled.depth + b)
    assert np.abs(residual).mean() < 0.02 * whole.depth.std()
    assert np.corrcoef(tiled.depth.ravel(), whole.depth.ravel())[0, 1] > 0.995


def test_cancel_and_progress(tiny_model):
    seen = []
    estimate(
        picture(200, 300),
        DepthSettings(resolution=512),
        tiny_model,
        max_tokens=12 * 12,
        progress=lambda f, m: seen.append(f),
    )
    assert seen[-1] == 1.0 and all(b >= a for a, b in zip(seen, seen[1:]))
    calls = []

    def cancel_after_three():
        calls.append(1)
        return len(calls) > 3

    with pytest.raises(CancelledError):
        estimate(
            picture(200, 300), DepthSettings(resolution=512), tiny_model, max_tokens=12 * 12, cancel=cancel_after_three
        )


def test_sessions_are_cached_per_model_and_threads(tiny_model):
    assert get_session(tiny_model, 1) is get_session(tiny_model, 1)
    assert get_session(tiny_model, 1) is not get_session(tiny_model, 2)


def test_clear_errors(tmp_path, tiny_model):
    bad = tmp_path / "broken.onnx"
    bad.write_bytes(b"not a model")
    with pytest.raises(InferenceError, match="broken.onnx"):
        estimate(picture(32, 32), DepthSettings(resolution=256), bad)
    with pytest.raises(InvalidSettingsError, match="256 to 2048"):
        estimate(picture(32, 32), DepthSettings(resolution=4096), tiny_model)
    with pytest.raises(InvalidSettingsError, match="normalization"):
        estimate(picture(32, 32), DepthSettings(normalization="fancy"), tiny_model)


@pytest.mark.slow
def test_standin_runs_batches_and_tiles(standin_model):
    frames = [picture(135, 240, seed=i) for i in range(2)]
    s = DepthSettings(resolution=256)
    single = [estimate(f, s, standin_model) for f in frames]
    batch = estimate_batch(frames, s, standin_model)
    for a, b in zip(single, batch):
        assert a.depth.shape == (135, 240)
        np.testing.assert_allclose(a.depth, b.depth, atol=1e-4)
    tiled = estimate(frames[0], DepthSettings(resolution=364), standin_model, max_tokens=20 * 20)
    assert tiled.tiles > 1 and tiled.depth.shape == (135, 240)
    assert np.isfinite(tiled.depth).all()
