"""A SpikingNet as a NIR graph (Pedersen et al., Nat. Commun. 2024), and NIR graphs as SpikingNets.

Export writes Input → [AvgPool2d] → Flatten → Affine → LIF → … → Affine → LI → Output (LIF instead
of LI for the spike-count readout), every parameter as a per-neuron array. NIR's neurons are
continuous-time, τ·dv/dt = (v_leak − v) + r·I, and a graph carries no time step; stepped by forward
Euler at dt they are v ← (1 − dt/τ)·v + (dt/τ)·v_leak + (r·dt/τ)·I. Writing τ = dt/(1 − β),
r = τ/dt and v_leak = 0 makes that spikeroll's v ← β·v + I. dt = 1e-4 s by default: snnTorch's
importer and exporter hard-code it, so its readers recover β. A step is one time bin of the input.

NIR spikes when v > v_threshold (strict); spikeroll when v ≥ θ. In float32 these agree exactly
when v_threshold is the largest float32 below θ, which export writes and import undoes. NIR resets
to v_reset (0); spikeroll's default subtracts θ instead, which no NIR node can say: such a
network is exported with a warning and runs as a zero-reset network elsewhere.

Import reads feed-forward chains of those nodes (and Linear, SumPool2d, IF, I), from spikeroll or
from other exporters such as snnTorch's export_to_nir. A SpikingNet has one β and one θ for every
layer and neuron, so: per-neuron β that differ (beyond float rounding) are an error naming the
node; thresholds that differ are normalised to the first LIF node's θ by scaling each neuron's
incoming weights and bias by θ/θ_i, and input gains r·dt/τ ≠ 1 and leak potentials are folded
into the incoming weights and bias likewise. These rescalings are exact in real arithmetic, not
bit for bit. spikeroll's own metadata (reset rule, dt, time bins) is honoured only in graphs that
spikeroll wrote; other producers' graphs are read by NIR's semantics alone (zero reset).

Integer networks (--neuron loihi) export through `export_integer_graph`: the Affine weights are
the integers themselves, the fixed-point constants and conventions sit in node and graph metadata.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from spikeroll.config import check_types
from spikeroll.data.events import RECORDING_US, SENSOR
from spikeroll.errors import SpikerollError
from spikeroll.nets.integer import THRESHOLD_V, IntegerNet, integer_export
from spikeroll.nets.model import SpikingNet, input_features
from spikeroll.version import __version__

DT = 1e-4  # seconds of one step that τ is written for (snnTorch's importer assumes the same)
PRODUCER = "spikeroll"
CHAIN = ("Input → [AvgPool2d|SumPool2d] → [Flatten] → (Affine|Linear → LIF|IF)… → "
         "Affine|Linear → LI|I|LIF|IF → Output")
SUPPORTED = "Input, Output, AvgPool2d, SumPool2d, Flatten, Affine, Linear, LIF, IF, LI, I"
SUBTRACT_WARNING = (
    "this network resets by subtracting θ after a spike, which NIR cannot express: the graph says "
    "v_reset = 0, so other readers run it as a zero-reset network and their predictions can differ "
    "(docs/deploy.md measures how often); train with --reset zero for an exact export")


class NIRExportWarning(UserWarning):
    """The exported graph runs differently elsewhere than in spikeroll (reset by subtraction)."""


def _nir():
    try:
        import nir
    except ImportError:
        raise SpikerollError("NIR graphs need the nir package; install it with "
                             "pip install 'spikeroll[nir]'") from None
    return nir


def strict_threshold(theta: float) -> np.float32:
    """The largest float32 below θ: for float32 v, v > this exactly when v ≥ θ."""
    t = np.float32(theta)
    return np.nextafter(t, np.float32(-np.inf)) if float(t) >= theta else t


def inclusive_threshold(v_threshold) -> np.ndarray:
    """The smallest float32 above a strict threshold: v ≥ this exactly when v > v_threshold."""
    t = np.asarray(v_threshold, np.float32)
    return np.nextafter(t, np.float32(np.inf))


# export ---------------------------------------------------------------------------------------

def _neuron(nir, n: int, beta: float, dt: float, threshold: float | None):
    """A layer of n neurons stepping v ← β·v + I at dt: LIF/IF when spiking (threshold given),
    else the leaky integrator LI/I. β = 1 (no leak) has τ = ∞, which IF and I express."""
    full = lambda value, dtype=np.float64: np.full(n, value, dtype)  # noqa: E731
    spiking = threshold is not None
    if beta == 1.0:
        r = full(1.0 / dt)
        return nir.IF(r=r, v_threshold=full(strict_threshold(threshold), np.float32), v_reset=full(0.0)) \
            if spiking else nir.I(r=r)
    tau = dt / (1.0 - beta)
    common = dict(tau=full(tau), r=full(tau / dt), v_leak=full(0.0))
    if not spiking:
        return nir.LI(**common)
    return nir.LIF(**common, v_threshold=full(strict_threshold(threshold), np.float32), v_reset=full(0.0))


def _fold_pool(weight: np.ndarray, shape: tuple[int, int, int], pool: int) -> np.ndarray:
    """First-layer weights over the unpooled frame that equal pooling with partial edge blocks (as
    spikeroll pools when pool does not divide the frame) followed by the layer."""
    C, H, W = shape
    hp, wp = math.ceil(H / pool), math.ceil(W / pool)
    rows = np.minimum(pool, H - np.arange(hp) * pool)
    cols = np.minimum(pool, W - np.arange(wp) * pool)
    per_block = weight.reshape(-1, C, hp, wp) / np.outer(rows, cols)
    full = per_block.repeat(pool, axis=2).repeat(pool, axis=3)[:, :, :H, :W]
    return np.ascontiguousarray(full.reshape(weight.shape[0], -1), dtype=np.float32)


def export_graph(net: SpikingNet, frame_shape=(2, 34, 34), *, dt: float = DT, metadata: dict | None = None):
    """The network as a nir.NIRGraph whose input is one time bin of frames, shaped frame_shape.

    Warns (NIRExportWarning) for a subtract-reset network, which NIR cannot express exactly."""
    nir = _nir()
    if net.reset == "subtract":
        warnings.warn(SUBTRACT_WARNING, NIRExportWarning, stacklevel=2)
    layers = [(w.detach().cpu().numpy().astype(np.float32), b.detach().cpu().numpy().astype(np.float32))
              for w, b in net.layer_params()]
    shape, meta = tuple(int(s) for s in frame_shape), {}
    nodes = {"input": nir.Input(input_type=np.array(shape))}
    if net.pool > 1:
        if len(shape) != 3:
            raise SpikerollError(f"pool={net.pool} needs frames shaped (channels, height, width), got {shape}")
        if shape[1] % net.pool == 0 and shape[2] % net.pool == 0:
            k = np.array([net.pool, net.pool])
            nodes["pool"] = nir.AvgPool2d(kernel_size=k, stride=k, padding=np.array([0, 0]))
            shape = (shape[0], shape[1] // net.pool, shape[2] // net.pool)
        else:  # NIR pooling has no partial edge blocks: pool inside the first layer's weights
            layers[0] = (_fold_pool(layers[0][0], shape, net.pool), layers[0][1])
            meta["pool_folded_into"] = "affine0"
    if len(shape) > 1:
        nodes["flatten"] = nir.Flatten(input_type={"input": np.array(shape)}, start_dim=0, end_dim=-1)
    if math.prod(shape) != layers[0][0].shape[1]:
        raise SpikerollError(f"frames of shape {tuple(frame_shape)} give {math.prod(shape)} inputs after pool="
                             f"{net.pool}, but the network's first layer takes {layers[0][0].shape[1]}; "
                             "pass the frame shape the network was trained on")
    beta = float(np.float32(net.beta))  # the float32 β every forward pass uses
    for i, (w, b) in enumerate(layers):
        nodes[f"affine{i}"] = nir.Affine(weight=w, bias=b)
        readout = i == len(layers) - 1 and net.readout == "membrane"
        nodes[f"li{i}" if readout else f"lif{i}"] = _neuron(nir, w.shape[0], beta, dt,
                                                             None if readout else net.threshold)
    nodes["output"] = nir.Output(output_type=np.array([layers[-1][0].shape[0]]))

    meta.update({
        "producer": PRODUCER, "spikeroll_version": __version__, "dt": dt,
        "time_step": "one step of dt per time bin of the input frames",
        "beta": float(net.beta), "threshold": float(net.threshold),
        "spike_rule": "spike when v >= threshold, written as v > v_threshold (the largest float32 below it)",
        "reset": net.reset,
        "reset_rule": "v <- 0 after a spike" if net.reset == "zero" else
                      "v <- v - threshold after a spike (NIR cannot express this; the nodes say v_reset = 0)",
        "readout": net.readout,
        "readout_rule": "logits = mean over the time steps of the LI membrane u (u <- beta*u + I from u = 0)"
                        if net.readout == "membrane" else "logits = spike counts of the last LIF layer",
        "input_encoding": "per time bin and pixel, 1 if the pixel saw an event of that polarity, else 0",
        "pool": int(net.pool),
    })
    meta.update(metadata or {})
    names = list(nodes)
    return nir.NIRGraph(nodes=nodes, edges=list(zip(names[:-1], names[1:])), metadata=meta)


INTEGER_NUMBERS = ("Affine weights are the integers q themselves (int32, read back exactly); a weight is "
                   "q·2^k thresholds. Affine biases are float64 b/2^k (b in thresholds, exact dyadic "
                   "numbers). Neuron r carries the gain 2^k (r·dt/τ = 2^k), v_threshold = 1 threshold.")


def _integer_neuron(nir, layer: dict, dt: float, spiking: bool):
    """Float-equivalent neuron of one Loihi layer: β = 1 − dv/4096, input gain 2^k (the weight step),
    threshold 1 (strict, as Loihi's v > vth << 6). du = 4095 clears u every step, so there is no
    current filter to express (LIF, not CubaLIF)."""
    n, gain = layer["q"].shape[0], 2.0 ** layer["k"]
    full = lambda value: np.full(n, value, np.float64)  # noqa: E731
    meta = {key: layer[key] for key in ("du", "dv", "vth", "bias_exp")}
    meta.update(bias_mant=np.asarray(layer["bias_mant"], np.int64), spiking=int(spiking))
    if layer["dv"] == 0:  # no leak: τ = ∞
        return nir.IF(r=full(gain / dt), v_threshold=full(1.0), v_reset=full(0.0), metadata=meta) if spiking \
            else nir.I(r=full(gain / dt), metadata=meta)
    tau = dt * 4096 / layer["dv"]
    common = dict(tau=full(tau), r=full(tau / dt * gain), v_leak=full(0.0), metadata=meta)
    return nir.LIF(**common, v_threshold=full(1.0), v_reset=full(0.0)) if spiking else nir.LI(**common)


def export_integer_graph(net, frame_shape=(2, 34, 34), *, dt: float = DT, metadata: dict | None = None,
                         conventions: dict | None = None):
    """An integer network (spikeroll.nets.integer.IntegerNet) as a nir.NIRGraph, integers stored exactly.

    Input → [SumPool2d] → [Flatten] → (Affine → LIF)… → Affine → LI|LIF → Output. The Affine weights
    are q (int32); each Affine's metadata holds k, weight_exp and weight_bits, each neuron's holds du,
    dv, vth, bias_mant, bias_exp; the graph's holds the fixed-point conventions. A float reader of the
    nodes alone gets the nearest float network (see INTEGER_NUMBERS): no truncating decay, no
    24-bit saturation and no one-step delay per layer, which only the metadata can say.
    `conventions` restates rules in words (`integer_export`), e.g. a control policy's input."""

    nir = _nir()
    spec = integer_export(net, conventions)
    layers = spec["layers"]
    shape, meta = tuple(int(s) for s in frame_shape), {}
    nodes = {"input": nir.Input(input_type=np.array(shape))}
    q0 = layers[0]["q"]
    if net.pool > 1:
        p = net.pool
        if len(shape) != 3:
            raise SpikerollError(f"pool={p} needs frames shaped (channels, height, width), got {shape}")
        if shape[1] % p == 0 and shape[2] % p == 0:
            nodes["pool"] = nir.SumPool2d(kernel_size=np.array([p, p]), stride=np.array([p, p]),
                                          padding=np.array([0, 0]))
            shape = (shape[0], shape[1] // p, shape[2] // p)
        else:  # NIR pooling has no partial edge blocks: every pixel gets its block's integer weight
            C, H, W = shape
            blocks = q0.reshape(-1, C, -(-H // p), -(-W // p))
            q0 = blocks.repeat(p, axis=2).repeat(p, axis=3)[:, :, :H, :W].reshape(q0.shape[0], -1)
            meta["pool_folded_into"] = "affine0"
    if len(shape) > 1:
        nodes["flatten"] = nir.Flatten(input_type={"input": np.array(shape)}, start_dim=0, end_dim=-1)
    if math.prod(shape) != q0.shape[1]:
        raise SpikerollError(f"frames of shape {tuple(frame_shape)} give {math.prod(shape)} inputs after pool="
                             f"{net.pool}, but the network's first layer takes {q0.shape[1]}; "
                             "pass the frame shape the network was trained on")
    for i, layer in enumerate(layers):
        q = np.ascontiguousarray(q0 if i == 0 else layer["q"], np.int32)
        bias = layer["bias_mant"].astype(np.float64) * 2.0 ** (layer["bias_exp"] - layer["k"]) / THRESHOLD_V
        nodes[f"affine{i}"] = nir.Affine(weight=q, bias=bias, metadata={
            "k": layer["k"], "weight_exp": layer["weight_exp"], "weight_bits": spec["weight_bits"],
            "weight_scale": 2.0 ** layer["k"]})
        spiking = i < len(layers) - 1 or spec["readout"] == "spikes"
        nodes[f"lif{i}" if spiking else f"li{i}"] = _integer_neuron(nir, layer, dt, spiking)
    nodes["output"] = nir.Output(output_type=np.array([layers[-1]["q"].shape[0]]))

    meta.update({
        "producer": PRODUCER, "spikeroll_version": __version__, "dt": dt, "format": spec["format"],
        "time_step": "one step of dt per time bin of the input frames",
        "weight_bits": spec["weight_bits"], "numbers": INTEGER_NUMBERS,
        "beta": 1.0 - layers[0]["dv"] / 4096, "threshold": 1.0, "reset": "zero",
        "spike_rule": "spike when v > threshold (strict), then v <- 0", "readout": spec["readout"],
        "readout_rule": spec["conventions"]["readout"],
        "input_encoding": spec["conventions"]["input"], "pool": int(net.pool),
        **{f"conventions.{key}": text for key, text in spec["conventions"].items()},
    })
    meta.update(metadata or {})
    names = list(nodes)
    return nir.NIRGraph(nodes=nodes, edges=list(zip(names[:-1], names[1:])), metadata=meta)


def write_graph(graph, path) -> Path:
    """Write a nir.NIRGraph to `path` (its folder created); returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _nir().write(path, graph)
    return path


# import ---------------------------------------------------------------------------------------

@dataclass
class ImportedNetwork:
    """What `import_graph` read: the network, its input shape and the graph's metadata."""

    net: SpikingNet
    input_shape: tuple[int, ...]  # one time bin, as the graph's Input node says
    metadata: dict = field(default_factory=dict)  # the graph's, strings decoded
    notes: list[str] = field(default_factory=list)  # rescalings import made (see the module doc)


def read_graph(path):
    """nir.read with type checking, every failure a one-line SpikerollError."""
    path = Path(path)
    if not path.is_file():
        raise SpikerollError(f"NIR file {path} does not exist; pass a file written by `spikeroll export` "
                             "or another NIR exporter")
    nir = _nir()
    try:
        graph = nir.read(path)
    except (OSError, KeyError) as exc:
        raise SpikerollError(f"{path} is not a readable NIR file ({type(exc).__name__}: "
                             f"{str(exc).splitlines()[0] if str(exc) else 'corrupt'}); write it again") from None
    except Exception as exc:  # noqa: BLE001 - nir raises ValueError/AssertionError/TypeError for bad graphs
        raise SpikerollError(f"{path} holds an invalid NIR graph ({type(exc).__name__}: "
                             f"{str(exc).splitlines()[0] if str(exc) else 'shapes or fields do not match'}); "
                             "check how it was exported") from None
    check_finite(graph, f"{path}: ")
    return graph


def _numbers(value) -> list:
    """The numeric arrays and scalars inside a node field (dicts and lists searched, strings skipped)."""
    if isinstance(value, dict):
        return [x for v in value.values() for x in _numbers(v)]
    if isinstance(value, (list, tuple)):
        return [x for v in value for x in _numbers(v)]
    if isinstance(value, np.ndarray) and value.dtype.kind in "fc":
        return [value]
    if isinstance(value, (float, np.floating)):
        return [value]
    return []


def check_finite(graph, prefix: str = "") -> None:
    """A one-line SpikerollError naming the node and field when any float array or number of a
    node (its parameters, shapes or metadata) is NaN or infinite."""
    for name, node in (graph.nodes or {}).items():
        if not dataclasses.is_dataclass(node):
            continue
        for field_name, value in vars(node).items():  # a node's fields, whatever its NIR type
            for array in _numbers(value):
                if not np.all(np.isfinite(array)):
                    raise SpikerollError(f"{prefix}{_kind(name, node)}: {field_name} holds NaN or infinite "
                                         "values; export the graph again from a trained network")


def meta_number(meta: dict, key: str, default: float | None = None, positive: bool = False) -> float | None:
    """A number from a graph's metadata: a one-line error when it is not a finite (positive) number."""
    if key not in meta:
        return default
    value = meta[key]
    try:
        ok = isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value) \
            and not (positive and value <= 0)
    except OverflowError:  # an int beyond float's range
        ok = False
    if not ok:
        kind = "a finite positive number" if positive else "a finite number"
        shown = repr(value)[:60] if not isinstance(value, int) or value.bit_length() < 64 else "<a huge int>"
        raise SpikerollError(f"the graph's metadata {key}={shown} is not {kind}; "
                             "the file is damaged or was not written by spikeroll")
    return float(value)


def graph_dt(meta: dict) -> float:
    """The time step of a graph's steps: spikeroll's metadata dt in graphs spikeroll wrote, else DT."""
    return meta_number(meta, "dt", DT, positive=True) if is_ours(meta) else DT


def is_ours(meta: dict) -> bool:
    """Whether the graph's metadata says spikeroll wrote it."""
    return isinstance(meta.get("producer"), str) and meta["producer"] == PRODUCER


def _decode(value):
    value = value.decode() if isinstance(value, bytes) else value
    scalar = isinstance(value, np.generic) or (isinstance(value, np.ndarray) and value.ndim == 0)
    return value.item() if scalar else value


def _kind(name: str, node) -> str:
    return f"node {name!r} ({type(node).__name__})"


def _chain(graph, nir) -> list[tuple[str, object]]:
    """The graph's nodes in order from its Input to its Output; anything but one path is an error."""
    nodes, succ, pred = graph.nodes, {}, {}
    for a, b in graph.edges:
        if a not in nodes or b not in nodes:
            raise SpikerollError(f"edge ({a!r}, {b!r}) names a node the graph does not have; the file is damaged")
        succ.setdefault(a, []).append(b)
        pred.setdefault(b, []).append(a)
    for name, node in nodes.items():
        if len(succ.get(name, ())) > 1 or len(pred.get(name, ())) > 1:
            raise SpikerollError(f"{_kind(name, node)} has {len(pred.get(name, ()))} inputs and "
                                 f"{len(succ.get(name, ()))} outputs: spikeroll reads feed-forward chains "
                                 f"only ({CHAIN}), no branches, skips or recurrence")
    starts = [n for n, node in nodes.items() if isinstance(node, nir.Input)]
    if len(starts) != 1:
        raise SpikerollError(f"the graph has {len(starts)} Input nodes; spikeroll reads graphs with exactly one")
    chain, name = [], starts[0]
    while True:
        if any(name == seen for seen, _ in chain):
            raise SpikerollError(f"the graph loops back to {_kind(name, nodes[name])}: recurrent graphs are "
                                 f"not supported, spikeroll reads feed-forward chains ({CHAIN})")
        chain.append((name, nodes[name]))
        if name not in succ:
            break
        name = succ[name][0]
    if not isinstance(chain[-1][1], nir.Output):
        raise SpikerollError(f"the path from the Input ends at {_kind(*chain[-1])}, not at an Output node")
    if len(chain) != len(nodes):
        stray = sorted(set(nodes) - {n for n, _ in chain})
        raise SpikerollError(f"nodes {', '.join(map(repr, stray))} are not on the path from Input to Output; "
                             "spikeroll reads a single feed-forward chain")
    return chain


def _floats(name, node, field_name, value) -> np.ndarray:
    """A node's field as a float64 array: a one-line error naming the node and field when it holds
    anything but finite numbers."""
    try:
        value = np.asarray(value, np.float64)
    except (TypeError, ValueError):
        raise SpikerollError(f"{_kind(name, node)}: {field_name} is not an array of numbers; "
                             "the file is damaged") from None
    if not np.all(np.isfinite(value)):
        raise SpikerollError(f"{_kind(name, node)}: {field_name} holds NaN or infinite values; "
                             "export the graph again from a trained network")
    return value


def _ints(name, node, field_name, value) -> np.ndarray:
    """A node's integer field (kernel sizes, dims) as an int array, or a one-line error."""
    value = np.atleast_1d(_floats(name, node, field_name, value))
    if np.any(value != np.round(value)) or np.any(np.abs(value) > 2**31):
        raise SpikerollError(f"{_kind(name, node)}: {field_name} = {value.tolist()[:4]} is not whole numbers")
    return value.astype(np.int64)


def _array(name, node, field_name, n) -> np.ndarray:
    value = _floats(name, node, field_name, getattr(node, field_name))  # a neuron node's parameter
    if value.shape == ():
        value = np.full(n, float(value))
    if value.shape != (n,):
        raise SpikerollError(f"{_kind(name, node)}: {field_name} has shape {value.shape}, but the layer "
                             f"before it has {n} outputs; the shapes must match")
    return value


def _dynamics(name, node, n: int, dt: float, nir):
    """(β, input gain, constant drive, inclusive threshold or None) per neuron, stepping at dt."""
    if isinstance(node, (nir.IF, nir.I)):
        beta, gain, drive = np.ones(n), _array(name, node, "r", n) * dt, np.zeros(n)
    else:
        tau = _array(name, node, "tau", n)
        if np.any(tau < dt):
            raise SpikerollError(f"{_kind(name, node)}: τ = {tau.min():.3g} s is shorter than the step dt = "
                                 f"{dt:g} s, so 1 − dt/τ is negative; spikeroll needs τ ≥ dt")
        beta = 1.0 - dt / tau
        gain = _array(name, node, "r", n) * dt / tau
        drive = _array(name, node, "v_leak", n) * dt / tau
    if np.any(gain <= 0):
        raise SpikerollError(f"{_kind(name, node)} has r ≤ 0, so its input never reaches the membrane; "
                             "spikeroll needs r > 0")
    if not isinstance(node, (nir.LIF, nir.IF)):
        return beta, gain, drive, None
    if np.any(_array(name, node, "v_reset", n) != 0):
        raise SpikerollError(f"{_kind(name, node)} resets to v_reset ≠ 0; spikeroll neurons reset to 0 "
                             "(or subtract θ), so set v_reset = 0")
    threshold = inclusive_threshold(_array(name, node, "v_threshold", n)).astype(np.float64)
    if np.any(threshold <= 0):
        raise SpikerollError(f"{_kind(name, node)} has a threshold ≤ 0; spikeroll needs θ > 0")
    return beta, gain, drive, threshold


def import_graph(graph) -> ImportedNetwork:
    """A SpikingNet computing what the NIR graph (a nir.NIRGraph or a file path) describes."""
    nir = _nir()
    if isinstance(graph, (str, Path)):
        graph = read_graph(graph)
    check_finite(graph)
    meta = {k: _decode(v) for k, v in (graph.metadata or {}).items()}
    ours = is_ours(meta)
    dt = graph_dt(meta)
    chain = _chain(graph, nir)
    in_name, in_node = chain[0]
    input_type = in_node.input_type if isinstance(in_node.input_type, dict) else {}
    if "input" not in input_type:
        raise SpikerollError(f"{_kind(in_name, in_node)} has no input shape; the file is damaged")
    input_shape = tuple(int(s) for s in _ints(in_name, in_node, "input_type", input_type["input"]))
    if not input_shape or min(input_shape) < 1:
        raise SpikerollError(f"{_kind(in_name, in_node)} has input shape {input_shape}; every dim must be >= 1")
    shape, pool, pool_gain, at = input_shape, 1, 1.0, 1
    name, node = chain[at]
    if isinstance(node, (nir.AvgPool2d, nir.SumPool2d)):
        k, s, p = (_ints(name, node, f, x) for f, x in (("kernel_size", node.kernel_size), ("stride", node.stride),
                                                         ("padding", node.padding)))
        if k.size not in (1, 2) or s.size not in (1, 2) or np.any(k < 1):
            raise SpikerollError(f"{_kind(name, node)}: kernel {k.tolist()} and stride {s.tolist()} must be one "
                                 "or two positive sizes")
        k, s = np.broadcast_to(k, (2,)), np.broadcast_to(s, (2,))
        if len(shape) != 3 or k[0] != k[1] or np.any(s != k) or np.any(p != 0) \
                or shape[1] % k[0] or shape[2] % k[0]:
            raise SpikerollError(f"{_kind(name, node)}: spikeroll pools square, non-overlapping blocks without "
                                 f"padding that tile (channels, height, width) input; got kernel {k.tolist()}, "
                                 f"stride {s.tolist()}, padding {p.tolist()} on input {shape}")
        pool = int(k[0])
        pool_gain = float(pool * pool) if isinstance(node, nir.SumPool2d) else 1.0
        shape = (shape[0], shape[1] // pool, shape[2] // pool)
        at += 1
    name, node = chain[at]
    if isinstance(node, nir.Flatten):
        dims = len(shape)
        start, end = (int(_ints(name, node, f, x)[0]) % dims
                      for f, x in (("start_dim", node.start_dim), ("end_dim", node.end_dim)))
        if (start, end) != (0, dims - 1):
            raise SpikerollError(f"{_kind(name, node)} flattens dims {start}..{end} of {shape}; spikeroll "
                                 "needs every dim flattened (start_dim 0, end_dim -1)")
        shape = (math.prod(shape),)
        at += 1
    if len(shape) != 1:
        raise SpikerollError(f"input of shape {shape} reaches {_kind(*chain[at])} unflattened; "
                             "add a Flatten node after the Input (and pooling)")

    weights, biases, neurons, notes, layer_names = [], [], [], [], []
    features = shape[0]
    while at < len(chain) - 1:
        name, node = chain[at]
        if not isinstance(node, (nir.Affine, nir.Linear)):
            raise _misplaced(name, node, nir, "an Affine or Linear layer")
        w = _floats(name, node, "weight", node.weight)
        if w.ndim != 2 or w.shape[1] != features:
            raise SpikerollError(f"{_kind(name, node)} has weight shape {w.shape}, but its input has {features} "
                                 f"features; the shapes must match ({CHAIN})")
        b = _floats(name, node, "bias", node.bias) if isinstance(node, nir.Affine) else np.zeros(w.shape[0])
        if b.shape != (w.shape[0],):
            raise SpikerollError(f"{_kind(name, node)} has bias shape {b.shape} for {w.shape[0]} outputs")
        if not weights:
            w = w * pool_gain
        n_name, neuron = chain[at + 1]
        if not isinstance(neuron, (nir.LIF, nir.IF, nir.LI, nir.I)):
            raise _misplaced(n_name, neuron, nir, "a neuron node (LIF, IF, LI or I)")
        if isinstance(neuron, (nir.LI, nir.I)) and at + 2 != len(chain) - 1:
            raise SpikerollError(f"{_kind(n_name, neuron)} is a non-spiking integrator before the last layer; "
                                 "spikeroll has LI/I only as the readout")
        weights.append(w)
        layer_names.append((name, node))
        biases.append(b)
        neurons.append((n_name, neuron, _dynamics(n_name, neuron, w.shape[0], dt, nir)))
        features, at = w.shape[0], at + 2
    if not neurons:
        raise SpikerollError(f"the graph has no Affine/Linear + neuron layer; spikeroll reads {CHAIN}")

    beta0, ref = neurons[0][2][0][0], neurons[0][0]
    thresholds = [dyn[3] for _, _, dyn in neurons if dyn[3] is not None]
    theta = float(thresholds[0][0]) if thresholds else 1.0
    for i, (n_name, neuron, (beta, gain, drive, threshold)) in enumerate(neurons):
        if np.max(np.abs(beta - beta0)) > 1e-6:
            raise SpikerollError(
                f"{_kind(n_name, neuron)} has β = 1 − dt/τ = {beta[np.argmax(np.abs(beta - beta0))]:.6g} where node "
                f"{ref!r} has {beta0:.6g}: a spikeroll network shares one β (one τ) across all neurons and layers")
        scale = gain if threshold is None else gain * theta / threshold
        if np.max(np.abs(scale - 1.0)) > 1e-6 or np.any(drive != 0):
            weights[i], biases[i] = weights[i] * scale[:, None], biases[i] * scale + drive * (scale / gain)
            notes.append(f"{n_name}: input gain r·dt/τ, leak or threshold folded into the incoming weights")
    readout = "spikes" if isinstance(neurons[-1][1], (nir.LIF, nir.IF)) else "membrane"
    reset = meta.get("reset", "zero") if ours else "zero"
    reset = reset if isinstance(reset, str) else "zero"
    beta = float(np.float32(beta0))
    if ours and abs(meta_number(meta, "beta", -1.0) - beta) <= 1e-6:
        beta = float(meta["beta"])  # the float64 value spikeroll trained with (its readout uses it)
    if ours and not notes and float(np.float32(meta_number(meta, "threshold", -1.0))) == theta:
        theta = float(meta["threshold"])
    limit = float(np.finfo(np.float32).max)  # the network computes in float32
    for (a_name, a_node), w, b in zip(layer_names, weights, biases):
        if np.abs(w).max(initial=0.0) > limit or np.abs(b).max(initial=0.0) > limit:
            raise SpikerollError(f"{_kind(a_name, a_node)}: weights or bias (after folding gains and thresholds) "
                                 "exceed float32's range; spikeroll computes in float32")
    net = SpikingNet([weights[0].shape[1], *[w.shape[0] for w in weights]], beta=beta, threshold=theta,
                     reset=reset if reset in ("zero", "subtract") else "zero", readout=readout, pool=pool)
    values = [torch.as_tensor(a, dtype=torch.float32) for pair in zip(weights, biases) for a in pair]
    net.load_parameters(values)
    return ImportedNetwork(net, input_shape, meta, notes)


def _misplaced(name, node, nir, expected: str) -> SpikerollError:
    known = (nir.Input, nir.Output, nir.AvgPool2d, nir.SumPool2d, nir.Flatten, nir.Affine, nir.Linear,
             nir.LIF, nir.IF, nir.LI, nir.I)
    if not isinstance(node, known):
        extra = " (a nested subgraph, e.g. a recurrent layer)" if isinstance(node, nir.NIRGraph) else ""
        return SpikerollError(f"{_kind(name, node)}{extra} cannot be represented by spikeroll; supported "
                              f"node types: {SUPPORTED}, as {CHAIN}")
    return SpikerollError(f"{_kind(name, node)} stands where spikeroll expects {expected}; it reads {CHAIN}")


# run directories and training configs -----------------------------------------------------------

def export_network(net, cfg, out: Path, source: str = "the network") -> Path:
    """Write a trained network (with the config it was trained with) as a NIR graph at `out`.
    Integer networks (--neuron loihi) go through export_integer_graph, float ones through
    export_graph. Its input is one 2 x 34 x 34 frame (every dataset's sensor), or a flat vector for
    networks trained on other frames."""
    if not isinstance(net, (SpikingNet, IntegerNet)):
        raise SpikerollError(f"{source} holds a {type(net).__name__}; spikeroll export writes the LIF networks "
                             "of spikeroll's own model (SpikingNet, or IntegerNet for --neuron loihi) only")
    frame_shape = (2, SENSOR, SENSOR)
    if input_features(frame_shape, net.pool) != net.sizes[0] and net.pool == 1:
        frame_shape = (net.sizes[0],)
    meta = {"dataset": cfg.dataset, "time_bins": int(cfg.time_bins),
            # each recording is cut into time_bins equal bins; N-MNIST recordings last ~315 ms
            "time_bin_seconds": RECORDING_US / 1e6 / cfg.time_bins}
    if cfg.val_ids:
        meta["val_ids"] = cfg.val_ids
    write = export_integer_graph if isinstance(net, IntegerNet) else export_graph
    graph = write(net, frame_shape, metadata=meta)
    return write_graph(graph, out)


def network_config(cfg, imported: ImportedNetwork):
    """cfg with the network settings (widths, β, θ, reset, readout, pool) the graph defines, and,
    for graphs spikeroll wrote, the dataset, time bins and split they were trained on. The result
    goes through TrainConfig's checks (types, finiteness, ranges) like any other config; a graph
    without a hidden layer is allowed here, for evaluation."""
    net = imported.net
    cfg.hidden, cfg.beta, cfg.threshold = list(net.sizes[1:-1]), net.beta, net.threshold
    cfg.reset, cfg.readout, cfg.pool = net.reset, net.readout, net.pool
    if is_ours(imported.metadata):
        values = {key: imported.metadata.get(key, vars(cfg)[key]) for key in ("dataset", "time_bins", "val_ids")}
        check_types(values, "the NIR graph's metadata")
        cfg.dataset, cfg.time_bins, cfg.val_ids = values["dataset"], int(values["time_bins"]), values["val_ids"]
    dataclasses.replace(cfg, hidden=cfg.hidden or [1]).validate()
    return cfg


def check_inputs(imported: ImportedNetwork, frames) -> None:
    """A one-line error when a dataset's frames (n, T, ...) do not fit the graph's input."""
    frame_shape = tuple(frames.shape[2:])
    n = input_features(frame_shape, imported.net.pool) if len(frame_shape) == 3 or imported.net.pool == 1 else -1
    if n != imported.net.sizes[0] or (len(imported.input_shape) > 1 and imported.input_shape != frame_shape):
        raise SpikerollError(f"the graph takes input of shape {imported.input_shape} per time bin "
                             f"({imported.net.sizes[0]} features after pool={imported.net.pool}), but this "
                             f"dataset's frames are {frame_shape}; evaluate it on data of that shape")
