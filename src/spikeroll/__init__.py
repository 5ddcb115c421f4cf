"""spikeroll: train spiking neural networks with low-rank evolution strategies (EGGROLL).

The package is laid out as its data flows (docs/how-it-works.md), each layer importing only the
ones below it:

    cli                      the command line (argument parsing only)
    api                      train_run, evaluate_run, export_run, load_data
    tools/, interop/         bench, compare, plot; NIR in and out
    training/                the Trainer, factories, run directory, callbacks, Ray workers
    modules/                 EGGROLL for any torch.nn.Module
    es/                      noise -> members -> fitness -> shaping -> gradient (its docstring walks it)
    nets/, data/             LIF and integer networks with their kernels; datasets and minibatches
    config, atomic, memory, cachedir    leaves everyone may use; below them errors and version,
                             and at the bottom noise (a pure function of counters)

The public names below are imported on first use, so `import spikeroll` (and `spikeroll --help`)
loads neither torch nor numba.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from spikeroll.version import __version__

_PUBLIC = {
    "EGGROLL": "spikeroll.modules.es",
    "EvolutionStrategy": "spikeroll.es.strategies",
    "SpikerollError": "spikeroll.errors",
    "SpikingNet": "spikeroll.nets.model",
    "TrainConfig": "spikeroll.config",
    "evaluate_run": "spikeroll.api",
    "export_run": "spikeroll.api",
    "load_data": "spikeroll.api",
    "shape_fitness": "spikeroll.es.strategies",
    "train_run": "spikeroll.api",
}
__all__ = ["EGGROLL", "EvolutionStrategy", "SpikerollError", "SpikingNet", "TrainConfig", "__version__", "evaluate_run",
           "export_run", "load_data", "shape_fitness", "train_run"]  # _PUBLIC's names

if TYPE_CHECKING:  # what type checkers and IDEs see; at run time __getattr__ imports on first use
    from spikeroll.api import evaluate_run, export_run, load_data, train_run
    from spikeroll.config import TrainConfig
    from spikeroll.errors import SpikerollError
    from spikeroll.es.strategies import EvolutionStrategy, shape_fitness
    from spikeroll.modules.es import EGGROLL
    from spikeroll.nets.model import SpikingNet


def __getattr__(name: str):
    """Import a public name's module on first use (PEP 562)."""
    if name not in _PUBLIC:
        raise AttributeError(f"module 'spikeroll' has no attribute {name!r}")
    value = getattr(importlib.import_module(_PUBLIC[name]), name)  # the name from its defining module
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    """The public names, for tab completion."""
    return sorted([*globals(), *_PUBLIC])
