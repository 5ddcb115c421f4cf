"""nmnist-sim: any images (MNIST IDX file or <label>/*.png folder) through the saccade simulator.

Split: the last 10 % of the images (in file order) are the test set, as a fixed holdout; the
validation set is a stratified val_fraction of the rest, chosen by the run seed. Simulation
(seed SIM_SEED, calibrated DEFAULTS) and binning run in chunks; frames of all images are
cached under a key of the image content, simulator and binning parameters.
"""
from __future__ import annotations

import hashlib

import numpy as np
import torch
from tqdm import tqdm

from spikeroll.data import cache
from spikeroll.data.binning import BinOpts, bin_concat
from spikeroll.data.events import RECORDING_US, SENSOR_SIZE
from spikeroll.data.images import load_images
from spikeroll.data.saccade import DEFAULTS, simulate_concat
from spikeroll.data.splits import Split, Splits, stratified_split
from spikeroll.errors import SpikerollError

SIM_SEED = 0
TEST_FRACTION = 0.1
_CHUNK_IMAGES = 2048  # images simulated per chunk (~8M events): bounded memory; a multiple of 128
SIM_PARAMS = {**DEFAULTS, "seed": SIM_SEED, "margin": 0}  # MNIST images already carry their margin


def _images(source):
    if source is None:
        raise SpikerollError("nmnist-sim needs --images: an MNIST images IDX file (e.g. train-images-idx3-ubyte.gz) "
                             "or a folder of <label>/*.png")
    return load_images(source)


def iter_sim_recordings(source, progress: bool = False):
    """Simulated recordings chunk by chunk: yields (events, sample, n, labels, "all")."""
    images, labels = _images(source)
    for a in range(0, len(images), _CHUNK_IMAGES):
        chunk = images[a:a + _CHUNK_IMAGES]
        ev, s = simulate_concat(chunk, **SIM_PARAMS, index_offset=a, progress=progress)
        yield ev, s, len(chunk), labels[a:a + _CHUNK_IMAGES], "all"


def load_sim_splits(source, opts: BinOpts, *, val_fraction: float = 0.2, seed: int = 0, cache_dir=None,
                    progress: bool = True) -> Splits:
    """The images of `source` through the saccade simulator, binned with `opts` and split as the
    module docstring says (the test set fixed, validation chosen by `seed`); frames are cached."""
    images, labels = _images(source)
    if len(images) < 10:
        raise SpikerollError(f"{source} holds {len(images)} images; nmnist-sim needs at least 10")
    digest = hashlib.sha256(np.ascontiguousarray(images).tobytes() + labels.tobytes()).hexdigest()
    params = {"sim": SIM_PARAMS, "bin": opts.key(), "images": digest}
    path = cache.cache_path("nmnist-sim", params, cache_dir)

    def build():
        frames = []
        starts = range(0, len(images), _CHUNK_IMAGES)
        if progress:
            starts = tqdm(starts, desc="simulating N-MNIST", unit="chunk", leave=False)
        for a in starts:  # same events as one big call: randomness is keyed by image index
            chunk = images[a:a + _CHUNK_IMAGES]
            ev, s = simulate_concat(chunk, **SIM_PARAMS, index_offset=a)
            frames.append(bin_concat(ev, s, len(chunk), opts, total_us=RECORDING_US))
        return {"frames": np.concatenate(frames)}, {}

    arrays, _, hit = cache.cached_frames(path, opts.binary, build)
    frames = arrays["frames"]
    n_test = max(1, int(round(TEST_FRACTION * len(images))))
    rest = len(images) - n_test
    tr, va = stratified_split(labels[:rest], (1 - val_fraction, val_fraction), seed)
    part = lambda i: Split(torch.from_numpy(np.ascontiguousarray(frames[i])), torch.from_numpy(labels[i]))
    info = {"source": str(source), "cache": str(path), "from_cache": hit, "skipped": 0,
            "simulator": {k: list(v) if isinstance(v, tuple) else v for k, v in SIM_PARAMS.items()},
            "split": f"test = last {n_test} images ({TEST_FRACTION:.0%}, fixed); validation = stratified "
                     f"{val_fraction:.0%} of the rest (seed {seed}): {len(tr)} train / {len(va)} val / {n_test} test",
            "time_bins": int(frames.shape[1])}
    classes = max(10, int(labels.max()) + 1)  # MNIST's ten digits, or more where PNG folders 10, 11, ... exist
    return Splits("nmnist-sim", part(tr), part(va), part(np.arange(rest, len(images))), info, classes=classes,
                  sensor_size=SENSOR_SIZE)
