"""The factories that turn a TrainConfig into the objects of a run: its device, data, network,
optimiser and local evaluator. The Trainer, `load_trained` and every Ray worker build their state
through these same functions, so a worker's network is the driver's network.

Before a network or a population is allocated, its size is estimated from the config and compared
with the memory of the device it will live on (`check_memory`): a run that cannot fit stops with
one line naming the bytes it needs and the setting to change, instead of failing deep inside
torch (or being killed) minutes later. The estimates count only what is certainly allocated, so
they are lower bounds that never refuse a run that would have fit.
"""

from __future__ import annotations

import os

import torch

from spikeroll.config import TrainConfig
from spikeroll.data import Splits, load_dataset
from spikeroll.data.events import SENSOR
from spikeroll.errors import SpikerollError
from spikeroll.es.evaluators import LocalEvaluator, pair_activation_bytes
from spikeroll.es.objectives import objective_from_config
from spikeroll.es.protocols import Evaluator, Network
from spikeroll.es.strategies import EvolutionStrategy
from spikeroll.modules.net import ModuleNet, module_evaluator
from spikeroll.nets.integer import IntegerNet
from spikeroll.nets.model import SpikingNet


def resolve_device(name: str) -> torch.device:
    """The torch device of `--device`: auto picks CUDA when present; an unusable name is an error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise SpikerollError(f"device {name!r} was requested but CUDA is not available; use --device cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise SpikerollError(f"unknown device {name!r}; choose auto, cpu, cuda or cuda:N (e.g. cuda:0)") from None
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        raise SpikerollError(f"device {name!r} does not exist: this machine has {torch.cuda.device_count()} CUDA "
                             "device(s), numbered from 0; use --device cuda:0")
    return device


def memory_bytes(device) -> int | None:
    """Memory a run on `device` can use: a GPU's total memory, or the host's available memory
    (MemAvailable plus free swap from /proc/meminfo, else the physical memory); None when unknown."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.get_device_properties(device).total_memory
    try:
        with open("/proc/meminfo") as handle:
            info = {line.split(":")[0]: int(line.split()[1]) * 1024 for line in handle if line.split()[1:2]}
        if "MemAvailable" in info:
            return info["MemAvailable"] + info.get("SwapFree", 0)
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, AttributeError):  # no sysconf (Windows) or no such name
        return None


def _size(n: int) -> str:
    for unit, scale in (("TiB", 2**40), ("GiB", 2**30), ("MiB", 2**20)):
        if n >= scale:
            return f"{n / scale:.3g} {unit}"
    return f"{n} bytes"


def check_memory(needed: int, device, what: str, fix: str) -> None:
    """A one-line SpikerollError when `needed` bytes (a lower-bound estimate of `what`) exceed the
    memory of `device`; `fix` names the setting to change."""
    available = memory_bytes(device)
    if available is not None and needed > available:
        raise SpikerollError(f"{what} needs at least {needed:,} bytes ({_size(needed)}), more than the "
                             f"{_size(available)} this machine's {torch.device(device).type} memory has "
                             f"available; {fix}")


def network_bytes(sizes: list[int]) -> int:
    """Bytes of a LIF stack's float32 weights and biases alone (sizes: input first)."""
    return 4 * sum(a * b + b for a, b in zip(sizes[:-1], sizes[1:]))


def generation_bytes(strategy: EvolutionStrategy, classes: int, unit_activation_bytes: int = 0) -> int:
    """Bytes one ES generation certainly allocates, whatever the minibatch (counted as one sample):
    every pair's noise (A, B factors, or full-rank E, kept from the population forward to the update
    by EvolutionStrategy.raw_noise), the gradient (one buffer per parameter), the logits
    (N, 1, classes), the fitness, accuracy and shaped-weight vectors (N,), plus
    `unit_activation_bytes` of one work unit."""
    params = list(strategy.params.values())
    per_pair = sum((shape[0] + shape[1]) * strategy.rank if shape is not None else p.numel()
                   for p, shape in zip(params, strategy.matrix_shapes))
    element = params[0].element_size() if params else 4
    gradient = sum(p.numel() for p in params) * element
    population = strategy.population
    return (strategy.pairs * per_pair * element + gradient + population * classes * 4 + 3 * population * 4
            + unit_activation_bytes)


