"""spikeroll: train spiking neural networks with low-rank evolution strategies (EGGROLL)."""

from spikeroll.errors import SpikerollError

__version__ = "0.1.0"
__all__ = ["SpikerollError", "__version__"]
