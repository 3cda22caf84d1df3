"""onnxruntime sessions: one cached session per model file, device, quality and thread count.

Loading Depth Anything V2 Small takes a noticeable fraction of a second and ~100 MB, so a
session is built once and reused by every generation, batch and tile (``run`` is thread-safe).
On first use of a model file its graph is optimised for the chosen execution provider and the
verified result cached (optimize.py); a GPU provider that fails to load or run leaves the CPU in
charge, with the reason in ``session.info``.
"""

import logging
import os
import threading
from collections import OrderedDict
from pathlib import Path

import numpy as np

from . import providers as prov
from .errors import InferenceError

log = logging.getLogger(__name__)

_MAX_CACHED = 2  # sessions kept alive; each holds a model's weights
_cache = OrderedDict()
_lock = threading.Lock()
_folder = {"path": None}  # where optimised graphs are cached; None: beside the model store
_last = {"info": None}  # the newest session's info, for the user interface

QUALITIES = ("best", "standard", "draft")  # Best: exact fp32; Standard and Draft: int8 MatMuls on the CPU


def set_cache_folder(path):
    """Cache optimised graphs in ``path`` (the add-on passes a folder of its model store)."""
    _folder["path"] = Path(path) if path else None


def cache_folder():
    if _folder["path"] is not None:
        return _folder["path"]
    from .store import default_models_dir

    return default_models_dir() / "optimized"


def _onnxruntime():
    try:
        import onnxruntime as ort
    except ImportError as exc:  # only outside Blender, where wheels are not bundled
        raise InferenceError(
            "onnxruntime is not installed: install Fathom's requirements "
            "(make venvs) or use the extension zip, which bundles it."
        ) from exc
    return ort


def _load_error(path, exc):
    return InferenceError(
        f"Could not load the model {path.name}: {exc}. The file may be damaged or not an ONNX model: verify or "
        "download it again (Preferences > Add-ons > Fathom, or `fathom models verify`)."
    )


