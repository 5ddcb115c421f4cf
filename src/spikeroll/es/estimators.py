"""Estimators: each strategy produces a gradient for the same optimiser step.

An estimator's `estimate(generation, frames, labels)` fills `p.grad` of every parameter (the
negated ascent direction, since torch.optim minimises; None skips a parameter, e.g. after a
non-finite loss) and returns the generation's metrics (the `Estimator` protocol of
spikeroll.es.protocols). The Trainer then steps its optimiser and scheduler; it never needs to know
which estimator it runs. `spikeroll.training.estimator.build_estimator` is the one place that reads
`cfg.strategy`.
"""

from __future__ import annotations

import torch

from spikeroll.config import TrainConfig
from spikeroll.es.protocols import Evaluator
from spikeroll.es.schedules import sigma_at
from spikeroll.es.strategies import EvolutionStrategy, shape_fitness


def fitness_summary(fitness: torch.Tensor, accuracy: torch.Tensor, sigma: float | None) -> dict:
    """The metrics every ES generation reports: mean and best finite fitness (None when no member
    was finite), the members' mean minibatch accuracy, and σ."""
    finite = fitness[torch.isfinite(fitness)]
    return {"fitness_mean": float(finite.mean()) if len(finite) else None,
            "fitness_max": float(finite.max()) if len(finite) else None,
            "train_batch_accuracy": float(accuracy.mean()), "sigma": sigma}


def evaluator_metrics(evaluator) -> dict:
    """The evaluator's extra metrics of the last generation (`Evaluator.metrics`; {} for an
    evaluator written before that method existed)."""
    metrics = getattr(evaluator, "metrics", None)
    return dict(metrics()) if callable(metrics) else {}


class BaseEstimator:
    """What every estimator shares: nothing to release unless it says so."""

    def close(self) -> None:
        """Release resources held for the run (none here); the Trainer calls this when a run ends."""


class ESEstimator(BaseEstimator):
    """EGGROLL (low-rank) or OpenAI-ES (full-rank): fitness from an evaluator, shaped, contracted
    with the regenerated noise into one gradient per parameter."""

    def __init__(self, strategy: EvolutionStrategy, evaluator: Evaluator, cfg: TrainConfig):
        self.strategy, self.evaluator, self.cfg = strategy, evaluator, cfg

    def estimate(self, generation: int, frames: torch.Tensor, labels: torch.Tensor) -> dict:
        """Population fitness -> shaped weights -> p.grad = −(ES gradient); returns the metrics."""
        sigma = sigma_at(self.cfg, generation)
        fitness, acc = self.evaluator.population_fitness(generation, sigma, frames, labels)
        with torch.no_grad():
            grads = self.strategy.gradient(generation, shape_fitness(fitness, self.cfg.shaping), sigma,
                                           self.evaluator.unit_pairs(len(labels)))
        for p, grad in zip(self.strategy.params.values(), grads):
            p.grad = -grad  # optimisers minimise; ES estimates the ascent direction
        return {**fitness_summary(fitness, acc, sigma), **evaluator_metrics(self.evaluator)}

    def describe(self) -> dict:
        """strategy, rank and population, for report.json."""
        return {"strategy": self.cfg.strategy, "rank": self.strategy.rank, "population": self.strategy.population}

    def close(self) -> None:
        """Release the evaluator's workers, if it has any (the Trainer calls this when a run ends)."""
        self.evaluator.close()
