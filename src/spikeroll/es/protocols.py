"""The written contracts between the Trainer, the estimators, the evaluators and the networks.

They are `typing.Protocol`s: a class satisfies one by having its methods, with no base class to
inherit. spikeroll's own classes (SpikingNet, IntegerNet, ModuleNet; LocalEvaluator,
ModuleEvaluator, RayEvaluator; ESEstimator, EGGEstimator, BPTTEstimator) implement them, and so can
a user's.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Protocol, runtime_checkable

import torch


@runtime_checkable
class Network(Protocol):
    """A spiking network whose parameters an estimator perturbs and an optimiser updates.

    `params` is an ordered name -> tensor dict, the order in which checkpoints store the tensors;
    `sizes` are the layer widths, input first; frames are (B, T, ...) per sample and time bin.
    """

    params: dict[str, torch.Tensor]
    sizes: list[int]

    @property
    def device(self) -> torch.device:
        """Where the parameters live."""

    @property
    def num_parameters(self) -> int:
        """Trainable scalars in `params`."""

    def load_parameters(self, values: Iterable[torch.Tensor]) -> None:
        """Copy saved tensors (in `params` order) into the parameters, in place."""

    def logits(self, frames: torch.Tensor) -> torch.Tensor:
        """Logits (B, classes) of the unperturbed network."""

    def population_logits(self, frames: torch.Tensor, noise: Callable, pairs: int, chunk_pairs: int,
                          **shared) -> torch.Tensor:
        """Logits (2·pairs, B, classes) of every member; `noise(pair_range)` gives a slice's
        per-layer `LayerNoise`, member 2k = θ + noise_k, member 2k+1 = θ − noise_k."""

    def shared_input(self, frames: torch.Tensor) -> object | None:
        """What every work unit of a minibatch shares (the first layer's x·Wᵀ), or None."""


@runtime_checkable
class Evaluator(Protocol):
    """Computes a population's fitness on a shared minibatch, wherever that runs.

    Fitness and accuracy come back as CPU float tensors (N,), member i = 2k + j of pair k. A work
    unit's result is a pure function of (θ, seed, generation, unit), so where it runs never changes
    the bits.
    """

    strategy: object  # the EvolutionStrategy (or EGGROLL) whose noise the members carry

    def unit_pairs(self, batch: int) -> int:
        """Antithetic pairs per work unit for a minibatch of `batch` samples (fixed by the config)."""

    def population_fitness(self, generation: int, sigma: float, frames: torch.Tensor,
                           labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(fitness, minibatch accuracy) of every member, each (N,) on the CPU."""

    def close(self) -> None:
        """Release workers or other resources (a no-op for in-process evaluators)."""

    def metrics(self) -> dict:
        """The last generation's extra metrics for its record (flat numeric keys, e.g. synops,
        synops_hidden, rate_layer0); {} when there are none (BaseEvaluator)."""


@runtime_checkable
class Estimator(Protocol):
    """Turns one generation's minibatch into a gradient for the Trainer's optimiser.

    `estimate` fills `p.grad` of every parameter with the negated ascent direction (torch.optim
    minimises; None skips a parameter) and returns the generation's metrics: fitness_mean,
    fitness_max (None when no member was finite), train_batch_accuracy and sigma.
    """

    def estimate(self, generation: int, frames: torch.Tensor, labels: torch.Tensor) -> dict:
        """One generation's gradient (into p.grad) and metrics."""

    def describe(self) -> dict:
        """strategy, rank and population, for report.json."""

    def close(self) -> None:
        """Release the evaluator's workers, if any; called when a run ends, even on an error."""
