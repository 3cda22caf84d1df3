"""Main-thread benchmark (`make bench`): how long a plain Python loop (standing in for Blender's
main thread, which runs Python too) is kept from running while a depth map is made beside it.

Every figure is the longest gap between the loop's iterations (each sleeps 2 ms), in one run:
  idle        the loop alone: the machine's own noise, the baseline;
  in-thread   beside a worker thread calling engine.session.get_session + engine.depth.estimate (what
              the add-on did before: onnxruntime and numpy hold the GIL while loading and preparing);
  process     beside a thread driving the add-on's inference worker process
              (bridge.generation.inference), first with a new process (start, imports, model load),
              then reusing it (the model stays loaded).
The goal (issue 10): the process figures under 50 ms above idle. 1920x1080 picture, the full-size
stand-in model, resolution 518. Not a test: the figures depend on the machine's load.
"""

import argparse
import importlib
import sys
import threading
import time
import types
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_MODEL = ROOT.parent / "shared" / "models" / "depth-anything-v2-small-standin.onnx"
PACKAGE = "_fathom_bench"  # the extension's folder as a package (bridge.generation.inference needs no bpy)


def fathom(module):
    if PACKAGE not in sys.modules:
        package = types.ModuleType(PACKAGE)
        package.__path__ = [str(ROOT)]
        sys.modules[PACKAGE] = package
    return importlib.import_module(f"{PACKAGE}.{module}")


def longest_gap(work=None, seconds=None):
    """Run the probe loop until ``work`` (run on a thread) returns, or for ``seconds``; the longest
    gap between iterations in ms, and how long it ran."""
    done = threading.Event()
    errors = []

    def run():
        try:
            work()
        except BaseException as exc:  # reported below, after the loop
            errors.append(exc)
        finally:
            done.set()

    started = time.perf_counter()
    if work is not None:
        threading.Thread(target=run, daemon=True).start()
    last, gap = started, 0.0
    while not done.is_set() if work is not None else time.perf_counter() - started < seconds:
        time.sleep(0.002)
        now = time.perf_counter()
        gap, last = max(gap, now - last), now
    if errors:
        raise errors[0]
    return gap * 1000, time.perf_counter() - started


def photo(h, w):
    y, x = np.mgrid[0:h, 0:w] / max(h, w)
    return np.stack([0.5 + 0.4 * np.sin(x * 7), 0.5 + 0.4 * np.cos(y * 5), 0.5 + 0.3 * x * y], axis=2).astype(
        np.float32
    )


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL)
    parser.add_argument("--size", default="1920x1080")
    args = parser.parse_args(argv)
    if not args.model.is_file():
        sys.exit(f"The stand-in model is missing: {args.model}")
    width, height = map(int, args.size.split("x"))
    rgb = photo(height, width)
    depth = fathom("engine.depth")
    session = fathom("engine.session")
    settings = fathom("engine.settings").DepthSettings(resolution=518)
    inference = fathom("bridge.generation.inference")

    def in_thread():
        session.clear_sessions()
        session.get_session(args.model, settings.threads)
        depth.estimate(rgb, settings, args.model)

    def in_process():
        inference.estimate(rgb, settings, args.model)

    rows = [("idle (baseline)", *longest_gap(seconds=3.0))]
    rows.append(("in-thread: get_session + estimate", *longest_gap(in_thread)))
    rows.append(("process: new worker, model loaded", *longest_gap(in_process)))
    rows.append(("process: worker reused", *longest_gap(in_process)))
    inference.shutdown()
    idle = rows[0][1]
    print(f"Main-thread benchmark: {width}x{height}, {args.model.name}, resolution 518")
    print(f"{'':38} {'longest gap':>12} {'above idle':>11} {'ran':>7}")
    for name, gap, ran in rows:
        print(f"{name:38} {gap:9.1f} ms {gap - idle:8.1f} ms {ran:6.1f} s")
    threaded, process = rows[1][1], max(rows[2][1], rows[3][1])
    print(
        f"worker process vs in-thread: longest gap {process:.0f} ms vs {threaded:.0f} ms "
        f"({threaded / max(process, 1e-3):.1f}x less); goal: under idle + 50 ms = {idle + 50:.0f} ms"
    )


if __name__ == "__main__":
    main()