def population_fix(cfg: TrainConfig, needed: int, device) -> str:
    """The fix a population that does not fit is told to make: the largest even population whose
    estimate fits half the memory (the rest is the data's and the network's)."""
    available = memory_bytes(device) or needed
    fits = max(2, int(cfg.population * available / 2 / needed) // 2 * 2)
    chunk = " or a smaller --chunk-pairs" if cfg.chunk_pairs else ""
    rank = " (or a lower --rank)" if cfg.strategy == "eggroll" and cfg.rank > 1 else ""
    full = "; full-rank noise (openes) needs a weight matrix per member, eggroll far less" \
        if cfg.strategy == "openes" else ""
    return f"try a smaller population, e.g. --population {min(fits, cfg.population)}{rank}{chunk}{full}"


# The fewest recordings each dataset has: scikit-learn's 1,797 digits; N-MNIST and simulated
# folders need at least 2 (their count is known only once the folder is read).
MIN_RECORDINGS = {"digits": 1797, "nmnist": 2, "nmnist-sim": 2}


def load_data(cfg: TrainConfig, progress: bool = True) -> Splits:
    """The binned splits of the config's dataset (built and cached on first use). Frames that cannot
    fit the memory (too many --time-bins) are refused up front where the dataset's size is known,
    and when the allocation fails otherwise."""
    frame = cfg.time_bins * 2 * SENSOR * SENSOR  # bytes of one recording's frames (uint8)
    fix = "try fewer time bins, e.g. --time-bins 10"
    check_memory(MIN_RECORDINGS.get(cfg.dataset, 1) * frame, "cpu",
                 f"binning the {cfg.dataset} recordings at --time-bins {cfg.time_bins}", fix)
    try:
        return load_dataset(cfg.dataset, cfg.data_dir, time_bins=cfg.time_bins, images=cfg.images,
                            val_fraction=cfg.val_fraction, seed=cfg.seed, val_ids=cfg.val_ids,
                            progress=progress)
    except MemoryError as exc:  # numpy says how much it tried to allocate
        reason = (str(exc).splitlines() or ["out of memory"])[0]
        raise SpikerollError(f"the {cfg.dataset} frames at --time-bins {cfg.time_bins} do not fit in memory "
                             f"({reason}); {fix}") from None


def make_network(cfg: TrainConfig, in_features: int, classes: int, device) -> Network:
    """The network a config describes: a user's module (`--model`), the integer Loihi network
    (`--neuron loihi`) or the float LIF stack, with `in_features` inputs per time bin."""
    if cfg.model:  # a user's torch.nn.Module (`--model FILE.py:FACTORY`, spikeroll.modules.net)
        return ModuleNet.from_config(cfg, in_features, classes, device)
    sizes = [in_features, *cfg.hidden, classes]
    check_memory(network_bytes(sizes), device, f"a network of layer sizes {sizes}",
                 "try smaller --hidden widths, or --pool 2 for fewer inputs")
    if cfg.neuron == "loihi":  # integer network with Loihi's arithmetic, see spikeroll.nets.integer
        return IntegerNet([in_features, *cfg.hidden, classes], cfg.weight_bits, beta=cfg.beta,
                          readout=cfg.readout, init_gain=cfg.init_gain, seed=cfg.seed, device=device, pool=cfg.pool,
                          ptq=cfg.ptq, frozen_step=cfg.lr if cfg.strategy == "egg" else None)
    return SpikingNet([in_features, *cfg.hidden, classes], beta=cfg.beta, threshold=cfg.threshold,
                      reset=cfg.reset, readout=cfg.readout, init_gain=cfg.init_gain, seed=cfg.seed,
                      device=device, pool=cfg.pool)


def make_optimizer(cfg: TrainConfig, params) -> torch.optim.Optimizer:
    """The torch.optim optimiser that every estimator's gradient is handed to (adam = AdamW)."""
    if cfg.optimizer == "adam":
        return torch.optim.AdamW(params, lr=cfg.lr, betas=(cfg.momentum, 0.999), weight_decay=cfg.weight_decay)
    return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)


def local_evaluator(cfg: TrainConfig, net: Network, fitness=None) -> Evaluator:
    """The evaluator of this process (the Trainer's, or a Ray worker's): a user's nn.Module runs its
    population as one batch (spikeroll.modules), the built-in network through LocalEvaluator.
    A population whose generation cannot fit the device's memory is refused here (`check_memory`),
    before its noise is drawn; a Ray worker checks what the driver holds, the whole population's noise.
    `fitness` is a user's fitness(logits, labels, counts) callable (the Python API's), which
    replaces cfg.objective and cfg.fitness (spikeroll.es.objectives)."""
    if cfg.model:
        evaluator = module_evaluator(cfg, net, fitness)
        activations = 0  # a user's module: its activations are unknown, so not counted
    else:
        strategy = EvolutionStrategy(net.params, cfg.population, None if cfg.strategy == "openes" else cfg.rank,
                                     cfg.seed)
        evaluator = LocalEvaluator(net, strategy, cfg.temperature, cfg.time_bins, cfg.chunk_pairs,
                                   objective=objective_from_config(cfg, fitness))
        # a fixed --chunk-pairs unit's activations for one sample (auto units stay within a small budget)
        unit = min(cfg.chunk_pairs or 0, strategy.pairs)
        activations = unit * pair_activation_bytes(net.sizes, 1, cfg.time_bins, strategy.rank, net.device)
    needed = generation_bytes(evaluator.strategy, net.sizes[-1], activations)
    check_memory(needed, net.device, f"one generation of population {cfg.population} ({cfg.strategy})",
                 population_fix(cfg, needed, net.device))
    return evaluator
