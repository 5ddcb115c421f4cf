"""Surrogate-gradient baseline: the same SNN trained with backpropagation through time (BPTT).

Everything but the gradient is shared with the ES strategies: the network (layers, β, θ, reset,
readout), the data and the (augmented) minibatch of each step (`Trainer.minibatch`), the loss (cross-entropy at the
config's temperature, i.e. −fitness), the optimizer, lr schedule and weight decay, and the run
directory (metrics.jsonl, checkpoints, resume, report.json). One "generation" of BPTT is one
optimizer step on one minibatch.

The spike nonlinearity is the Heaviside step in the forward pass; its derivative is replaced by the
fast-sigmoid surrogate 1/(1 + k·|v − θ|)² (`spikeroll.nets.model.FastSigmoidSpike`, k = its `slope`),
which `spikeroll.nets.model.lif` uses whenever autograd is on and the current requires grad. Gradients
also flow through the reset (v − s·θ or v·(1 − s)) and through time.

Spike regulariser (`--rate-weight λ`, docs/energy.md): the loss becomes CE + λ·(hidden SynOps per
inference)/(all-firing SynOps of the architecture), the same count (`SpikeCounts.synops_hidden`) and
the same reference (`counts.all_firing_synops`) as ES's `--objective synops`, so one λ means the same
trade-off for both; the spikes are the surrogate's, so the count is differentiable. With
`--rate-target r1,r2,...` the penalty is instead λ·Σ_l max(0, rate_l − r_l)², rate_l the layer's
mean firing rate on the minibatch: the one-sided (upper-bound) squared hinge of the homeostatic
regularisers in the surrogate-gradient literature (Zenke & Vogels 2021; Cramer et al. 2022), which
leaves a layer below its target alone. λ = 0 (the default) runs the unregularised step, bit for bit.

Learning rate: the ES default (`lr` = 0.02) is sized for ES gradient estimates; for BPTT with Adam
an lr of about 1e-3 .. 5e-3 is the usual range, so pass e.g. `--lr 0.002` with `--strategy bptt`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from spikeroll.config import TrainConfig
from spikeroll.es.estimators import BaseEstimator
from spikeroll.nets.counts import SpikeCounts, all_firing_synops


def spike_penalty(spikes: list[torch.Tensor], sizes: list[int], weight: float,
                  targets: list[float] | None = None) -> tuple[torch.Tensor, SpikeCounts]:
    """(penalty, counts) of one plain-network forward: `spikes` each hidden layer's spikes (T, B,
    width), differentiable or not; the penalty is λ·synops_hidden/all_firing_synops, or with
    `targets` λ·Σ_l max(0, rate_l − target_l)² (module docstring), a float64 scalar tensor."""
    T, B = spikes[0].shape[:2]
    counts = SpikeCounts(0.0, [s.sum().reshape(1) for s in spikes], list(sizes), int(T), int(B))
    if targets is None:
        penalty = weight * counts.synops_hidden()[0] / all_firing_synops(counts.sizes, counts.time_bins)
    else:
        penalty = weight * sum(torch.clamp(rate[0] - target, min=0.0) ** 2
                               for rate, target in zip(counts.rates(), targets))
    return penalty, counts


class BPTTEstimator(BaseEstimator):
    """The exact surrogate gradient of the minibatch loss of the one (unperturbed) network."""

    def __init__(self, net, cfg: TrainConfig):
        self.net, self.temperature = net, cfg.temperature
        self.rate_weight, self.rate_target = cfg.rate_weight, cfg.rate_target

    def estimate(self, generation: int, frames: torch.Tensor, labels: torch.Tensor) -> dict:
        """Fills p.grad by backpropagation through time; a non-finite loss or gradient leaves every
        p.grad None, so the optimiser skips the step instead of poisoning the parameters.

        Returns the same metric keys as an ES generation: fitness_mean = fitness_max = −loss on the
        batch (there is a single network, not a population), train_batch_accuracy of the network
        before the update, and sigma = None; with the spike regulariser also the minibatch's
        synops_hidden, rate_layer{i} and rate_penalty (fitness = −(CE + penalty), as ES's synops
        objective).
        """
        params = list(self.net.params.values())
        for p in params:  # set lazily: loading a checkpoint copies into the parameters in place first
            if not p.requires_grad:
                p.requires_grad_(True)
            p.grad = None
        extra = {}
        with torch.enable_grad():
            if self.rate_weight > 0:
                logits, spikes = self.net.logits_and_hidden_spikes(frames)
                penalty, counts = spike_penalty(spikes, self.net.sizes, self.rate_weight, self.rate_target)
                loss = F.cross_entropy(logits / self.temperature, labels) + penalty.to(logits.dtype)
                extra = {"synops_hidden": float(counts.synops_hidden()[0].detach()),
                         "rate_penalty": float(penalty.detach()),
                         **{f"rate_layer{i}": float(r[0].detach()) for i, r in enumerate(counts.rates())}}
            else:
                logits = self.net.logits(frames)
                loss = F.cross_entropy(logits / self.temperature, labels)
            finite = bool(torch.isfinite(loss))
            if finite:
                loss.backward()
        if not (finite and all(p.grad is None or torch.isfinite(p.grad).all() for p in params)):
            for p in params:
                p.grad = None
        fitness = -float(loss.detach()) if finite else None
        accuracy = float((logits.detach().argmax(-1) == labels).float().mean())
        return {"fitness_mean": fitness, "fitness_max": fitness, "train_batch_accuracy": accuracy, "sigma": None,
                **extra}

    def describe(self) -> dict:
        """strategy bptt (no rank, no population), for report.json."""
        return {"strategy": "bptt", "rank": None, "population": None}
