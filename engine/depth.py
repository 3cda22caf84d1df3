"""Local depth estimation: picture in, depth map out, following Depth Anything V2's contract.

    estimate(rgb, settings, model_path)          one picture
    estimate_batch(frames, settings, model_path) frames of one size share network passes

The flow is prepare (preprocess.py) -> session.run (session.py, cached) -> back to the source
size (``post_resize``) -> normalize.py. Past ``max_tokens`` per pass the picture goes through
tiling.py (or one pass at the largest resolution that fits, if the settings ask for the whole
picture only), which keeps memory bounded at any resolution.
"""

import time
from dataclasses import dataclass, field

import numpy as np

from . import preprocess
from .errors import CancelledError
from .imageio import Picture, read_array
from .normalize import normalize_with_range
from .session import get_session
from .settings import DepthSettings
from .tiling import merge_detail, one_pass_resolution, tile_overlap, tile_side, tokens
from .units import DepthUnits, from_normalization

# Tokens in one network pass. 55 x 55 patches (a 770-pixel square) peak at about 1.9 GiB on the
# CPU with DA-V2 Small (measured); beyond it the picture is tiled. Attention memory grows with
# the square of this, so a 2048-pixel short side in one pass would need tens of GiB.
DEFAULT_MAX_TOKENS = 55 * 55


@dataclass
class DepthMap:
    depth: np.ndarray  # float32 HxW
    near_is_bright: bool
    model: str
    settings: DepthSettings
    network_size: tuple  # (h, w) the network saw (per tile when tiled)
    tiles: int = 1  # network passes over tiles; 1: one pass over the whole picture
    timings: dict = field(default_factory=dict)
    runtime: dict = field(default_factory=dict)  # session.info: provider, graph form, fallback reason
    units: DepthUnits | None = None  # what the values mean (engine.units); None: unknown

    def describe(self):
        """What a result file records about how the map was made: tiled or not, and how many tiles."""
        return {
            "fathom.tiled": self.tiles > 1,
            "fathom.tiles": int(self.tiles),
            "fathom.network_size": [int(s) for s in self.network_size],
        }


def as_rgb(image):
    """A Picture's RGB, or an in-memory array validated by imageio.read_array (alpha dropped)."""
    if isinstance(image, Picture):
        return image.rgb
    return read_array(image).rgb


class _Steps:
    """Progress in the caller's terms (fraction, message) and cancellation between steps."""

    def __init__(self, progress, cancel):
        self.progress, self.cancel = progress, cancel

    def check(self):
        if self.cancel is not None and self.cancel():
            raise CancelledError("Depth generation was cancelled; nothing was written.")

    def report(self, fraction, message):
        if self.progress is not None:
            self.progress(min(max(fraction, 0.0), 1.0), message)


def _finish(disparity, source_hw, settings, model_name, network_hw, tiles, timings, started):
    t = time.perf_counter()
    if settings.post_resize:
        disparity = preprocess.resize_plane(disparity, source_hw)
    depth, near_is_bright, value_range = normalize_with_range(disparity, settings.normalization, settings.invert)
    units = from_normalization(
        settings.normalization, settings.invert, value_range, quantity="relative", source=model_name
    )
    timings["postprocess"] = time.perf_counter() - t
    timings["total"] = time.perf_counter() - started
    return DepthMap(depth, near_is_bright, model_name, settings, network_hw, tiles, timings, units=units)


def estimate(
    image, settings=None, model_path=None, *, progress=None, cancel=None, max_tokens=DEFAULT_MAX_TOKENS, model_name=None
):
    """Depth of one picture. ``model_path`` is an ONNX file with the DA-V2 contract.

    Past ``max_tokens`` per pass, ``settings.tiling`` decides: "detail" runs a whole-picture pass
    and tiles (tiling.py); "whole" runs one pass at the largest resolution that fits.
    ``DepthMap.tiles`` and ``network_size`` say which happened."""
    settings = (settings or DepthSettings()).validated()
    steps = _Steps(progress, cancel)
    started = time.perf_counter()
    rgb = as_rgb(image)
    session = get_session(model_path, settings.threads, settings.device, settings.quality)
    name = model_name or settings.model
    h, w = rgb.shape[:2]
    net_h, net_w = preprocess.network_size(h, w, settings.resolution)
    timings = {}
    steps.check()
    steps.report(0.0, "Preparing the picture")
    resolution = settings.resolution
    if tokens((net_h, net_w)) > max_tokens:
        resolution = one_pass_resolution(h, w, settings.resolution, max_tokens)
        if settings.tiling == "detail":
            result = _estimate_tiled(
                rgb, session, settings, name, (net_h, net_w), resolution, max_tokens, steps, timings, started
            )
            steps.report(1.0, "Depth ready")
            return result
    t = time.perf_counter()
    tensor, size = preprocess.prepare(rgb, resolution)
    timings["preprocess"] = time.perf_counter() - t
    steps.report(0.1, "Estimating depth")
    t = time.perf_counter()
    disparity = session.run(tensor)[0]
    timings["inference"] = time.perf_counter() - t
    steps.check()
    result = _finish(disparity, (h, w), settings, name, size, 1, timings, started)
    steps.report(1.0, "Depth ready")
    result.runtime = dict(session.info)
    return result


