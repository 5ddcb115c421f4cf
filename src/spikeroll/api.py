"""The few calls a Python user needs: train a run, evaluate a run, export a run, load its data."""

from __future__ import annotations

from pathlib import Path

from spikeroll.config import TrainConfig
from spikeroll.errors import SpikerollError
from spikeroll.interop.nir import check_inputs, export_network, import_graph, network_config
from spikeroll.nets.integer import export_loihi
from spikeroll.training.evaluation import accuracy, accuracy_and_counts, early_exit
from spikeroll.training.factories import load_data
from spikeroll.training.rundir import load_trained
from spikeroll.training.trainer import Trainer

__all__ = ["evaluate_run", "export_loihi_run", "export_run", "load_data", "train_run"]


def train_run(cfg: TrainConfig | None = None, out_dir: str | Path = "runs/latest", *, resume: bool = False,
              overwrite: bool = False, progress: bool = True, data=None, callbacks=(), fitness=None) -> dict:
    """Train (or resume) a run and return its report (also written to out_dir/report.json).

    `callbacks` are `spikeroll.training.callbacks.Callback` instances called around every generation.
    A NIR graph as `cfg.init_from` (a .nir file) sets the network's settings and first parameters; a
    run directory trained with --model as `cfg.init_from` opens only when `cfg.model` names the model
    (it is imported: see `spikeroll.training.rundir.load_trained`). `fitness` is your own
    fitness(logits, labels, counts) -> (N,) in place of cfg.objective (spikeroll.es.objectives,
    docs/energy.md)."""
    cfg = cfg or TrainConfig()
    init_net = None
    if cfg.init_from and str(cfg.init_from).endswith(".nir") and not resume:
        imported = import_graph(cfg.init_from)
        network_config(cfg, imported)  # the graph defines the network
        init_net = imported.net
    cfg = cfg.validate()
    data = data if data is not None else load_data(cfg, progress)
    trainer = Trainer(cfg, out_dir, data, resume=resume, overwrite=overwrite, callbacks=callbacks, init_net=init_net,
                      fitness=fitness)
    return trainer.run(progress=progress)


def evaluate_run(run_dir: str | Path, dataset: str | None = None, data_dir: str | None = None,
                 images: str | None = None, tta_shift: int = 0, *, model: str | None = None,
                 early_exit_confidence: float | None = None) -> dict:
    """Accuracy of a run's saved network on every split of its dataset (or another one); with
    tta_shift > 0, averaged over shifted copies of each recording (see
    `spikeroll.training.evaluation.accuracy`). `run_dir` may also be a NIR graph (a .nir file): its
    network, on the dataset its metadata names (spikeroll's exports) or the one given.

    A run trained with --model opens only with `model` (FILE.py:FACTORY) given: it is imported and
    run (see `spikeroll.training.rundir.load_trained`). With `early_exit_confidence`, each
    validation and test recording is also decided at its first confident time bin
    (`spikeroll.training.evaluation.early_exit`: accuracy, bins used, SynOps spent)."""
    if early_exit_confidence is not None and not 0.0 < early_exit_confidence <= 1.0:
        raise SpikerollError(f"--early-exit-confidence {early_exit_confidence} must be in (0, 1], e.g. 0.9")
    imported = None
    if str(run_dir).endswith(".nir"):
        imported = import_graph(run_dir)
        cfg, net = network_config(TrainConfig(), imported), imported.net
    else:
        cfg, net = load_trained(run_dir, model=model)
    if dataset is not None:
        cfg.dataset, cfg.data_dir, cfg.images, cfg.val_ids = dataset, data_dir, images, None
    elif data_dir is not None:
        cfg.data_dir = data_dir
    data = load_data(cfg, progress=False)
    if imported is not None:
        check_inputs(imported, data.train.frames)
    result = {"run": str(run_dir), "dataset": cfg.dataset}
    if tta_shift:
        result["tta_shift"] = tta_shift
    for name, split in (("train", data.train), ("val", data.val), ("test", data.test)):
        result[f"{name}_accuracy"] = accuracy(net, split, tta_shift=tta_shift)
    for name, split in (("val", data.val), ("test", data.test)):  # SynOps and rates (docs/energy.md)
        counted = accuracy_and_counts(net, split, f"{name}_")
        result.update({k: v for k, v in counted.items() if not k.endswith("accuracy")})
        if early_exit_confidence is not None:
            result.update(early_exit(net, split, early_exit_confidence, f"{name}_"))
    if early_exit_confidence is not None:
        result["early_exit_confidence"] = early_exit_confidence
    return result


def export_run(run_dir: str | Path, out: str | Path | None = None, *, model: str | None = None) -> Path:
    """Write a run's trained network as a NIR graph (default RUN_DIR/network.nir) and return its
    path; a subtract-reset network also emits a NIRExportWarning (see spikeroll.interop.nir).
    `model`: the FILE.py:FACTORY a --model run needs to be opened (it is imported)."""
    cfg, net = load_trained(run_dir, model=model)
    return export_network(net, cfg, Path(out) if out else Path(run_dir) / "network.nir", source=str(run_dir))


def export_loihi_run(run_dir: str | Path, out: str | Path | None = None, *, model: str | None = None) -> Path:
    """Write an integer run's (--neuron loihi) weights, exponents and neuron constants as Loihi-style
    parameters (.json or .npz; default RUN_DIR/loihi.json) and return the path. `model`: as in
    `export_run`."""
    _, net = load_trained(run_dir, model=model)
    path = Path(out) if out else Path(run_dir) / "loihi.json"
    export_loihi(net, path)
    return path
