"""The inference worker process's side (bridge.generation.inference starts and drives it).

Run as a script by Blender's own Python (``sys.executable``), never imported by the add-on: it
imports the extension's engine under a private package name (no bpy, no registration) with the
parent's ``sys.path``, where the extension's bundled wheels are. Requests and answers are pickled
tuples of plain data (numpy arrays, dicts, strings) on standard input and a duplicate of
standard output; anything printed (onnxruntime's warnings included) goes to standard error.

The process lives as long as the add-on needs it, so onnxruntime's session cache
(engine.session.get_session) keeps the model loaded between generations. It ends when its
standard input closes (Blender quit or the add-on was disabled) or when the parent kills it (a
cancel).
"""

import importlib
import os
import pickle
import sys
import traceback
import types

PACKAGE = "_fathom_inference"


def main():
    answers = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # stray prints, C libraries included, must not corrupt the answers
    requests = sys.stdin.buffer
    hello = pickle.load(requests)
    sys.path[:0] = [p for p in hello["path"] if p not in sys.path]
    package = types.ModuleType(PACKAGE)
    package.__path__ = [hello["root"]]
    sys.modules[PACKAGE] = package
    if hello.get("nice") and hasattr(os, "nice"):
        os.nice(hello["nice"])  # the UI's threads come first on a busy machine

    def send(*message):
        pickle.dump(message, answers, protocol=pickle.HIGHEST_PROTOCOL)
        answers.flush()

    engine = importlib.import_module(PACKAGE + ".engine.depth")
    errors = importlib.import_module(PACKAGE + ".engine.errors")
    settings_module = importlib.import_module(PACKAGE + ".engine.settings")
    imageio = importlib.import_module(PACKAGE + ".engine.imageio")
    session = importlib.import_module(PACKAGE + ".engine.session")
    send("ready", os.getpid())
    while True:
        try:
            request = pickle.load(requests)
        except EOFError:
            return
        try:
            send("done", _estimate(request, engine, settings_module, imageio, session, send))
        except errors.FathomError as exc:
            send("error", type(exc).__name__, str(exc))
        except MemoryError:
            send("error", "InferenceError", "Not enough memory for this picture at this resolution.")
        except Exception:
            send("error", "InferenceError", traceback.format_exc())


def _estimate(request, engine, settings_module, imageio, session, send):
    image = request["image"]
    if isinstance(image, (str, bytes)):  # a file (its path or contents): decoded here, not on Blender's main thread
        send("progress", 0.0, "Reading the image file")
        image = imageio.read_pixels(image, as_blender=request.get("as_blender", False), name=request.get("name"))
    session.set_cache_folder(request["cache_folder"])
    settings = settings_module.DepthSettings(**request["settings"])
    made = engine.estimate(
        image,
        settings,
        request["model_path"],
        model_name=request["model_name"],
        progress=lambda fraction, message: send("progress", float(fraction), str(message)),
    )
    return {
        "depth": made.depth,
        "near_is_bright": made.near_is_bright,
        "model": made.model,
        "network_size": tuple(made.network_size),
        "tiles": made.tiles,
        "timings": dict(made.timings),
        "runtime": dict(made.runtime),
        "units": made.units.to_metadata() if made.units is not None else None,
    }


if __name__ == "__main__":
    main()