def _estimate_tiled(rgb, session, settings, name, net_hw, guide_resolution, max_tokens, steps, timings, started):
    h, w = rgb.shape[:2]
    net_h, net_w = net_hw
    t = time.perf_counter()
    # The guide: the whole picture in one pass, at the largest resolution that fits one.
    global_tensor, _ = preprocess.prepare(rgb, guide_resolution)
    steps.report(0.05, "Whole-picture pass")
    guide = session.run(global_tensor)[0]
    del global_tensor
    picture = preprocess.resize_rgb(rgb, (net_h, net_w))  # the pixels a single pass would see
    timings["preprocess"] = time.perf_counter() - t
    steps.check()

    tile = tile_side(max_tokens)

    def run_tile(y, x, th, tw):
        return session.run(preprocess.to_tensor(picture[y : y + th, x : x + tw]))[0]

    t = time.perf_counter()
    disparity, count = merge_detail(
        net_h,
        net_w,
        tile,
        tile_overlap(tile),
        run_tile,
        guide,
        cancel=steps.cancel,
        progress=lambda f, msg: steps.report(0.1 + 0.85 * f, msg),
    )
    timings["inference"] = time.perf_counter() - t
    picture = guide = None  # free them before the resize back (the tile closure holds the name only)
    return _finish(disparity, (h, w), settings, name, (min(tile, net_h), min(tile, net_w)), count, timings, started)


def estimate_batch(
    frames,
    settings=None,
    model_path=None,
    *,
    batch_size=8,
    progress=None,
    cancel=None,
    max_tokens=DEFAULT_MAX_TOKENS,
    model_name=None,
):
    """Depth of several pictures. Consecutive frames of one size run as one batched network pass,
    up to ``batch_size`` frames and no more attention memory than one pass of ``max_tokens``.
    Small frames gain a lot from batching; frames that fill a pass alone gain nothing on a CPU
    and would multiply memory (measured in bench/engine_bench.py), so they go one at a time."""
    settings = (settings or DepthSettings()).validated()
    steps = _Steps(progress, cancel)
    session = get_session(model_path, settings.threads, settings.device, settings.quality)
    name = model_name or settings.model
    frames = [as_rgb(f) for f in frames]
    results = []
    i = 0
    while i < len(frames):
        steps.check()
        h, w = frames[i].shape[:2]
        net_h, net_w = preprocess.network_size(h, w, settings.resolution)
        if tokens((net_h, net_w)) > max_tokens:
            results.append(
                estimate(frames[i], settings, model_path, cancel=cancel, max_tokens=max_tokens, model_name=name)
            )
            i += 1
        else:
            per_frame = tokens((net_h, net_w))
            # Attention memory grows with frames x tokens squared: keep a batch within one full pass.
            limit = max(1, min(batch_size, (max_tokens * max_tokens) // (per_frame * per_frame)))
            group = [frames[i]]
            while (
                len(group) < limit and i + len(group) < len(frames) and frames[i + len(group)].shape == frames[i].shape
            ):
                group.append(frames[i + len(group)])
            started = time.perf_counter()
            t = time.perf_counter()
            tensor = np.concatenate([preprocess.prepare(f, settings.resolution)[0] for f in group])
            prep = (time.perf_counter() - t) / len(group)
            t = time.perf_counter()
            out = session.run(tensor)
            infer = (time.perf_counter() - t) / len(group)
            for disparity in out:
                timings = {"preprocess": prep, "inference": infer}
                results.append(_finish(disparity, (h, w), settings, name, (net_h, net_w), 1, timings, started))
                results[-1].runtime = dict(session.info)
            i += len(group)
        steps.report(i / len(frames), f"Frame {i} of {len(frames)}")
    return results
