"""Recipes that run a NIR graph in another simulator, step by step.

snnTorch 1.0's `import_from_nir` cannot run what `spikeroll export` writes: it has no mapping for
NIR's LI node (spikeroll's membrane readout), and it copies Flatten's dims unchanged, although NIR
shapes exclude the batch, so a batch of frames would be flattened into one vector. `to_snntorch`
maps those two itself and every LIF node the way snnTorch's importer does (snn.Leaky with
β = 1 − dt/τ, reset to zero, strict threshold, no reset delay), with dt taken from spikeroll's
metadata (snnTorch hard-codes the same 1e-4 s) and nirtorch wiring the modules together.

    graph = nir.read("network.nir")
    model = to_snntorch(graph)          # a torch.nn.Module of snnTorch neurons
    logits = model(frames)              # frames (batch, time, 2, 34, 34) -> (batch, classes)
    model.step(frames[:, 0])            # or drive it one time bin at a time (call model.reset() first)

snnTorch, nirtorch and nir are needed only here (`pip install snntorch nirtorch`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from spikeroll.errors import SpikerollError
from spikeroll.interop.nir import _decode, check_finite, graph_dt, read_graph


class LeakyIntegrator(torch.nn.Module):
    """NIR's LI node stepped at dt: u ← β·u + (r·dt/τ)·I, with β = 1 − dt/τ; returns u."""

    def __init__(self, node, dt: float):
        super().__init__()
        tau = np.asarray(node.tau, np.float64)
        gain = np.asarray(node.r, np.float64) * dt / tau
        self.register_buffer("beta", torch.as_tensor(1.0 - dt / tau))
        self.register_buffer("gain", torch.as_tensor(gain))
        self.register_buffer("drive", torch.as_tensor(np.asarray(node.v_leak, np.float64) * dt / tau))
        self.exact_gain = bool(np.all(gain == 1.0))
        self.u = None

    def reset(self) -> None:
        """Forget the membrane: the next step starts from u = 0."""
        self.u = None

    def forward(self, current: torch.Tensor) -> torch.Tensor:
        """One step: the membrane u after input `current`."""
        drive = current if self.exact_gain else current * self.gain
        if bool(torch.any(self.drive != 0)):
            drive = drive + self.drive
        self.u = drive if self.u is None else self.beta * self.u + drive
        return self.u


def _leaky(node, dt: float, snn):
    """snn.Leaky as snnTorch's importer builds it; an input gain r·dt/τ ≠ 1 divides the threshold,
    as there."""
    tau = np.asarray(node.tau, np.float64)
    if np.any(np.asarray(node.v_leak) != 0):
        raise SpikerollError("snnTorch's Leaky has no leak potential; this graph's LIF has v_leak ≠ 0")
    gain = np.asarray(node.r, np.float64) * dt / tau
    threshold = np.asarray(node.v_threshold, np.float32)
    if not np.allclose(gain, 1.0, rtol=0, atol=1e-6):
        threshold = (threshold / gain).astype(np.float32)
    return snn.Leaky(beta=torch.as_tensor(1.0 - dt / tau), threshold=torch.as_tensor(threshold),
                     reset_mechanism="zero", reset_delay=False, init_hidden=True)


def _linear(node) -> torch.nn.Linear:
    weight = torch.as_tensor(np.asarray(node.weight, np.float32))
    # nir.Linear has no bias field, nir.Affine has one: the NIR node type decides
    layer = torch.nn.Linear(weight.shape[1], weight.shape[0], bias=hasattr(node, "bias"))
    with torch.no_grad():
        layer.weight.copy_(weight)
        if hasattr(node, "bias"):  # nir.Affine (see above)
            layer.bias.copy_(torch.as_tensor(np.asarray(node.bias, np.float32)))
    return layer


def _batched_flatten(node) -> torch.nn.Flatten:
    """NIR dims exclude the batch: dim d of the node is dim d + 1 of a batch."""
    end = int(node.end_dim)
    return torch.nn.Flatten(int(node.start_dim) + 1, end + 1 if end >= 0 else end)


class SnnTorchNetwork(torch.nn.Module):
    """A NIR graph as snnTorch modules; `forward` runs whole recordings time bin by time bin."""

    def __init__(self, step: torch.nn.Module, readout: str):
        super().__init__()
        self.step, self.readout = step, readout

    def reset(self) -> None:
        """Reset every neuron's state (snnTorch's Leaky membranes and the LI integrators)."""
        import snntorch as snn  # optional dependency (pip install snntorch), needed only here

        for module in self.step.modules():
            if isinstance(module, snn.Leaky):
                module.reset_mem()
            elif isinstance(module, LeakyIntegrator):
                module.reset()

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        """frames (batch, time, *input shape) -> logits (batch, classes): the mean LI membrane over
        time, or the output spike counts when the graph ends in a LIF layer."""
        self.reset()
        outputs = []
        for t in range(frames.shape[1]):
            out = self.step(frames[:, t].to(torch.float32))
            outputs.append(out[0] if isinstance(out, tuple) else out)
        outputs = torch.stack(outputs)
        return outputs.mean(0) if self.readout == "membrane" else outputs.sum(0)


def to_snntorch(graph, dt: float | None = None) -> SnnTorchNetwork:
    """An snnTorch network that runs a NIR graph (a nir.NIRGraph or a .nir path) step by step."""
    try:
        import nir
        import nirtorch
        import snntorch as snn
    except ImportError as exc:
        raise SpikerollError(f"running a NIR graph in snnTorch needs {exc.name}; "
                             "pip install snntorch nirtorch nir") from None
    if isinstance(graph, (str, Path)):
        graph = read_graph(graph)
    check_finite(graph)
    meta = {k: _decode(v) for k, v in (graph.metadata or {}).items()}
    if dt is None:
        dt = graph_dt(meta)
    node_map = {
        nir.Affine: _linear,
        nir.Linear: _linear,
        nir.Flatten: _batched_flatten,
        nir.LIF: lambda node: _leaky(node, dt, snn),
        nir.LI: lambda node: LeakyIntegrator(node, dt),
    }
    last = next((graph.nodes.get(a) for a, b in graph.edges if isinstance(graph.nodes.get(b), nir.Output)), None)
    if last is None:
        raise SpikerollError("the graph has no edge into an Output node; snnTorch needs a graph that ends in one")
    readout = "spikes" if isinstance(last, nir.LIF) else "membrane"
    try:
        step = nirtorch.nir_to_torch(graph, node_map)
    except ValueError as exc:
        raise SpikerollError(f"snnTorch cannot run this graph: {str(exc).splitlines()[0]}") from None
    return SnnTorchNetwork(step, readout)
