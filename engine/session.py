"""onnxruntime sessions: one cached session per model file and thread count.

Loading Depth Anything V2 Small takes a noticeable fraction of a second and ~100 MB, so a
session is built once and reused by every generation, batch and tile (``run`` is thread-safe).
"""
import os
import threading
from collections import OrderedDict
from pathlib import Path

import numpy as np

from .errors import InferenceError

_MAX_CACHED = 2  # sessions kept alive; each holds a model's weights
_cache = OrderedDict()
_lock = threading.Lock()

# Hardware providers first when the installed onnxruntime has them; the CPU always works.
_PREFERRED = ("CUDAExecutionProvider", "CoreMLExecutionProvider", "DmlExecutionProvider", "CPUExecutionProvider")


class DepthSession:
    """A loaded model with its input and output names read from the file, not assumed."""

    def __init__(self, model_path, threads=0):
        try:
            import onnxruntime as ort
        except ImportError as exc:  # only outside Blender, where wheels are not bundled
            raise InferenceError("onnxruntime is not installed: install Fathom's requirements "
                                 "(make venvs) or use the extension zip, which bundles it.") from exc
        options = ort.SessionOptions()
        options.intra_op_num_threads = int(threads)
        options.log_severity_level = 3
        wanted = os.environ.get("FATHOM_ORT_PROVIDERS")
        available = ort.get_available_providers()
        order = wanted.split(",") if wanted else _PREFERRED
        providers = [p for p in order if p in available] or ["CPUExecutionProvider"]
        self.path = Path(model_path)
        try:
            self._session = ort.InferenceSession(str(self.path), sess_options=options, providers=providers)
        except Exception as exc:
            raise InferenceError(
                f"Could not load the model {self.path.name}: {exc}. The file may be damaged or not an ONNX "
                "model: verify or download it again (Preferences > Add-ons > Fathom, or `fathom models verify`).") from exc
        inputs, outputs = self._session.get_inputs(), self._session.get_outputs()
        if len(inputs) != 1 or not outputs:
            raise InferenceError(f"{self.path.name} is not a depth model: it needs one image input and a depth output.")
        self.input_name = inputs[0].name
        self.output_name = outputs[0].name
        self.providers = self._session.get_providers()

    def run(self, tensor):
        """NCHW float32 -> disparity, float32 [B, h, w]."""
        try:
            (out,) = self._session.run([self.output_name], {self.input_name: tensor})
        except Exception as exc:
            raise InferenceError(f"The model failed on a {tuple(tensor.shape)} input: {exc}") from exc
        out = np.asarray(out, np.float32)
        if out.ndim == 4 and out.shape[1] == 1:  # some exports keep a channel axis
            out = out[:, 0]
        if out.ndim != 3:
            raise InferenceError(f"{self.path.name} gave an output of shape {out.shape}; a depth model gives [batch, h, w].")
        return out


def get_session(model_path, threads=0):
    """The cached session for this file (path, size, modification time) and thread count."""
    path = Path(model_path).resolve()
    try:
        stat = path.stat()
    except OSError as exc:
        raise InferenceError(f"The model file {path} cannot be read: {exc.strerror}.") from exc
    key = (str(path), stat.st_size, stat.st_mtime_ns, int(threads))
    with _lock:
        session = _cache.get(key)
        if session is not None:
            _cache.move_to_end(key)
            return session
    session = DepthSession(path, threads)  # built outside the lock: loading is slow
    with _lock:
        session = _cache.setdefault(key, session)
        while len(_cache) > _MAX_CACHED:
            _cache.popitem(last=False)
    return session


def clear_sessions():
    """Forget every cached session (frees their memory)."""
    with _lock:
        _cache.clear()
