"""A user's nn.Module inside the Trainer: `spikeroll train --model FILE.py:FACTORY`.

Contract: FACTORY() returns a torch.nn.Module that maps frames (T, B, 2, H, W) (float, one time
bin per step) to logits (B, classes), looping over time itself as snnTorch tutorials do. The
Trainer sees it through ModuleNet (the .params/.logits/.load_parameters/.num_parameters/.device
of spikeroll's own network); ES runs through EGGROLL's population forward (ModuleEvaluator) and
the same ESEstimator, noise and update as the built-in network, scored by the run's objective
(SynOps counted at the module's Linear/Conv calls when it needs them: spikeroll.modules.counting);
BPTT through the module's own autograd (snnTorch's surrogate gradient).
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from spikeroll.errors import SpikerollError
from spikeroll.es.evaluators import BaseEvaluator
from spikeroll.es.objectives import Objective, objective_from_config
from spikeroll.memory import keep_freed_memory
from spikeroll.modules.checks import reset_state
from spikeroll.modules.counting import count_plain, countable, hooked
from spikeroll.modules.es import EGGROLL
from spikeroll.nets.model import ParameterHolder
from spikeroll.userfile import import_named, raised

UNIT_SAMPLES = 8192  # members x minibatch rows per work unit when --chunk-pairs is not given


def load_factory(spec: str, *args, example: str = "examples/snntorch_csnn.py:make_csnn") -> nn.Module:
    """'path/to/file.py:factory' -> the module factory(*args) returns. Importing the file or calling the
    factory runs the user's code: whatever it raises becomes one line naming the file and line."""
    factory, file = import_named(spec, "--model", "FACTORY", example)
    name = str(spec).rpartition(":")[2]
    try:
        model = factory(*args)
    except SpikerollError:
        raise
    except (Exception, SystemExit) as exc:  # noqa: BLE001 - the user's code may raise anything
        raise raised(exc, file, f"{name}({', '.join(map(str, args))})", "--model") from None
    if not isinstance(model, nn.Module):
        raise SpikerollError(f"--model {spec}: {name}() returned {type(model).__name__}, not a torch.nn.Module")
    return model


def seeded_module(cfg, *args, example: str = "examples/snntorch_csnn.py:make_csnn") -> nn.Module:
    """cfg.model's module, FACTORY(*args), initialised under the run's seed; cfg.model is made
    absolute (`absolute_spec`) for config.json, resume and Ray workers."""
    cfg.model = absolute_spec(cfg.model)
    with torch.random.fork_rng():  # the factory's initialisation is a function of the run's seed
        torch.manual_seed(cfg.seed)
        return load_factory(cfg.model, *args, example=example)


def absolute_spec(spec: str) -> str:
    """FILE.py:FACTORY with FILE made absolute when it exists: what config.json records, so that
    resume and Ray workers find the same file from any directory."""
    path, _, name = str(spec).rpartition(":")
    return f"{Path(path).resolve()}:{name}" if path and Path(path).is_file() else spec


class ModuleNet(ParameterHolder):
    """A user's module with the interface the Trainer, checkpoints and evaluation expect."""

    counts_spikes = True  # its logits take counts= (SynOps at its Linear/Conv calls, spikeroll.modules.counting)

    def __init__(self, module: nn.Module, in_features: int, classes: int, device):
        self._fan_outs: dict = {}  # conv fan-out maps of counting, kept across evaluation passes
        self._calls: dict = {}  # per input shape, `_input_calls` (the module's structure decides it)
        self.module = module.to(device).eval()  # ES needs no train mode (dropout/batchnorm: see checks)
        self.params = {n: p for n, p in module.named_parameters() if p.requires_grad}
        self.sizes = [in_features, classes]  # what checkpoints record and init_from compares
        self.classes = classes

    @classmethod
    def from_config(cls, cfg, in_features: int, classes: int, device) -> ModuleNet:
        """The module of cfg.model (FILE.py:FACTORY), initialised under the run's seed; the file's
        path is made absolute in cfg, for config.json, resume and Ray workers."""
        return cls(seeded_module(cfg), in_features, classes, device)

    def load_parameters(self, values) -> None:
        """Copy saved parameter tensors (in .params order) into the module; shapes must match."""
        values = list(values)
        shapes = [tuple(v.shape) for v in values]
        mine = [tuple(p.shape) for p in self.params.values()]
        if shapes != mine:
            raise SpikerollError(f"saved parameters {shapes} do not fit the module's {mine}; "
                                 "use the same --model factory as the saved run")
        with torch.no_grad():
            for p, value in zip(self.params.values(), values):
                p.copy_(value.to(p.device, p.dtype))

    def inputs(self, frames: torch.Tensor) -> torch.Tensor:
        """frames (B, T, ...) as the Trainer stores them -> (T, B, ...) float, the contract's layout."""
        return frames.transpose(0, 1).to(self.device, torch.float32)

    def logits(self, frames: torch.Tensor, counts: list | None = None) -> torch.Tensor:
        """frames (B, T, ...) -> the module's logits (B, classes), its state reset first. With
        `counts` (a list), a ModuleCounts of the forward's SynOps is appended to it."""
        inputs = self.inputs(frames)
        calls = None
        if counts is not None:  # the same for every batch of one shape: found once
            key = (inputs.shape[0], *inputs.shape[2:])
            if key not in self._calls:
                self._calls[key] = self._input_calls(inputs)
            calls = self._calls[key]
        if calls is None:
            out = self._forward(inputs)
        else:
            out, found = count_plain(self.module, lambda: self._forward(inputs), calls, self._fan_outs)
            counts.append(found)
        if not isinstance(out, torch.Tensor) or out.dim() != 2 or out.shape[1] != self.classes:
            shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
            raise SpikerollError(f"--model returned {shape}; the contract is logits (B, {self.classes}) "
                                 "for frames (T, B, 2, H, W)")
        return out

    def _forward(self, inputs: torch.Tensor):
        reset_state(self.module)
        return self.module(inputs)

    def _input_calls(self, inputs: torch.Tensor) -> dict[int, list[bool]] | None:
        """Per Linear/Conv layer (its id) and call: whether a population forward gives it the shared
        minibatch (1 row, not 2), found by one of one sample and one pair; None (nothing is
        counted) for a module that cannot run one (modules EGGROLL refuses, trained by BPTT)."""
        calls: dict[int, list[bool]] = {}
        note = lambda m, args, y: calls.setdefault(id(m), []).append(args[0].shape[0] == 1)  # noqa: E731
        try:
            es = EGGROLL(self.module, population=2, check=False, fused=False)
            with hooked(countable(self.module), note):
                es.population_forward(inputs[:, :1])
        except SpikerollError:
            return None
        return calls


