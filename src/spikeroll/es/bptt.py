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

Learning rate: the ES default (`lr` = 0.02) is sized for ES gradient estimates; for BPTT with Adam
an lr of about 1e-3 .. 5e-3 is the usual range, so pass e.g. `--lr 0.002` with `--strategy bptt`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from spikeroll.config import TrainConfig
from spikeroll.es.estimators import BaseEstimator


class BPTTEstimator(BaseEstimator):
    """The exact surrogate gradient of the minibatch loss of the one (unperturbed) network."""

    def __init__(self, net, cfg: TrainConfig):
        self.net, self.temperature = net, cfg.temperature

    def estimate(self, generation: int, frames: torch.Tensor, labels: torch.Tensor) -> dict:
        """Fills p.grad by backpropagation through time; a non-finite loss or gradient leaves every
        p.grad None, so the optimiser skips the step instead of poisoning the parameters.

        Returns the same metric keys as an ES generation: fitness_mean = fitness_max = −loss on the
        batch (there is a single network, not a population), train_batch_accuracy of the network
        before the update, and sigma = None.
        """
        params = list(self.net.params.values())
        for p in params:  # set lazily: loading a checkpoint copies into the parameters in place first
            if not p.requires_grad:
                p.requires_grad_(True)
            p.grad = None
        with torch.enable_grad():
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
        return {"fitness_mean": fitness, "fitness_max": fitness, "train_batch_accuracy": accuracy, "sigma": None}

    def describe(self) -> dict:
        """strategy bptt (no rank, no population), for report.json."""
        return {"strategy": "bptt", "rank": None, "population": None}
