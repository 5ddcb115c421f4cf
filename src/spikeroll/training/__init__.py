"""The training loop and what it owns: the Trainer, the factories that build a run from its
config (device, data, network, optimiser, estimator), the run directory, callbacks, evaluation of
the mean network, and Ray workers (distributed)."""
