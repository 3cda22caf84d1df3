"""Execution provider choice, CPU fallback and thread counts, with the real onnxruntime."""

import numpy as np
import onnxruntime as ort
import pytest

from engine import providers as prov
from engine import session as sess
from engine.depth import estimate
from engine.settings import DepthSettings
from tests.tiny_model import build_tiny_model

CPU_ONLY = ort.get_available_providers()  # this machine's wheel: the CPU build


def test_choice_for_each_device_preference():
    assert "CPUExecutionProvider" in CPU_ONLY and not set(CPU_ONLY) & set(prov.GPU_PROVIDERS)
    env = {}
    assert prov.choose("auto", CPU_ONLY, env) == prov.Choice(("CPUExecutionProvider",))
    assert prov.choose("cpu", CPU_ONLY, env) == prov.Choice(("CPUExecutionProvider",))
    gpu = prov.choose("gpu", CPU_ONLY, env)
    assert gpu.providers == ("CPUExecutionProvider",) and gpu.reason.startswith("no GPU runtime")
    # What the bundled DirectML wheel (Windows), onnxruntime-gpu (Linux) and the macOS wheel report.
    dml = ["DmlExecutionProvider", "CPUExecutionProvider"]
    assert prov.choose("auto", dml, env).providers == ("DmlExecutionProvider", "CPUExecutionProvider")
    assert prov.choose("gpu", dml, env).reason == ""
    assert prov.choose("cpu", dml, env).providers == ("CPUExecutionProvider",)
    cuda = ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"]
    assert prov.choose("auto", cuda, env).primary == "CUDAExecutionProvider"
    assert (
        prov.choose("auto", ["CoreMLExecutionProvider", "CPUExecutionProvider"], env).primary
        == "CoreMLExecutionProvider"
    )
    assert prov.choose("auto", dml, {"FATHOM_ORT_PROVIDERS": "CPUExecutionProvider"}).providers == (
        "CPUExecutionProvider",
    )
    with pytest.raises(ValueError, match="Unknown device"):
        prov.choose("tpu", CPU_ONLY, env)


def test_gpu_preference_on_a_cpu_runtime_runs_on_the_cpu_and_says_why(tmp_path):
    model = build_tiny_model(tmp_path / "tiny.onnx")
    sess.clear_sessions()
    result = estimate(np.full((40, 60, 3), 128, np.uint8), DepthSettings(resolution=256, device="gpu"), model)
    assert result.runtime["provider"] == "CPU" and result.runtime["fallback"].startswith("no GPU runtime")
    assert "no GPU runtime" in sess.runtime_summary("gpu")


def test_gpu_that_cannot_start_falls_back_to_the_cpu(tmp_path, monkeypatch):
    """onnxruntime-gpu lists CUDA even where the CUDA libraries are missing; the session must then
    run on the CPU and say so. Here the real CPU-only onnxruntime is asked for CUDA it cannot start."""
    model = build_tiny_model(tmp_path / "tiny.onnx")
    monkeypatch.setattr(ort, "get_available_providers", lambda: ["CUDAExecutionProvider", "CPUExecutionProvider"])
    session = sess.DepthSession(model, device="auto")
    assert session.providers[0] == "CPUExecutionProvider"
    assert session.info["provider"] == "CPU" and "CUDA" in session.info["fallback"]
    assert session.run(np.ones((1, 3, 14, 28), np.float32)).shape == (1, 14, 28)
    assert "CUDA" in session.describe()


def test_sessions_are_made_once_per_model_and_device(tmp_path):
    model = build_tiny_model(tmp_path / "tiny.onnx")
    sess.clear_sessions()
    first = sess.get_session(model, 1, "cpu")
    assert sess.get_session(model, 1, "cpu") is first
    assert sess.get_session(model, 1, "auto") is not first


def test_threads_leave_the_interface_a_core():
    assert prov.thread_count(0, interactive=True, cpus=8) == 7
    assert prov.thread_count(0, interactive=True, cpus=1) == 1
    assert prov.thread_count(0, interactive=False, cpus=8) == 0  # onnxruntime's own choice
    assert prov.thread_count(3, interactive=True, cpus=8) == 3  # the user's explicit count


def test_quality_and_device_are_validated():
    assert DepthSettings(quality="Draft", device="GPU").validated().quality == "draft"
    assert DepthSettings(quality="draft", resolution=1024).validated().resolution == 364
    assert DepthSettings(quality="standard", resolution=1024).validated().resolution == 1024
    with pytest.raises(Exception, match="Unknown quality"):
        DepthSettings(quality="ultra").validated()
    with pytest.raises(Exception, match="Unknown device"):
        DepthSettings(device="npu").validated()
