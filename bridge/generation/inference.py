"""Local inference in a worker process, so Blender's main thread never waits for it.

onnxruntime holds Python's GIL while it builds a session (hundreds of milliseconds for a full-size
model) and numpy holds it while preparing and resizing pictures: in a thread of Blender's own
process, that freezes the UI. Here the model runs in a separate process (bridge.generation
.inference_main), started with Blender's Python (``sys.executable``) and the parent's module path
(the extension's bundled wheels), and kept alive so the model is loaded once and reused:

    estimate(image, settings, model_path, progress=, cancel=, model_name=)  any thread, no bpy

has engine.depth.estimate's signature and result; ``image`` may also be a file path or a file's
bytes, decoded in the worker (``as_blender``: as Blender gives an image datablock's pixels:
bridge.capture.picture.Capture). Progress streams back; a cancel kills the process at once (the next generation starts
a new one); a process that dies (a crash, out of memory) is reported as an InferenceError with
its last output, and Blender goes on. While Blender is interactive, inference gets at most N-1
of the machine's N cores (at least one).
"""

import collections
import os
import pickle
import queue
import subprocess
import sys
import threading
from dataclasses import asdict, replace

from ...engine import errors
from ...engine.depth import DepthMap
from ...engine.errors import CancelledError, InferenceError
from ...engine.providers import thread_count
from ...engine.session import cache_folder
from ...engine.units import DepthUnits

_MAIN = os.path.join(os.path.dirname(os.path.abspath(__file__)), "inference_main.py")
_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # the extension
_POLL_S = 0.05  # how often a waiting generation looks at its cancel flag


def ui_threads(threads: int) -> int:
    """The thread count for inference beside an interactive Blender: ``threads`` (0: automatic)
    capped at one less than the machine's cores, so the UI keeps one."""
    spare = thread_count(0, interactive=True)
    return min(threads, spare) if threads > 0 else spare


class InferenceProcess:
    """One worker process, started on first use and restarted after it ends."""

    def __init__(self):
        self.process = None  # subprocess.Popen while it lives (the tests' interest: its pid)
        self.starts = 0  # how many processes were started (a reused one is not started again)
        self._answers = None
        self._tail = collections.deque(maxlen=20)
        self._lock = threading.Lock()  # one generation at a time in one process

    def estimate(
        self, image, settings, model_path, *, progress=None, cancel=None, model_name=None, as_blender=False, name=None
    ) -> DepthMap:
        report = progress or (lambda fraction, message: None)
        with self._lock:
            if self.process is None or self.process.poll() is not None:
                report(0.0, "Starting the depth worker")
                self._start()
            request = {
                "image": str(image) if isinstance(image, os.PathLike) else image,
                "as_blender": as_blender,  # a file read as Blender reads an image datablock's
                "name": name,  # what errors call it
                "settings": asdict(replace(settings, threads=ui_threads(settings.threads))),
                "model_path": str(model_path),
                "model_name": model_name or settings.model,
                "cache_folder": str(cache_folder()),  # optimised graphs, where the add-on keeps them
            }
            try:
                pickle.dump(request, self.process.stdin, protocol=pickle.HIGHEST_PROTOCOL)
                self.process.stdin.flush()
            except OSError:
                pass  # it died: its answers end, and _wait says how
            made = self._wait(report, cancel)
        return DepthMap(
            made["depth"],
            made["near_is_bright"],
            made["model"],
            settings,
            tuple(made["network_size"]),
            made["tiles"],
            made["timings"],
            made["runtime"],
            DepthUnits.from_metadata(made["units"]) if made["units"] is not None else None,
        )

    def _wait(self, report, cancel):
        process = self.process
        while True:
            if cancel is not None and cancel():
                self.stop()
                raise CancelledError("Depth generation was cancelled; nothing was written.")
            try:
                message = self._answers.get(timeout=_POLL_S)
            except queue.Empty:
                continue
            if message is None:
                raise self._died(process)
            kind, *rest = message
            if kind == "progress":
                report(*rest)
            elif kind == "ready":
                report(0.0, "Loading the model")
            elif kind == "done":
                return rest[0]
            elif kind == "error":
                name, text = rest
                error = getattr(errors, name, InferenceError)
                if not (isinstance(error, type) and issubclass(error, errors.FathomError)):
                    error = InferenceError
                raise error(text)

    def _start(self):
        self.stop()
        self._tail.clear()
        env = dict(os.environ, PYTHONNOUSERSITE="1")
        env.setdefault("OMP_NUM_THREADS", str(ui_threads(0)))
        self.process = subprocess.Popen(
            [sys.executable, "-u", _MAIN],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
            creationflags=getattr(subprocess, "CREATE_NO_WINDOW", 0),
        )
        self.starts += 1
        hello = {"path": [p for p in sys.path if p], "root": _ROOT, "nice": 10}
        pickle.dump(hello, self.process.stdin, protocol=pickle.HIGHEST_PROTOCOL)
        self.process.stdin.flush()
        self._answers = queue.SimpleQueue()
        process = self.process
        threading.Thread(target=_read_answers, args=(process, self._answers), daemon=True, name="fathom-infer").start()
        threading.Thread(target=_read_tail, args=(process, self._tail), daemon=True, name="fathom-infer-log").start()

    def _died(self, process):
        code = process.wait()
        if self.process is process:
            self.process = None
        hint = " (killed: probably out of memory)" if code in (-9, 137) else ""
        last = "\n".join(self._tail) or "(no output)"
        return InferenceError(
            f"The depth worker process stopped unexpectedly, exit code {code}{hint}. Blender is fine and "
            f"the next generation starts a new worker; a lower Resolution needs less memory. Its last output:\n{last}"
        )

    def stop(self):
        """End the process (a cancel, or the add-on going away); the next estimate starts a new one."""
        process, self.process = self.process, None
        if process is None:
            return
        if process.poll() is None:
            process.kill()
        process.wait()
        for stream in (process.stdin, process.stdout, process.stderr):
            try:
                stream.close()
            except OSError:
                pass


def _read_answers(process, answers):
    try:
        while True:
            answers.put(pickle.load(process.stdout))
    except (EOFError, OSError, ValueError, pickle.UnpicklingError):
        pass  # ended (or killed)
    answers.put(None)


def _read_tail(process, tail):
    try:
        for line in process.stderr:
            tail.append(line.decode("utf-8", "replace").rstrip())
    except (OSError, ValueError):
        pass


_worker = InferenceProcess()


def worker() -> InferenceProcess:
    """The add-on's one inference process."""
    return _worker


def estimate(image, settings, model_path, **kwargs) -> DepthMap:
    """engine.depth.estimate, in the worker process."""
    return _worker.estimate(image, settings, model_path, **kwargs)


def shutdown():
    _worker.stop()
