"""Graph optimisation at first use of a model file, cached beside the model store.

    path, info = optimized_model(source, cache_dir, provider)

The rewrite (graph_rewrite.py) runs once per source file, onnxruntime version and execution
provider; its result lies in ``cache_dir`` under a name made of those three, with a JSON note
saying what was done. Before a rewritten file is kept it must match the original on a probe
input (max difference at most ``TOLERANCE`` of the original output's range); if it does not, or
the graph is a form the passes do not recognise, the original is used and the reason logged and
remembered, so the check is not paid again on the next start.

Nothing here is required to run a model: without the ``onnx`` package, or on any error, callers
get the source path back with the reason.
"""

import hashlib
import json
import logging
import os
import tempfile
import time
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

TOLERANCE = 1e-4  # of the original output's range, per the model contract's parity bar
INT8_TOLERANCE = 0.05  # int8 weights are approximate by design; this only catches a broken rewrite
PROBE_HW = (196, 252)  # 14 x 18 patches: every shape path of the graph, in well under a second
FORMAT = 1  # bump when the passes change, so older cached rewrites are redone


def file_sha256(path, chunk=1 << 20):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def cache_stem(sha256, ort_version, provider, variant="fp32"):
    return f"{sha256[:32]}-ort{ort_version}-{provider.replace('ExecutionProvider', '').lower()}-{variant}-v{FORMAT}"


_hashes = {}  # (path, size, mtime) -> sha256: a model is hashed once per process


def optimized_model(source, cache_dir, provider="CPUExecutionProvider", int8=False, fused_ops=True):
    """(path to run, info dict). ``info['optimized']`` says whether the path is a verified rewrite;
    ``info['reason']`` says why not when it is the source itself. ``int8``: also quantise the
    MatMuls (approximate); ``fused_ops``: the provider runs com.microsoft fused ops."""
    import onnxruntime as ort

    source = Path(source)
    try:
        stat = source.stat()
        key = (str(source.resolve()), stat.st_size, stat.st_mtime_ns)
        digest = _hashes.get(key) or _hashes.setdefault(key, file_sha256(source))
    except OSError as exc:
        return source, {"optimized": False, "reason": f"cannot read {source.name}: {exc.strerror}"}
    variant = ("int8" if int8 else "fp32") + ("" if fused_ops else "-std")
    cache_dir = Path(cache_dir)
    stem = cache_stem(digest, ort.__version__, provider, variant)
    target, note = cache_dir / f"{stem}.onnx", cache_dir / f"{stem}.json"
    try:
        info = json.loads(note.read_text(encoding="utf-8"))
        if not info.get("optimized") or target.is_file():
            return (target if info.get("optimized") else source), info
    except (OSError, ValueError):
        pass
    try:
        from .graph_rewrite import EXACT, INT8, STANDARD_OPS_ONLY
    except ImportError as exc:  # a user's own install without onnx: keep the original, try again later
        return source, {"optimized": False, "reason": f"the onnx package is missing ({exc})"}
    passes = (EXACT if fused_ops else STANDARD_OPS_ONLY) + (INT8 if int8 else ())
    info = build(source, target, provider, passes, INT8_TOLERANCE if int8 else TOLERANCE)
    if info.get("optimized"):
        log.info("%s: optimised graph cached at %s (%s)", source.name, target, info["passes"])
    else:
        log.warning("%s: running the original graph: %s", source.name, info["reason"])
    if info.pop("remember", True):
        _write_atomic(note, json.dumps(info, indent=1).encode())
    return (target if info.get("optimized") else source), info


def build(source, target, provider, passes, tolerance):
    """Rewrite ``source`` with ``passes`` into ``target`` if it then matches the original within
    ``tolerance`` of the output range on the probe; the info dict says what happened."""
    import onnx

    from .graph_rewrite import rewrite

    started = time.perf_counter()
    try:
        model = onnx.load(str(source))
        done = rewrite(model, passes)
    except Exception as exc:  # a form the passes do not understand: the original still runs
        return {"optimized": False, "reason": f"graph not recognised: {type(exc).__name__}: {exc}"}
    if not done:
        return {"optimized": False, "reason": "no known pattern in this graph; nothing to rewrite"}
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(target.name + f".{os.getpid()}.part")
    try:
        onnx.save(model, str(tmp))
        del model
        diff = verify(source, tmp, provider)
        if diff["relative"] > tolerance:
            tmp.unlink()
            return {
                "optimized": False,
                "passes": done,
                "reason": f"rewritten graph differs from the original by {diff['relative']:.2e} of the output "
                f"range on the probe (limit {tolerance:.0e})",
            }
        os.replace(tmp, target)
    except Exception as exc:
        tmp.unlink(missing_ok=True)
        return {
            "optimized": False,
            "passes": done,
            "reason": f"rewritten graph failed: {type(exc).__name__}: {exc}",
            "remember": not isinstance(exc, OSError),
        }
    return {
        "optimized": True,
        "passes": done,
        "max_relative_difference": diff["relative"],
        "seconds": round(time.perf_counter() - started, 2),
    }


def verify(original, rewritten, provider="CPUExecutionProvider", hw=PROBE_HW):
    """Both models on one seeded probe input: {'absolute', 'relative'} max differences."""
    import onnxruntime as ort

    probe = np.random.default_rng(0).standard_normal((1, 3, *hw)).astype(np.float32)
    outs = []
    for path in (original, rewritten):
        options = ort.SessionOptions()
        options.log_severity_level = 3
        providers = list(dict.fromkeys([provider, "CPUExecutionProvider"]))
        session = ort.InferenceSession(str(path), options, providers=providers)
        outs.append(session.run(None, {session.get_inputs()[0].name: probe})[0].astype(np.float64))
        del session
    a, b = outs
    if a.shape != b.shape:
        return {"absolute": float("inf"), "relative": float("inf")}
    absolute = float(np.max(np.abs(a - b)))
    spread = float(a.max() - a.min()) or 1.0
    if not np.isfinite(absolute / spread):  # NaN would pass any comparison with the limit
        return {"absolute": float("inf"), "relative": float("inf")}
    return {"absolute": absolute, "relative": absolute / spread}


def _write_atomic(path, data):
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".part")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except OSError:
        Path(tmp).unlink(missing_ok=True)
