"""Which onnxruntime execution provider runs the model, and how many CPU threads it gets.

    choose("auto", ort.get_available_providers()) -> Choice(providers, reason)

Device preference: ``auto`` takes a GPU provider when the installed onnxruntime has one and the
CPU otherwise; ``gpu`` insists on one and says why when there is none; ``cpu`` never tries a GPU.
The GPU runtimes come from the wheel: onnxruntime-directml (bundled in the Windows zip: any
DirectX 12 GPU), CoreML (in the standard macOS wheel), CUDA (onnxruntime-gpu with the CUDA
libraries, installed by the user on Linux; not bundled). ``FATHOM_ORT_PROVIDERS`` (comma-separated)
overrides the choice for experiments.
"""

import os
from dataclasses import dataclass

DEVICES = ("auto", "cpu", "gpu")
CPU = "CPUExecutionProvider"
# Fastest first. CoreML runs only the standard ops it knows and hands the rest to the CPU.
GPU_PROVIDERS = ("CUDAExecutionProvider", "DmlExecutionProvider", "CoreMLExecutionProvider")
LABELS = {
    CPU: "CPU",
    "CUDAExecutionProvider": "CUDA",
    "DmlExecutionProvider": "DirectML",
    "CoreMLExecutionProvider": "CoreML",
}
# Providers that run the com.microsoft fused ops (Attention, Gelu) the graph rewrite emits.
RUNS_FUSED_OPS = (CPU, "CUDAExecutionProvider", "DmlExecutionProvider")


@dataclass(frozen=True)
class Choice:
    providers: tuple  # what to ask onnxruntime for, in order; always ends with the CPU
    reason: str = ""  # one line when the preference could not be met ("" when it was)

    @property
    def primary(self):
        return self.providers[0]


def label(provider):
    return LABELS.get(provider, provider.replace("ExecutionProvider", ""))


def choose(device, available, env=None):
    """The providers for a Device preference, given onnxruntime's available providers."""
    device = (device or "auto").lower()
    if device not in DEVICES:
        raise ValueError(f"Unknown device {device!r}: use one of {', '.join(DEVICES)}.")
    wanted = (os.environ if env is None else env).get("FATHOM_ORT_PROVIDERS", "").strip()
    if wanted:
        order = [p.strip() for p in wanted.split(",") if p.strip() in available]
        return Choice(tuple(dict.fromkeys([*order, CPU])))
    if device == "cpu":
        return Choice((CPU,))
    gpus = [p for p in GPU_PROVIDERS if p in available]
    if gpus:
        return Choice((gpus[0], CPU))
    if device == "gpu":
        return Choice((CPU,), "no GPU runtime in this onnxruntime (" + ", ".join(available) + "): " + gpu_hint())
    return Choice((CPU,))


def gpu_hint(platform=None):
    """What a user on this platform needs for the GPU, in one sentence."""
    import sys

    platform = platform or sys.platform
    if platform == "win32":
        return "the Windows extension bundles DirectML; update the GPU driver (DirectX 12 needed)"
    if platform == "darwin":
        return "CoreML needs macOS 13 or later"
    return (
        "install onnxruntime-gpu (same version as onnxruntime) and the CUDA 12 and cuDNN 9 libraries into "
        "Blender's Python; the extension bundles the CPU runtime only"
    )


def fallback_reason(provider, exc):
    """One line saying why ``provider`` was left for the CPU."""
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return f"{label(provider)} failed, using the CPU: {first[:200]}"


def thread_count(threads=0, interactive=False, cpus=None):
    """onnxruntime intra-op threads: an explicit count as given; otherwise every core, or all but one
    while a user interface is waiting on the same machine (it stays responsive)."""
    if threads:
        return int(threads)
    if not interactive:
        return 0  # onnxruntime's own choice: one per physical core
    cpus = cpus or os.cpu_count() or 1
    return max(1, cpus - 1)
