"""Tiling benchmark (part of `make bench`): quality at full size against a known truth, and cost.

(q) quality: oracle networks (tests/oracle.py: the true depth in the picture, per-pass affine,
    and for oracle B a smooth bias of 5 % or 10 % inside every pass) on 2048x1152 and
    4096x2304 at resolution 2048. Rows: one 518 pass, "whole picture only" (one pass at the
    largest size that fits), "sharp detail (tiled)", and an ideal single 2048 pass (what
    tiling stands in for; it would need tens of GiB on a real network). Figures are after one
    global least-squares scale and shift, in units of the depth range; the issue's done-when
    checks are printed for oracle B 5 % on 2048x1152 and oracle A.
(t) cost: the full-size stand-in network on 4096x2304 in fresh processes: a tiled run at 2048
    against one 518 pass and against "whole picture only" at 2048 (time ratio and peak memory;
    the tiled run must stay under 6 GiB).

Run alone: `.venv/bin/python -m bench.tiling_bench [--only q|t]`.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_MODEL = ROOT.parent / "shared" / "models" / "depth-anything-v2-small-standin.onnx"
GIB = 1024**3
COLUMNS = ("rms", "edge_rms", "distortion", "rise", "bar1", "bar8_min", "bar8_max", "seam", "own_jump")


def quality():
    sys.path.insert(0, str(ROOT))
    from engine import preprocess
    from engine.depth import DEFAULT_MAX_TOKENS, estimate
    from engine.settings import DepthSettings
    from engine.tiling import tile_overlap, tile_side
    from tests.oracle import build_oracle, fit_to_truth, gradient_scene, measure, seam_lines, structured_scene

    folder = Path(tempfile.mkdtemp(prefix="fathom-oracles-"))
    oracles = {bias: build_oracle(folder / f"oracle_{bias}.onnx", bias) for bias in (0.0, 0.05, 0.10)}
    tile = tile_side(DEFAULT_MAX_TOKENS)
    runs = {
        "518": (DepthSettings(resolution=518, normalization="raw"), DEFAULT_MAX_TOKENS),
        "whole": (DepthSettings(resolution=2048, normalization="raw", tiling="whole"), DEFAULT_MAX_TOKENS),
        "tiled": (DepthSettings(resolution=2048, normalization="raw"), DEFAULT_MAX_TOKENS),
        "ideal": (DepthSettings(resolution=2048, normalization="raw"), 10**9),
    }
    checks = []
    for h, w in ((1152, 2048), (2304, 4096)):
        net = preprocess.network_size(h, w, 2048)
        seams = (seam_lines(h, net[0], tile, tile_overlap(tile)), seam_lines(w, net[1], tile, tile_overlap(tile)))
        for scene in (structured_scene(h, w), gradient_scene(h, w)):
            for bias, model in oracles.items():
                print(f"(q) {scene.name} {w}x{h}, oracle {'A' if not bias else f'B {bias:.0%}'}")
                print(f"    {'':>6} " + " ".join(f"{c:>10}" for c in COLUMNS) + "   tiles   seconds")
                got, depth = {}, {}
                for name, (settings, max_tokens) in runs.items():
                    t = time.perf_counter()
                    made = estimate(scene.rgb, settings, model, max_tokens=max_tokens)
                    seconds = time.perf_counter() - t
                    got[name], depth[name] = measure(made.depth, scene, seams), made.depth
                    print(
                        f"    {name:>6} "
                        + " ".join(
                            f"{got[name].get(c, float('nan')):10.{6 if c in ('seam', 'own_jump') else 4}f}"
                            for c in COLUMNS
                        )
                        + f"   {made.tiles:5d}   {seconds:7.1f}"
                    )
                truth = scene.depth.astype(np.float64)
                gap = fit_to_truth(depth["tiled"], truth) - fit_to_truth(depth["ideal"], truth)
                print(f"    RMS(tiled - ideal 2048) {np.sqrt((gap**2).mean()):.5f}")
                t, s = got["tiled"], got["518"]
                if scene.name == "structured" and (h, w) == (1152, 2048) and bias == 0.05:
                    checks += [
                        ("B 5 %: distortion tiled <= 518", t["distortion"] <= s["distortion"]),
                        ("B 5 %: RMS tiled < 518", t["rms"] < s["rms"]),
                        (f"B 5 %: edges {s['rise'] / t['rise']:.2f}x sharper (>= 1.8)", s["rise"] / t["rise"] >= 1.8),
                        (
                            f"B 5 %: 8-px bars {t['bar8_min']:.3f}..{t['bar8_max']:.3f} of truth (0.9..1.05)",
                            0.9 <= t["bar8_min"] and t["bar8_max"] <= 1.05,
                        ),
                        ("B 5 %: seams within the picture's own error jumps", t["seam"] <= t["own_jump"]),
                    ]
                if scene.name == "structured" and bias == 0.0:
                    checks.append(
                        (f"A {w}x{h}: within 1e-3 RMS of an ideal 2048 pass", float(np.sqrt((gap**2).mean())) < 1e-3)
                    )
    for text, ok in checks:
        print(f"(q) {'PASS' if ok else 'FAIL'}  {text}")


def _child(model, h, w, resolution, tiling):
    """One estimate in a fresh interpreter: peak resident memory and time."""
    code = (
        "import resource, sys, json, time\n"
        "root, h, w, resolution, tiling, model = sys.argv[1:]\n"
        "sys.path.insert(0, root)\n"
        "from bench.engine_bench import photo\n"
        "from engine.depth import estimate\nfrom engine.settings import DepthSettings\n"
        "rgb = photo(int(h), int(w))\nt = time.perf_counter()\n"
        "r = estimate(rgb, DepthSettings(resolution=int(resolution), tiling=tiling), model)\n"
        "print(json.dumps({'peak': resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,"
        " 'tiles': r.tiles, 'net': list(r.network_size), 'seconds': time.perf_counter() - t}))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(ROOT), str(h), str(w), str(resolution), tiling, str(model)],
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def cost(model):
    single = _child(model, 2304, 4096, 518, "detail")
    whole = _child(model, 2304, 4096, 2048, "whole")
    tiled = _child(model, 2304, 4096, 2048, "detail")
    print(
        f"(t) 4096x2304 on {Path(model).name}: one 518 pass {single['seconds']:.1f} s, "
        f"{single['peak'] / GIB:.2f} GiB; whole picture only at 2048 (one {whole['net'][0]}x{whole['net'][1]} "
        f"pass) {whole['seconds']:.1f} s, {whole['peak'] / GIB:.2f} GiB; tiled at 2048 ({tiled['tiles']} tiles "
        f"of {tiled['net'][0]}x{tiled['net'][1]} + one whole-picture pass) {tiled['seconds']:.1f} s, "
        f"{tiled['peak'] / GIB:.2f} GiB"
    )
    print(
        f"(t) tiled / one 518 pass: {tiled['seconds'] / single['seconds']:.1f}x the time, "
        f"{tiled['peak'] / single['peak']:.2f}x the memory; tiled / whole: "
        f"{tiled['seconds'] / whole['seconds']:.1f}x the time; limit 6 GiB: "
        f"{'within' if tiled['peak'] < 6 * GIB else 'EXCEEDED'}"
    )


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, default=Path(os.environ.get("FATHOM_BENCH_MODEL", DEFAULT_MODEL)))
    parser.add_argument("--only", choices=("q", "t"))
    args = parser.parse_args(argv)
    if args.only in (None, "q"):
        quality()
    if args.only in (None, "t"):
        if not args.model.is_file():
            sys.exit(f"No model at {args.model}: pass --model PATH (an ONNX file with the DA-V2 contract).")
        cost(args.model)


if __name__ == "__main__":
    main()
