"""Sequence benchmark: `make bench-sequence`. Ratios against baselines measured in the same run.

(a) frames per second of ``run_sequence`` (claims, stabilisation, one file per frame) on a 24-frame
    1280x720 sequence, against 24 single ``estimate`` calls each writing its file (what a script
    looping over frames does without it), on the model given (the full-size stand-in by default), at
    518 (a frame fills a network pass: no batching) and 256 (frames batched by estimate_batch);
(b) the flicker figure (mean frame-to-frame change of static pixels, % of the depth range) of the
    same kind of shot, each frame normalised alone (single calls) against stabilised, on the oracle
    network the tests build (true inverse depth under a random per-frame scale and shift, plus
    noise), whose truth also gives the worst scale error left after stabilisation.
"""

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
DEFAULT_MODEL = ROOT.parent / "shared" / "models" / "depth-anything-v2-small-standin.onnx"


def shot(count, h, w, seed=0):
    """A camera pan over a textured picture: each frame the previous one moved 4 pixels."""
    rng = np.random.default_rng(seed)
    big_w = w + 4 * count
    y, x = np.mgrid[0:h, 0:big_w] / max(h, big_w)
    base = np.stack([0.5 + 0.4 * np.sin(x * 9), 0.5 + 0.4 * np.cos(y * 7), 0.5 + 0.3 * x * y], axis=2)
    base = np.clip(base + rng.normal(0, 0.03, base.shape), 0, 1)
    return [(base[:, 4 * i : 4 * i + w] * 255).astype(np.uint8) for i in range(count)]


def speed(model, count, h, w, resolution):
    from engine.depth import estimate
    from engine.encode import write_depth
    from engine.sequence import run_sequence
    from engine.settings import DepthSettings

    frames = shot(count, h, w)
    settings = DepthSettings(resolution=resolution)
    estimate(frames[0], settings, model)  # the model loaded and warm for both
    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        for i, rgb in enumerate(frames, 1):
            write_depth(Path(tmp, "single", f"depth_{i:04d}.exr"), estimate(rgb, settings, model), "exr32")
        single = time.perf_counter() - t
        t = time.perf_counter()
        result = run_sequence(
            range(1, count + 1), lambda f: frames[f - 1], Path(tmp, "seq"), settings=settings, model_path=model
        )
        sequence = time.perf_counter() - t
    assert len(result.written) == count
    print(
        f"(a) {count} frames {w}x{h} at {resolution}: {count} single calls {count / single:.3f} frames/s, "
        f"run_sequence (stabilised, claimed, one file per frame) {count / sequence:.3f} frames/s "
        f"-> ratio {single / sequence:.2f}x the speed of single calls"
    )


def flicker(count, h, w):
    from engine.encode import read_depth
    from engine.sequence import run_sequence
    from engine.settings import DepthSettings
    from tests.oracle_model import build_oracle_model, moving_scene, oracle_picture

    rng = np.random.default_rng(3)
    truths, masks = moving_scene(count, h, w, enter=count // 3)
    pictures = [
        oracle_picture(t, s, b, rng)
        for t, s, b in zip(truths, rng.uniform(0.6, 1.5, count), rng.uniform(-0.3, 0.3, count))
    ]
    resolution = min(h, w)
    with tempfile.TemporaryDirectory() as tmp:
        model = build_oracle_model(Path(tmp, "oracle.onnx"))
        figures = {}
        for smoothing in (0.0, 0.5):
            result = run_sequence(
                range(1, count + 1),
                lambda f: pictures[f - 1],
                Path(tmp, f"s{smoothing}"),
                settings=DepthSettings(resolution=resolution, normalization="raw"),
                model_path=model,
                smoothing=smoothing,
            )
            slopes = []
            for frame in result.frames:
                static = ~masks[frame - 1]
                slopes.append(np.polyfit(truths[frame - 1][static], read_depth(result.path(frame))[static], 1)[0])
            standard = run_sequence(
                range(1, count + 1),
                lambda f: pictures[f - 1],
                Path(tmp, f"n{smoothing}"),
                settings=DepthSettings(resolution=resolution),
                model_path=model,
                smoothing=smoothing,
            )
            figures[smoothing] = (
                standard.flicker_before,
                standard.flicker_after,
                100 * float(np.max(np.abs(np.array(slopes) / slopes[0] - 1))),
            )
    (before, after, err), (_, smooth_after, smooth_err) = figures[0.0], figures[0.5]
    print(
        f"(b) flicker, {count} frames {w}x{h}, oracle network, a near object entering at frame {count // 3 + 1}: "
        f"each frame alone {before:.2f} %, stabilised {after:.2f} % ({before / after:.1f}x less), "
        f"stabilised + smoothing 0.5 {smooth_after:.2f} % ({before / smooth_after:.1f}x less); worst scale error "
        f"after stabilisation {err:.3f} % ({smooth_err:.3f} % smoothed; the test's limit is 1 %)"
    )


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, default=Path(os.environ.get("FATHOM_BENCH_MODEL", DEFAULT_MODEL)))
    parser.add_argument("--frames", type=int, default=24)
    parser.add_argument("--size", default="1280x720", help="WIDTHxHEIGHT of the frames")
    parser.add_argument(
        "--resolution",
        default="518,256",
        help="network resolutions, comma-separated (518: one frame fills a pass; 256: batches pay)",
    )
    parser.add_argument("--only", choices=("a", "b"))
    args = parser.parse_args()
    w, h = (int(v) for v in args.size.lower().split("x"))
    print(f"{os.cpu_count()} CPUs")
    if args.only in (None, "a"):
        if not args.model.is_file():
            sys.exit(f"No model at {args.model}: pass --model PATH (an ONNX file with the DA-V2 contract).")
        print(f"model: {args.model.name}")
        for resolution in (int(r) for r in args.resolution.split(",")):
            speed(args.model, args.frames, h, w, resolution)
    if args.only in (None, "b"):
        flicker(args.frames, h, w)


if __name__ == "__main__":
    main()
