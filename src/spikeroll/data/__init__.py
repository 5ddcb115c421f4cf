"""Data layer: event recordings, binning into frames, datasets and their on-disk cache.

load_dataset(name, ...) -> Splits of uint8 frames (N, T, 2, 34, 34) and int64 labels; each Splits
  declares .classes (its readout size) and .sensor_size, here (34, 34, 2) in tonic's (width, height, polarities).
  "digits"     embedded default: sklearn's 8x8 digits through the saccade simulator
  "nmnist"     real N-MNIST .bin files under data_dir (Train/<label>/*.bin, Test/<label>/*.bin)
  "nmnist-sim" any images (MNIST IDX file or <label>/*.png folder) through the saccade simulator
"""
from __future__ import annotations

from spikeroll.config import DATASETS
from spikeroll.data.binning import BinOpts, bin_batch, bin_concat, bin_events, denoise_mask
from spikeroll.data.digits import load_digits_splits
from spikeroll.data.events import EVENT_DTYPE, SACCADE_US, SENSOR, SENSOR_SIZE, concat, make_events, split
from spikeroll.data.nmnist import load_nmnist_splits
from spikeroll.data.nmnist_format import read_nmnist_bin, write_nmnist_bin
from spikeroll.data.recordings import load_recordings
from spikeroll.data.saccade import simulate_saccades
from spikeroll.data.simulated import load_sim_splits
from spikeroll.data.splits import Split, Splits
from spikeroll.data.stats import dataset_stats
from spikeroll.errors import SpikerollError

__all__ = ["DATASETS", "EVENT_DTYPE", "SACCADE_US", "SENSOR", "SENSOR_SIZE", "BinOpts", "Split", "Splits",
           "bin_batch", "bin_concat", "bin_events", "concat", "dataset_stats", "denoise_mask", "load_dataset",
           "load_recordings", "make_events", "read_nmnist_bin", "simulate_saccades", "split",
           "write_nmnist_bin"]


def load_dataset(name: str, data_dir: str | None = None, *, time_bins: int = 10, window_us: int | None = None,
                 first_saccade: bool = False, denoise: bool = False, binary: bool = True,
                 images: str | None = None, val_fraction: float = 0.2, seed: int = 0,
                 strict: bool = False, cache_dir: str | None = None, progress: bool = True,
                 val_ids: str | None = None) -> Splits:
    """Load a dataset as binned frames, building and caching them on first use.
    val_fraction and seed choose the validation part of nmnist's Train/ and of nmnist-sim's
    images (for nmnist, val_ids such as '801-1000' chooses it by recording id instead); digits
    uses a fixed documented split and ignores both (see Splits.info["split"])."""
    if name not in DATASETS:
        raise SpikerollError(f"unknown dataset {name!r}; choose one of: {', '.join(DATASETS)}")
    if val_ids and name != "nmnist":
        raise SpikerollError(f"--val-ids selects N-MNIST recordings by file id; dataset {name!r} has none, "
                             "so use --val-fraction")
    if not 0 < val_fraction < 1:
        raise SpikerollError(f"val_fraction must be between 0 and 1, got {val_fraction}")
    opts = BinOpts(time_bins=time_bins, window_us=window_us, first_saccade=first_saccade,
                   denoise=denoise, binary=binary)
    if name == "digits":
        return load_digits_splits(opts, cache_dir, progress)
    if name == "nmnist":
        return load_nmnist_splits(data_dir, opts, val_fraction=val_fraction, seed=seed, strict=strict, val_ids=val_ids,
                                  cache_dir=cache_dir, progress=progress)
    return load_sim_splits(images or data_dir, opts, val_fraction=val_fraction, seed=seed, cache_dir=cache_dir,
                           progress=progress)
