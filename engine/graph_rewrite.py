"""Rewrites of a Depth Anything V2 ONNX graph that keep its output and make it faster.

Each pass recognises one exporter idiom and replaces it with the form onnxruntime runs fastest;
anything it does not recognise is left as it was. Callers (optimize.py) verify the rewritten model
against the original before using it, so a pass may be strict about what it matches but must never
be clever about what it assumes.

    drop_mask_guards   the scaled-dot-product attention export's additive mask built from an
                       always-true comparison, and its Where(IsNaN(softmax), 0, softmax) guard:
                       neither can fire in a model without an attention mask
    fuse_attention     Q/K/V projections -> heads -> MatMul -> scale -> Softmax -> MatMul -> merge
                       heads, as one packed QKV GEMM and a com.microsoft MultiHeadAttention node
    fuse_gelu          x * 0.5 * (1 + erf(x / sqrt 2)) in any association -> com.microsoft Gelu
                       (onnxruntime then folds the bias in: BiasGelu)
    quantize_matmuls   (fast presets only, not exact) constant-weight MatMuls -> int8 weights

Needs the ``onnx`` package (protobuf graph editing); the session code imports this module lazily.
"""

import math

import numpy as np
import onnx
from onnx import helper, numpy_helper

MS = "com.microsoft"


class Graph:
    """Producer/consumer indexes over a GraphProto, and the edits the passes need."""

    def __init__(self, model):
        self.model = model
        self.graph = model.graph
        self.inits = {i.name: i for i in self.graph.initializer}
        self.consts = {}
        for node in self.graph.node:
            if node.op_type == "Constant" and node.attribute and node.attribute[0].name == "value":
                self.consts[node.output[0]] = numpy_helper.to_array(node.attribute[0].t)
        self.reindex()

    def reindex(self):
        self.producer = {o: n for n in self.graph.node for o in n.output}
        self.consumers = {}
        for n in self.graph.node:
            for i in n.input:
                self.consumers.setdefault(i, []).append(n)
        self.outputs = {o.name for o in self.graph.output}

    def const(self, name):
        """The value of an initializer, a Constant or an Identity of one, else None."""
        if name in self.inits:
            return numpy_helper.to_array(self.inits[name])
        node = self.producer.get(name)
        if node is not None and node.op_type == "Identity":  # TorchScript aliases shared weights
            return self.const(node.input[0])
        return self.consts.get(name)

    def scalar(self, name):
        value = self.const(name)
        if value is None or value.size != 1:
            return None
        return float(value.reshape(()))

    def op(self, name, *types):
        node = self.producer.get(name)
        return node if node is not None and node.op_type in types else None

    def only_consumer(self, name):
        users = self.consumers.get(name, [])
        return users[0] if len(users) == 1 and name not in self.outputs else None

    def rename_uses(self, old, new):
        """Every reader of ``old`` reads ``new`` instead (graph outputs keep their names)."""
        if old in self.outputs:
            return False
        for node in self.consumers.get(old, []):
            for k, name in enumerate(node.input):
                if name == old:
                    node.input[k] = new
        return True

    def add_init(self, name, array):
        tensor = numpy_helper.from_array(np.ascontiguousarray(array), name)
        self.graph.initializer.append(tensor)
        self.inits[name] = tensor

    def unique(self, base):
        taken = set(self.producer) | set(self.inits) | {i.name for i in self.graph.input}
        name, k = base, 0
        while name in taken:
            k += 1
            name = f"{base}_{k}"
        return name

    def prune(self):
        """Drop nodes and initializers nothing reaches the outputs through."""
        needed = set(self.outputs)
        keep = []
        for node in reversed(list(self.graph.node)):
            if any(o in needed for o in node.output):
                keep.append(node)
                needed.update(i for i in node.input if i)
        keep.reverse()
        del self.graph.node[:]
        self.graph.node.extend(keep)
        unused = [i for i in self.graph.initializer if i.name not in needed]
        for init in unused:
            self.graph.initializer.remove(init)
            del self.inits[init.name]
        self.reindex()

    def ensure_domain(self, domain, version=1):
        if not any(o.domain == domain for o in self.model.opset_import):
            self.model.opset_import.append(helper.make_opsetid(domain, version))

    def toposort(self):
        """Nodes in dependency order (new nodes are appended at the end while editing)."""
        ready = {i.name for i in self.graph.input} | set(self.inits) | {""}
        pending, ordered = list(self.graph.node), []
        while pending:
            rest = []
            for node in pending:
                if all(i in ready for i in node.input):
                    ordered.append(node)
                    ready.update(node.output)
                else:
                    rest.append(node)
            if len(rest) == len(pending):
                raise ValueError("the rewritten graph has a cycle or a missing input")
            pending = rest
        del self.graph.node[:]
        self.graph.node.extend(ordered)
        self.reindex()


