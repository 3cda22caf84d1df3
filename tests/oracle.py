"""Oracle depth networks and scenes with a known truth, for judging tiling (and any merge of passes).

An oracle is an ONNX model with Depth Anything V2's contract (``pixel_values`` float32
[N, 3, H, W], ImageNet-normalised -> ``predicted_depth`` float32 [N, H, W]) that reads the true
inverse depth ``D`` from the picture's red channel (the graph undoes the ImageNet normalisation;
green and blue carry texture it ignores) and answers like a relative-depth network:

- (A) ``bias=0``: per pass, ``D`` normalised over the pass (mean 0, std 1), then a fixed scale and
  shift, so every pass has its own unknown affine, as an affine-invariant network has;
- (B) ``bias>0``: (A) applied to ``D + bias * sin(pi u) sin(pi v)``, ``u``, ``v`` the position
  inside the pass: a smooth, position-dependent error of its own in every pass, as a network has
  that sees less context in a tile.

The oracle sees what the engine gives it: at a low resolution the picture has been resized down,
so thin structures are blurred away exactly as they are for a real network.

Scenes are pictures whose red channel is ``D`` in 0..1 (float32, so no 8-bit rounding hides
anything), with the positions of their edges and bars, so the metrics below know where to look.
Metrics compare a depth map with the truth after one global least-squares scale and shift.
"""

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

MEAN_R, STD_R = 0.485, 0.229
SCALE, SHIFT = 0.7, 3.0  # the oracle's own affine after normalising a pass


