"""An oracle depth network the tests build: its output is the true inverse depth of the picture
under a per-frame scale and shift, plus per-pixel noise, like a real network's relative depth.

The picture carries everything (after the model undoes ImageNet normalisation):
- red: the true inverse depth, 0..1;
- green: ``code + noise``: its mean over the frame sets the scale (0.5 + 2 * mean), its deviation
  from that mean is added to the output as noise (times ``NOISE_GAIN``);
- blue: a constant whose value sets the shift (2 * mean).
So a test picks each frame's scale and shift at random and knows the truth exactly.
"""

from pathlib import Path

import numpy as np

MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)
NOISE_GAIN = 0.2


def build_oracle_model(path):
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    init = [
        numpy_helper.from_array(np.array(STD, np.float32).reshape(1, 3, 1, 1), "std"),
        numpy_helper.from_array(np.array(MEAN, np.float32).reshape(1, 3, 1, 1), "mean"),
        numpy_helper.from_array(np.array([1, 1, 1], np.int64), "split"),
        numpy_helper.from_array(np.array([2, 3], np.int64), "hw"),
        numpy_helper.from_array(np.array([1], np.int64), "channel"),
        numpy_helper.from_array(np.array(0.5, np.float32), "half"),
        numpy_helper.from_array(np.array(2.0, np.float32), "two"),
        numpy_helper.from_array(np.array(NOISE_GAIN, np.float32), "gain"),
    ]
    n = helper.make_node
    nodes = [
        n("Mul", ["pixel_values", "std"], ["scaled"]),
        n("Add", ["scaled", "mean"], ["picture"]),
        n("Split", ["picture", "split"], ["r", "g", "b"], axis=1),
        n("ReduceMean", ["g", "hw"], ["g_mean"], keepdims=1),
        n("ReduceMean", ["b", "hw"], ["b_mean"], keepdims=1),
        n("Mul", ["g_mean", "two"], ["g2"]),
        n("Add", ["g2", "half"], ["scale"]),
        n("Mul", ["b_mean", "two"], ["shift"]),
        n("Sub", ["g", "g_mean"], ["g_dev"]),
        n("Mul", ["g_dev", "gain"], ["noise"]),
        n("Mul", ["r", "scale"], ["r_scaled"]),
        n("Add", ["r_scaled", "shift"], ["r_shifted"]),
        n("Add", ["r_shifted", "noise"], ["out4"]),
        n("Squeeze", ["out4", "channel"], ["predicted_depth"]),
    ]
    graph = helper.make_graph(
        nodes,
        "oracle_depth",
        [helper.make_tensor_value_info("pixel_values", TensorProto.FLOAT, ["batch", 3, "height", "width"])],
        [helper.make_tensor_value_info("predicted_depth", TensorProto.FLOAT, ["batch", "height", "width"])],
        initializer=init,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
    return path


def oracle_picture(true_inverse_depth, scale, shift, rng, noise=0.1):
    """The picture that makes the oracle answer ``scale * truth + shift`` plus noise."""
    h, w = true_inverse_depth.shape
    g = (scale - 0.5) / 2 + rng.uniform(-noise, noise, (h, w))
    g -= g.mean() - (scale - 0.5) / 2  # the mean is exact, so the scale is
    b = np.full((h, w), shift / 2)
    return np.stack([true_inverse_depth, g, b], axis=2).astype(np.float32)


def moving_scene(frames, h, w, *, enter=None):
    """True inverse depth per frame: a slanted, textured ground (static) and a near disc moving
    across; with ``enter``, the disc first appears at that frame. Returns (maps, moving masks)."""
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    ground = 0.15 + 0.45 * (y / h) + 0.05 * np.sin(x / 17.0) * np.cos(y / 23.0)
    maps, masks = [], []
    for i in range(frames):
        cx = w * (0.15 + 0.7 * i / max(frames - 1, 1))
        disc = (x - cx) ** 2 + (y - h * 0.45) ** 2 < (h * 0.18) ** 2
        if enter is not None and i < enter:
            disc[:] = False
        maps.append(np.where(disc, 0.95, ground).astype(np.float32))
        masks.append(disc)
    return maps, masks