# --- mask guards ---------------------------------------------------------------------------------


def _through_shaping(g, name):
    """The producer of ``name`` past ops that only move or repeat values."""
    node = g.producer.get(name)
    while node is not None and node.op_type in ("Expand", "Unsqueeze", "Reshape", "Identity"):
        node = g.producer.get(node.input[0])
    return node


def _always_true(g, name):
    """A boolean tensor provably all true: GreaterOrEqual(Range(s, _, d > 0), c <= s), reshaped."""
    node = _through_shaping(g, name)
    if node is None or node.op_type != "GreaterOrEqual":
        return False
    rng, bound = _through_shaping(g, node.input[0]), g.scalar(node.input[1])
    if rng is not None and rng.op_type != "Range":
        rng = None
    if rng is None or bound is None:
        return False
    start, step = g.scalar(rng.input[0]), g.scalar(rng.input[2])
    return start is not None and step is not None and step > 0 and start >= bound


def drop_mask_guards(g):
    """Remove additive masks that add zero everywhere and NaN guards after Softmax. Returns a count."""
    dropped = 0
    for node in list(g.graph.node):
        if node.op_type == "Add":  # scores + Where(always true, 0, -big)
            for k in (0, 1):
                where = g.op(node.input[k], "Where")
                if (
                    where is not None
                    and g.scalar(where.input[1]) == 0.0
                    and _always_true(g, where.input[0])
                    and g.rename_uses(node.output[0], node.input[1 - k])
                ):
                    dropped += 1
                    break
        elif node.op_type == "Where":  # Where(IsNaN(p), 0, p) with p = Softmax(...)
            isnan = g.op(node.input[0], "IsNaN")
            if (
                isnan is not None
                and isnan.input[0] == node.input[2]
                and g.op(node.input[2], "Softmax")
                and g.scalar(node.input[1]) == 0.0
                and g.rename_uses(node.output[0], node.input[2])
            ):
                dropped += 1
    if dropped:
        g.prune()
    return dropped


# --- attention -----------------------------------------------------------------------------------


def _through_scales(g, name):
    """Follow Mul/Div by scalar constants upwards; (tensor name, product of the scales)."""
    scale = 1.0
    while True:
        node = g.op(name, "Mul", "Div")
        if node is None:
            return name, scale
        c = g.scalar(node.input[1])
        if c is None and node.op_type == "Mul":
            c, other = g.scalar(node.input[0]), node.input[1]
        else:
            other = node.input[0]
        if c is None or c == 0.0:
            return name, scale
        scale *= c if node.op_type == "Mul" else 1.0 / c
        name = other


def _projection(g, name):
    """Walk up through head-splitting Reshape/Transpose and scalar scales to ``x @ W + b``.

    Returns (x, W, b, scale, head_size) or None. ``head_size`` is the last entry of the first
    Reshape above the projection (that split [B, S, D] into [B, S, heads, head_size])."""
    scale, head_size = 1.0, None
    for _ in range(12):
        name, s = _through_scales(g, name)
        scale *= s
        node = g.producer.get(name)
        if node is None:
            return None
        if node.op_type in ("Reshape", "Transpose"):
            if node.op_type == "Reshape":
                head_size = _last_dim(g, node.input[1]) or head_size
            name = node.input[0]
            continue
        if node.op_type == "Add":
            for k in (0, 1):
                bias = g.const(node.input[k])
                mm = g.op(node.input[1 - k], "MatMul")
                if bias is not None and bias.ndim == 1 and mm is not None:
                    weight = g.const(mm.input[1])
                    if weight is not None and weight.ndim == 2 and weight.shape[1] == bias.shape[0]:
                        return mm.input[0], weight, bias, scale, head_size
        return None
    return None


