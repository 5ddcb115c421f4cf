"""`build_estimator`: the one place that reads `cfg.strategy` and decides where the population runs
(this process, or Ray workers)."""

from __future__ import annotations

from spikeroll.config import TrainConfig
from spikeroll.data import Splits
from spikeroll.errors import SpikerollError
from spikeroll.es.bptt import BPTTEstimator
from spikeroll.es.egg import EGGEstimator
from spikeroll.es.estimators import ESEstimator
from spikeroll.es.protocols import Estimator, Network
from spikeroll.training.distributed import RayEvaluator
from spikeroll.training.factories import local_evaluator


def build_estimator(cfg: TrainConfig, net: Network, data: Splits | None = None, fitness=None) -> Estimator:
    """The estimator of `cfg.strategy` for `net`, evaluated in this process, or on Ray workers
    when cfg.workers or cfg.ray_address is set (they need the run's `data`). `fitness` is a user's
    fitness(logits, labels, counts) callable (spikeroll.es.objectives), in place of cfg.objective."""
    if fitness is not None and (cfg.strategy == "bptt" or cfg.model or cfg.workers or cfg.ray_address):
        raise SpikerollError("a fitness function runs with eggroll, openes or egg on the built-in network in this "
                             "process: drop --workers/--ray-address/--model, or the fitness function")
    if cfg.strategy == "bptt":
        return BPTTEstimator(net, cfg)
    evaluator = local_evaluator(cfg, net, fitness)
    strategy = evaluator.strategy
    if cfg.workers or cfg.ray_address:  # the same work units, on Ray workers (spikeroll.training.distributed)
        evaluator = RayEvaluator(evaluator, cfg, data)
    if cfg.strategy == "egg":  # integer-native ±1 updates of an integer network (spikeroll.es.egg)
        return EGGEstimator(strategy, evaluator, cfg, net)
    return ESEstimator(strategy, evaluator, cfg)
