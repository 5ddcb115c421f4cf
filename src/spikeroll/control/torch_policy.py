"""spikeroll's spiking control policy as an ordinary `torch.nn.Module`, for code outside spikeroll.

`TorchSpikingPolicy` computes what `policy.SpikingPolicy` computes for one member, written out step
by step in plain PyTorch (no numba kernel, no noise, nothing shared with its forward): a separate
implementation of the same policy, so that another library can use or optimise it. Per observation:

1. x = clip((obs − mean)/std, ±obs_clip) with the buffers `obs_mean`/`obs_std` (identity: clip only);
2. the first layer's current x·Wᵀ + b, the same in each of `time_bins` bins;
3. LIF hidden layers: v ← β·v + I_t, s_t = [v ≥ θ], v ← v − θ·s_t (subtract) or v·(1 − s_t) (zero);
4. a leaky readout u ← β·u + W·s_t + b, averaged over the bins (as W·Σ_t c_t·s_t + b·Σ_t c_t, with the
   coefficients c_t found by running that recurrence on unit inputs);
5. Discrete: argmax of the readout; Box: low + (tanh(readout) + 1)/2 · (high − low).

The parameters are `nn.Linear` layers in SpikingNet order (layer0.weight, layer0.bias, ...), so
`torch.nn.utils.parameters_to_vector` of this module is the flat vector of a spikeroll checkpoint's
`params`, and a flat vector from elsewhere (e.g. an EvoTorch solution) loads with
`vector_to_parameters`. `forward` returns what an RL library acts on: the readout for a Discrete
action space (its argmax is the action, as EvoTorch's GymNE takes it), the scaled action for a Box.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from spikeroll.config import RESETS
from spikeroll.control.policy import ObsStats, SpikingPolicy
from spikeroll.control.trainer import load_policy
from spikeroll.errors import SpikerollError


class TorchSpikingPolicy(nn.Module):
    """Observation (..., obs_dim) -> LIF layers `sizes[1:-1]` -> leaky readout (..., sizes[-1]).

    `low`/`high` (Box bounds) make `forward` return the tanh-scaled action; without them the action
    space is Discrete (actions start at `start`). `obs_norm=False` feeds raw observations (no clip).
    """

    def __init__(self, sizes: list[int], time_bins: int = 8, beta: float = 0.9, threshold: float = 1.0,
                 reset: str = "subtract", obs_norm: bool = True, obs_clip: float = 5.0,
                 low: np.ndarray | None = None, high: np.ndarray | None = None, start: int = 0):
        super().__init__()
        if len(sizes) < 3 or any(int(s) < 1 for s in sizes):
            raise SpikerollError(f"sizes={sizes} must be [obs_dim, *hidden, n_out] with at least one hidden layer")
        if reset not in RESETS:
            raise SpikerollError(f"unknown reset {reset!r}; choose one of {', '.join(RESETS)}")
        if time_bins < 1 or threshold <= 0 or not 0.0 <= beta <= 1.0:
            raise SpikerollError(f"time_bins={time_bins} must be >= 1, threshold={threshold} > 0 and "
                                 f"beta={beta} in [0, 1]")
        self.sizes = [int(s) for s in sizes]
        self.time_bins, self.beta, self.threshold, self.reset = int(time_bins), float(beta), float(threshold), reset
        self.obs_norm, self.obs_clip, self.start = obs_norm, float(obs_clip), int(start)
        self.layers = nn.ModuleList(nn.Linear(i, o) for i, o in zip(self.sizes[:-1], self.sizes[1:]))
        self.register_buffer("obs_mean", torch.zeros(self.sizes[0]))
        self.register_buffer("obs_std", torch.ones(self.sizes[0]))
        self.register_buffer("readout_coefficients", leaky_mean_coefficients(self.time_bins, self.beta),
                             persistent=False)
        self._coefficient_list = self.readout_coefficients.tolist()
        self.discrete = low is None
        if not self.discrete:
            self.register_buffer("low", torch.as_tensor(np.asarray(low, dtype=np.float32)))
            self.register_buffer("high", torch.as_tensor(np.asarray(high, dtype=np.float32)))

    @classmethod
    def from_policy(cls, policy: SpikingPolicy, stats: ObsStats | None = None) -> TorchSpikingPolicy:
        """The module computing `policy`'s mean policy, with a copy of its parameters and of `stats`' (mean, std)."""
        net = policy.net
        box = {} if policy.discrete else {"low": policy.low.numpy(), "high": policy.high.numpy()}
        module = cls(net.sizes, policy.time_bins, net.beta, net.threshold, net.reset,
                     obs_norm=stats is not None and stats.enabled,
                     obs_clip=stats.clip if stats is not None else 5.0, start=policy.start, **box)
        with torch.no_grad():
            for layer, (weight, bias) in zip(module.layers, net.layer_params()):
                layer.weight.copy_(weight)
                layer.bias.copy_(bias)
            if module.obs_norm:
                mean, std = stats.mean_std()
                module.obs_mean.copy_(mean)
                module.obs_std.copy_(std)
        return module

    @classmethod
    def from_run(cls, run_dir: str | Path) -> TorchSpikingPolicy:
        """A control run's final mean policy (checkpoint.pt) with its observation statistics."""
        _, policy, stats = load_policy(run_dir)
        return cls.from_policy(policy, stats)

    def readout(self, obs: torch.Tensor) -> torch.Tensor:
        """The time-averaged readout membrane (..., n_out) for observations (..., obs_dim)."""
        x = obs.to(self.obs_mean.dtype)
        if self.obs_norm:
            x = torch.clamp((x - self.obs_mean) / self.obs_std, -self.obs_clip, self.obs_clip)
        first, *rest = self.layers
        current = torch.matmul(x, first.weight.t()) + first.bias  # the same in every bin
        for i, layer in enumerate(rest):  # `layer` is fed by the spiking layer that `current` drives
            if layer is rest[-1]:  # mean_t u_t = W·(Σ_t c_t·s_t) + b·Σ_t c_t, as the readout is linear
                weighted = self._lif(current, constant=i == 0, weighted=True)
                return torch.matmul(weighted, layer.weight.t()) + layer.bias * self.readout_coefficients.sum()
            spikes = self._lif(current, constant=i == 0, weighted=False)  # (..., T, n)
            current = torch.matmul(spikes, layer.weight.t()) + layer.bias
        raise AssertionError("sizes has at least one hidden layer")

    def _lif(self, current: torch.Tensor, constant: bool, weighted: bool) -> torch.Tensor:
        """LIF neurons from v = 0 over T bins: v ← β·v + I_t, s_t = [v ≥ θ], reset. `current` is (..., n)
        when `constant` (the same every bin) or (..., T, n). Returns the spike trains (..., T, n), or
        Σ_t c_t·s_t (..., n) with the readout coefficients when `weighted` (in-place ops: the policy runs
        once per environment step, where dispatch dominates)."""
        v = torch.zeros_like(current if constant else current[..., 0, :])
        acc, spikes = torch.zeros_like(v), []
        for t in range(self.time_bins):
            v = torch.add(current if constant else current[..., t, :], v, alpha=self.beta)
            s = (v >= self.threshold).to(v.dtype)
            if self.reset == "subtract":
                v.sub_(s, alpha=self.threshold)
            else:
                v.mul_(1.0 - s)
            if weighted:
                acc.add_(s, alpha=self._coefficient_list[t])
            else:
                spikes.append(s)
        return acc if weighted else torch.stack(spikes, dim=-2)

    def act(self, obs: torch.Tensor) -> torch.Tensor:
        """Actions: argmax (+ start, int64) for a Discrete space; tanh scaled to [low, high] for a Box."""
        out = self.readout(obs)
        if self.discrete:
            return out.argmax(-1) + self.start
        return self._scaled(out)

    def _scaled(self, out: torch.Tensor) -> torch.Tensor:
        return self.low + (torch.tanh(out) + 1.0) * 0.5 * (self.high - self.low)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        """What an RL library acts on: the readout (Discrete; argmax it) or the scaled action (Box)."""
        out = self.readout(obs)
        return out if self.discrete else self._scaled(out)


def leaky_mean_coefficients(time_bins: int, beta: float) -> torch.Tensor:
    """c_s with mean_t u_t = Σ_s c_s·I_s for the leaky integrator u ← β·u + I_t over T bins, found by
    running that recurrence on the coefficient vectors of I_0..I_{T−1} (float64, returned as float32)."""
    u, total = torch.zeros(time_bins, dtype=torch.float64), torch.zeros(time_bins, dtype=torch.float64)
    for t in range(time_bins):
        u = beta * u
        u[t] += 1.0
        total += u
    return (total / time_bins).float()
