"""The embedded default dataset: scikit-learn's 1,797 8x8 digits turned into N-MNIST-style
recordings by the saccade simulator (no download, no files needed).

Fixed split: stratified by class with seed DIGITS_SPLIT_SEED, 70/15/15 % of every class ->
1,258 train / 270 val / 269 test (sample indices in Splits.info["indices"]). The split and the
simulation (seed DIGITS_SIM_SEED) do not depend on the run seed, so every run sees the same
recordings and the same test set.
"""
from __future__ import annotations

import hashlib

import numpy as np

from spikeroll.data.binning import BinOpts, bin_concat
from spikeroll.data.events import RECORDING_US, SENSOR_SIZE
from spikeroll.data.saccade import DEFAULTS, simulate_concat
from spikeroll.data.splits import Splits, cached_splits, stratified_split

DIGITS_SPLIT_SEED = 12345
DIGITS_SIM_SEED = 0
FRACTIONS = (0.70, 0.15, 0.15)
CLASSES = 10  # the digits 0-9
# sklearn's digits fill their 8x8 box; MNIST fits digits into 20x20 inside 28x28, so scale to 20
SIM_PARAMS = {**DEFAULTS, "seed": DIGITS_SIM_SEED, "margin": 4}


def digit_images() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's 8x8 digits: images (N, 8, 8) float32 (values 0..16) and labels (N,) int64."""
    # scikit-learn is a dependency, imported here on purpose: its datasets module takes seconds to load
    # and only this dataset needs it
    from sklearn.datasets import load_digits
    d = load_digits()
    return d.images.astype(np.float32), d.target.astype(np.int64)


def digit_recordings(progress: bool = False):
    """Simulated recordings of all 1,797 digits: (events, sample index, labels)."""
    images, labels = digit_images()
    ev, s = simulate_concat(images, **SIM_PARAMS, progress=progress)
    return ev, s, labels


def load_digits_splits(opts: BinOpts, cache_dir=None, progress: bool = True) -> Splits:
    """The digits turned into simulated event recordings and binned with `opts`, split
    train/val/test with a fixed seed; built once and cached (keyed by every input)."""
    images, labels = digit_images()
    params = {"sim": SIM_PARAMS, "bin": opts.key(), "split_seed": DIGITS_SPLIT_SEED, "fractions": FRACTIONS,
              "images": hashlib.sha256(images.tobytes() + labels.tobytes()).hexdigest()}

    def build():
        ev, s = simulate_concat(images, **SIM_PARAMS, progress=progress)
        frames = bin_concat(ev, s, len(images), opts, total_us=RECORDING_US)  # same T as every dataset
        idx = stratified_split(labels, FRACTIONS, DIGITS_SPLIT_SEED)
        parts = {name: (frames[i], labels[i]) for name, i in zip(("train", "val", "test"), idx)}
        info = {"split": f"sklearn digits, stratified 70/15/15 per class with fixed seed {DIGITS_SPLIT_SEED} "
                         f"(independent of the run seed): {' / '.join(str(len(i)) for i in idx)} train/val/test",
                "simulator": {k: list(v) if isinstance(v, tuple) else v for k, v in SIM_PARAMS.items()},
                "indices": {name: i.tolist() for name, i in zip(("train", "val", "test"), idx)},
                "time_bins": int(frames.shape[1]), "skipped": 0}
        return parts, info

    return cached_splits("digits", "digits", params, cache_dir, opts.binary, build, classes=CLASSES,
                         sensor_size=SENSOR_SIZE)
