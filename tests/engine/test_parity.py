"""Parity of the engine with independent reference pipelines on the full-size stand-in model.

Reference for 8-bit pictures: transformers' DPT image processor (Pillow path), configured as
Depth Anything V2's published preprocessor_config.json, feeding its own onnxruntime session.
For 16-bit and float pictures that processor would squeeze the picture through 8 bits before
resizing, so their reference resizes with tests/engine/reference_resize.py (plain numpy) and
lets the processor do the rest. The stand-in's random weights amplify input differences, so
this checks the resampling exactly, not approximately. Bounds from the issue: mean absolute
difference of min-max normalised outputs below 1e-3, maximum below 1e-2.
"""

import numpy as np
import pytest

from engine.depth import estimate
from engine.imageio import read_image
from engine.settings import DepthSettings
from tests.engine.reference_resize import resize_bicubic

pytestmark = pytest.mark.slow
RES = 518


def held_back_picture(h, w, seed):
    """A photo-like picture not used anywhere else: smooth shading, edges, texture."""
    rng = np.random.default_rng(1000 + seed)
    y, x = np.mgrid[0:h, 0:w] / max(h, w)
    sky = np.stack([0.4 + 0.3 * y, 0.6 + 0.2 * y, 0.9 - 0.1 * y], axis=2)
    ground = np.stack([0.3 + 0.2 * x, 0.5 - 0.2 * y, 0.2 + 0 * x], axis=2)
    horizon = 0.45 + 0.05 * np.sin(x * 9 + seed)
    img = np.where((y > horizon)[:, :, None], ground, sky)
    for _ in range(6):
        cy, cx, r = rng.random() * 0.8 + 0.1, rng.random() * 0.9, rng.random() * 0.15 + 0.03
        blob = (y - cy) ** 2 + (x - cx) ** 2 < r * r
        img[blob] = rng.random(3)
    img += rng.normal(0, 0.02, img.shape)
    return np.clip(img, 0, 1)


def processor(do_resize):
    from transformers import DPTImageProcessorPil

    return DPTImageProcessorPil(
        do_resize=do_resize,
        size={"height": RES, "width": RES},
        keep_aspect_ratio=True,
        ensure_multiple_of=14,
        resample=3,
        do_rescale=True,
        rescale_factor=1 / 255,
        do_normalize=True,
        image_mean=[0.485, 0.456, 0.406],
        image_std=[0.229, 0.224, 0.225],
        do_pad=False,
    )


@pytest.fixture(scope="module")
def reference_session(standin_model):
    import onnxruntime as ort

    return ort.InferenceSession(str(standin_model), providers=["CPUExecutionProvider"])


def run_reference(session, pixel_values):
    name = session.get_inputs()[0].name
    out = session.run(None, {name: pixel_values.astype(np.float32)})[0][0]
    return (out - out.min()) / (out.max() - out.min())


def engine_depth(rgb, model):
    settings = DepthSettings(resolution=RES, post_resize=False, normalization="standard")
    return estimate(rgb, settings, model).depth


def assert_parity(ours, ref):
    assert ours.shape == ref.shape
    diff = np.abs(ours - ref)
    print(f"parity: mean {diff.mean():.2e} max {diff.max():.2e}")
    assert diff.mean() < 1e-3 and diff.max() < 1e-2


@pytest.mark.parametrize("size,seed", [((480, 640), 1), ((720, 540), 2)])
def test_8bit_png_matches_transformers(tmp_path, size, seed, standin_model, reference_session):
    from PIL import Image

    path = tmp_path / "photo.png"
    Image.fromarray((held_back_picture(*size, seed) * 255).round().astype(np.uint8)).save(path)
    rgb = read_image(path).rgb
    assert rgb.dtype == np.uint8
    ref = run_reference(reference_session, processor(True)(rgb, return_tensors="np")["pixel_values"])
    assert_parity(engine_depth(rgb, standin_model), ref)


def _reference_high_precision(unit_rgb, session):
    from engine.preprocess import network_size

    h, w = network_size(*unit_rgb.shape[:2], RES)
    resized = resize_bicubic(unit_rgb, h, w).astype(np.float32)
    # The processor's own rescale expects 0..255; hand it the resized picture on that scale.
    pixel_values = processor(False)(resized * 255, return_tensors="np")["pixel_values"]
    return run_reference(session, pixel_values)


def test_16bit_png_matches_reference(tmp_path, standin_model, reference_session):
    from PIL import Image

    pic = (held_back_picture(600, 800, 3) * 65535).round().astype(np.uint16)
    path = tmp_path / "photo16.png"
    Image.fromarray(pic[:, :, 1]).save(path)  # uint16 -> a 16-bit grey PNG
    rgb = read_image(path).rgb
    assert rgb.dtype == np.uint16 and rgb.max() > 255  # really 16-bit
    ref = _reference_high_precision(rgb / 65535.0, reference_session)
    assert_parity(engine_depth(rgb, standin_model), ref)


def test_float_picture_matches_reference(standin_model, reference_session):
    rgb = held_back_picture(500, 700, 4).astype(np.float32)
    ref = _reference_high_precision(rgb.astype(np.float64), reference_session)
    assert_parity(engine_depth(rgb, standin_model), ref)


def test_independent_resize_agrees_with_pillow():
    """The numpy reference is itself checked against Pillow's float resampling."""
    from PIL import Image

    plane = held_back_picture(97, 131, 5)[:, :, 0].astype(np.float32)
    for h, w in ((42, 56), (200, 280)):
        ours = resize_bicubic(plane, h, w)
        pil = np.asarray(Image.fromarray(plane, "F").resize((w, h), Image.Resampling.BICUBIC))
        assert np.abs(ours - pil).max() < 1e-5
