"""The factories that turn a TrainConfig into the objects of a run: its device, data, network,
optimiser and local evaluator. The Trainer, `load_trained` and every Ray worker build their state
through these same functions, so a worker's network is the driver's network."""

from __future__ import annotations

import torch

from spikeroll.config import TrainConfig
from spikeroll.data import Splits, load_dataset
from spikeroll.errors import SpikerollError
from spikeroll.es.evaluators import LocalEvaluator
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
    return torch.device(name)


def load_data(cfg: TrainConfig, progress: bool = True) -> Splits:
    """The binned splits of the config's dataset (built and cached on first use)."""
    return load_dataset(cfg.dataset, cfg.data_dir, time_bins=cfg.time_bins, images=cfg.images,
                        val_fraction=cfg.val_fraction, seed=cfg.seed, val_ids=cfg.val_ids,
                        progress=progress)


def make_network(cfg: TrainConfig, in_features: int, classes: int, device) -> Network:
    """The network a config describes: a user's module (`--model`), the integer Loihi network
    (`--neuron loihi`) or the float LIF stack, with `in_features` inputs per time bin."""
    if cfg.model:  # a user's torch.nn.Module (`--model FILE.py:FACTORY`, spikeroll.modules.net)
        return ModuleNet.from_config(cfg, in_features, classes, device)
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


def local_evaluator(cfg: TrainConfig, net: Network) -> Evaluator:
    """The evaluator of this process (the Trainer's, or a Ray worker's): a user's nn.Module runs its
    population as one batch (spikeroll.modules), the built-in network through LocalEvaluator."""
    if cfg.model:
        return module_evaluator(cfg, net)
    strategy = EvolutionStrategy(net.params, cfg.population, None if cfg.strategy == "openes" else cfg.rank, cfg.seed)
    return LocalEvaluator(net, strategy, cfg.temperature, cfg.time_bins, cfg.chunk_pairs)