class ModuleEvaluator(BaseEvaluator):
    """The population's fitness from EGGROLL's one-batch population forward of the user's module.

    Fitness is `objective`'s (spikeroll.es.objectives). When it needs counts (synops, budget, a
    fitness function) or `count` is True, the population forward counts every member's SynOps
    (spikeroll.modules.counting), and `metrics()` gives the population's means; the default
    objective does not count, so its forward is the one without counting.
    """

    def __init__(self, net: ModuleNet, es: EGGROLL, objective: Objective, chunk_pairs: int | None = None,
                 count: bool = False):
        self.net, self.es, self.objective, self.chunk_pairs = net, es, objective, chunk_pairs
        self.strategy = es.strategy
        self.count = count or objective.needs_counts
        self._metrics: dict = {}

    def unit_pairs(self, batch: int) -> int:
        """--chunk-pairs, else UNIT_SAMPLES rows (members x minibatch) at once: units of that size
        are faster than the whole population at once and keep peak memory flat in the population
        (docs/modules.md has the measurements)."""
        return self.chunk_pairs or max(1, min(self.strategy.pairs, UNIT_SAMPLES // (2 * batch)))

    def shared_input(self, frames):
        """Nothing to share across units: the module computes its shared first layer per call."""
        return None

    @torch.no_grad()
    def unit_fitness(self, generation: int, sigma: float, frames, labels, pairs: range, shared=None,
                     counts: list | None = None):
        """Fitness and accuracy of the 2·len(pairs) members of one work unit (`shared` is unused).
        When this evaluator counts, `counts` (a list) gets the unit's ModuleCounts."""
        self.es.generation, self.es.sigma = generation, sigma
        self.es.chunk_pairs = self.unit_pairs(len(labels))
        found = [] if self.count else None
        logits = self.es.population_forward(self.net.inputs(frames), pairs=pairs, counts=found)
        unit_counts = found[0] if found else None
        if counts is not None and unit_counts is not None:
            counts.append(unit_counts)
        fitness, acc = self.objective(logits, labels.to(logits.device), unit_counts)
        return fitness.cpu(), acc.cpu()

    def population_fitness(self, generation: int, sigma: float, frames, labels):
        """Fitness and accuracy of every member (N,), on the CPU."""
        found: list = []
        result = self.unit_fitness(generation, sigma, frames, labels, range(self.strategy.pairs), counts=found)
        self._metrics = found[0].summary() if found else {}
        return result

    def metrics(self) -> dict:
        """The last generation's population means (synops, synops_hidden, rate_layer{i}); empty
        when nothing was counted."""
        return dict(self._metrics)


def module_evaluator(cfg, net: ModuleNet, fitness=None) -> ModuleEvaluator:
    """The evaluator of a --model run (eggroll, or openes: full rank); `spikeroll.training.estimator.build_estimator`
    hands it to the same ESEstimator as the built-in network's (or to Ray workers, in units of
    --chunk-pairs pairs). Its objective is the run's (`objective_from_config`; `fitness` a
    callable that replaces it)."""
    if cfg.strategy not in ("eggroll", "openes"):
        raise SpikerollError(f"--model trains with eggroll, openes or bptt, not {cfg.strategy!r}")
    rank = cfg.rank if cfg.strategy == "eggroll" else None
    keep_freed_memory()  # the population's per-step tensors are reused, not faulted back in (spikeroll.memory)
    es = EGGROLL(net.module, population=cfg.population, rank=rank, sigma=cfg.sigma, seed=cfg.seed,
                 shaping=cfg.shaping, chunk_pairs=cfg.chunk_pairs)
    return ModuleEvaluator(net, es, objective_from_config(cfg, fitness), cfg.chunk_pairs)
