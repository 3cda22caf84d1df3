"""Tiny ONNX models with Depth Anything V2's contract, built by the tests themselves.

``pixel_values`` float32 [B, 3, H, W] -> ``predicted_depth`` float32 [B, H, W]. The depth is a
fixed, known function of the input (a weighted sum of the channels plus a bias), so tests can
check preprocessing and postprocessing against a hand computation. The oracle model's output is a
known affine function of the true inverse depth encoded in the picture, for metric alignment.
"""

from pathlib import Path

import numpy as np

WEIGHTS = (0.5, 0.3, 0.2)


def build_tiny_model(path, input_name="pixel_values", output_name="predicted_depth", opset=17):
    """Write the tiny model to ``path`` and return it."""
    return _linear_model(path, WEIGHTS, 0.0, input_name, output_name, opset)


# The ImageNet normalisation the engine applies (engine.preprocess), undone inside the oracle.
_MEAN, _STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def build_oracle_model(path, scale, shift, noise=0.0):
    """An oracle network for judging metric alignment: the picture's red channel is the true inverse
    depth (in 0..1) and its green channel noise (0..1, mean 0.5); the model outputs
    ``scale * red + shift + noise * (green - 0.5)``, i.e. a known affine function of the true inverse
    depth plus noise, as a real network's relative output is (unknown scale and shift)."""
    weights = (scale * _STD[0], noise * _STD[1], 0.0)
    bias = scale * _MEAN[0] + noise * (_MEAN[1] - 0.5) + shift
    return _linear_model(path, weights, bias)


def _linear_model(path, weights, bias, input_name="pixel_values", output_name="predicted_depth", opset=17):
    """out = ReLU(sum_c weights[c] * pixel_values[:, c] + bias), saved to ``path``."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    w = numpy_helper.from_array(np.array(weights, np.float32).reshape(1, 3, 1, 1), "w")
    b = numpy_helper.from_array(np.array(bias, np.float32), "b")
    axes = numpy_helper.from_array(np.array([1], np.int64), "axes")
    nodes = [
        helper.make_node("Mul", [input_name, "w"], ["weighted"]),
        helper.make_node("ReduceSum", ["weighted", "axes"], ["summed"], keepdims=0),
        helper.make_node("Add", ["summed", "b"], ["shifted"]),
        helper.make_node("Relu", ["shifted"], [output_name]),  # DA-V2 ends in a ReLU too
    ]
    graph = helper.make_graph(
        nodes,
        "tiny_depth",
        [helper.make_tensor_value_info(input_name, TensorProto.FLOAT, ["batch", 3, "height", "width"])],
        [helper.make_tensor_value_info(output_name, TensorProto.FLOAT, ["batch", "height", "width"])],
        initializer=[w, b, axes],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
    return path


def tiny_depth_reference(pixel_values):
    """What the tiny model computes, in numpy, for a prepared NCHW tensor."""
    w = np.array(WEIGHTS, np.float32).reshape(1, 3, 1, 1)
    return np.maximum((pixel_values * w).sum(axis=1), 0.0)
