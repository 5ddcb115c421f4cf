"""Evaluators: where a population's fitness is computed.

An evaluator answers one question per generation: the fitness (and minibatch accuracy) of every
member of the population on the shared minibatch, as CPU tensors (N,). The ES estimator turns
those scalars into a gradient; nothing else crosses from an evaluator to the update, so an
evaluator can run anywhere (this process, worker processes, other machines) as long as it draws
the same noise from the same counters.

The population is evaluated in work units of `unit_pairs` antithetic pairs. The unit size bounds
the live activations, and it is also the chunk in which the ES update regenerates the noise, so it
is fixed by the configuration (never by where a unit runs): the floats of a unit do not depend on
how many units or workers there are.
"""

from __future__ import annotations

import torch

from spikeroll.es.objectives import Objective
from spikeroll.es.strategies import EvolutionStrategy
from spikeroll.nets import kernels
from spikeroll.nets.counts import bin_events

# Pairs are evaluated in units whose live activations stay within this budget, so memory stays
# bounded for any population. On the PyTorch path, units near the CPU cache size measured about 2x
# faster than the whole population at once; the fused kernel keeps only small tensors alive.
ACTIVATION_BUDGET_BYTES = 32 * 2**20


def pair_activation_bytes(sizes: list[int], batch: int, time_bins: int, rank: int | None, device) -> int:
    """Activation bytes one antithetic pair keeps alive during the population forward."""
    if kernels.applies(device):
        # fused kernel: the first layer's per-pair product (x·B_k, or x·E_kᵀ for full rank) plus the
        # next layers' currents of both members (the kernel's output and the readout's input)
        first = sizes[1] if rank is None else rank
        return time_bins * batch * 4 * (first + 2 * 2 * max(sizes[2:]))
    # PyTorch path: a layer's currents and spikes for both members plus a temporary of that size
    return 3 * time_bins * 2 * batch * max(sizes[1:]) * 4


def auto_unit_pairs(pairs: int, sizes: list[int], batch: int, time_bins: int, rank: int | None, device,
                    fixed: int | None = None) -> int:
    """Pairs per work unit: `fixed` when given, else the most that fit the activation budget,
    preferring an equal division of the population (no small remainder unit)."""
    if fixed:
        return fixed
    per_pair = pair_activation_bytes(sizes, batch, time_bins, rank, device)
    largest = max(1, min(pairs, ACTIVATION_BUDGET_BYTES // per_pair))
    divisor = max(d for d in range(1, largest + 1) if pairs % d == 0)
    return divisor if 2 * divisor >= largest else largest


def units(pairs: int, unit_pairs: int) -> list[range]:
    """The work units of a generation: consecutive ranges of pair indices."""
    return [range(start, min(start + unit_pairs, pairs)) for start in range(0, pairs, unit_pairs)]


class BaseEvaluator:
    """What every evaluator shares: nothing to release and no metrics unless it says so (the
    Evaluator protocol)."""

    def close(self) -> None:
        """Release workers or other resources (none here)."""

    def metrics(self) -> dict:
        """The last generation's extra metrics (numeric, flat keys) for its record: none here."""
        return {}


def counts_spikes(net) -> bool:
    """Whether `net`'s forwards take `counts=` (SpikingNet and IntegerNet; not a --model module)."""
    return bool(getattr(net, "counts_spikes", False))


class LocalEvaluator(BaseEvaluator):
    """Evaluates the whole population in this process (the fused CPU kernel or the PyTorch path).

    Fitness is `objective`'s (spikeroll.es.objectives; the −cross-entropy at `temperature` when
    None). When the objective needs them (synops, budget, a fitness function), or `count` is True,
    the forward counts every member's spikes (spikeroll.nets.counts): the objective gets them, and
    `metrics()` the population's means (synops, synops_hidden, rate_layer{i}) for the generation's
    record. The default objective does not count (counting costs a few per cent of a generation,
    see docs/energy.md); the mean network's counts are reported at every evaluation anyway.
    """

    def __init__(self, net, strategy: EvolutionStrategy, temperature: float, time_bins: int,
                 chunk_pairs: int | None = None, objective: Objective | None = None, count: bool = False):
        self.net, self.strategy, self.temperature = net, strategy, temperature
        self.time_bins, self.chunk_pairs = time_bins, chunk_pairs
        self.objective = objective if objective is not None else Objective("ce", temperature)
        self.count = counts_spikes(net) and (count or self.objective.needs_counts)
        self._metrics: dict = {}

    def unit_pairs(self, batch: int) -> int:
        """Pairs per work unit: `chunk_pairs`, or the most that fit the activation budget."""
        return auto_unit_pairs(self.strategy.pairs, self.net.sizes, batch, self.time_bins, self.strategy.rank,
                               self.net.device, self.chunk_pairs)

    @torch.no_grad()
    def population_fitness(self, generation: int, sigma: float, frames: torch.Tensor, labels: torch.Tensor):
        """Fitness and minibatch accuracy of every member (N,), on the CPU. The first layer's shared
        x·Wᵀ is computed once for all units."""
        unit = self.unit_pairs(len(labels))
        found = [] if self.count else None
        extra = {} if found is None else {"counts": found}
        logits = self.net.population_logits(
            frames, lambda pairs: self.strategy.ask(generation, pairs, sigma), self.strategy.pairs, unit,
            **extra, **self._bins())
        counts = found[0] if found else None
        fitness, acc = self.objective(logits, labels, counts, **self._events(frames))
        self._metrics = counts.summary() if counts is not None else {}
        return fitness.cpu(), acc.cpu()

    def _bins(self) -> dict:
        """population_logits' per_bin option, given only when the objective decides per bin (the
        --model path's forward has no such option and never meets such an objective)."""
        return {"per_bin": True} if self.objective.needs_bins else {}

    def _events(self, frames: torch.Tensor) -> dict:
        return {"events": bin_events(frames)} if self.objective.needs_bins else {}

    def metrics(self) -> dict:
        """The last generation's population means: synops, synops_hidden (SynOps per inference)
        and rate_layer{i} (spikes per neuron, bin and sample); empty when nothing was counted."""
        return dict(self._metrics)

    @torch.no_grad()
    def shared_input(self, frames: torch.Tensor):
        """What every unit of a minibatch shares (the first layer's x·Wᵀ), for a caller evaluating
        several units; None for networks that compute it per call."""
        return self.net.shared_input(frames)

    @torch.no_grad()
    def unit_fitness(self, generation: int, sigma: float, frames: torch.Tensor, labels: torch.Tensor,
                     pairs: range, shared=None, counts: list | None = None):
        """Fitness and accuracy of the 2·len(pairs) members of one work unit: a pure function of
        (parameters, seed, generation, unit), wherever it is evaluated. `shared` is
        `shared_input(frames)`, when the caller keeps it across units (the same values, so the same
        bits). When this evaluator counts, `counts` (a list) gets the unit's SpikeCounts, which a
        caller puts together in unit order (SpikeCounts.cat) for the population's metrics."""
        def noise(local: range):
            return self.strategy.ask(generation, range(pairs.start + local.start, pairs.start + local.stop), sigma)

        found = [] if self.count else None
        extra = {} if shared is None else {"shared": shared}
        if found is not None:
            extra["counts"] = found
        logits = self.net.population_logits(frames, noise, len(pairs), len(pairs), **extra, **self._bins())
        unit_counts = found[0] if found else None
        if counts is not None and unit_counts is not None:
            counts.append(unit_counts)
        # per member: the same bits as the whole population
        fitness, acc = self.objective(logits, labels, unit_counts, **self._events(frames))
        return fitness.cpu(), acc.cpu()
