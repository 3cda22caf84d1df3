"""Graph optimisation: both stand-in forms rewritten and verified against their originals with real
onnxruntime, unrecognised graphs left alone (and still running), a rewrite that differs refused."""

import json

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from engine import optimize
from engine.graph_rewrite import EXACT, INT8
from engine.session import DepthSession
from tests.conftest import SHARED_MODELS, STANDIN
from tests.tiny_model import build_tiny_model

STANDINS = {"dynamo": STANDIN, "eager": SHARED_MODELS / "depth-anything-v2-small-standin-eager.onnx"}


def _standin(form):
    if not STANDINS[form].is_file():
        pytest.fail(f"The {form} stand-in is missing: expected {STANDINS[form]} (set FATHOM_SHARED_MODELS).")
    return STANDINS[form]


def _run(path, x):
    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: x})[0]


def _ops(path):
    return [n.op_type for n in onnx.load(str(path), load_external_data=False).graph.node]


@pytest.mark.slow
@pytest.mark.parametrize("form", sorted(STANDINS))
def test_standin_rewritten_fused_and_equal_to_original(form, tmp_path):
    source = _standin(form)
    path, info = optimize.optimized_model(source, tmp_path)
    assert info["optimized"], info
    assert info["passes"]["attention blocks fused"] == 12 and info["passes"]["GELUs fused"] == 12
    ops = _ops(path)
    assert ops.count("MultiHeadAttention") == 12 and "Softmax" not in ops and "IsNaN" not in ops
    assert "Erf" not in ops and ops.count("Gelu") == 12
    # Another shape than the probe the optimiser checked, with a real picture's value range.
    x = np.random.default_rng(1).uniform(-2, 2, (2, 3, 168, 224)).astype(np.float32)
    want, got = _run(source, x), _run(path, x)
    assert got.shape == want.shape
    assert np.abs(got - want).max() <= 1e-4 * (want.max() - want.min())
    # Cached: the second use reads the note and the file, and does not rewrite again.
    note = json.loads(next(tmp_path.glob("*.json")).read_text())
    assert note["optimized"] and note["max_relative_difference"] <= optimize.TOLERANCE
    mtime = path.stat().st_mtime_ns
    again, info2 = optimize.optimized_model(source, tmp_path)
    assert again == path and info2["optimized"] and path.stat().st_mtime_ns == mtime


@pytest.mark.slow
def test_a_rewrite_that_differs_is_refused_and_the_original_kept(tmp_path):
    """int8 weights held to the exact tolerance: the verification must catch the difference."""
    source = _standin("eager")
    target = tmp_path / "rewritten.onnx"
    info = optimize.build(source, target, "CPUExecutionProvider", EXACT + INT8, optimize.TOLERANCE)
    assert not info["optimized"] and "differs from the original" in info["reason"]
    assert not target.exists() and not list(tmp_path.glob("*.part"))


def test_unrecognised_graph_runs_as_it_is(tmp_path):
    model = build_tiny_model(tmp_path / "tiny.onnx")
    path, info = optimize.optimized_model(model, tmp_path / "cache")
    assert path == model and not info["optimized"] and "no known pattern" in info["reason"]
    session = DepthSession(model, optimize=True)  # the session path too: original graph, and it runs
    assert session.info["graph"] == "original"
    out = session.run(np.ones((1, 3, 28, 42), np.float32))
    assert out.shape == (1, 28, 42)


def test_damaged_file_is_not_rewritten_and_says_why(tmp_path):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not an onnx file at all")
    path, info = optimize.optimized_model(bad, tmp_path / "cache")
    assert path == bad and not info["optimized"] and "not recognised" in info["reason"]


def test_cache_name_changes_with_source_runtime_provider_and_variant():
    stems = {
        optimize.cache_stem("a" * 64, "1.23.2", "CPUExecutionProvider"),
        optimize.cache_stem("b" * 64, "1.23.2", "CPUExecutionProvider"),
        optimize.cache_stem("a" * 64, "1.24.0", "CPUExecutionProvider"),
        optimize.cache_stem("a" * 64, "1.23.2", "DmlExecutionProvider"),
        optimize.cache_stem("a" * 64, "1.23.2", "CPUExecutionProvider", "int8"),
    }
    assert len(stems) == 5
