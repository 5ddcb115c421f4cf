"""SynOp counts of a user's module, taken at every call of its Linear/Conv layers (docs/energy.md).

A layer's input entry x, when it holds events (integer-valued: spikes 0/1 or event counts),
delivers |x| events to each synapse it drives: a Linear's out_features, a conv's (output position,
output channel) pairs whose receptive field holds it (`fan_out`: exact at the edges and for any
stride, padding, dilation and groups). An input that is not integer-valued is an analog current
with no events: its layer is left out of the counts and named (`ModuleCounts.uncounted`).

Counting only reads the layers' inputs, so every computed value is unchanged, bit for bit.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import contextmanager

import torch
from torch import nn

from spikeroll.modules.layers import LAYERS, _conv
from spikeroll.nets.counts import ModuleCounts

FLOAT32_EXACT = 2.0**24  # integers below this are exact in float32, and so are their products


def countable(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """Every Linear/Conv layer of the model, trainable or frozen: each is a layer of synapses."""
    return [(name, m) for name, m in model.named_modules() if isinstance(m, LAYERS)]


def fan_out(module: nn.Module, shape: torch.Size, device) -> torch.Tensor | int:
    """The synapses each input entry of one sample (shape, batch axis left out) drives: out_features
    for a Linear; for a conv, a float64 map of the (output position, output channel) pairs each
    input position reaches: the gradient of Σ conv(x, ones) (one output channel per group) with
    respect to x, times the output channels per group."""
    if isinstance(module, nn.Linear):
        return module.out_features
    groups = module.groups
    x = torch.ones(1, *shape, dtype=torch.float64, device=device, requires_grad=True)
    ones = torch.ones(groups, module.in_channels // groups, *module.kernel_size, dtype=torch.float64, device=device)
    with torch.enable_grad():  # the population forward runs under no_grad
        (grad,) = torch.autograd.grad(_conv(module, x, ones, groups).sum(), x)
    return grad[0] * (module.out_channels // groups)


class Counter:
    """Accumulates a forward's counts at the layers of `countable(model)`, for `members` members
    laid out member-major (a per-member input has members·B rows; a shared one B rows)."""

    def __init__(self, layers: list[tuple[str, nn.Module]], members: int, fan_outs: dict | None = None):
        self.layers, self.members = layers, members
        self.index = {id(m): i for i, (_, m) in enumerate(layers)}
        self.fan_outs = {} if fan_outs is None else fan_outs  # (layer, sample shape, device) -> fan_out
        n = len(layers)
        self.called, self.integer = [False] * n, [True] * n
        self.shared_synops, self.capacity, self.entries = [0.0] * n, [0.0] * n, [0] * n
        self.member_synops = [torch.zeros(members, dtype=torch.float64) for _ in range(n)]
        self.events = [torch.zeros(members, dtype=torch.float64) for _ in range(n)]
        self.samples: int | None = None

    def record(self, module: nn.Module, x: torch.Tensor, shared: bool) -> None:
        """One call of `module` with input x (the shared minibatch, or every member's rows)."""
        i = self.index[id(module)]
        self.called[i] = True
        x = x.detach()
        if not self.integer[i] or not torch.equal(x, torch.trunc(x)):
            self.integer[i] = False  # an analog current: no events, the layer is not counted
            return
        groups = 1 if shared else self.members
        rows = x.shape[0] // groups  # B: the samples of one member
        self.samples = self.samples or rows
        key = (id(module), tuple(x.shape[1:]), x.device)
        if key not in self.fan_outs:
            self.fan_outs[key] = fan_out(module, x.shape[1:], x.device)
        fan = self.fan_outs[key]
        synops = _weighted_sum(x.abs(), fan, groups)
        events = x.reshape(groups, -1).sum(1, dtype=torch.float64).cpu()
        per_sample = fan * x[0].numel() if isinstance(fan, int) else float(fan.sum())
        self.capacity[i] += per_sample * rows
        self.entries[i] += x[0].numel() * rows
        self.events[i] += events
        if shared:
            self.shared_synops[i] += float(synops[0])
        else:
            self.member_synops[i] += synops

    def result(self) -> ModuleCounts:
        """The counts of the layers that were called."""
        keep = [i for i, called in enumerate(self.called) if called]
        pick = lambda values: [values[i] for i in keep]  # noqa: E731
        return ModuleCounts([self.layers[i][0] for i in keep], pick(self.shared_synops), pick(self.member_synops),
                            pick(self.events), pick(self.entries), pick(self.capacity), pick(self.integer),
                            self.samples or 1)


def count_plain(model: nn.Module, forward: Callable, input_calls: dict[int, list[bool]],
                fan_outs: dict | None = None):
    """(forward(), its ModuleCounts) for the plain model as one member. `input_calls` says, per layer
    (its id) and call, whether a population forward gives that call the shared minibatch: those
    count as the input's events, the rest as the network's own spikes, as in training's counts."""
    layers = countable(model)
    counter, seen = Counter(layers, 1, fan_outs), {id(m): 0 for _, m in layers}

    def record(module, args, y):
        calls, i = input_calls.get(id(module), []), seen[id(module)]
        seen[id(module)] += 1
        counter.record(module, args[0], shared=i < len(calls) and calls[i])

    with hooked(layers, record):
        out = forward()
    return out, counter.result()


@contextmanager
def hooked(layers: list[tuple[str, nn.Module]], hook):
    """`hook` as a forward hook of every layer while the block runs."""
    handles = [m.register_forward_hook(hook) for _, m in layers]
    try:
        yield
    finally:
        for h in handles:
            h.remove()


def _weighted_sum(ax: torch.Tensor, fan: torch.Tensor | int, groups: int) -> torch.Tensor:
    """Σ |x|·fan-out over each group's rows, (groups,) float64 on the CPU, exact: integer sums in
    float64, and the products in the input's float type only while they stay exact there."""
    if isinstance(fan, int):
        return ax.reshape(groups, -1).sum(1, dtype=torch.float64).cpu() * fan
    largest = float(ax.max()) * float(fan.max()) if ax.numel() else 0.0
    exact = ax.dtype == torch.float64 or (ax.dtype == torch.float32 and largest < FLOAT32_EXACT)
    product = ax * fan.to(ax.dtype) if exact else ax.double() * fan
    return product.reshape(groups, -1).sum(1, dtype=torch.float64).cpu()
