"""`build_estimator`: the one place that reads `cfg.strategy` and decides where the population runs
(this process, or Ray workers)."""

from __future__ import annotations

from spikeroll.config import TrainConfig
from spikeroll.data import Splits
from spikeroll.es.bptt import BPTTEstimator
from spikeroll.es.egg import EGGEstimator
from spikeroll.es.estimators import ESEstimator
from spikeroll.es.protocols import Estimator, Network
from spikeroll.training.distributed import RayEvaluator
from spikeroll.training.factories import local_evaluator


def build_estimator(cfg: TrainConfig, net: Network, data: Splits | None = None) -> Estimator:
    """The estimator of `cfg.strategy` for `net`, evaluated in this process, or on Ray workers
    when cfg.workers or cfg.ray_address is set (they need the run's `data`)."""
    if cfg.strategy == "bptt":
        return BPTTEstimator(net, cfg)
    evaluator = local_evaluator(cfg, net)
    strategy = evaluator.strategy
    if cfg.workers or cfg.ray_address:  # the same work units, on Ray workers (spikeroll.training.distributed)
        evaluator = RayEvaluator(evaluator, cfg, data)
    if cfg.strategy == "egg":  # integer-native ±1 updates of an integer network (spikeroll.es.egg)
        return EGGEstimator(strategy, evaluator, cfg, net)
    return ESEstimator(strategy, evaluator, cfg)