class DepthSession:
    """A loaded model with its input and output names read from the file, not assumed.

    ``info`` says what runs it: {'device', 'provider' (label), 'graph' ('optimised', 'optimised int8'
    or 'original'), 'graph_note' (why not optimised), 'fallback' (why not the GPU), 'threads'}."""

    def __init__(self, model_path, threads=0, device="auto", quality="best", optimize=True):
        ort = _onnxruntime()
        self.path = Path(model_path)
        self.threads, self.quality, self.optimize = int(threads), quality, optimize
        choice = prov.choose(device, ort.get_available_providers())
        if choice.primary == "CUDAExecutionProvider" and hasattr(ort, "preload_dlls"):
            try:  # CUDA and cuDNN installed as pip packages (nvidia-*) are found this way
                ort.preload_dlls()
            except Exception as exc:  # the session's own load reports what is missing
                log.info("Fathom: onnxruntime.preload_dlls: %s", exc)
        self.info = {"device": device, "fallback": choice.reason, "threads": self.threads or "auto"}
        try:
            self._open(choice.providers)
        except InferenceError as exc:
            if choice.primary == prov.CPU:
                raise
            self.info["fallback"] = prov.fallback_reason(choice.primary, exc.__cause__ or exc)
            log.warning("Fathom: %s", self.info["fallback"])
            self._open((prov.CPU,))
        if self.providers[0] != choice.primary and not self.info["fallback"]:  # onnxruntime skipped it
            self.info["fallback"] = f"{prov.label(choice.primary)} could not start, using the CPU"
            log.warning("Fathom: %s", self.info["fallback"])
        _last["info"] = self.info
        inputs, outputs = self._session.get_inputs(), self._session.get_outputs()
        if len(inputs) != 1 or not outputs:
            raise InferenceError(f"{self.path.name} is not a depth model: it needs one image input and a depth output.")
        self.input_name = inputs[0].name
        self.output_name = outputs[0].name

    def _open(self, providers):
        ort = _onnxruntime()
        run_path, graph, note = self._graph_for(providers[0])
        options = ort.SessionOptions()
        options.intra_op_num_threads = self.threads
        options.log_severity_level = 3
        try:
            self._session = ort.InferenceSession(str(run_path), sess_options=options, providers=list(providers))
        except Exception as exc:
            if run_path == self.path:
                raise _load_error(self.path, exc) from exc
            # The cached rewrite would not load here; the original may.
            log.warning("Fathom: the optimised graph of %s did not load (%s); using the original", self.path.name, exc)
            graph, note = "original", f"optimised graph did not load: {exc}"
            try:
                self._session = ort.InferenceSession(str(self.path), sess_options=options, providers=list(providers))
            except Exception as again:
                raise _load_error(self.path, again) from again
        self.providers = self._session.get_providers()
        self.info.update(provider=prov.label(self.providers[0]), graph=graph, graph_note=note)

    def _graph_for(self, provider):
        """(path to load, graph description, note) for this provider and quality."""
        if not self.optimize:
            return self.path, "original", "optimisation off"
        from . import optimize

        int8 = self.quality != "best" and provider == prov.CPU  # int8 kernels are the CPU's
        try:
            path, info = optimize.optimized_model(
                self.path, cache_folder(), provider, int8=int8, fused_ops=provider in prov.RUNS_FUSED_OPS
            )
        except Exception as exc:  # e.g. an unwritable cache folder: the original always works
            log.warning("Fathom: could not optimise %s: %s", self.path.name, exc)
            return self.path, "original", str(exc)
        if not info.get("optimized"):
            return self.path, "original", info.get("reason", "")
        return path, "optimised int8" if int8 else "optimised", ""

    def run(self, tensor):
        """NCHW float32 -> disparity, float32 [B, h, w]."""
        try:
            (out,) = self._session.run([self.output_name], {self.input_name: tensor})
        except Exception as exc:
            if self.providers[0] == prov.CPU:
                raise InferenceError(f"The model failed on a {tuple(tensor.shape)} input: {exc}") from exc
            self.info["fallback"] = prov.fallback_reason(self.providers[0], exc)
            log.warning("Fathom: %s", self.info["fallback"])
            with _lock:
                if self.providers[0] != prov.CPU:
                    self._open((prov.CPU,))
            return self.run(tensor)
        out = np.asarray(out, np.float32)
        if out.ndim == 4 and out.shape[1] == 1:  # some exports keep a channel axis
            out = out[:, 0]
        if out.ndim != 3:
            raise InferenceError(
                f"{self.path.name} gave an output of shape {out.shape}; a depth model gives [batch, h, w]."
            )
        return out

    def describe(self):
        """One line for the user: where the model runs and in what form."""
        return _summary(self.info)


def _summary(info):
    text = f"{info['provider']}, {info['graph']} graph"
    return f"{text} ({info['fallback']})" if info.get("fallback") else text


def runtime_summary(device="auto"):
    """One line for a panel: what ran the newest model, else what a run on ``device`` would use."""
    info = _last["info"]
    if info is not None and info.get("device") == device:
        return _summary(info)
    try:
        choice = prov.choose(device, _onnxruntime().get_available_providers())
    except InferenceError as exc:
        return str(exc)
    return f"{prov.label(choice.primary)}" + (f" ({choice.reason})" if choice.reason else "")


def get_session(model_path, threads=0, device="auto", quality="best"):
    """The cached session for this file (path, size, modification time), device, quality and threads."""
    path = Path(model_path).resolve()
    try:
        stat = path.stat()
    except OSError as exc:
        raise InferenceError(f"The model file {path} cannot be read: {exc.strerror}.") from exc
    optimize = os.environ.get("FATHOM_OPTIMIZE", "1") != "0"
    key = (str(path), stat.st_size, stat.st_mtime_ns, int(threads), device, quality, optimize)
    with _lock:
        session = _cache.get(key)
        if session is not None:
            _cache.move_to_end(key)
            return session
    session = DepthSession(path, threads, device, quality, optimize)  # built outside the lock: loading is slow
    with _lock:
        session = _cache.setdefault(key, session)
        while len(_cache) > _MAX_CACHED:
            _cache.popitem(last=False)
    return session


def clear_sessions():
    """Forget every cached session (frees their memory)."""
    with _lock:
        _cache.clear()
