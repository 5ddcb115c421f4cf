"""spikeroll: train spiking neural networks with low-rank evolution strategies (EGGROLL)."""

from spikeroll.api import evaluate_run, train_run
from spikeroll.config import TrainConfig
from spikeroll.errors import SpikerollError
from spikeroll.model import SpikingNet
from spikeroll.modules import EGGROLL
from spikeroll.strategies import EvolutionStrategy, shape_fitness

__version__ = "0.1.0"
__all__ = ["EGGROLL", "EvolutionStrategy", "SpikerollError", "SpikingNet", "TrainConfig", "evaluate_run",
           "shape_fitness", "train_run", "__version__"]
