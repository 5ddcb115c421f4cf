"""Objectives: what a member's fitness is (`--objective`, `--fitness FILE.py:FN`; docs/energy.md).

An objective maps the population's logits (N, B, classes), the minibatch labels (B,) and the
forward's spike counts (`spikeroll.nets.counts`: SpikeCounts of the built-in networks, ModuleCounts
of a --model module; per member) to fitness (N,), which
ES maximises, and the members' minibatch accuracy (N,). Fitness is a scalar per member, so it need
not be differentiable: a SynOp count or a budget is as good an objective as the cross-entropy.

    ce        −cross-entropy at the temperature (the default; `fitness.member_fitness`, unchanged)
    accuracy  the member's minibatch accuracy
    synops    −CE − λ·synops / reference, reference = the SynOps per inference of the same network
              with every input and neuron firing in every bin (`counts.all_firing_synops`; for a
              --model module every counted layer input at 1, `ModuleCounts.reference`): a fixed
              number of the architecture, so λ reads the same across networks and resumes, and does
              not drift with the run's own state
    budget    −CE − λ·max(0, synops − S) / S: free below the budget S, then a penalty in units of
              the budget's overshoot
    early     each sample is decided at the first time bin whose readout confidence (max softmax of
              the logits so far, `nets.model.running_readout`) reaches C, else at the last bin:
              −CE of that decision − λ·(input SynOps read up to it) / reference. Rewards deciding
              early and correctly; the decision bin is an argmax, so no gradient reaches it. The
              logits are then per bin, (N, B, T, classes), and the input events per bin (B, T) come
              with them. The hidden spikes before the decision are not in the penalty (the fused
              forward counts spikes per member, not per bin); evaluation reports the exact SynOps
              spent, hidden included (`training.evaluation.early_exit`).
    custom    a user's fitness(logits, labels, counts) -> (N,), counts a dict of (N,) float64
              tensors (`SpikeCounts.per_member`: synops, synops_hidden, synops_layer{i},
              rate_layer{i})
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from spikeroll.config import OBJECTIVES
from spikeroll.errors import SpikerollError
from spikeroll.es.fitness import member_fitness
from spikeroll.nets.counts import Counts, SpikeCounts
from spikeroll.nets.model import decide_early
from spikeroll.userfile import import_named


class Objective:
    """Fitness of every member from logits, labels and counts (see the module docstring).

    `name` is one of OBJECTIVES or "custom"; `needs_counts` says whether the forward must count
    (ce and accuracy do not, though the evaluators count anyway for the metrics).
    """

    def __init__(self, name: str = "ce", temperature: float = 1.0, synops_weight: float = 1.0,
                 synops_budget: float | None = None, fitness: Callable | None = None,
                 early_confidence: float = 0.9):
        if fitness is None and name not in OBJECTIVES:
            raise SpikerollError(f"unknown objective {name!r}; choose one of {', '.join(OBJECTIVES)}")
        if not (math.isfinite(synops_weight) and synops_weight >= 0):
            raise SpikerollError(f"synops_weight={synops_weight} must be a finite number >= 0; try --synops-weight 1")
        if synops_budget is not None and not (math.isfinite(synops_budget) and synops_budget >= 0):
            raise SpikerollError(f"synops_budget={synops_budget} must be a finite number >= 0 (SynOps per inference)")
        if name == "budget" and fitness is None and not synops_budget:
            raise SpikerollError("--objective budget needs --synops-budget S > 0 (SynOps per inference)")
        if not (math.isfinite(early_confidence) and 0.0 < early_confidence <= 1.0):
            raise SpikerollError(f"early_confidence={early_confidence} must be in (0, 1]; try --early-confidence 0.9")
        self.name = "custom" if fitness is not None else name
        self.temperature, self.weight, self.budget, self.fitness = temperature, synops_weight, synops_budget, fitness
        self.confidence = early_confidence
        self.needs_counts = self.name in ("synops", "budget", "custom", "early")
        self.needs_bins = self.name == "early"  # logits per time bin and input events per bin

    def __call__(self, logits: torch.Tensor, labels: torch.Tensor, counts: Counts | None = None,
                 events: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """(fitness, accuracy) of every member, each (N,) on the logits' device. With `needs_bins`,
        logits are the logits so far (N, B, T, classes) and `events` the input events per bin (B, T)."""
        if self.needs_counts and counts is None:
            raise SpikerollError(f"objective {self.name!r} needs spike counts, which this forward did not "
                                 "report; count them (counts=[...]) or use --objective ce")
        if self.name == "custom":
            return self._custom(logits, labels, counts), (logits.argmax(-1) == labels).float().mean(1)
        if self.name == "early":
            return self._early(logits, labels, counts, events)
        fitness, acc = member_fitness(logits, labels, self.temperature)
        if self.name == "ce":
            return fitness, acc
        if self.name == "accuracy":
            return acc.clone(), acc
        synops = counts.synops().to(fitness.device)
        if self.name == "synops":
            penalty = self.weight * synops / counts.reference()
        else:  # budget
            penalty = self.weight * torch.clamp(synops - self.budget, min=0.0) / self.budget
        return (fitness.double() - penalty).to(fitness.dtype), acc

    def _early(self, running, labels, counts: SpikeCounts, events: torch.Tensor):
        stop, decided = decide_early(running, self.confidence)  # (N, B), (N, B, classes)
        fitness, acc = member_fitness(decided, labels, self.temperature)
        read = events.to(stop.device).cumsum(1)  # (B, T): input events up to and including each bin
        spent = read.expand(stop.shape[0], -1, -1).gather(2, stop[..., None])[..., 0]  # (N, B)
        penalty = self.weight * spent.mean(1) * counts.sizes[1] / counts.reference()
        return (fitness.double() - penalty).to(fitness.dtype), acc

    def _custom(self, logits, labels, counts: Counts) -> torch.Tensor:
        n = logits.shape[0]
        try:
            value = self.fitness(logits, labels, counts.per_member())
        except SpikerollError:
            raise
        except Exception as exc:  # noqa: BLE001 - the user's code may raise anything
            text = str(exc).strip().splitlines()
            raise SpikerollError(f"the fitness function raised {type(exc).__name__}"
                                 f"{': ' + text[0][:200] if text else ''}; fix it") from None
        try:
            value = torch.as_tensor(value, dtype=torch.float32).detach()
        except (TypeError, ValueError, RuntimeError):
            raise SpikerollError(f"the fitness function returned {type(value).__name__}, not a tensor of shape "
                                 f"({n},): one fitness per member") from None
        if tuple(value.shape) != (n,):
            raise SpikerollError(f"the fitness function returned shape {tuple(value.shape)}, not ({n},): one "
                                 "fitness per member")
        if bool(torch.isnan(value).any()):
            raise SpikerollError("the fitness function returned NaN for some members; return a finite number "
                                 "(or -inf) per member")
        return value.to(logits.device)


def objective_from_config(cfg, fitness: Callable | None = None) -> Objective:
    """The run's objective: `fitness` (a callable), else the function cfg.fitness names (imported
    here: callers reach this only for a run the user started or named the file for again), else
    cfg.objective."""
    if fitness is None and cfg.fitness:
        fitness = load_fitness(cfg.fitness)
    return Objective(cfg.objective, cfg.temperature, cfg.synops_weight, cfg.synops_budget, fitness,
                     early_confidence=cfg.early_confidence)


def load_fitness(spec: str) -> Callable:
    """'path/to/file.py:FN' -> the function FN of that file. Importing runs the user's code."""
    fn, _ = import_named(spec, "--fitness", "FN", "my_fitness.py:fitness")
    return fn