def build_oracle(path, bias=0.0, opset=17):
    """Write an oracle model to ``path`` (bias 0: oracle A; 0.05 or 0.10: oracle B) and return it."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    def const(name, value, dtype=np.float32):
        return numpy_helper.from_array(np.asarray(value, dtype), name)

    init = [
        const("std_r", STD_R),
        const("mean_r", MEAN_R),
        const("start", [0], np.int64),
        const("one_i", [1], np.int64),
        const("axis1", [1], np.int64),
        const("axis0", [0], np.int64),
        const("half", 0.5),
        const("one_f", 1.0),
        const("zero_f", 0.0),
        const("pi", np.pi),
        const("amp", bias),
        const("eps", 1e-12),
        const("scale", SCALE),
        const("shift", SHIFT),
        const("idx_h", 2, np.int64),
        const("idx_w", 3, np.int64),
    ]
    nodes = [
        helper.make_node("Slice", ["pixel_values", "start", "one_i", "axis1"], ["red_n"]),
        helper.make_node("Mul", ["red_n", "std_r"], ["red_s"]),
        helper.make_node("Add", ["red_s", "mean_r"], ["depth"]),  # N,1,H,W: the true D
    ]
    if bias:
        nodes += [helper.make_node("Shape", ["pixel_values"], ["shape"])]
        for axis, idx in (("h", "idx_h"), ("w", "idx_w")):
            # position inside the pass, pixel centres: (i + 0.5) / n, then sin(pi * that)
            nodes += [
                helper.make_node("Gather", ["shape", idx], [f"n_{axis}"], axis=0),
                helper.make_node("Cast", [f"n_{axis}"], [f"nf_{axis}"], to=TensorProto.FLOAT),
                helper.make_node("Range", ["zero_f", f"nf_{axis}", "one_f"], [f"i_{axis}"]),
                helper.make_node("Add", [f"i_{axis}", "half"], [f"c_{axis}"]),
                helper.make_node("Div", [f"c_{axis}", f"nf_{axis}"], [f"u_{axis}"]),
                helper.make_node("Mul", [f"u_{axis}", "pi"], [f"a_{axis}"]),
                helper.make_node("Sin", [f"a_{axis}"], [f"s_{axis}"]),
            ]
        nodes += [
            helper.make_node("Unsqueeze", ["s_h", "one_i"], ["s_h2"]),  # H,1
            helper.make_node("Unsqueeze", ["s_w", "axis0"], ["s_w2"]),  # 1,W
            helper.make_node("Mul", ["s_h2", "s_w2"], ["hump"]),
            helper.make_node("Mul", ["hump", "amp"], ["bias"]),
            helper.make_node("Add", ["depth", "bias"], ["seen"]),
        ]
    else:
        nodes += [helper.make_node("Identity", ["depth"], ["seen"])]
    nodes += [
        helper.make_node("ReduceMean", ["seen"], ["mean"], axes=[1, 2, 3], keepdims=1),
        helper.make_node("Sub", ["seen", "mean"], ["centred"]),
        helper.make_node("Mul", ["centred", "centred"], ["sq"]),
        helper.make_node("ReduceMean", ["sq"], ["var"], axes=[1, 2, 3], keepdims=1),
        helper.make_node("Add", ["var", "eps"], ["var_e"]),
        helper.make_node("Sqrt", ["var_e"], ["std"]),
        helper.make_node("Div", ["centred", "std"], ["unit"]),
        helper.make_node("Mul", ["unit", "scale"], ["scaled"]),
        helper.make_node("Add", ["scaled", "shift"], ["shifted"]),
        helper.make_node("Squeeze", ["shifted", "one_i"], ["predicted_depth"]),
    ]
    used = {name for node in nodes for name in node.input}
    init = [t for t in init if t.name in used]
    graph = helper.make_graph(
        nodes,
        "oracle_depth",
        [helper.make_tensor_value_info("pixel_values", TensorProto.FLOAT, ["batch", 3, "height", "width"])],
        [helper.make_tensor_value_info("predicted_depth", TensorProto.FLOAT, ["batch", "height", "width"])],
        initializer=init,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
    return path


def oracle_reference(pixel_values, bias=0.0):
    """What the oracle computes, in numpy, for a prepared NCHW tensor."""
    d = pixel_values[:, 0].astype(np.float64) * STD_R + MEAN_R
    if bias:
        h, w = d.shape[1:]
        sv = np.sin(np.pi * (np.arange(h) + 0.5) / h)
        su = np.sin(np.pi * (np.arange(w) + 0.5) / w)
        d = d + bias * sv[:, None] * su[None, :]
    mean = d.mean(axis=(1, 2), keepdims=True)
    std = np.sqrt(((d - mean) ** 2).mean(axis=(1, 2), keepdims=True) + 1e-12)
    return ((d - mean) / std * SCALE + SHIFT).astype(np.float32)


# ----------------------------------------------------------------------------------------------
# Scenes


@dataclass
class Scene:
    name: str
    depth: np.ndarray  # float32 HxW in 0..1: the truth
    rgb: np.ndarray  # float32 HxWx3: red = depth, green/blue = texture
    edges: list = field(default_factory=list)  # (row0, row1, col): vertical steps, profiled over rows
    bars: list = field(default_factory=list)  # (row0, row1, col, width, wall D, bar D)


def _texture(h, w, seed):
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    g = 0.5 + 0.3 * np.sin(x / 7.0) * np.cos(y / 11.0)
    b = rng.random((h, w), dtype=np.float32)
    return g, b


def _picture(name, depth, seed=0, **where):
    g, b = _texture(*depth.shape, seed)
    depth = depth.astype(np.float32)
    return Scene(name, depth, np.stack([depth, g, b], axis=2), **where)


def structured_scene(h, w, seed=0):
    """Large gradients, step edges, thin bars (1, 2, 4 and 8 px) on flat walls all over the
    picture (every tile holds some), and a repeated fence. Lengths scale with the picture."""
    k = h / 1152.0  # layout unit: 1 at 2048x1152
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    d = 0.15 + 0.35 * (x / w) + 0.25 * (y / h) ** 2  # a large, curved gradient (the room)
    edges, bars = [], []
    # Blocks with vertical step edges (furniture): near, with a gradient of their own.
    for i, (cx, cy) in enumerate(((0.18, 0.72), (0.55, 0.78), (0.85, 0.70))):
        y0, y1 = int((cy - 0.12) * h), int((cy + 0.12) * h)
        x0, x1 = int((cx - 0.08) * w), int((cx + 0.08) * w)
        level = 0.80 + 0.05 * i
        block = level + 0.05 * (y[y0:y1, x0:x1] - y0) / (y1 - y0)
        d[y0:y1, x0:x1] = block
        # Profiles at the block's left and right sides (middle half of its height).
        r0, r1 = y0 + (y1 - y0) // 4, y1 - (y1 - y0) // 4
        edges += [(r0, r1, x0), (r0, r1, x1)]
    # Flat walls with bars of 1, 2, 4 and 8 px, in bands across the whole width.
    period = max(24, round(64 * k))
    for band, (fy, wall) in enumerate(((0.10, 0.30), (0.36, 0.40), (0.55, 0.35))):
        y0, y1 = int(fy * h), int(fy * h + 40 * k) + 8
        d[y0:y1, :] = wall
        col = period // 2
        i = 0
        while col + 8 + period // 2 < w:
            width = (1, 2, 4, 8)[i % 4]
            d[y0:y1, col : col + width] = wall + 0.25
            bars.append((y0 + 4, y1 - 4, col, width, wall, wall + 0.25))
            col += period
            i += 1
    # A fence: posts of 6 px every 18 px (scaled) in front of the room, near the bottom.
    fy0, fy1 = int(0.90 * h), int(0.97 * h)
    post, gap = max(2, round(6 * k)), max(6, round(18 * k))
    for col in range(0, w, gap):
        d[fy0:fy1, col : col + post] = 0.9
    return _picture("structured", np.clip(d, 0.0, 1.0), seed, edges=edges, bars=bars)


def gradient_scene(h, w, seed=1):
    """A pure gradient: no structure at tile scale at all."""
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    return _picture("gradient", 0.1 + 0.6 * (x / w) + 0.3 * (y / h), seed)


# ----------------------------------------------------------------------------------------------
# Metrics: after one global least-squares scale and shift onto the truth


def fit_to_truth(pred, truth):
    a, b = np.polyfit(pred.ravel().astype(np.float64), truth.ravel().astype(np.float64), 1)
    return (a * pred + b).astype(np.float64)


def edge_mask(truth, radius=3):
    """Pixels within ``radius`` of a step (a jump larger than any gradient in the scenes)."""
    jump = np.zeros(truth.shape, bool)
    jump[:, 1:] |= np.abs(np.diff(truth, axis=1)) > 0.02
    jump[:, :-1] |= np.abs(np.diff(truth, axis=1)) > 0.02
    jump[1:, :] |= np.abs(np.diff(truth, axis=0)) > 0.02
    jump[:-1, :] |= np.abs(np.diff(truth, axis=0)) > 0.02
    out = jump.copy()
    for _ in range(radius):  # grow by one pixel per step (4-neighbourhood)
        grown = out.copy()
        grown[1:] |= out[:-1]
        grown[:-1] |= out[1:]
        grown[:, 1:] |= out[:, :-1]
        grown[:, :-1] |= out[:, 1:]
        out = grown
    return out


def rise_width(profile, col):
    """10-90 % rise (in pixels) of a step near ``col`` in a 1-D profile, either direction."""
    lo, hi = profile[col - 14 : col - 8].mean(), profile[col + 8 : col + 14].mean()
    seg = (profile[col - 8 : col + 8] - lo) / (hi - lo)
    xs = np.arange(col - 8, col + 8, dtype=np.float64)

    def crossing(level):
        i = int(np.argmax(seg >= level))
        if i == 0:
            return xs[0]
        return xs[i - 1] + (level - seg[i - 1]) / (seg[i] - seg[i - 1])

    return float(crossing(0.9) - crossing(0.1))


def low_pass(err, block=32):
    from engine.preprocess import resize_plane

    h, w = err.shape
    return resize_plane(err.astype(np.float32), (max(1, h // block), max(1, w // block)))


def seam_lines(source_len, net_len, tile, overlap):
    """Source-pixel positions of tile borders (starts, ends and where feathering stops)."""
    from engine.tiling import tile_starts

    lines = set()
    for s in tile_starts(net_len, tile, overlap):
        for p in (s, s + overlap, s + tile - overlap, s + tile):
            if 0 < p < net_len:
                lines.add(round(p * source_len / net_len))
    return sorted(line for line in lines if 2 <= line < source_len - 2)


def _kinks(err, mask, axis):
    """Per line between pixels i and i+1 along ``axis``: mean |step - local trend| away from depth
    steps, where the trend is the mean of the neighbouring steps. A smooth error (a slope, a
    bias, a raised-cosine blend) scores nothing; a jump or a crease scores its size."""
    e = np.moveaxis(err, axis, 0)
    m = np.moveaxis(mask, axis, 0)
    step = np.diff(e, axis=0)
    off = np.zeros_like(step)
    off[1:-1] = np.abs(step[1:-1] - 0.5 * (step[:-2] + step[2:]))
    ok = np.zeros(step.shape, bool)
    ok[1:-1] = m[1:-2] & m[2:-1] & m[:-3] & m[3:]
    return (off * ok).sum(axis=1) / np.maximum(ok.sum(axis=1), 1)


def seam_jump(err, truth, rows, cols):
    """(largest jump across a seam line, the picture's own largest elsewhere), with _kinks."""
    mask = ~edge_mask(truth, 3)
    per_col, per_row = _kinks(err, mask, 1), _kinks(err, mask, 0)
    seam_c = {c + o for c in cols for o in (-2, -1, 0, 1) if 0 <= c + o < per_col.size}
    seam_r = {r + o for r in rows for o in (-2, -1, 0, 1) if 0 <= r + o < per_row.size}
    seam = max([per_col[c] for c in seam_c] + [per_row[r] for r in seam_r] + [0.0])
    own_c = [per_col[c] for c in range(2, per_col.size - 2) if c not in seam_c]
    own_r = [per_row[r] for r in range(2, per_row.size - 2) if r not in seam_r]
    return float(seam), float(max(own_c + own_r))


def measure(pred, scene, seams=None):
    """Quality figures of ``pred`` (HxW, any affine) against ``scene``'s truth.

    ``seams``: (rows, cols) of tile borders in source pixels, for the seam figures."""
    truth = scene.depth.astype(np.float64)
    fitted = fit_to_truth(pred, truth)
    err = fitted - truth
    out = {"rms": float(np.sqrt((err**2).mean()))}
    near = edge_mask(truth, 3)
    out["edge_rms"] = float(np.sqrt((err[near] ** 2).mean())) if near.any() else 0.0
    low = low_pass(err)
    out["distortion"] = float(low.max() - low.min())
    if scene.edges:
        out["rise"] = float(np.mean([rise_width(fitted[r0:r1].mean(axis=0), c) for r0, r1, c in scene.edges]))
    if scene.bars:
        ratios = {}
        for r0, r1, c, width, wall, top in scene.bars:
            prof = fitted[r0:r1].mean(axis=0)
            bg = np.concatenate([prof[c - 14 : c - 6], prof[c + width + 6 : c + width + 14]]).mean()
            ratios.setdefault(width, []).append((prof[c : c + width].max() - bg) / (top - wall))
        for width, r in ratios.items():
            out[f"bar{width}"] = float(np.mean(r))
            out[f"bar{width}_min"] = float(np.min(r))
            out[f"bar{width}_max"] = float(np.max(r))
    if seams is not None:
        out["seam"], out["own_jump"] = seam_jump(err, truth, *seams)
    return out
