"""Estimators: each strategy produces a gradient for the same optimiser step.

An estimator's `estimate(generation, frames, labels)` fills `p.grad` of every parameter (the
negated ascent direction, since torch.optim minimises; None skips a parameter, e.g. after a
non-finite loss) and returns the generation's metrics. The Trainer then steps its optimiser and
scheduler; it never needs to know which estimator it runs. `build_estimator` is the one place that
reads `cfg.strategy`.
"""

from __future__ import annotations

import torch

from spikeroll.config import TrainConfig
from spikeroll.evaluators import LocalEvaluator
from spikeroll.schedules import sigma_at
from spikeroll.strategies import EvolutionStrategy, shape_fitness


class ESEstimator:
    """EGGROLL (low-rank) or OpenAI-ES (full-rank): fitness from an evaluator, shaped, contracted
    with the regenerated noise into one gradient per parameter."""

    def __init__(self, strategy: EvolutionStrategy, evaluator, cfg: TrainConfig):
        self.strategy, self.evaluator, self.cfg = strategy, evaluator, cfg

    def estimate(self, generation: int, frames: torch.Tensor, labels: torch.Tensor) -> dict:
        sigma = sigma_at(self.cfg, generation)
        fitness, acc = self.evaluator.population_fitness(generation, sigma, frames, labels)
        with torch.no_grad():
            grads = self.strategy.gradient(generation, shape_fitness(fitness, self.cfg.shaping), sigma,
                                           self.evaluator.unit_pairs(len(labels)))
        for p, grad in zip(self.strategy.params.values(), grads):
            p.grad = -grad  # optimisers minimise; ES estimates the ascent direction
        finite = fitness[torch.isfinite(fitness)]
        return {"fitness_mean": float(finite.mean()) if len(finite) else None,
                "fitness_max": float(finite.max()) if len(finite) else None,
                "train_batch_accuracy": float(acc.mean()), "sigma": sigma}

    def describe(self) -> dict:
        return {"strategy": self.cfg.strategy, "rank": self.strategy.rank, "population": self.strategy.population}

    def close(self) -> None:
        """Release the evaluator's workers, if it has any (the Trainer calls this when a run ends)."""
        close = getattr(self.evaluator, "close", None)
        if close is not None:
            close()


def local_evaluator(cfg: TrainConfig, net):
    """The evaluator of this process (the Trainer's, or a Ray worker's): a user's nn.Module runs its
    population as one batch (spikeroll.modules), the built-in network through LocalEvaluator."""
    if cfg.model:
        from spikeroll.modules.net import module_evaluator

        return module_evaluator(cfg, net)
    strategy = EvolutionStrategy(net.params, cfg.population, None if cfg.strategy == "openes" else cfg.rank, cfg.seed)
    return LocalEvaluator(net, strategy, cfg.temperature, cfg.time_bins, cfg.chunk_pairs)


def build_estimator(cfg: TrainConfig, net, data=None) -> ESEstimator:
    """The estimator of `cfg.strategy` for `net`, evaluated in this process, or on Ray workers
    when cfg.workers or cfg.ray_address is set (they need the run's `data`, a Splits)."""
    if cfg.strategy == "bptt":
        from spikeroll.bptt import BPTTEstimator

        return BPTTEstimator(net, cfg)
    evaluator = local_evaluator(cfg, net)
    strategy = evaluator.strategy
    if cfg.workers or cfg.ray_address:  # the same work units, on Ray workers (spikeroll.distributed)
        from spikeroll.distributed import RayEvaluator

        evaluator = RayEvaluator(evaluator, cfg, data)
    if cfg.strategy == "egg":  # integer-native ±1 updates of an integer network (spikeroll.egg)
        from spikeroll.egg import EGGEstimator

        return EGGEstimator(strategy, evaluator, cfg, net)
    return ESEstimator(strategy, evaluator, cfg)
