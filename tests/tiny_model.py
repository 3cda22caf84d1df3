"""Tiny ONNX models with Depth Anything V2's contract, built by the tests themselves.

``pixel_values`` float32 [B, 3, H, W] -> ``predicted_depth`` float32 [B, H, W]. The depth is a
fixed, known function of the input (a weighted sum of the channels plus a ramp down the
image), so tests can check preprocessing and postprocessing against a hand computation.
"""

from pathlib import Path

import numpy as np

WEIGHTS = (0.5, 0.3, 0.2)


def build_tiny_model(path, input_name="pixel_values", output_name="predicted_depth", opset=17):
    """Write the tiny model to ``path`` and return it."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    w = numpy_helper.from_array(np.array(WEIGHTS, np.float32).reshape(1, 3, 1, 1), "w")
    axes = numpy_helper.from_array(np.array([1], np.int64), "axes")
    nodes = [
        helper.make_node("Mul", [input_name, "w"], ["weighted"]),
        helper.make_node("ReduceSum", ["weighted", "axes"], ["summed"], keepdims=0),
        helper.make_node("Relu", ["summed"], [output_name]),  # DA-V2 ends in a ReLU too
    ]
    graph = helper.make_graph(
        nodes,
        "tiny_depth",
        [helper.make_tensor_value_info(input_name, TensorProto.FLOAT, ["batch", 3, "height", "width"])],
        [helper.make_tensor_value_info(output_name, TensorProto.FLOAT, ["batch", "height", "width"])],
        initializer=[w, axes],
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
