"""The few calls a Python user needs: train a run, evaluate a run."""

from __future__ import annotations

from pathlib import Path

from spikeroll.config import TrainConfig
from spikeroll.evaluation import accuracy
from spikeroll.train import Trainer, load_trained


def load_data(cfg: TrainConfig, progress: bool = True):
    from spikeroll.data import load_dataset

    return load_dataset(cfg.dataset, cfg.data_dir, time_bins=cfg.time_bins, images=cfg.images,
                        val_fraction=cfg.val_fraction, seed=cfg.seed, val_ids=cfg.val_ids,
                        progress=progress)


def train_run(cfg: TrainConfig | None = None, out_dir: str | Path = "runs/latest", *, resume: bool = False,
              overwrite: bool = False, progress: bool = True, data=None, callbacks=()) -> dict:
    """Train (or resume) a run and return its report (also written to out_dir/report.json).

    `callbacks` are `spikeroll.callbacks.Callback` instances called around every generation."""
    cfg = cfg or TrainConfig()
    if cfg.init_from and str(cfg.init_from).endswith(".nir") and not resume:
        from spikeroll.interop.nir import import_graph, network_config

        network_config(cfg, import_graph(cfg.init_from))  # the graph defines the network
    cfg = cfg.validate()
    data = data if data is not None else load_data(cfg, progress)
    trainer = Trainer(cfg, out_dir, data, resume=resume, overwrite=overwrite, callbacks=callbacks)
    return trainer.run(progress=progress)


def evaluate_run(run_dir: str | Path, dataset: str | None = None, data_dir: str | None = None,
                 images: str | None = None, tta_shift: int = 0) -> dict:
    """Accuracy of a run's saved network on every split of its dataset (or another one); with
    tta_shift > 0, averaged over shifted copies of each recording (see `spikeroll.train.accuracy`).
    `run_dir` may also be a NIR graph (a .nir file): its network, on the dataset its metadata names
    (spikeroll's exports) or the one given."""
    imported = None
    if str(run_dir).endswith(".nir"):
        from spikeroll.interop.nir import check_inputs, import_graph, network_config

        imported = import_graph(run_dir)
        cfg, net = network_config(TrainConfig(), imported), imported.net
    else:
        cfg, net = load_trained(run_dir)
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
    for split in ("train", "val", "test"):
        result[f"{split}_accuracy"] = accuracy(net, getattr(data, split), tta_shift=tta_shift)
    return result


def export_run(run_dir: str | Path, out: str | Path | None = None) -> Path:
    """Write a run's trained network as a NIR graph (default RUN_DIR/network.nir) and return its
    path; a subtract-reset network also emits a NIRExportWarning (see spikeroll.interop.nir)."""
    from spikeroll.interop.nir import export_run as export

    return export(run_dir, out)