def _last_dim(g, shape_name):
    """The last entry of a Reshape's target shape when it is a known positive constant."""
    value = g.const(shape_name)
    if value is None:
        concat = g.op(shape_name, "Concat")
        if concat is None:
            return None
        value = g.const(concat.input[-1])
    if value is None or value.size == 0:
        return None
    last = int(value.reshape(-1)[-1])
    return last if last > 0 else None


def _merged_output(g, name):
    """Follow the single-consumer Transpose/Reshape chain that merges heads; its last tensor."""
    last = None
    for _ in range(6):
        node = g.only_consumer(name)
        if node is None or node.op_type not in ("Transpose", "Reshape") or node.input[0] != name:
            break
        name = last = node.output[0]
    return last


def fuse_attention(g):
    """Replace each recognised self-attention block with com.microsoft MultiHeadAttention. Returns a count."""
    fused = 0
    for softmax in [n for n in g.graph.node if n.op_type == "Softmax"]:
        axis = next((a.i for a in softmax.attribute if a.name == "axis"), -1)
        if axis != -1:
            continue
        scores, post_scale = _through_scales(g, softmax.input[0])
        qk = g.op(scores, "MatMul")
        pv = g.only_consumer(softmax.output[0])
        if qk is None or pv is None or pv.op_type != "MatMul" or pv.input[0] != softmax.output[0]:
            continue
        q, k, v = (_projection(g, qk.input[0]), _projection(g, qk.input[1]), _projection(g, pv.input[1]))
        out = _merged_output(g, pv.output[0])
        if None in (q, k, v) or out is None or not q[0] == k[0] == v[0]:
            continue
        hidden = q[1].shape[0]
        head_size = q[4] or v[4]
        if (
            head_size is None
            or any(p[1].shape != (hidden, hidden) for p in (q, k, v))
            or hidden % head_size
            or v[3] != 1.0
        ):
            continue
        heads = hidden // head_size
        scale = q[3] * k[3] * post_scale
        weight = np.concatenate([q[1], k[1], v[1]], axis=1).astype(np.float32)
        bias = np.concatenate([q[2], k[2], v[2]]).astype(np.float32)
        w_name, b_name = g.unique(f"{out}_qkv_weight"), g.unique(f"{out}_qkv_bias")
        g.add_init(w_name, weight)
        g.add_init(b_name, bias)
        fused_out = g.unique(f"{out}_attention")
        # One GEMM for Q, K and V, then MultiHeadAttention: on the CPU it runs a flash-attention kernel that
        # never holds the [heads, tokens, tokens] score matrix (faster than the Attention op, measured).
        mm, qkv, split = g.unique(f"{out}_qkv_mm"), g.unique(f"{out}_qkv"), g.unique(f"{out}_split")
        names = [g.unique(f"{out}_{c}") for c in "qkv"]
        g.add_init(split, np.array([hidden] * 3, np.int64))
        g.graph.node.extend(
            [
                helper.make_node("MatMul", [q[0], w_name], [mm], name=g.unique(f"QKV_MatMul_{fused}")),
                helper.make_node("Add", [mm, b_name], [qkv], name=g.unique(f"QKV_Add_{fused}")),
                helper.make_node("Split", [qkv, split], names, name=g.unique(f"QKV_Split_{fused}"), axis=-1),
                helper.make_node(
                    "MultiHeadAttention",
                    names,
                    [fused_out],
                    name=g.unique(f"MHA_{fused}"),
                    domain=MS,
                    num_heads=heads,
                    scale=float(scale),
                ),
            ]
        )
        g.reindex()
        g.rename_uses(out, fused_out)
        fused += 1
    if fused:
        g.ensure_domain(MS)
        g.toposort()
        g.prune()
    return fused


# --- GELU ----------------------------------------------------------------------------------------


def _is(value, target):
    return value is not None and math.isclose(value, target, rel_tol=1e-5)


