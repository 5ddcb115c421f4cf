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
    cfg = (cfg or TrainConfig()).validate()
    data = data if data is not None else load_data(cfg, progress)
    trainer = Trainer(cfg, out_dir, data, resume=resume, overwrite=overwrite, callbacks=callbacks)
    return trainer.run(progress=progress)


def evaluate_run(run_dir: str | Path, dataset: str | None = None, data_dir: str | None = None,
                 images: str | None = None, tta_shift: int = 0) -> dict:
    """Accuracy of a run's saved network on every split of its dataset (or another one); with
    tta_shift > 0, averaged over shifted copies of each recording (see `spikeroll.train.accuracy`)."""
    cfg, net = load_trained(run_dir)
    if dataset is not None:
        cfg.dataset, cfg.data_dir, cfg.images, cfg.val_ids = dataset, data_dir, images, None
    elif data_dir is not None:
        cfg.data_dir = data_dir
    data = load_data(cfg, progress=False)
    result = {"run": str(run_dir), "dataset": cfg.dataset}
    if tta_shift:
        result["tta_shift"] = tta_shift
    for split in ("train", "val", "test"):
        result[f"{split}_accuracy"] = accuracy(net, getattr(data, split), tta_shift=tta_shift)
    return result