def fuse_gelu(g):
    """x * 0.5 * (1 + erf(x / sqrt(2))) -> Gelu(x), whatever the order of the products."""
    fused = 0
    for erf in [n for n in g.graph.node if n.op_type == "Erf"]:
        div = g.producer.get(erf.input[0])
        if div is None or div.op_type not in ("Div", "Mul"):
            continue
        c = g.scalar(div.input[1])
        if not (_is(c, math.sqrt(2)) if div.op_type == "Div" else _is(c, 1 / math.sqrt(2))):
            continue
        x = div.input[0]
        add = g.only_consumer(erf.output[0])
        if add is None or add.op_type != "Add":
            continue
        if not _is(g.scalar(add.input[1] if add.input[0] == erf.output[0] else add.input[0]), 1.0):
            continue
        end = _gelu_end(g, x, add.output[0])
        if end is None:
            continue
        out = g.unique(f"{end}_gelu")
        g.graph.node.append(helper.make_node("Gelu", [x], [out], name=g.unique(f"Gelu_{fused}"), domain=MS))
        g.reindex()
        if g.rename_uses(end, out):
            fused += 1
    if fused:
        g.ensure_domain(MS)
        g.toposort()
        g.prune()
    return fused


def _gelu_end(g, x, one_plus_erf):
    """The tensor equal to x * 0.5 * one_plus_erf, found among the three ways to associate it."""

    def other(node, name):
        return node.input[1] if node.input[0] == name else node.input[0]

    first = g.only_consumer(one_plus_erf)
    if first is None or first.op_type != "Mul":
        return None
    partner = other(first, one_plus_erf)
    if partner == x:  # (x * a) * 0.5
        second = g.only_consumer(first.output[0])
        if second is not None and second.op_type == "Mul" and _is(g.scalar(other(second, first.output[0])), 0.5):
            return second.output[0]
        return None
    if _is(g.scalar(partner), 0.5):  # x * (a * 0.5)
        second = g.only_consumer(first.output[0])
        if second is not None and second.op_type == "Mul" and other(second, first.output[0]) == x:
            return second.output[0]
        return None
    half = g.op(partner, "Mul")  # (x * 0.5) * a
    if half is not None and x in half.input and _is(g.scalar(other(half, x)), 0.5):
        return first.output[0]
    return None


# --- int8 weights ----------------------------------------------------------------------------------


def quantize_matmuls(g, min_elements=4096):
    """MatMul(x, W) with a constant 2-D W -> com.microsoft DynamicQuantizeMatMul: W as int8 with one
    symmetric scale per output column, x quantised to uint8 at run time (u8s8 GEMM: VNNI where the
    CPU has it). Not exact: for the fast presets only."""
    done = 0
    for node in [n for n in g.graph.node if n.op_type == "MatMul"]:
        weight = g.const(node.input[1])
        if weight is None or weight.ndim != 2 or weight.size < min_elements or weight.dtype != np.float32:
            continue
        peak = np.abs(weight).max(axis=0)
        scale = np.where(peak > 0, peak / 127.0, 1.0).astype(np.float32)
        q = np.clip(np.rint(weight / scale), -127, 127).astype(np.int8)
        q_name, s_name, z_name = (g.unique(f"{node.input[1]}_{t}") for t in ("int8", "scale", "zero"))
        g.add_init(q_name, q)
        g.add_init(s_name, scale)
        g.add_init(z_name, np.zeros(weight.shape[1], np.int8))
        node.op_type, node.domain = "DynamicQuantizeMatMul", MS
        node.input[:] = [node.input[0], q_name, s_name, z_name]
        done += 1
    if done:
        g.ensure_domain(MS)
        g.reindex()
        g.prune()
    return done


EXACT = (
    ("mask guards removed", drop_mask_guards),
    ("attention blocks fused", fuse_attention),
    ("GELUs fused", fuse_gelu),
)
STANDARD_OPS_ONLY = EXACT[:1]  # for providers that do not run com.microsoft ops
INT8 = (("MatMuls quantised to int8", quantize_matmuls),)


def rewrite(model, passes=EXACT):
    """Apply ``passes`` in place; returns {pass description: count} for those that changed something."""
    g = Graph(model)
    done = {}
    for label, fn in passes:
        count = fn(g)
        if count:
            done[label] = count
    if done:
        onnx.checker.check_model(model)
    return done
